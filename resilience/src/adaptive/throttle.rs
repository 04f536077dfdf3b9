//! Client-side adaptive throttling (Google SRE book, "Handling Overload").
//!
//! Each client counts, over a sliding window, the calls it *attempted*
//! and the calls the backend *accepted* (answered without an overload
//! refusal). It then rejects new calls locally with probability
//!
//! ```text
//! P(reject) = max(0, (requests − K · accepts) / (requests + 1))
//! ```
//!
//! While the backend accepts everything, requests ≈ accepts and nothing is
//! rejected. When it starts refusing, the client sheds the excess itself —
//! the refusals cost the backend nothing — yet keeps sending about K times
//! what gets accepted, enough to notice quickly when it recovers. K = 2
//! is the book's suggestion; lower K throttles harder.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use observability::rpc::outcome::{ObservedBody, StatusSink, observe};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::error::{Error, Result, invalid};

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    requests: u64,
    accepts: u64,
}

#[derive(Debug)]
struct Window {
    /// One bucket per second.
    buckets: Vec<Counts>,
    origin: Instant,
    current: u64,
    rng: SmallRng,
}

impl Window {
    fn advance(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let size = self.buckets.len() as u64;
        for step in 1..=second.saturating_sub(self.current).min(size) {
            self.buckets[((self.current + step) % size) as usize] = Counts::default();
        }
        self.current = self.current.max(second);
    }

    fn bucket(&mut self) -> &mut Counts {
        let size = self.buckets.len() as u64;
        &mut self.buckets[(self.current % size) as usize]
    }

    fn totals(&self) -> Counts {
        self.buckets
            .iter()
            .fold(Counts::default(), |acc, c| Counts {
                requests: acc.requests + c.requests,
                accepts: acc.accepts + c.accepts,
            })
    }
}

/// The SRE book's client-side throttle. Clones share one window.
#[derive(Clone, Debug)]
pub struct AdaptiveThrottle {
    k: f64,
    window: Arc<Mutex<Window>>,
}

impl AdaptiveThrottle {
    /// `k` ≥ 1 (2 is the book's choice) over a window of `window` (whole
    /// seconds, up to an hour); `seed` makes the rejections reproducible.
    pub fn new(k: f64, window: Duration, seed: u64) -> Result<Self> {
        if !(k >= 1.0 && k.is_finite()) {
            return Err(invalid(
                "throttle",
                "k",
                format!("must be a finite number ≥ 1, got {k}"),
            ));
        }
        let seconds = window.as_secs();
        if !(1..=3600).contains(&seconds) {
            return Err(invalid("throttle", "window", "must be 1 s to 1 h"));
        }
        Ok(Self {
            k,
            window: Arc::new(Mutex::new(Window {
                buckets: vec![Counts::default(); seconds as usize],
                origin: Instant::now(),
                current: 0,
                rng: SmallRng::seed_from_u64(seed),
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current rejection probability.
    pub fn reject_probability(&self, now: Instant) -> f64 {
        let mut window = self.lock();
        window.advance(now);
        let totals = window.totals();
        ((totals.requests as f64 - self.k * totals.accepts as f64) / (totals.requests as f64 + 1.0))
            .max(0.0)
    }

    /// Counts an attempt and decides whether it may go to the backend.
    pub fn admit(&self, now: Instant) -> Result<()> {
        let probability = self.reject_probability(now);
        let mut window = self.lock();
        window.bucket().requests += 1;
        if probability > 0.0 && window.rng.random_bool(probability.min(1.0)) {
            return Err(Error::Throttled {
                reject_probability: probability * 100.0,
            });
        }
        Ok(())
    }

    /// Records that the backend accepted a call.
    pub fn accepted(&self, now: Instant) {
        let mut window = self.lock();
        window.advance(now);
        window.bucket().accepts += 1;
    }

    /// Takes back an admitted call that never reached the backend (a layer
    /// below refused it): it says nothing about the backend either way.
    pub fn withdraw(&self, now: Instant) {
        let mut window = self.lock();
        window.advance(now);
        let bucket = window.bucket();
        bucket.requests = bucket.requests.saturating_sub(1);
    }
}

/// Throttles calls locally while the backend is refusing them.
#[derive(Clone, Debug)]
pub struct ThrottleLayer {
    throttle: AdaptiveThrottle,
}

impl ThrottleLayer {
    pub fn new(throttle: AdaptiveThrottle) -> Self {
        Self { throttle }
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = ThrottleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService {
            inner,
            throttle: self.throttle.clone(),
        }
    }
}

/// A throttled client.
#[derive(Clone, Debug)]
pub struct ThrottleService<S> {
    inner: S,
    throttle: AdaptiveThrottle,
}

impl<S: NamedService> NamedService for ThrottleService<S> {
    const NAME: &'static str = S::NAME;
}

/// Reports whether the backend accepted the call.
#[derive(Debug)]
pub struct Acceptance(AdaptiveThrottle);

impl StatusSink for Acceptance {
    fn finish(self, code: Code, _message: &str) {
        // Only overload refusals count against the backend; a NotFound
        // was accepted and answered.
        if !matches!(code, Code::ResourceExhausted | Code::Unavailable) {
            self.0.accepted(Instant::now());
        }
    }

    fn refused_locally(self) {
        self.0.withdraw(Instant::now());
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ThrottleService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody, Acceptance>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if let Err(throttled) = self.throttle.admit(Instant::now()) {
            return Box::pin(std::future::ready(Ok(throttled.into_refusal())));
        }
        let acceptance = Acceptance(self.throttle.clone());
        let called = self.inner.call(request);
        Box::pin(async move {
            match called.await {
                Ok(response) => Ok(observe(response, acceptance, None)),
                Err(err) => {
                    let status = Status::from_error(err.into());
                    acceptance.finish(status.code(), status.message());
                    Err(Box::new(status) as BoxError)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Episode 42. A backend with room for one call per 5 ms, offered one
    /// per millisecond: the formula settles where clients send about K = 2
    /// times what is accepted and reject the rest locally — most of the
    /// doomed traffic never leaves the client.
    #[tokio::test(start_paused = true)]
    async fn adaptive_throttle_sends_about_k_times_the_accepted_traffic() {
        let throttle = AdaptiveThrottle::new(2.0, Duration::from_secs(10), 7).expect("valid");
        let (mut sent, mut accepted, mut local_rejects) = (0u64, 0u64, 0u64);
        let mut last_accept: Option<Instant> = None;
        for _ in 0..30_000u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = Instant::now();
            if throttle.admit(now).is_err() {
                local_rejects += 1;
                continue;
            }
            sent += 1;
            // The backend has room for one call every 5 ms.
            if last_accept.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(5)) {
                last_accept = Some(now);
                accepted += 1;
                throttle.accepted(now);
            }
        }
        let rejected_share = local_rejects as f64 / 30_000.0;
        let sent_per_accept = sent as f64 / accepted as f64;
        assert!(rejected_share > 0.5, "rejected locally {rejected_share:.3}");
        assert!(
            (1.7..2.3).contains(&sent_per_accept),
            "sent {sent_per_accept:.2}× the accepted calls"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_throttle_admits_everything_while_the_backend_accepts() {
        let throttle = AdaptiveThrottle::new(2.0, Duration::from_secs(60), 1).expect("valid");
        for _ in 0..1000 {
            let now = Instant::now();
            throttle
                .admit(now)
                .expect("a healthy backend is never throttled");
            throttle.accepted(now);
        }
        assert_eq!(throttle.reject_probability(Instant::now()), 0.0);
    }

    /// The layer on real tonic calls: against a backend refusing every
    /// call for overload, the client starts refusing locally (Unavailable,
    /// "throttled"), so the backend stops receiving most of the doomed calls.
    #[tokio::test(start_paused = true)]
    async fn adaptive_throttle_layer_sheds_calls_an_overloaded_backend_would_refuse() {
        use tower_layer::Layer as _;

        use crate::flaky::proto::flaky_client::FlakyClient;
        use crate::flaky::proto::{CallRequest, Script};
        use crate::flaky::{Behaviour, Flaky};

        let overloaded = Script {
            error_rate: 1.0,
            error_codes: vec![Code::ResourceExhausted as i32],
            ..Script::default()
        };
        let backend = Flaky::new(
            "overloaded",
            Behaviour::from_script(&overloaded).expect("valid"),
        );
        let throttle = AdaptiveThrottle::new(2.0, Duration::from_secs(60), 3).expect("valid");
        let mut client =
            FlakyClient::new(ThrottleLayer::new(throttle).layer(backend.clone().into_service()));
        let (mut throttled, attempts) = (0, 200);
        for _ in 0..attempts {
            let status = client
                .call(CallRequest::default())
                .await
                .expect_err("every call fails");
            if status.code() == Code::Unavailable && status.message().contains("throttled") {
                throttled += 1;
            } else {
                assert_eq!(status.code(), Code::ResourceExhausted);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reached = backend.stats().calls;
        assert_eq!(
            reached + throttled,
            attempts,
            "each attempt either reached the backend or was shed"
        );
        assert!(
            reached < attempts / 4,
            "most doomed calls never left the client: {reached} reached it"
        );
    }

    #[test]
    fn adaptive_throttle_refuses_invalid_settings() {
        assert!(AdaptiveThrottle::new(0.5, Duration::from_secs(60), 0).is_err());
        assert!(AdaptiveThrottle::new(f64::INFINITY, Duration::from_secs(60), 0).is_err());
        assert!(AdaptiveThrottle::new(2.0, Duration::ZERO, 0).is_err());
    }
}
