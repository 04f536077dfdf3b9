//! A rate limiter in front of a service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use super::Limiter;
use crate::BoxError;
use crate::error::Error;

/// Refuses calls over the limit with `ResourceExhausted` and a
/// `grpc-retry-pushback-ms` saying when to come back.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: Arc<dyn Limiter>,
    key_header: Option<http::HeaderName>,
    /// Calls refused, shared by every clone and service of the layer.
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl RateLimitLayer {
    /// One limit for all calls (and all clones of the layer).
    pub fn new(limiter: Arc<dyn Limiter>) -> Self {
        Self {
            limiter,
            key_header: None,
            refused: Arc::default(),
        }
    }

    /// Calls this layer has refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keys the limiter by a request header (e.g. `x-tenant-id`).
    pub fn keyed_by(mut self, header: http::HeaderName) -> Self {
        self.key_header = Some(header);
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A rate-limited service.
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S: NamedService> NamedService for RateLimitService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RateLimitService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = BoxError;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let key = self
            .layer
            .key_header
            .as_ref()
            .and_then(|h| request.headers().get(h))
            .and_then(|v| v.to_str().ok());
        if let Err(retry_after) = self.layer.limiter.check(key) {
            self.layer
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut refused = Error::RateLimited { retry_after }.into_refusal();
            refused.headers_mut().insert(
                crate::retry::policy::RETRY_PUSHBACK,
                http::HeaderValue::from(retry_after.as_millis().max(1) as u64),
            );
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let called = self.inner.call(request);
        Box::pin(async move { called.await.map_err(Into::into) })
    }
}
