//! State merge, dslab's CRDTs against the `crdts` crate, like for like:
//!
//! - `orset_merge_10k`: two replicas of an observed-remove set, each
//!   having added 10,000 elements, 5,000 of them shared (added on both
//!   sides concurrently); one state is merged into the other. dslab's
//!   `OrSet` against `crdts::Orswot` — both add-wins, tombstone-free.
//! - `gcounter_merge_100`: two G-Counters with 100 replica entries each,
//!   every entry different; one is merged into the other.
//!
//! Only the merge is timed: the states are cloned in the untimed setup
//! (`crdts` merges take the other state by value, so it gets a fresh
//! copy of both; dslab's take a reference and get a fresh target).
//!
//! cargo bench -p replication --bench crdt_merge

use std::hint::black_box;

use crdts::{CmRDT, CvRDT};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use replication::clock::ReplicaId;
use replication::crdt::{Crdt, GCounter, OrSet};

const ELEMENTS: u64 = 10_000;
const SHARED: u64 = 5_000;
const COUNTER_REPLICAS: u64 = 100;

/// The elements replica `side` (0 or 1) adds: half shared, half its own.
fn elements(side: u64) -> impl Iterator<Item = u64> {
    (0..ELEMENTS).map(move |i| if i < SHARED { i } else { i + side * ELEMENTS })
}

fn orset_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("orset_merge_10k");

    let ours: Vec<OrSet<u64>> = (0..2)
        .map(|side| {
            let mut set = OrSet::new();
            for element in elements(side) {
                set.insert(ReplicaId(side + 1), element);
            }
            set
        })
        .collect();
    group.bench_function("dslab", |b| {
        b.iter_batched(
            || ours[0].clone(),
            |mut target| {
                target.merge(black_box(&ours[1]));
                target
            },
            BatchSize::LargeInput,
        )
    });

    let theirs: Vec<crdts::Orswot<u64, u64>> = (0..2)
        .map(|side| {
            let mut set = crdts::Orswot::new();
            for element in elements(side) {
                let context = set.read_ctx().derive_add_ctx(side + 1);
                let op = set.add(element, context);
                set.apply(op);
            }
            set
        })
        .collect();
    group.bench_function("crdts", |b| {
        b.iter_batched(
            || (theirs[0].clone(), theirs[1].clone()),
            |(mut target, other)| {
                target.merge(black_box(other));
                target
            },
            BatchSize::LargeInput,
        )
    });

    // Same answer on both sides, or the comparison means nothing.
    let mut merged_ours = ours[0].clone();
    merged_ours.merge(&ours[1]);
    let mut merged_theirs = theirs[0].clone();
    merged_theirs.merge(theirs[1].clone());
    assert_eq!(merged_ours.len(), merged_theirs.read().val.len());
    group.finish();
}

fn gcounter_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("gcounter_merge_100");
    let counts = |side: u64| (0..COUNTER_REPLICAS).map(move |r| (r, 1 + (r * 7 + side * 13) % 50));

    let ours: Vec<GCounter> = (0..2)
        .map(|side| GCounter::from_entries(counts(side).map(|(r, n)| (ReplicaId(r), n))))
        .collect();
    group.bench_function("dslab", |b| {
        b.iter_batched(
            || ours[0].clone(),
            |mut target| {
                target.merge(black_box(&ours[1]));
                target
            },
            BatchSize::SmallInput,
        )
    });

    let theirs: Vec<crdts::GCounter<u64>> = (0..2)
        .map(|side| {
            let mut counter = crdts::GCounter::new();
            for (replica, n) in counts(side) {
                let op = counter.inc_many(replica, n);
                counter.apply(op);
            }
            counter
        })
        .collect();
    group.bench_function("crdts", |b| {
        b.iter_batched(
            || (theirs[0].clone(), theirs[1].clone()),
            |(mut target, other)| {
                target.merge(black_box(other));
                target
            },
            BatchSize::SmallInput,
        )
    });

    let mut merged_ours = ours[0].clone();
    merged_ours.merge(&ours[1]);
    let mut merged_theirs = theirs[0].clone();
    merged_theirs.merge(theirs[1].clone());
    assert_eq!(
        merged_ours.value().to_string(),
        merged_theirs.read().to_string()
    );
    group.finish();
}

criterion_group!(benches, orset_merge, gcounter_merge);
criterion_main!(benches);
