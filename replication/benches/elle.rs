//! Elle-style checker throughput: checking generated serializable
//! list-append histories (the correct store under a seeded concurrent
//! workload: 10 processes, 20 keys in play, rotated after 32 appends,
//! about 4 micro-ops per transaction) of 10k and 100k transactions.
//! Criterion reports transactions per second; generation is untimed.
//!
//! - `list_append/N`: serializability (ww/wr/rw edges);
//! - `list_append_realtime/N`: strict serializability (plus real-time
//!   edges from the frontier sweep).
//!
//! cargo bench -p replication --bench elle

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use replication::consistency::transactional::{CheckOptions, Level, LevelVerdict, check};
use replication::isolation::{SerializableStore, WorkloadConfig, run_workload};

fn bench(c: &mut Criterion) {
    for (name, realtime) in [("list_append", false), ("list_append_realtime", true)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        for transactions in [10_000usize, 100_000] {
            let history = run_workload(
                &mut SerializableStore::new(),
                &WorkloadConfig {
                    transactions,
                    processes: 10,
                    active_keys: 20,
                    max_keys_per_txn: 5,
                    max_appends_per_key: 32,
                    seed: 1,
                },
            );
            let options = CheckOptions {
                realtime,
                budget: None,
                ..CheckOptions::default()
            };
            // The bench measures a pass, not an early exit on a cycle.
            let level = if realtime {
                Level::StrictSerializable
            } else {
                Level::Serializable
            };
            assert_eq!(check(&history, &options).level(level), LevelVerdict::Holds);
            group.throughput(Throughput::Elements(transactions as u64));
            group.bench_with_input(
                BenchmarkId::from_parameter(transactions),
                &history,
                |b, h| b.iter(|| check(black_box(h), &options)),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
