//! The checker against brute force on small random histories, and a
//! serial executor's histories always accepted.
//!
//! Brute force tries every order of the committed transactions and
//! replays it. Dependency inference is only *complete* (no cycle missed,
//! so "acyclic" really means "serializable") when the version order of
//! every key is fully known. The generator makes that true by ending each
//! history with one transaction that reads every key after everything
//! else: its read is the whole version order, so every append has a
//! place and every ww/rw edge is inferred. With that, the two must agree
//! in both directions: our `serializable` ⇒ brute force finds an order,
//! and no order ⇒ we name an anomaly.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const KEYS: u32 = 2;

/// Interleaves the micro-ops of `txns` random transactions over a shared
/// state with every append visible at once (no isolation at all), then
/// appends the final full read. All commit.
fn chaotic_history(rng: &mut SmallRng, txns: usize) -> TxnHistory {
    let mut history = TxnHistory::new(DataModel::ListAppend);
    history.keys = (0..KEYS).map(|k| k.to_string()).collect();
    let mut next = 0i64;
    let mut plans: Vec<Vec<(bool, u32)>> = (0..txns)
        .map(|_| {
            (0..rng.random_range(1..=3))
                .map(|_| (rng.random_bool(0.5), rng.random_range(0..KEYS)))
                .collect()
        })
        .collect();
    let mut ops: Vec<Vec<MicroOp>> = vec![Vec::new(); txns];
    let mut state: HashMap<u32, Vec<i64>> = HashMap::new();
    while plans.iter().any(|p| !p.is_empty()) {
        let t = rng.random_range(0..txns);
        if plans[t].is_empty() {
            continue;
        }
        let (append, key) = plans[t].remove(0);
        let list = state.entry(key).or_default();
        ops[t].push(if append {
            next += 1;
            list.push(next);
            MicroOp::Append {
                key: history::KeyId(key),
                element: next,
            }
        } else {
            MicroOp::ReadList {
                key: history::KeyId(key),
                elements: Some(list.clone()),
            }
        });
    }
    ops.push(
        (0..KEYS)
            .map(|k| MicroOp::ReadList {
                key: history::KeyId(k),
                elements: Some(state.get(&k).cloned().unwrap_or_default()),
            })
            .collect(),
    );
    for (id, ops) in ops.into_iter().enumerate() {
        history.txns.push(committed(id as u64, ops, None));
    }
    history
}

/// A committed transaction on process `id % 5`, lasting one tick from
/// `call` when given.
fn committed(id: u64, ops: Vec<MicroOp>, call: Option<u64>) -> Txn {
    Txn {
        id,
        process: id % 5,
        outcome: Outcome::Ok,
        ops,
        call,
        ret: call.map(|c| c + 1),
        line: 0,
    }
}

/// Replays `order`; true when every read returns what was observed.
fn replays(history: &TxnHistory, order: &[usize]) -> bool {
    let mut state: HashMap<history::KeyId, Vec<i64>> = HashMap::new();
    for &t in order {
        for op in &history.txns[t].ops {
            match op {
                MicroOp::Append { key, element } => state.entry(*key).or_default().push(*element),
                MicroOp::ReadList {
                    key,
                    elements: Some(seen),
                } if state.get(key).map_or(&[][..], Vec::as_slice) != seen.as_slice() => {
                    return false;
                }
                _ => {}
            }
        }
    }
    true
}

/// Heap's algorithm over all orders of `0..n`.
fn some_order_replays(history: &TxnHistory) -> bool {
    let n = history.txns.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut counters = vec![0usize; n];
    if replays(history, &order) {
        return true;
    }
    let mut i = 1;
    while i < n {
        if counters[i] < i {
            let j = if i % 2 == 0 { 0 } else { counters[i] };
            order.swap(j, i);
            if replays(history, &order) {
                return true;
            }
            counters[i] += 1;
            i = 1;
        } else {
            counters[i] = 0;
            i += 1;
        }
    }
    false
}

#[test]
fn transactional_agrees_with_brute_force_on_small_histories() {
    let mut rng = SmallRng::seed_from_u64(15);
    let (mut serializable, mut not) = (0, 0);
    for case in 0..400 {
        let txns = rng.random_range(2..=5);
        let history = chaotic_history(&mut rng, txns);
        let report = check(&history, &CheckOptions::default());
        let brute = some_order_replays(&history);
        let ours = report.level(Level::Serializable);
        let expected = if brute {
            LevelVerdict::Holds
        } else {
            LevelVerdict::Violated
        };
        assert_eq!(
            ours,
            expected,
            "case {case}: brute force says {brute}\n{}\n{}",
            history.to_jsonl(),
            report.explain(&history, Level::Serializable)
        );
        if brute {
            serializable += 1;
        } else {
            not += 1;
        }
    }
    // Both sides of the agreement were exercised.
    assert!(
        serializable > 40 && not > 40,
        "{serializable} serializable, {not} not"
    );
}

#[test]
fn transactional_serial_executions_are_always_accepted() {
    let mut rng = SmallRng::seed_from_u64(18);
    for case in 0..60 {
        let mut history = TxnHistory::new(DataModel::ListAppend);
        history.keys = (0..4).map(|k| k.to_string()).collect();
        let mut state: HashMap<u32, Vec<i64>> = HashMap::new();
        let mut time = 0;
        let mut next = 0i64;
        for id in 0..200u64 {
            let ops = (0..rng.random_range(1..=4))
                .map(|_| {
                    let key = rng.random_range(0..4u32);
                    let list = state.entry(key).or_default();
                    if rng.random_bool(0.5) {
                        next += 1;
                        list.push(next);
                        MicroOp::Append {
                            key: history::KeyId(key),
                            element: next,
                        }
                    } else {
                        MicroOp::ReadList {
                            key: history::KeyId(key),
                            elements: Some(list.clone()),
                        }
                    }
                })
                .collect();
            time += 2;
            history.txns.push(committed(id, ops, Some(time)));
        }
        let options = CheckOptions {
            realtime: true,
            process_order: true,
            ..CheckOptions::default()
        };
        let report = check(&history, &options);
        assert_eq!(
            report.strongest_level(),
            Strongest::Level(Level::StrictSerializable),
            "case {case}\n{}",
            report.explain(&history, Level::StrictSerializable)
        );
    }
}

#[test]
fn transactional_large_history_checks_completely() {
    use crate::isolation::{SerializableStore, WorkloadConfig, run_workload};
    // 20k in debug keeps the suite fast; the bench runs 100k in release.
    let config = WorkloadConfig {
        transactions: 20_000,
        processes: 8,
        active_keys: 16,
        max_keys_per_txn: 4,
        ..WorkloadConfig::default()
    };
    let history = run_workload(&mut SerializableStore::new(), &config);
    let report = check(
        &history,
        &CheckOptions {
            realtime: true,
            ..CheckOptions::default()
        },
    );
    assert!(report.complete);
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::StrictSerializable)
    );
    assert!(report.edges > history.txns.len(), "{} edges", report.edges);
}
