//! The layers stacked in the order the README recommends, and the refusals
//! each makes on its own: none of them may count against the backend.
//!
//! Client side, outermost first: retry → circuit breaker → timeout →
//! bulkhead / rate limit / adaptive limit → channel.

use std::sync::Arc;
use std::time::Duration;

use resilience::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use resilience::circuit_breaker::{
    BreakerConfig, CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State,
};
use resilience::flaky::proto::flaky_client::FlakyClient;
use resilience::flaky::proto::{CallRequest, Latency, Script};
use resilience::flaky::{Behaviour, Flaky};
use resilience::rate_limit::{Gcra, Quota, RateLimitLayer};
use resilience::retry::{BudgetConfig, Idempotency, RetryLayer, RetryPolicy};
use resilience::timeout::TimeoutLayer;
use tonic::Code;
use tower::ServiceBuilder;

fn slow_backend(latency: Duration) -> Flaky {
    let script = Script {
        latency: Some(Latency {
            base_micros: latency.as_micros() as u64,
            jitter_micros: 0,
            distribution: 0,
        }),
        ..Script::default()
    };
    Flaky::new("backend", Behaviour::from_script(&script).expect("valid"))
}

fn breaker() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig {
        sliding_window: SlidingWindow::Count(10),
        minimum_number_of_calls: 5,
        failure_rate_threshold: 50.0,
        ..BreakerConfig::new("backend")
    })
    .expect("valid")
}

fn retry() -> RetryLayer {
    RetryLayer::new(RetryPolicy {
        max_attempts: 3,
        retryable_codes: vec![Code::Unavailable, Code::ResourceExhausted],
        budget: Some(BudgetConfig {
            max_tokens: 10.0,
            token_ratio: 0.1,
        }),
        ..RetryPolicy::new(Idempotency::AllMethods)
    })
    .expect("valid")
}

fn one_slot() -> BulkheadLayer {
    BulkheadLayer::new(
        Bulkhead::new(BulkheadConfig {
            name: "backend".into(),
            max_concurrent: 1,
            max_wait: Duration::ZERO,
        })
        .expect("valid"),
    )
}

/// Runs `n` calls at once through `client`; returns their codes.
async fn flood<S>(client: FlakyClient<S>, n: usize) -> Vec<Code>
where
    FlakyClient<S>: Clone + Send + 'static,
    S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send,
{
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                match client.call(CallRequest::default()).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            })
        })
        .collect();
    let mut codes = Vec::new();
    for call in calls {
        codes.push(call.await.expect("task"));
    }
    codes
}

/// Episodes 37 and 40. An open breaker's refusal is not retried and costs
/// the retry budget nothing: nothing reached the backend.
#[tokio::test(start_paused = true)]
async fn composition_breaker_refusals_are_not_retried() {
    let backend = slow_backend(Duration::ZERO);
    let breaker = breaker();
    breaker.transition_to(State::ForcedOpen).expect("allowed");
    let retry = retry();
    let stats = retry.stats();
    let mut client = FlakyClient::new(
        ServiceBuilder::new()
            .layer(retry.clone())
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .service(backend.clone().into_service()),
    );
    for _ in 0..20 {
        let status = client
            .call(CallRequest::default())
            .await
            .expect_err("forced open");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(
        stats.attempts.load(std::sync::atomic::Ordering::Relaxed),
        20,
        "one attempt per call: refusals are not retried"
    );
    assert_eq!(retry.budget_tokens(), Some(10.0), "and cost no tokens");
    assert_eq!(backend.stats().calls, 0);
}

/// Episodes 37 and 38. A breaker above a one-slot bulkhead sees the
/// bulkhead refuse 19 of 20 concurrent calls — and stays closed, counting
/// no failure: the backend is healthy, the bulkhead is doing its job.
#[tokio::test(start_paused = true)]
async fn composition_breaker_ignores_bulkhead_refusals() {
    let backend = slow_backend(Duration::from_millis(100));
    let breaker = breaker();
    let client = FlakyClient::new(
        ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::new(Duration::from_secs(1)).expect("valid"))
            .layer(one_slot())
            .service(backend.clone().into_service()),
    );
    let codes = flood(client, 20).await;
    let refused = codes
        .iter()
        .filter(|&&c| c == Code::ResourceExhausted)
        .count();
    assert_eq!((refused, backend.stats().calls), (19, 1));
    assert_eq!(breaker.state(), State::Closed);
    let counters = breaker.metrics().counters;
    assert_eq!(
        (counters.failed, counters.successful),
        (0, 1),
        "{counters:?}"
    );
}

/// Episodes 37 and 41. Likewise a client-side rate limit below the
/// breaker: its refusals never open the breaker.
#[tokio::test(start_paused = true)]
async fn composition_breaker_ignores_rate_limit_refusals() {
    let backend = slow_backend(Duration::ZERO);
    let breaker = breaker();
    let limit = Gcra::new(Quota::new(Duration::from_secs(60), 3).expect("valid"));
    let mut client = FlakyClient::new(
        ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(RateLimitLayer::new(Arc::new(limit)))
            .service(backend.clone().into_service()),
    );
    let mut limited = 0;
    for _ in 0..30 {
        if let Err(status) = client.call(CallRequest::default()).await {
            assert_eq!(status.code(), Code::ResourceExhausted);
            limited += 1;
        }
    }
    assert_eq!((limited, backend.stats().calls), (27, 3));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().counters.failed, 0);
}

/// The whole recommended stack: retry → breaker → timeout → bulkhead. A
/// flood that the bulkhead sheds is neither retried (the budget stays
/// full) nor held against the backend.
#[tokio::test(start_paused = true)]
async fn composition_full_stack_sheds_without_retrying_or_tripping() {
    let backend = slow_backend(Duration::from_millis(100));
    let breaker = breaker();
    let retry = retry();
    let stats = retry.stats();
    let client = FlakyClient::new(
        ServiceBuilder::new()
            .layer(retry.clone())
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::new(Duration::from_secs(1)).expect("valid"))
            .layer(one_slot())
            .service(backend.clone().into_service()),
    );
    let codes = flood(client, 20).await;
    assert_eq!(codes.iter().filter(|&&c| c == Code::Ok).count(), 1);
    assert_eq!(
        stats.attempts.load(std::sync::atomic::Ordering::Relaxed),
        20,
        "no refusal was retried"
    );
    assert_eq!(retry.budget_tokens(), Some(10.0));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().counters.failed, 0);
}
