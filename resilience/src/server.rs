//! Serving a guarded service: resilience layers in front of a tonic server.
//!
//! Every layer here also works on the server side — a breaker that stops
//! handing requests to a failing dependency, a bulkhead, a rate limit, an
//! adaptive concurrency limit that sheds load. [`Guarded`] turns the
//! layered service back into what `RpcServer::add_service` hosts: a named
//! service with a plain tonic body that never errors (a layer's error
//! becomes a gRPC status instead).

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use observability::rpc::outcome::refusal;
use tonic::Status;
use tonic::server::NamedService;
use tower_service::Service;

use crate::BoxError;

/// A layered service, ready for `RpcServer::add_service`.
#[derive(Clone, Debug)]
pub struct Guarded<S> {
    inner: S,
    /// Why the inner service last refused readiness; the next call is
    /// answered with it instead of calling a service that is not ready.
    not_ready: Option<String>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            not_ready: None,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

type TonicBody = tonic::body::Body;

impl<S, ResBody> Service<http::Request<TonicBody>> for Guarded<S>
where
    S: Service<http::Request<TonicBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.not_ready = Some(Status::from_error(err.into()).message().to_owned());
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: http::Request<TonicBody>) -> Self::Future {
        if let Some(reason) = self.not_ready.take() {
            return Box::pin(std::future::ready(Ok(refusal(&Status::unavailable(
                reason,
            )))));
        }
        let called = self.inner.call(request);
        Box::pin(async move {
            Ok(match called.await {
                Ok(response) => response.map(TonicBody::new),
                Err(err) => refusal(&Status::from_error(err.into())),
            })
        })
    }
}
