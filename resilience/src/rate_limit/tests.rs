//! Exact admissions on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// Admissions over `seconds` of simulated time, one attempt every `step`.
async fn admitted(limiter: &dyn Limiter, key: Option<&str>, seconds: u64, step: Duration) -> usize {
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut admitted = 0;
    while Instant::now() < end {
        if limiter.check(key).is_ok() {
            admitted += 1;
        }
        tokio::time::sleep(step).await;
    }
    admitted
}

/// Episode 41. Ten per second with a burst of ten: over 10 s of attempts
/// every millisecond, exactly the burst plus one per 100 ms gets in.
#[tokio::test(start_paused = true)]
async fn rate_limit_gcra_and_token_bucket_admit_exact_counts() {
    let quota = Quota::per_second(10).expect("valid");
    let gcra = Gcra::new(quota);
    assert_eq!(
        admitted(&gcra, None, 10, Duration::from_millis(1)).await,
        10 + 99
    );
    let bucket = TokenBucket::new(quota);
    assert_eq!(
        admitted(&bucket, None, 10, Duration::from_millis(1)).await,
        10 + 99
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_burst_refills_after_a_quiet_spell() {
    let gcra = Gcra::new(Quota::new(Duration::from_millis(100), 5).expect("valid"));
    let burst = (0..20).filter(|_| gcra.check().is_ok()).count();
    assert_eq!(burst, 5);
    let wait = gcra.check().expect_err("over the burst");
    assert_eq!(
        wait,
        Duration::from_millis(100),
        "the next slot is one period away"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        (0..20).filter(|_| gcra.check().is_ok()).count(),
        5,
        "full burst again, not more"
    );
}

/// Keyed limits isolate tenants: one tenant's flood leaves the other's
/// allowance untouched.
#[tokio::test(start_paused = true)]
async fn rate_limit_keyed_limits_isolate_tenants() {
    let keyed = KeyedGcra::new(Quota::per_second(5).expect("valid"), 1000);
    let noisy = (0..1000)
        .filter(|_| keyed.check(Some("noisy")).is_ok())
        .count();
    let quiet = (0..5)
        .filter(|_| keyed.check(Some("quiet")).is_ok())
        .count();
    assert_eq!((noisy, quiet), (5, 5));
}

/// A quota whose burst tolerance would overflow its nanosecond clock is
/// refused when it is built, not wrapped into nonsense at call time.
#[test]
fn rate_limit_quota_refuses_overflowing_bursts() {
    assert!(Quota::new(Duration::from_secs(3600), 1_000_000).is_ok());
    for (period, burst) in [
        (Duration::from_secs(3600), 5_200_000),
        (Duration::from_secs(24 * 3600), u32::MAX),
    ] {
        assert!(
            Quota::new(period, burst).is_err(),
            "{period:?} × {burst} must be refused"
        );
    }
}

/// Keys come from clients. A flood of made-up keys, far beyond what the
/// table holds, keeps the table at its bound, admits every newcomer (a full
/// table evicts, it never refuses), and never refuses an honest tenant
/// calling within its quota: evicting a key only ever resets it — a tenant
/// that had spent its burst gets a full one back.
#[tokio::test(start_paused = true)]
async fn rate_limit_keyed_flood_of_new_keys_stays_bounded_and_spares_tenants() {
    let keyed = KeyedGcra::new(Quota::per_second(10).expect("valid"), 1_000);
    let spent = (0..20)
        .filter(|_| keyed.check(Some("tenant-b")).is_ok())
        .count();
    assert_eq!(spent, 10, "a fresh key has its burst of 10, then waits");
    let (mut honest_refused, mut newcomers_refused) = (0, 0);
    for round in 0..200u32 {
        for id in 0..500u32 {
            if keyed.check(Some(&format!("made-up-{round}-{id}"))).is_err() {
                newcomers_refused += 1;
            }
        }
        if keyed.check(Some("tenant-a")).is_err() {
            honest_refused += 1;
        }
        assert!(keyed.tracked_keys() <= 1_000 + 16, "bounded by max_keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        newcomers_refused, 0,
        "each newcomer's first call is admitted"
    );
    assert_eq!(honest_refused, 0, "one call per 100 ms is within 10/s");
    // tenant-b was evicted long ago (20 s passed, so its burst had refilled
    // anyway); the next instant it has exactly its burst.
    let again = (0..20)
        .filter(|_| keyed.check(Some("tenant-b")).is_ok())
        .count();
    assert_eq!(again, 10);
}

/// Clones share one limit: services built from two clones of one layer,
/// called from two threads, admit the quota once between them.
#[test]
fn rate_limit_concurrent_clones_share_one_limit() {
    use tower::{Layer, Service, ServiceExt};

    // A period of an hour: nothing refills during the test.
    let limiter: Arc<dyn Limiter> = Arc::new(Gcra::new(
        Quota::new(Duration::from_secs(3600), 1000).expect("valid"),
    ));
    let layer = RateLimitLayer::new(limiter);
    let threads: Vec<_> = [layer.clone(), layer]
        .into_iter()
        .map(|layer| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime");
                let backend = tower::service_fn(|_: http::Request<()>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        tonic::body::Body::default(),
                    ))
                });
                let mut service = layer.layer(backend);
                runtime.block_on(async {
                    let mut admitted = 0;
                    for _ in 0..5000 {
                        let response = service
                            .ready()
                            .await
                            .expect("ready")
                            .call(http::Request::new(()))
                            .await
                            .expect("answers");
                        if response.headers().get("grpc-status").is_none() {
                            admitted += 1;
                        }
                    }
                    admitted
                })
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(total, 1000, "one shared allowance, not one per clone");
}

#[test]
fn rate_limit_invalid_quotas_are_refused() {
    assert!(Quota::per_second(0).is_err());
    assert!(Quota::new(Duration::ZERO, 5).is_err());
    assert!(Quota::new(Duration::from_secs(1), 0).is_err());
    assert!(Quota::new(Duration::from_secs(100_000), 1).is_err());
}
