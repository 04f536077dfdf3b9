//! The breaker as a tower layer, on a tonic `Channel` or on a server.
//!
//! Works at the HTTP level, so it wraps any gRPC service. A refused call
//! gets a trailers-only `Unavailable` response without touching the inner
//! service; a permitted call's permit rides along in the response body and
//! is settled with the real gRPC status when the body ends — for unary
//! calls the status of a success only arrives in the trailers.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use observability::rpc::outcome::{ObservedBody, observe};
use tonic::Status;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use super::breaker::{CircuitBreaker, Permit};
use crate::BoxError;

/// Wraps a service in a shared [`CircuitBreaker`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self { breaker }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// A service behind a circuit breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S: NamedService> NamedService for CircuitBreakerService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CircuitBreakerService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody, Permit>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(refused) => {
                return Box::pin(std::future::ready(Ok(refused.into_refusal())));
            }
        };
        let called = self.inner.call(request);
        Box::pin(async move {
            match called.await {
                Ok(response) => Ok(observe(response, permit, None)),
                Err(err) => {
                    let status = Status::from_error(err.into());
                    permit.record_code(status.code());
                    Err(Box::new(status) as BoxError)
                }
            }
        })
    }
}
