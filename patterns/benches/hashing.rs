//! ns per lookup for every strategy at 10, 100 and 1000 nodes (150 virtual
//! nodes for the rings), against the `hashring` crate, plus the cost of
//! hashing the key alone — the floor under every strategy but the md5 ring.
//!
//! `hashring` is measured twice: with its default hasher (SipHash, what a
//! user gets) and with xxh3, the hash dslab's rings use — so the ring
//! comparison also holds with the same key hash on both sides.
//! The course's Python ring is timed by `python3 patterns/benches/course_ring.py`.
//!
//! cargo bench -p patterns --bench hashing

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use patterns::hashing::bounded::BoundedLoad;
use patterns::hashing::course_ring::CourseRing;
use patterns::hashing::jump::Jump;
use patterns::hashing::maglev::{DEFAULT_TABLE_SIZE, Maglev};
use patterns::hashing::rendezvous::Rendezvous;
use patterns::hashing::ring::Ring;
use patterns::hashing::{Placement, key_hash};

const KEYS: usize = 4096;

/// Times `owner` through the concrete type, as a user of one strategy calls it.
fn bench<P: Placement>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    mut placement: P,
    names: &[String],
    keys: &[String],
) {
    for name in names {
        placement.add_node(name, 1).expect("fresh names");
    }
    let id = BenchmarkId::new(placement.strategy().name(), names.len());
    group.bench_function(id, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(placement.owner(black_box(keys[i].as_bytes())).ok())
        });
    });
}

fn lookups(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    let mut group = c.benchmark_group("lookup");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    group.bench_function("xxh3-key-only", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(key_hash(black_box(keys[i].as_bytes())))
        });
    });
    for nodes in [10usize, 100, 1000] {
        let names: Vec<String> = (0..nodes).map(|i| format!("node-{i}")).collect();
        bench(&mut group, Ring::new(150).expect("valid"), &names, &keys);
        bench(
            &mut group,
            CourseRing::new(150).expect("valid"),
            &names,
            &keys,
        );
        bench(&mut group, Jump::new(), &names, &keys);
        bench(&mut group, Rendezvous::new(), &names, &keys);
        bench(
            &mut group,
            Maglev::new(DEFAULT_TABLE_SIZE).expect("valid"),
            &names,
            &keys,
        );
        bench(
            &mut group,
            BoundedLoad::new(150, 1.25).expect("valid"),
            &names,
            &keys,
        );

        // The peer: `hashring` with the same 150 virtual nodes per node.
        let mut ring = hashring::HashRing::new();
        for name in &names {
            for vnode in 0..150u32 {
                ring.add((name.clone(), vnode));
            }
        }
        group.bench_function(BenchmarkId::new("hashring", nodes), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(
                    ring.get(black_box(&keys[i].as_str()))
                        .map(|(name, _)| name.len()),
                )
            });
        });
        let mut same_hash = hashring::HashRing::with_hasher(xxhash_rust::xxh3::Xxh3Builder::new());
        for name in &names {
            for vnode in 0..150u32 {
                same_hash.add((name.clone(), vnode));
            }
        }
        group.bench_function(BenchmarkId::new("hashring-xxh3", nodes), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(
                    same_hash
                        .get(black_box(&keys[i].as_str()))
                        .map(|(name, _)| name.len()),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
