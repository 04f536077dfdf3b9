//! Cache tests: concurrency is scripted with gates and counters (never
//! sleeps), time is tokio's paused clock or the demo's manual one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::*;

const N: u64 = 50;

fn config(ttl: Duration) -> CacheConfig {
    CacheConfig {
        early_expiration: None,
        ..CacheConfig::new(64, ttl)
    }
}

/// Yields until `done` holds: the tasks reach their await points in
/// whatever order the scheduler picks, and the test waits for the state,
/// not for a time.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// A loader that counts its call and answers once the gate opens.
fn gated(
    gate: &watch::Receiver<bool>,
    calls: &Arc<AtomicU64>,
    value: u64,
) -> impl Future<Output = Result<u64, String>> + Send + 'static {
    calls.fetch_add(1, Ordering::SeqCst);
    let mut gate = gate.clone();
    async move {
        let _ = gate.wait_for(|open| *open).await;
        Ok(value)
    }
}

/// Fills `key`, then lets the TTL run out (paused time).
async fn expire_hot_key(fill: impl Future<Output = ()>, ttl: Duration) {
    fill.await;
    tokio::time::advance(ttl + Duration::from_millis(1)).await;
}

/// Episode 29. A hot key expires and N readers miss at once: single-flight
/// sends one load to the backend, the other N−1 wait for its result.
#[tokio::test(start_paused = true)]
async fn cache_single_flight_collapses_concurrent_misses_into_one_load() {
    let ttl = Duration::from_secs(5);
    let cache: Cache<&str, u64, String> = Cache::new(config(ttl)).expect("valid");
    expire_hot_key(
        async {
            let _ = cache.get_or_load("hot", || async { Ok(1) }).await;
        },
        ttl,
    )
    .await;
    let before = cache.stats().loads;
    let (open, gate) = watch::channel(false);
    let calls = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..N)
        .map(|_| {
            let (cache, gate, calls) = (cache.clone(), gate.clone(), calls.clone());
            tokio::spawn(async move { cache.get_or_load("hot", || gated(&gate, &calls, 2)).await })
        })
        .collect();
    until(|| cache.stats().loads - before + cache.stats().coalesced == N).await;
    open.send_replace(true);
    for reader in readers {
        assert_eq!(reader.await.expect("no panic"), Ok(2));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one backend call for {N} misses"
    );
    assert_eq!(cache.stats().coalesced, N - 1);
    assert_eq!(cache.get(&"hot"), Some(2), "the one load filled the cache");
}

/// The broken twin on the same expiry: every one of the N readers calls
/// the backend.
#[tokio::test(start_paused = true)]
async fn cache_stampede_twin_makes_n_backend_calls() {
    let ttl = Duration::from_secs(5);
    let naive = Arc::new(NaiveCacheAside::new(config(ttl)).expect("valid"));
    expire_hot_key(
        async {
            let _ = naive
                .get_or_load("hot", || async { Ok::<_, String>(1) })
                .await;
        },
        ttl,
    )
    .await;
    let (open, gate) = watch::channel(false);
    let calls = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..N)
        .map(|_| {
            let (naive, gate, calls) = (naive.clone(), gate.clone(), calls.clone());
            tokio::spawn(async move { naive.get_or_load("hot", || gated(&gate, &calls, 2)).await })
        })
        .collect();
    until(|| calls.load(Ordering::SeqCst) == N).await;
    open.send_replace(true);
    for reader in readers {
        assert_eq!(reader.await.expect("no panic"), Ok(2));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        N,
        "every reader went to the backend"
    );
}

/// A failed load's error reaches every waiter, and is not cached: the
/// next reader loads again.
#[tokio::test]
async fn cache_errors_are_shared_not_cached() {
    let cache: Cache<&str, u64, String> =
        Cache::new(config(Duration::from_secs(5))).expect("valid");
    let (open, gate) = watch::channel(false);
    let readers: Vec<_> = (0..N)
        .map(|_| {
            let (cache, mut gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("k", || async move {
                        let _ = gate.wait_for(|open| *open).await;
                        Err::<u64, _>("backend down".to_owned())
                    })
                    .await
            })
        })
        .collect();
    until(|| cache.stats().loads + cache.stats().coalesced == N).await;
    open.send_replace(true);
    for reader in readers {
        let err = reader.await.expect("no panic").expect_err("shared error");
        assert_eq!(*err, "backend down");
    }
    assert_eq!(cache.stats().loads, 1);
    assert_eq!(cache.get(&"k"), None, "errors are not cached");
    assert_eq!(cache.get_or_load("k", || async { Ok(7) }).await, Ok(7));
    assert_eq!(cache.stats().loads, 2);
}

/// Runs a leader whose load is cut short by `kill` and N waiters behind
/// it: the waiters must not hang — one of them loads, all get its value.
async fn leader_dies(
    kill: impl FnOnce(tokio::task::JoinHandle<Result<u64, Arc<String>>>, watch::Sender<bool>),
) {
    let cache: Cache<&str, u64, String> =
        Cache::new(config(Duration::from_secs(5))).expect("valid");
    let (open, gate) = watch::channel(false);
    let leader = {
        let (cache, mut gate) = (cache.clone(), gate.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("k", || async move {
                    let _ = gate.wait_for(|open| *open).await;
                    panic!("the loader crashed");
                })
                .await
        })
    };
    until(|| cache.stats().loads == 1).await;
    let waiters: Vec<_> = (0..N)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_or_load("k", || async { Ok(9) }).await })
        })
        .collect();
    until(|| cache.stats().coalesced == N).await;
    kill(leader, open);
    for waiter in waiters {
        assert_eq!(waiter.await.expect("no panic"), Ok(9));
    }
    assert_eq!(cache.stats().loads, 2, "one retry load for all the waiters");
}

/// A leader whose loader panics: the waiters retry, one leads.
#[tokio::test]
async fn cache_single_flight_survives_a_panicking_leader() {
    leader_dies(|leader, open| {
        open.send_replace(true);
        drop(leader);
    })
    .await;
}

/// A leader whose caller gave up (its task aborted mid-load).
#[tokio::test]
async fn cache_single_flight_survives_a_cancelled_leader() {
    leader_dies(|leader, _open| leader.abort()).await;
}

#[derive(Debug, Default)]
struct Database {
    rows: std::sync::Mutex<BTreeMap<&'static str, &'static str>>,
}

impl Database {
    fn read(&self) -> &'static str {
        self.rows
            .lock()
            .expect("not poisoned")
            .get("user")
            .copied()
            .unwrap_or("")
    }

    fn write(&self, value: &'static str) {
        self.rows
            .lock()
            .expect("not poisoned")
            .insert("user", value);
    }
}

/// Scripts the race: the reader reads the row, then the writer writes the
/// row and invalidates, then the reader's fill arrives. `fill` runs the
/// reader's `get_or_load` with the loader it is given; `invalidate` and
/// `get` reach the cache under test.
async fn race<R>(
    fill: impl FnOnce(Arc<Database>, oneshot::Sender<()>, watch::Receiver<bool>) -> R,
    invalidate: impl FnOnce(),
) where
    R: Future<Output = ()> + Send + 'static,
{
    let db = Arc::new(Database::default());
    db.write("old address");
    let (read_done, row_read) = oneshot::channel();
    let (open, gate) = watch::channel(false);
    let reader = tokio::spawn(fill(db.clone(), read_done, gate));
    row_read.await.expect("the reader read the row");
    db.write("new address");
    invalidate();
    open.send_replace(true);
    reader.await.expect("no panic");
}

/// A loader that reads the row, says so, and answers when the gate opens.
async fn slow_read(
    db: Arc<Database>,
    read_done: oneshot::Sender<()>,
    mut gate: watch::Receiver<bool>,
) -> Result<&'static str, String> {
    let row = db.read();
    let _ = read_done.send(());
    let _ = gate.wait_for(|open| *open).await;
    Ok(row)
}

/// Episode 29. The invalidation race: the naive twin ends up serving the
/// old row after the write — until its TTL ends, an hour later — while
/// the leased cache refuses the revoked fill and loads the new row.
#[tokio::test(start_paused = true)]
async fn cache_invalidation_race_twin_stays_stale_leased_cache_does_not() {
    let ttl = Duration::from_secs(3600);
    let naive = Arc::new(NaiveCacheAside::new(config(ttl)).expect("valid"));
    let reader = naive.clone();
    race(
        |db, done, gate| async move {
            let read = reader
                .get_or_load("user", || slow_read(db, done, gate))
                .await;
            assert_eq!(
                read,
                Ok("old address"),
                "the reader's own answer predates the write"
            );
        },
        || {
            naive.invalidate(&"user");
        },
    )
    .await;
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert_eq!(
        naive.get(&"user"),
        Some("old address"),
        "stale an hour after the write"
    );

    let leased: Cache<&str, &str, String> = Cache::new(config(ttl)).expect("valid");
    let reader = leased.clone();
    race(
        |db, done, gate| async move {
            let read = reader
                .get_or_load("user", || slow_read(db, done, gate))
                .await;
            assert_eq!(read, Ok("old address"));
        },
        || {
            leased.invalidate(&"user");
        },
    )
    .await;
    assert_eq!(leased.get(&"user"), None, "the revoked fill was refused");
    assert_eq!(leased.stats().revoked_fills, 1);
    let db = Database::default();
    db.write("new address");
    assert_eq!(
        leased.get_or_load("user", || async { Ok(db.read()) }).await,
        Ok("new address")
    );
}

/// The demo's stepped hot-key runs: the stampede, single-flight, and
/// XFetch refreshing before the expiry so nobody waits.
#[test]
fn cache_xfetch_refreshes_a_hot_key_before_it_expires() {
    let run = |v| stampede::run_hot_key(&v).expect("valid config");
    let (naive, single, xfetch) = (
        run(stampede::Variant::Naive),
        run(stampede::Variant::SingleFlight),
        run(stampede::Variant::XFetch),
    );
    assert_eq!(
        stampede::around_expiry(&naive),
        stampede::PER_TICK * stampede::LOAD_TICKS
    );
    assert_eq!(stampede::around_expiry(&single), 1);
    assert!(
        single.waited > 0,
        "single-flight readers wait out the refill"
    );
    assert_eq!(
        single.coalesced,
        single.waited - 1,
        "all but the leader waited for its load"
    );
    let total: u64 = xfetch.calls_per_tick.iter().sum();
    assert!((1..=2).contains(&total), "one refresh per TTL: {total}");
    assert_eq!(xfetch.coalesced, 0, "nobody ever found the key missing");
    assert_eq!(
        xfetch.waited, total,
        "only the volunteer waits, for its own refresh"
    );
}

/// Bad settings are refused with a typed error (InvalidArgument on the wire).
#[test]
fn cache_config_refuses_bad_settings() {
    let ttl = Duration::from_secs(1);
    let bad = [
        CacheConfig::new(0, ttl),
        CacheConfig::new(MAX_CAPACITY + 1, ttl),
        CacheConfig::new(10, Duration::ZERO),
        CacheConfig {
            shards: 0,
            ..CacheConfig::new(10, ttl)
        },
        CacheConfig {
            shards: 11,
            ..CacheConfig::new(10, ttl)
        },
        CacheConfig {
            max_flights: 0,
            ..CacheConfig::new(10, ttl)
        },
        CacheConfig {
            early_expiration: Some(f64::NAN),
            ..CacheConfig::new(10, ttl)
        },
        CacheConfig {
            early_expiration: Some(0.0),
            ..CacheConfig::new(10, ttl)
        },
    ];
    for config in bad {
        let err = Cache::<u64, u64, ()>::new(config).expect_err("refused");
        assert!(
            matches!(err, crate::Error::InvalidCacheConfig { .. }),
            "{err:?}"
        );
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
    }
}
