//! Clock operations: vector clocks against `crdts::VClock`, and the
//! hybrid logical clock on its own (no crate we would otherwise pick
//! offers one with the same contract).
//!
//! - `vector_compare_100`: compare two 100-entry clocks that differ in
//!   one entry each way (concurrent: the full walk both libraries must
//!   make). dslab's `compare` against `crdts`' `partial_cmp`.
//! - `vector_merge_100`: merge one 100-entry clock into another (target
//!   cloned in the untimed setup; `crdts` gets a copy of the other too,
//!   as its merge takes it by value).
//! - `hlc_now`, `hlc_update`: a hybrid timestamp for a local event, and
//!   for a received one, reading the system clock.
//!
//! cargo bench -p replication --bench clock

use std::hint::black_box;
use std::time::Duration;

use crdts::CvRDT;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use replication::clock::ReplicaId;
use replication::clock::hlc::HybridClock;
use replication::clock::physical::SystemClock;
use replication::clock::vector::VectorClock;

const ENTRIES: u64 = 100;

/// Two clocks over 100 replicas, concurrent: the first is ahead on the
/// first replica, the second on the last.
fn counts(side: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..ENTRIES).map(move |r| {
        let ahead = (side == 0 && r == 0) || (side == 1 && r == ENTRIES - 1);
        (r, 10 + r + u64::from(ahead))
    })
}

fn ours(side: u64) -> VectorClock {
    counts(side).map(|(r, n)| (ReplicaId(r), n)).collect()
}

fn theirs(side: u64) -> crdts::VClock<u64> {
    counts(side).map(|(r, n)| crdts::Dot::new(r, n)).collect()
}

fn vector(c: &mut Criterion) {
    let (a, b) = (ours(0), ours(1));
    let (x, y) = (theirs(0), theirs(1));

    let mut group = c.benchmark_group("vector_compare_100");
    group.bench_function("dslab", |bench| {
        bench.iter(|| black_box(&a).compare(black_box(&b)))
    });
    group.bench_function("crdts", |bench| {
        bench.iter(|| black_box(&x).partial_cmp(black_box(&y)))
    });
    group.finish();

    let mut group = c.benchmark_group("vector_merge_100");
    group.bench_function("dslab", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut target| {
                target.merge(black_box(&b));
                target
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("crdts", |bench| {
        bench.iter_batched(
            || (x.clone(), y.clone()),
            |(mut target, other)| {
                target.merge(black_box(other));
                target
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn hybrid(c: &mut Criterion) {
    let mut clock = HybridClock::new(SystemClock, Duration::from_millis(500));
    c.bench_function("hlc_now", |bench| bench.iter(|| clock.now()));
    let mut sender = HybridClock::new(SystemClock, Duration::from_millis(500));
    c.bench_function("hlc_update", |bench| {
        bench.iter_batched(
            || sender.now().expect("the system clock moves"),
            |remote| clock.update(black_box(remote)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, vector, hybrid);
criterion_main!(benches);
