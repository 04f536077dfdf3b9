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

/// Server-wide admission control: a bulkhead (calls served at once) and a
/// rate limit (calls per second) in front of every service a server hosts,
/// shared by all of them — what `dslab serve --max-concurrent N
/// --rate-limit R` installs. Refusals are `RESOURCE_EXHAUSTED` (with a
/// retry pushback from the limiter), counted in `/metrics` once
/// [`register`](Self::register)ed.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    pub bulkhead: Option<crate::bulkhead::Bulkhead>,
    pub rate_limit: Option<crate::rate_limit::RateLimitLayer>,
}

/// The name both guards are exported under.
pub const ADMISSION: &str = "admission";

impl Admission {
    /// Guards with the given limits (either may be absent).
    pub fn new(max_concurrent: Option<usize>, per_second: Option<u32>) -> crate::Result<Self> {
        use crate::bulkhead::{Bulkhead, BulkheadConfig};
        use crate::rate_limit::{Gcra, Quota, RateLimitLayer};
        let bulkhead = max_concurrent
            .map(|max_concurrent| {
                Bulkhead::new(BulkheadConfig {
                    name: ADMISSION.into(),
                    max_concurrent,
                    max_wait: std::time::Duration::ZERO,
                })
            })
            .transpose()?;
        let rate_limit = per_second
            .map(|n| {
                Ok::<_, crate::Error>(RateLimitLayer::new(std::sync::Arc::new(Gcra::new(
                    Quota::per_second(n)?,
                ))))
            })
            .transpose()?;
        Ok(Self {
            bulkhead,
            rate_limit,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.bulkhead.is_none() && self.rate_limit.is_none()
    }

    /// Hosts `service` on `server` behind these guards.
    pub fn host<S>(
        &self,
        server: observability::rpc::RpcServer,
        service: S,
        descriptor_set: &'static [u8],
    ) -> observability::rpc::RpcServer
    where
        S: Service<
                http::Request<TonicBody>,
                Response = http::Response<TonicBody>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        use crate::bulkhead::BulkheadLayer;
        use tower_layer::Layer as _;
        // The limiter goes outside: a call over the rate never takes a slot.
        match (&self.bulkhead, &self.rate_limit) {
            (None, None) => server.add_service(service, descriptor_set),
            (Some(bulkhead), None) => server.add_service(
                Guarded::new(BulkheadLayer::new(bulkhead.clone()).layer(service)),
                descriptor_set,
            ),
            (None, Some(limit)) => {
                server.add_service(Guarded::new(limit.layer(service)), descriptor_set)
            }
            (Some(bulkhead), Some(limit)) => server.add_service(
                Guarded::new(limit.layer(BulkheadLayer::new(bulkhead.clone()).layer(service))),
                descriptor_set,
            ),
        }
    }

    /// Puts the guards' occupancy and refusals into `registry`.
    pub fn register(&self, registry: &observability::metrics::MetricsRegistry) {
        if let Some(bulkhead) = &self.bulkhead {
            registry.register_collector(bulkhead.clone());
        }
        if let Some(limit) = &self.rate_limit {
            registry.register_collector(crate::metrics::NamedRateLimit {
                name: ADMISSION.into(),
                layer: limit.clone(),
            });
        }
    }
}
