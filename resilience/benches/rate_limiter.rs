//! One rate-limit check per call: dslab's GCRA vs governor's.
//!
//! `dslab_gcra` and `governor` read the same kind of clock (the CPU's TSC
//! through quanta), so the comparison is the algorithm. `dslab_gcra_tokio`
//! is dslab's default clock, `tokio::time`, which follows simulated time —
//! the difference is the price of that.
//!
//! cargo bench -p resilience --bench rate_limiter

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use resilience::rate_limit::{Gcra, Quota, TscClock};

#[path = "two_threads.rs"]
mod two_threads;
use two_threads::two_threads;

/// A quota no benchmark can exhaust: every check is admitted.
fn quota() -> Quota {
    Quota::new(Duration::from_nanos(1), u32::MAX).expect("valid")
}

fn dslab() -> Gcra<TscClock> {
    Gcra::with_clock(quota(), TscClock::default())
}

fn governor() -> governor::DefaultDirectRateLimiter {
    governor::RateLimiter::direct(governor::Quota::per_second(NonZeroU32::MAX))
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limiter");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let gcra = dslab();
    group.bench_function("dslab_gcra", |b| {
        b.iter(|| black_box(black_box(&gcra).check().is_ok()))
    });
    let limiter = governor();
    group.bench_function("governor", |b| {
        b.iter(|| black_box(black_box(&limiter).check().is_ok()))
    });
    let tokio_clock = Gcra::new(quota());
    group.bench_function("dslab_gcra_tokio", |b| {
        b.iter(|| black_box(black_box(&tokio_clock).check().is_ok()))
    });
    group.finish();
}

fn two_thread_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limiter_2threads");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let gcra = Arc::new(dslab());
    group.bench_function("dslab_gcra", |b| {
        b.iter_custom(|iters| {
            let gcra = gcra.clone();
            two_threads(iters, move |n| {
                (0..n).for_each(|_| {
                    black_box(gcra.check().is_ok());
                })
            })
        })
    });
    let limiter = Arc::new(governor());
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            let limiter = limiter.clone();
            two_threads(iters, move |n| {
                (0..n).for_each(|_| {
                    black_box(limiter.check().is_ok());
                })
            })
        })
    });
    group.finish();
}

criterion_group!(benches, single_thread, two_thread_group);
criterion_main!(benches);
