//! The retry layer on real tonic calls to an in-process Flaky, in paused time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Request};
use tower_layer::Layer;

use super::*;
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{CallRequest, Script};
use crate::flaky::{Behaviour, Flaky};

const CALL: &str = "/resilience.v1.Flaky/Call";

fn backend(per_call: &[Code]) -> Flaky {
    let script = Script {
        per_call: per_call.iter().map(|&c| c as i32).collect(),
        ..Script::default()
    };
    Flaky::new("backend", Behaviour::from_script(&script).expect("valid"))
}

fn policy(idempotency: Idempotency) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        budget: None,
        ..RetryPolicy::new(idempotency)
    }
}

async fn call_through(
    layer: RetryLayer,
    flaky: &Flaky,
    timeout: Option<Duration>,
) -> Result<(), tonic::Status> {
    let mut client = FlakyClient::new(layer.layer(flaky.clone().into_service()));
    let mut request = Request::new(CallRequest {
        payload: "x".repeat(100),
    });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    client.call(request).await.map(drop)
}

/// Episode 40. Two UNAVAILABLEs, then success: the caller sees success,
/// the backend saw three attempts carrying the same request.
#[tokio::test(start_paused = true)]
async fn retry_recovers_from_transient_unavailability() {
    let flaky = backend(&[Code::Unavailable, Code::Unavailable, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::Methods(vec![CALL.into()]))).expect("valid");
    let stats = layer.stats();
    call_through(layer, &flaky, None)
        .await
        .expect("the third attempt succeeds");
    assert_eq!(flaky.stats().calls, 3);
    assert_eq!(stats.attempts.load(Ordering::Relaxed), 3);
}

/// Non-idempotent methods are never retried; nor are codes that say the
/// request itself is wrong.
#[tokio::test(start_paused = true)]
async fn retry_skips_non_idempotent_methods_and_non_retryable_codes() {
    let flaky = backend(&[Code::Unavailable, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::Methods(vec![
        "/other.Service/Read".into(),
    ])))
    .expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("not retried");
    assert_eq!((status.code(), flaky.stats().calls), (Code::Unavailable, 1));

    let flaky = backend(&[Code::InvalidArgument, Code::Ok]);
    let layer = RetryLayer::new(policy(Idempotency::AllMethods)).expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("not retried");
    assert_eq!(
        (status.code(), flaky.stats().calls),
        (Code::InvalidArgument, 1)
    );
}

/// Attempts are capped; the last failure is what the caller sees.
#[tokio::test(start_paused = true)]
async fn retry_gives_up_after_max_attempts() {
    let flaky = backend(&[Code::Unavailable; 10]);
    let layer = RetryLayer::new(policy(Idempotency::AllMethods)).expect("valid");
    let status = call_through(layer, &flaky, None)
        .await
        .expect_err("always failing");
    assert_eq!((status.code(), flaky.stats().calls), (Code::Unavailable, 4));
}

/// The budget drains during a failure streak and stops retries, shared
/// by every call through the layer.
#[tokio::test(start_paused = true)]
async fn retry_budget_stops_retries_during_a_failure_streak() {
    let flaky = backend(&[Code::Unavailable; 100]);
    let layer = RetryLayer::new(RetryPolicy {
        budget: Some(BudgetConfig {
            max_tokens: 4.0,
            token_ratio: 0.1,
        }),
        ..policy(Idempotency::AllMethods)
    })
    .expect("valid");
    let stats = layer.stats();
    for _ in 0..10 {
        let _ = call_through(layer.clone(), &flaky, None).await;
    }
    // 4 tokens; retries only while more than 2 remain. The first failure
    // leaves 3 (one retry), the retry's failure leaves 2: one retry in all.
    assert_eq!(
        flaky.stats().calls,
        10 + 1,
        "ten calls, one retry on credit"
    );
    assert!(stats.budget_denied.load(Ordering::Relaxed) >= 8);
}

/// Retries fit inside the caller's deadline: each attempt carries what is
/// left, and a retry whose backoff would outlive the deadline is not sent.
#[tokio::test(start_paused = true)]
async fn retry_respects_the_remaining_deadline() {
    let flaky = backend(&[Code::Unavailable; 10]);
    let layer = RetryLayer::new(RetryPolicy {
        max_attempts: 10,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: Jitter::None,
        },
        ..policy(Idempotency::AllMethods)
    })
    .expect("valid");
    let stats = layer.stats();
    let started = Instant::now();
    let status = call_through(layer, &flaky, Some(Duration::from_millis(1_000)))
        .await
        .expect_err("fails");
    assert_eq!(status.code(), Code::Unavailable);
    // Backoffs 100, 200, 400 fit in 1 s (700 ms); the next 800 would not.
    assert_eq!(flaky.stats().calls, 4);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(stats.deadline_stopped.load(Ordering::Relaxed), 1);
    let told: Vec<u64> = flaky.stats().deadlines_micros;
    assert!(
        told.windows(2).all(|w| w[1] < w[0]),
        "each attempt is told less time: {told:?}"
    );
}

#[test]
fn retry_invalid_policies_are_refused_at_build_time() {
    let base = policy(Idempotency::AllMethods);
    let bad = [
        RetryPolicy {
            max_attempts: 0,
            ..base.clone()
        },
        RetryPolicy {
            max_attempts: 11,
            ..base.clone()
        },
        RetryPolicy {
            retryable_codes: vec![Code::Ok],
            ..base.clone()
        },
        RetryPolicy {
            buffer_limit: usize::MAX,
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                initial: Duration::ZERO,
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                multiplier: 0.5,
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            backoff: Backoff {
                max: Duration::from_millis(1),
                ..Backoff::new()
            },
            ..base.clone()
        },
        RetryPolicy {
            budget: Some(BudgetConfig {
                max_tokens: 0.0,
                token_ratio: 0.1,
            }),
            ..base.clone()
        },
    ];
    for policy in bad {
        let err = RetryLayer::new(policy.clone()).expect_err("invalid");
        assert!(
            matches!(err, crate::Error::InvalidConfig { .. }),
            "{policy:?}"
        );
    }
}
