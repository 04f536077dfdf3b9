//! Timeouts, and deadlines that travel.
//!
//! Episode: 39, "Timeout" (also 8)
//! Pattern: resilience / timeout and deadline propagation
//! Try it:  cargo test -p resilience full_stack_deadline
//! Test it: cargo test -p resilience timeout
//!
//! A timeout bounds how long *this* call may take. A deadline bounds the
//! whole request it is part of: when a user gives up after 1 s, the third
//! service in the chain should not start a 5 s query at 0.9 s. gRPC
//! carries the remaining time in `grpc-timeout`; dslab's RPC stack
//! ([`observability::rpc::deadline`]) turns it into a deadline on the
//! server, and every call a handler makes carries what is left of it.
//!
//! [`TimeoutLayer`] adds a per-call cap on top: the call's deadline
//! becomes the earliest of its own `grpc-timeout`, the inherited deadline
//! and `now + timeout`; the header is rewritten so the server knows, and
//! the call is abandoned with `DeadlineExceeded` when it passes — whether
//! the response headers are late or the body stalls after them (a
//! server-streaming call, or a unary answer whose trailers never come).
//!
//! Pitfall: tonic reports some expired deadlines as `Cancelled` (its own
//! timer wins the race). The client stack maps those back to
//! `DeadlineExceeded`, so retry and breaker policies see the real cause.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
pub use observability::rpc::deadline;
use observability::rpc::outcome::{ObservedBody, StatusSink, refusal};
use tokio::time::Instant;
use tonic::Status;
use tonic::server::NamedService;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::error::{Result, invalid};

/// The longest per-call timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Caps every call at `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    pub fn new(timeout: Duration) -> Result<Self> {
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(invalid(
                "timeout",
                "timeout",
                format!("must be in (0, 24 h], got {timeout:?}"),
            ));
        }
        Ok(Self { timeout })
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout,
        }
    }
}

/// A service whose calls are capped in time.
#[derive(Clone, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
}

impl<S: NamedService> NamedService for TimeoutService<S> {
    const NAME: &'static str = S::NAME;
}

/// A timeout cares about when the body ends, not how the call ended.
#[derive(Debug)]
pub struct Unobserved;

impl StatusSink for Unobserved {
    fn finish(self, _code: tonic::Code, _message: &str) {}
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for TimeoutService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody, Unobserved>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let now = Instant::now();
        let mut call_deadline = now + self.timeout;
        if let Some(own) = deadline::parse(request.headers()) {
            call_deadline = call_deadline.min(now + own);
        }
        if let Some(inherited) = deadline::current() {
            call_deadline = call_deadline.min(inherited);
        }
        let budget = call_deadline.saturating_duration_since(now);
        deadline::set(request.headers_mut(), budget);
        let called = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(call_deadline, called).await {
                // The deadline keeps running while the body streams.
                Ok(result) => result
                    .map(|response| {
                        response
                            .map(|body| ObservedBody::new(body, Unobserved, Some(call_deadline)))
                    })
                    .map_err(Into::into),
                Err(_) => Ok(refusal(&Status::deadline_exceeded(format!(
                    "no response within {budget:?}"
                )))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flaky::proto::flaky_client::FlakyClient;
    use crate::flaky::proto::{CallRequest, Latency, Script};
    use crate::flaky::{Behaviour, Flaky};

    fn slow(latency: Duration) -> Flaky {
        let script = Script {
            latency: Some(Latency {
                base_micros: latency.as_micros() as u64,
                jitter_micros: 0,
                distribution: 0,
            }),
            ..Script::default()
        };
        Flaky::new("slow", Behaviour::from_script(&script).expect("valid"))
    }

    /// Episode 39. The layer caps the call, tells the server its budget,
    /// and answers DeadlineExceeded when it runs out.
    #[tokio::test(start_paused = true)]
    async fn timeout_caps_the_call_and_tells_the_server() {
        let flaky = slow(Duration::from_secs(5));
        let mut client = FlakyClient::new(
            TimeoutLayer::new(Duration::from_millis(250))
                .expect("valid")
                .layer(flaky.clone().into_service()),
        );
        let started = Instant::now();
        let status = client
            .call(CallRequest::default())
            .await
            .expect_err("too slow");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(flaky.stats().deadlines_micros, [250_000]);
    }

    /// A shorter deadline from the caller wins over the layer's timeout.
    #[tokio::test(start_paused = true)]
    async fn timeout_keeps_a_shorter_caller_deadline() {
        let flaky = slow(Duration::from_secs(5));
        let mut client = FlakyClient::new(
            TimeoutLayer::new(Duration::from_secs(10))
                .expect("valid")
                .layer(flaky.clone().into_service()),
        );
        let mut request = tonic::Request::new(CallRequest::default());
        request.set_timeout(Duration::from_millis(100));
        let status = client.call(request).await.expect_err("too slow");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(flaky.stats().deadlines_micros, [100_000]);
    }

    /// The cap covers the body too: a response whose headers arrive at
    /// once and whose body then stalls ends with DeadlineExceeded at the
    /// deadline, not never.
    #[tokio::test(start_paused = true)]
    async fn timeout_covers_a_stalled_body() {
        use http_body_util::BodyExt;
        use tower_service::Service as _;

        let stalls = tower::service_fn(|_: http::Request<tonic::body::Body>| async {
            let never = futures_util::stream::pending::<
                Result<http_body::Frame<bytes::Bytes>, tonic::Status>,
            >();
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::new(
                http_body_util::StreamBody::new(never),
            )))
        });
        let mut service = TimeoutLayer::new(Duration::from_millis(250))
            .expect("valid")
            .layer(stalls);
        let started = Instant::now();
        let response = service
            .call(http::Request::new(tonic::body::Body::empty()))
            .await
            .expect("headers at once");
        let read = tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
            .await
            .expect("the body ends at the deadline");
        let err = read.expect_err("ends in an error");
        let status = tonic::Status::from_error(err);
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }

    #[test]
    fn timeout_invalid_durations_are_refused() {
        assert!(TimeoutLayer::new(Duration::ZERO).is_err());
        assert!(TimeoutLayer::new(MAX_TIMEOUT + Duration::from_secs(1)).is_err());
    }
}
