//! Bulkhead: a fixed number of calls in flight per dependency.
//!
//! Episode: 38, "Bulkhead"
//! Pattern: resilience / bulkhead isolation
//! Try it:  cargo test -p resilience full_stack_bulkhead
//! Test it: cargo test -p resilience bulkhead
//!
//! A ship's bulkheads keep one breach from flooding every compartment. A
//! service that calls a slow dependency without a limit lets that one
//! dependency soak up every connection, task and byte of memory it has —
//! and then fails for everything, including calls to healthy dependencies.
//! A bulkhead gives each dependency its own small pool of slots (a
//! semaphore): when the slow one's pool is full, *its* calls are refused
//! at once with `ResourceExhausted` (optionally after a short wait), and
//! the rest of the service carries on.
//!
//! The slot is held until the response *body* ends, not just the headers:
//! a streaming response still occupies the dependency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use observability::rpc::outcome::{ObservedBody, StatusSink, observe};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Code;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::error::{Error, Result, invalid};

/// The most slots a bulkhead may have.
pub const MAX_CONCURRENT: usize = 100_000;

/// A bulkhead's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkheadConfig {
    pub name: String,
    pub max_concurrent: usize,
    /// How long a call may wait for a slot; zero refuses at once.
    pub max_wait: Duration,
}

/// A pool of call slots. Clones share the pool.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    config: Arc<BulkheadConfig>,
    slots: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
}

/// A slot, held until the call's response ends.
#[derive(Debug)]
pub struct BulkheadSlot(#[allow(dead_code)] OwnedSemaphorePermit);

impl StatusSink for BulkheadSlot {
    fn finish(self, _code: Code, _message: &str) {}
}

impl Bulkhead {
    pub fn new(config: BulkheadConfig) -> Result<Self> {
        if !(1..=MAX_CONCURRENT).contains(&config.max_concurrent) {
            return Err(invalid(
                "bulkhead",
                "max_concurrent",
                format!(
                    "must be in 1..={MAX_CONCURRENT}, got {}",
                    config.max_concurrent
                ),
            ));
        }
        if config.max_wait > Duration::from_secs(3600) {
            return Err(invalid("bulkhead", "max_wait", "longer than an hour"));
        }
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config: Arc::new(config),
            refused: Arc::default(),
        })
    }

    /// Takes a slot, waiting up to `max_wait` for one.
    pub async fn acquire(&self) -> Result<BulkheadSlot> {
        let full = || Error::BulkheadFull {
            bulkhead: self.config.name.clone(),
            max_concurrent: self.config.max_concurrent,
        };
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(BulkheadSlot(slot));
        }
        if !self.config.max_wait.is_zero()
            && let Ok(Ok(slot)) =
                tokio::time::timeout(self.config.max_wait, self.slots.clone().acquire_owned()).await
        {
            return Ok(BulkheadSlot(slot));
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(full())
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.config.max_concurrent
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.config.max_concurrent - self.slots.available_permits()
    }

    /// Calls refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Puts a service behind a [`Bulkhead`].
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// A service behind a bulkhead.
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S: NamedService> NamedService for BulkheadService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for BulkheadService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody, BulkheadSlot>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let bulkhead = self.bulkhead.clone();
        Box::pin(async move {
            let slot = match bulkhead.acquire().await {
                Ok(slot) => slot,
                Err(full) => return Ok(full.into_refusal()),
            };
            let response = inner.call(request).await.map_err(Into::into)?;
            Ok(observe(response, slot, None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulkhead(max_concurrent: usize, max_wait: Duration) -> Bulkhead {
        Bulkhead::new(BulkheadConfig {
            name: "db".into(),
            max_concurrent,
            max_wait,
        })
        .expect("valid")
    }

    /// Slots are shared by clones and come back when released.
    #[tokio::test(start_paused = true)]
    async fn bulkhead_refuses_beyond_its_slots_and_frees_them() {
        let pool = bulkhead(2, Duration::ZERO);
        let (a, b) = (
            pool.acquire().await.expect("slot"),
            pool.clone().acquire().await.expect("slot"),
        );
        let refused = pool.acquire().await.expect_err("full");
        assert_eq!(tonic::Status::from(refused).code(), Code::ResourceExhausted);
        assert_eq!((pool.in_use(), pool.refused()), (2, 1));
        drop(a);
        let _c = pool.acquire().await.expect("a slot came back");
        drop(b);
    }

    /// With a bounded wait, a caller gets the next free slot — or gives up
    /// at the bound.
    #[tokio::test(start_paused = true)]
    async fn bulkhead_bounded_wait_admits_or_gives_up() {
        let pool = bulkhead(1, Duration::from_millis(100));
        let held = pool.acquire().await.expect("slot");
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        waiter
            .await
            .expect("task")
            .expect("got the freed slot within the wait");

        let _held = pool.acquire().await.expect("slot");
        let started = tokio::time::Instant::now();
        assert!(pool.acquire().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[test]
    fn bulkhead_invalid_configuration_is_refused() {
        for (max, wait) in [
            (0, Duration::ZERO),
            (MAX_CONCURRENT + 1, Duration::ZERO),
            (1, Duration::from_secs(7200)),
        ] {
            assert!(
                Bulkhead::new(BulkheadConfig {
                    name: "x".into(),
                    max_concurrent: max,
                    max_wait: wait
                })
                .is_err()
            );
        }
    }
}
