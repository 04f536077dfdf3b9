//! The cache hit path, ns per lookup: dslab's [`Cache`] against `moka`,
//! like for like — the same capacity (10,000 entries), the same key and
//! value types (`u64` → `u64`), the same TTL (5 minutes), every key
//! present — on one thread and on two threads reading at once.
//!
//! dslab is measured twice: `get` (the plain hit path) and `get_or_load`
//! on a hit (what an application calls: the same lookup, plus XFetch's
//! "is the expiry near?" test). moka's `get` is its hit path. On two
//! threads each reports the time per lookup while the other thread also
//! reads; both threads share one cache.
//!
//! cargo bench -p patterns --bench cache

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use patterns::cache::{Cache, CacheConfig};

const CAPACITY: usize = 10_000;
const KEYS: u64 = 4096;
const TTL: Duration = Duration::from_secs(300);

/// Polls a future that is ready on its first poll (a cache hit).
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a hit must not wait"),
    }
}

fn caches() -> (Cache<u64, u64, ()>, moka::sync::Cache<u64, u64>) {
    let ours = Cache::new(CacheConfig::new(CAPACITY, TTL)).expect("valid config");
    let theirs = moka::sync::Cache::builder()
        .max_capacity(CAPACITY as u64)
        .time_to_live(TTL)
        .build();
    for key in 0..KEYS {
        ready(ours.get_or_load(key, || async move { Ok(key) })).expect("loads");
        theirs.insert(key, key);
    }
    // moka applies writes to its policy lazily; settle them before timing.
    theirs.run_pending_tasks();
    (ours, theirs)
}

/// `threads` threads each look up `iters` keys at once; the slowest
/// thread's time is the time for `iters` lookups each.
fn parallel(threads: usize, iters: u64, lookup: impl Fn(u64) + Sync) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (start, lookup) = (&start, &lookup);
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for i in 0..iters {
                        lookup((i * 7 + t * 2049) % KEYS);
                    }
                    began.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .max()
            .unwrap_or_default()
    })
}

fn hits(c: &mut Criterion) {
    let (ours, theirs) = caches();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("hit/{threads}-thread"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);
        group.bench_function("dslab-get", |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |k| {
                    black_box(ours.get(&black_box(k)));
                })
            })
        });
        group.bench_function("dslab-get_or_load", |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |k| {
                    black_box(ready(ours.get_or_load(black_box(k), || async { Err(()) })).ok());
                })
            })
        });
        group.bench_function("moka-sync-get", |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |k| {
                    black_box(theirs.get(&black_box(k)));
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, hits);
criterion_main!(benches);
