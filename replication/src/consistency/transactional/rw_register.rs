//! Dependency inference for read-write registers: the weaker case.
//!
//! With unique written values a read names its writer, so wr edges are
//! exact. A register read shows one version, not the history before it,
//! so the version order must be inferred, and only what is sound is:
//!
//! - a transaction that read `x = v1` and then wrote `x = v2` puts
//!   `v1 < v2` (the initial state, `null`, counts as a version);
//! - from each `v1 < v2`: ww `writer(v1) → writer(v2)`, and rw
//!   `reader(v1) → writer(v2)` for every transaction that read `v1`.
//!
//! Simplified: Elle can also derive version orders from real-time or
//! process order; this checker uses those orders only as graph edges.
//! Blind writes (written without reading the key first) have no inferred
//! place in the order, so anomalies among them go unseen: rw-register is
//! weaker than list-append here exactly as in Elle. Cost: per version,
//! its readers times its successors (one successor unless the history
//! already shows a lost update).

use std::collections::HashMap;

use super::anomalies::{Anomaly, Findings};
use super::graph::{Evidence, Graph};
use super::history::{KeyId, MicroOp, Outcome, TxnHistory};

/// Adds the edges register data implies to `graph`, and the anomalies
/// visible without a cycle to `findings`.
pub fn infer(history: &TxnHistory, graph: &mut Graph, findings: &mut Findings) {
    let label = |t: usize| format!("T{}", history.txns[t].id);
    // (key, value) → (writer, was it the writer's final write to key?)
    let mut writers: HashMap<(KeyId, i64), (usize, bool)> = HashMap::new();
    // (key, version read) → external readers; and → versions written after.
    let mut readers: HashMap<(KeyId, Option<i64>), Vec<usize>> = HashMap::new();
    let mut successors: HashMap<(KeyId, Option<i64>), Vec<i64>> = HashMap::new();
    for (t, txn) in history.txns.iter().enumerate() {
        for (i, op) in txn.ops.iter().enumerate() {
            if let MicroOp::Write { key, value } = op {
                let later = txn.ops[i + 1..]
                    .iter()
                    .any(|o| matches!(o, MicroOp::Write { key: k, .. } if k == key));
                writers.insert((*key, *value), (t, !later));
            }
        }
        if txn.outcome != Outcome::Ok {
            continue;
        }
        // Per key: the value this transaction knows the key holds, and
        // whether it first learned it by reading (an external read).
        let mut known: Vec<(KeyId, Option<i64>, Option<Option<i64>>)> = Vec::new();
        for op in &txn.ops {
            match op {
                MicroOp::ReadRegister { key, value } => match known.iter().find(|k| k.0 == *key) {
                    Some((_, expected, _)) if expected != value => {
                        findings.push(Anomaly::Internal, vec![t], || {
                                format!(
                                    "{} read {} = {value:?} after its own operations implied {expected:?}",
                                    label(t),
                                    history.key_name(*key)
                                )
                            });
                    }
                    Some(_) => {}
                    None => {
                        known.push((*key, *value, Some(*value)));
                        readers.entry((*key, *value)).or_default().push(t);
                    }
                },
                MicroOp::Write { key, value } => match known.iter_mut().find(|k| k.0 == *key) {
                    Some(entry) => entry.1 = Some(*value),
                    None => known.push((*key, Some(*value), None)),
                },
                _ => {}
            }
        }
        for (key, last, first_read) in known {
            if let (Some(read), Some(written)) = (first_read, last)
                && first_read != Some(last)
            {
                successors.entry((key, read)).or_default().push(written);
            }
        }
    }
    let committed = |t: usize| history.txns[t].outcome != Outcome::Fail;
    let mut versions: Vec<&(KeyId, Option<i64>)> = readers.keys().collect();
    versions.sort_unstable();
    for version @ &(key, value) in versions {
        let name = history.key_name(key);
        let readers_of = readers.get(version).map_or(&[][..], Vec::as_slice);
        if let Some(v) = value {
            match writers.get(&(key, v)).copied() {
                None => {
                    for &r in readers_of {
                        findings.push(Anomaly::GarbageRead, vec![r], || {
                            format!("{} read {name} = {v}, which no transaction wrote", label(r))
                        });
                    }
                }
                Some((w, _)) if !committed(w) => {
                    for &r in readers_of {
                        findings.push(Anomaly::G1a, vec![r, w], || {
                            format!(
                                "{} read {name} = {v}, written by {}, which aborted",
                                label(r),
                                label(w)
                            )
                        });
                    }
                }
                Some((w, last)) => {
                    for &r in readers_of {
                        if !last && r != w {
                            findings.push(Anomaly::G1b, vec![r, w], || {
                                format!(
                                    "{} read {name} = {v}, an intermediate write of {}",
                                    label(r),
                                    label(w)
                                )
                            });
                        }
                        graph.add(w, r, Evidence::Wr { key, value: v });
                    }
                }
            }
        }
        // Readers of this version that also wrote the key: two of them
        // means two writes both based on the same version.
        let writing: Vec<usize> = readers_of
            .iter()
            .copied()
            .filter(|r| wrote(history, *r, key))
            .collect();
        if let [first, second, ..] = writing[..] {
            findings.push(Anomaly::LostUpdate, vec![first, second], || {
                format!(
                    "{} and {} both read {name} = {value:?} and both wrote it",
                    label(first),
                    label(second)
                )
            });
        }
        for next in successors.get(version).map_or(&[][..], Vec::as_slice) {
            let Some(&(w2, _)) = writers.get(&(key, *next)) else {
                continue;
            };
            if !committed(w2) {
                continue;
            }
            if let Some(v) = value
                && let Some(&(w1, _)) = writers.get(&(key, v))
                && committed(w1)
            {
                graph.add(
                    w1,
                    w2,
                    Evidence::Ww {
                        key,
                        before: v,
                        after: *next,
                    },
                );
            }
            for &r in readers_of {
                graph.add(
                    r,
                    w2,
                    Evidence::Rw {
                        key,
                        read: value,
                        next: *next,
                    },
                );
            }
        }
    }
}

fn wrote(history: &TxnHistory, t: usize, key: KeyId) -> bool {
    history.txns[t]
        .ops
        .iter()
        .any(|o| matches!(o, MicroOp::Write { key: k, .. } if *k == key))
}
