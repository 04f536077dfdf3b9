//! The adaptive limit as a tower layer: admit up to the limit, shed the rest.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use observability::rpc::outcome::{ObservedBody, StatusSink, observe};
use tokio::time::Instant;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitAlgorithm, Sample};
use crate::BoxError;
use crate::error::Error;

#[derive(Debug)]
struct Shared {
    algorithm: Mutex<Box<dyn LimitAlgorithm>>,
    limit: AtomicUsize,
    inflight: AtomicUsize,
    shed: AtomicU64,
    served: AtomicU64,
}

/// A view of a running limiter, for dashboards and tests.
#[derive(Clone, Debug)]
pub struct LimiterHandle {
    shared: Arc<Shared>,
}

impl LimiterHandle {
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Acquire)
    }

    pub fn inflight(&self) -> usize {
        self.shared.inflight.load(Ordering::Acquire)
    }

    /// Calls refused because the limit was reached.
    pub fn shed(&self) -> u64 {
        self.shared.shed.load(Ordering::Acquire)
    }

    /// Calls admitted and finished.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Acquire)
    }
}

/// Admits calls up to an adaptive limit; sheds the rest.
#[derive(Clone, Debug)]
pub struct AdaptiveConcurrencyLayer {
    shared: Arc<Shared>,
}

impl AdaptiveConcurrencyLayer {
    pub fn new(algorithm: impl LimitAlgorithm + 'static) -> Self {
        let limit = algorithm.limit();
        Self {
            shared: Arc::new(Shared {
                algorithm: Mutex::new(Box::new(algorithm)),
                limit: AtomicUsize::new(limit),
                inflight: AtomicUsize::new(0),
                shed: AtomicU64::new(0),
                served: AtomicU64::new(0),
            }),
        }
    }

    pub fn handle(&self) -> LimiterHandle {
        LimiterHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for AdaptiveConcurrencyLayer {
    type Service = AdaptiveConcurrencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveConcurrencyService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A service behind an adaptive concurrency limit.
#[derive(Clone, Debug)]
pub struct AdaptiveConcurrencyService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: NamedService> NamedService for AdaptiveConcurrencyService<S> {
    const NAME: &'static str = S::NAME;
}

/// One admitted call: its start and how crowded it was.
#[derive(Debug)]
pub struct InFlight {
    shared: Arc<Shared>,
    started: Instant,
    inflight: usize,
}

impl StatusSink for InFlight {
    fn finish(self, code: Code, _message: &str) {
        // Overload signals: the call was refused or ran out of time.
        let dropped = matches!(
            code,
            Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded
        );
        let sample = Sample {
            rtt: self.started.elapsed(),
            inflight: self.inflight,
            dropped,
        };
        let mut algorithm = self
            .shared
            .algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        algorithm.update(sample);
        self.shared
            .limit
            .store(algorithm.limit(), Ordering::Release);
        self.shared.served.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    /// Cancelled calls free their slot but teach the limit nothing.
    fn drop(&mut self) {
        self.shared.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AdaptiveConcurrencyService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody, InFlight>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let limit = shared.limit.load(Ordering::Acquire);
        let inflight = shared.inflight.fetch_add(1, Ordering::AcqRel) + 1;
        if inflight > limit {
            shared.inflight.fetch_sub(1, Ordering::AcqRel);
            shared.shed.fetch_add(1, Ordering::AcqRel);
            let refused = Error::ConcurrencyLimited { limit }.into_refusal();
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let admitted = InFlight {
            shared: shared.clone(),
            started: Instant::now(),
            inflight,
        };
        let called = self.inner.call(request);
        Box::pin(async move {
            match called.await {
                Ok(response) => Ok(observe(response, admitted, None)),
                Err(err) => {
                    let status = Status::from_error(err.into());
                    admitted.finish(status.code(), status.message());
                    Err(Box::new(status) as BoxError)
                }
            }
        })
    }
}
