//! The pool's promises: never more than its size, never an endless wait,
//! and a size from Little's law that carries the load it was sized for.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const HOLD: Duration = Duration::from_millis(50);

/// Episode 26. 200 requests/s holding a connection 50 ms keep 10 in use
/// on average; 25% headroom makes 13. Bad input is a typed error.
#[test]
fn pool_size_follows_littles_law() {
    assert_eq!(size_for(200.0, HOLD, 0.0), Ok(10));
    assert_eq!(size_for(200.0, HOLD, 0.25), Ok(13));
    assert_eq!(size_for(1.0, Duration::from_millis(1), 0.0), Ok(1));
    assert!(matches!(
        size_for(0.0, HOLD, 0.25),
        Err(Error::InvalidRate { .. })
    ));
    assert!(matches!(
        size_for(f64::NAN, HOLD, 0.25),
        Err(Error::InvalidRate { .. })
    ));
    assert!(matches!(
        size_for(200.0, Duration::ZERO, 0.25),
        Err(Error::InvalidPoolSizing { .. })
    ));
    assert!(matches!(
        size_for(200.0, HOLD, -0.5),
        Err(Error::InvalidPoolSizing { .. })
    ));
    assert!(matches!(
        size_for(1e9, HOLD, 0.0),
        Err(Error::InvalidPoolSizing { .. })
    ));
}

/// A pool of nothing is refused at construction, not discovered later as
/// a timeout on every request.
#[test]
fn pool_zero_capacity_is_refused() {
    assert!(matches!(
        Pool::<u32>::new(Vec::new(), HOLD),
        Err(Error::ZeroCapacity)
    ));
}

/// With both connections held, a third acquire fails after exactly the
/// timeout; once one comes back, the next acquire gets it.
#[tokio::test(start_paused = true)]
async fn pool_acquire_times_out_when_all_are_held() {
    let pool = Pool::new(vec!["a", "b"], Duration::from_millis(100)).expect("two connections");
    let first = pool.acquire().await.expect("idle");
    let second = pool.acquire().await.expect("idle");
    assert_ne!(*first, *second, "two different connections");
    let started = tokio::time::Instant::now();
    let refused = pool.acquire().await;
    assert!(matches!(refused, Err(Error::PoolExhausted { size: 2, .. })));
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    let freed = *first;
    drop(first);
    let third = pool.acquire().await.expect("returned connection");
    assert_eq!(*third, freed);
    assert_eq!(pool.stats().timed_out, 1);
    assert_eq!(pool.stats().in_use, 2);
    drop((second, third));
    pool.close();
    assert!(matches!(pool.acquire().await, Err(Error::PoolClosed)));
}

/// Under contention no connection is ever lent twice and no more than
/// `size` are out at once.
#[tokio::test(start_paused = true)]
async fn pool_never_lends_more_than_its_size() {
    let pool = Pool::new(vec![0u32; 4], Duration::from_secs(10)).expect("four connections");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut connection = pool.acquire().await.expect("waits its turn");
                *connection += 1;
                assert_eq!(*connection % 1_000, 1, "nobody else holds it");
                *connection += 999;
                tokio::time::sleep(Duration::from_millis(1 + i % 7)).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task finishes");
    }
    let stats = pool.stats();
    assert_eq!(stats.peak_in_use, 4);
    assert_eq!(stats.acquired, 64);
    assert_eq!((stats.in_use, stats.timed_out), (0, 0));
}

/// Drives `pool` with Poisson arrivals at 200/s, each holding its
/// connection 50 ms, for 20 simulated seconds; returns the timeouts.
async fn drive(pool: Pool<usize>, seed: u64) -> (u64, u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tasks = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        let gap = -(1.0 - rng.random::<f64>()).ln() / 200.0;
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            if let Ok(_connection) = pool.acquire().await {
                tokio::time::sleep(HOLD).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task finishes");
    }
    let stats = pool.stats();
    (stats.acquired, stats.timed_out)
}

/// Episode 26, 30. A pool sized by Little's law with 50% headroom carries
/// 200 requests/s of 50 ms holds with (almost) no timeouts; one sized
/// below λW — 7 for an average of 10 in use — cannot, whatever the
/// timeout, and refuses a large share. Paused time, seeded arrivals.
#[tokio::test(start_paused = true)]
async fn pool_sized_by_littles_law_carries_the_load_and_undersized_does_not() {
    let acquire_timeout = Duration::from_millis(50);
    let sized = size_for(200.0, HOLD, 0.5).expect("valid");
    assert_eq!(sized, 15);
    let (served, timed_out) = drive(
        Pool::new((0..sized).collect(), acquire_timeout).expect("sized"),
        7,
    )
    .await;
    let share = timed_out as f64 / (served + timed_out) as f64;
    assert!(share < 0.01, "sized pool timed out {share:.3} of requests");

    let (served, timed_out) = drive(
        Pool::new((0..7).collect(), acquire_timeout).expect("undersized"),
        7,
    )
    .await;
    let share = timed_out as f64 / (served + timed_out) as f64;
    assert!(share > 0.2, "undersized pool timed out only {share:.3}");
    // And what it did serve is capped by Little's law: at most 7 / 50 ms.
    assert!(served as f64 / 20.0 <= 7.0 / HOLD.as_secs_f64() * 1.01);
}
