//! Limits converging on a backend's real capacity, in paused time.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use tower_layer::Layer;

use super::*;
use crate::flaky::proto::CallRequest;
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::{Behaviour, Flaky};

const CAPACITY: u32 = 10;
/// Calls the backend lets wait beyond its capacity before refusing.
const QUEUE: u32 = 10;
const SERVICE_TIME: Duration = Duration::from_millis(10);

/// What a limiter settled on while 60 eager workers hammered a backend
/// that serves `CAPACITY` calls at a time in `SERVICE_TIME` each.
struct Run {
    /// Mean limit over the second half of the run.
    settled_limit: f64,
    shed: u64,
    served: u64,
    backend_rejected: u64,
}

async fn hammer(algorithm: impl LimitAlgorithm + 'static) -> Run {
    let backend = Flaky::new(
        "backend",
        Behaviour {
            capacity: CAPACITY,
            queue: QUEUE,
            latency_base: SERVICE_TIME,
            ..Behaviour::healthy()
        },
    );
    let layer = AdaptiveConcurrencyLayer::new(algorithm);
    let handle = layer.handle();
    let client = FlakyClient::new(layer.layer(backend.clone().into_service()));
    let end = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = (0..60)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let shed = matches!(
                        client.call(CallRequest::default()).await,
                        Err(status) if status.code() == Code::ResourceExhausted
                    );
                    if shed {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();
    let mut limits = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        limits.push(handle.limit() as f64);
    }
    for worker in workers {
        worker.await.expect("worker finishes");
    }
    let tail = &limits[limits.len() / 2..];
    let stats = backend.stats();
    Run {
        settled_limit: tail.iter().sum::<f64>() / tail.len() as f64,
        shed: handle.shed(),
        served: handle.served(),
        backend_rejected: stats.rejected,
    }
}

fn bounds() -> LimitBounds {
    LimitBounds::new(20, 1, 200).expect("valid")
}

/// Asserts the limit settled between the backend's capacity and what it
/// can hold at all (capacity + queue, Little's law: beyond the capacity
/// calls only wait), and that the excess load was shed at the client.
fn assert_settled(name: &str, run: &Run) {
    println!(
        "{name}: settled at {:.1}, {} shed, {} served, backend rejected {}",
        run.settled_limit, run.shed, run.served, run.backend_rejected
    );
    let (low, high) = (0.8 * f64::from(CAPACITY), 1.1 * f64::from(CAPACITY + QUEUE));
    assert!(
        (low..=high).contains(&run.settled_limit),
        "{name} settled at {:.1}",
        run.settled_limit
    );
    assert!(
        run.shed > run.served,
        "{name}: most of 60 workers' attempts are shed: {} shed, {} served",
        run.shed,
        run.served
    );
    // Without a limiter every excess call would be refused by the backend
    // itself (it holds capacity + queue, refuses the rest): here nine in
    // ten refusals must happen at the client, before costing it anything.
    assert!(
        run.backend_rejected * 10 < run.shed,
        "{name}: the backend refused {} calls against {} shed at the client",
        run.backend_rejected,
        run.shed
    );
}

/// Episode 42. Vegas reads the queue from latency: the limit settles near
/// the backend's 10 slots and the excess offered load is shed.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_converges_near_capacity_with_vegas() {
    assert_settled("vegas", &hammer(Vegas::new(bounds())).await);
}

/// Gradient2 follows latency against its long-term average.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_converges_near_capacity_with_gradient2() {
    assert_settled("gradient2", &hammer(Gradient2::new(bounds())).await);
}

/// AIMD only hears drops: it saw-tooths below the point where the backend
/// starts refusing, instead of running away.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_converges_near_capacity_with_aimd() {
    let run = hammer(Aimd::new(bounds())).await;
    assert_settled("aimd", &run);
    assert!(run.backend_rejected > 0, "AIMD needs drops to learn");
}

#[test]
fn adaptive_invalid_bounds_are_refused() {
    assert!(LimitBounds::new(10, 0, 100).is_err());
    assert!(LimitBounds::new(10, 20, 100).is_err());
    assert!(LimitBounds::new(10, 5, 4).is_err());
    assert!(
        Aimd::new(bounds())
            .with_backoff(1.0, Duration::from_secs(1))
            .is_err()
    );
    assert!(
        Aimd::new(bounds())
            .with_backoff(0.9, Duration::ZERO)
            .is_err()
    );
}
