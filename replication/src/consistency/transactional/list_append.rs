//! Dependency inference for list-append histories: the strong case.
//!
//! Appended elements are unique per key, and every read returns the whole
//! list, so each read is a prefix of the key's final *version order*. The
//! longest read is that order (as far as anyone saw it); every other read
//! must be a prefix of it, or the store returned incompatible orders.
//! From the order:
//!
//! - ww: the appender of element i → the appender of element i+1;
//! - wr: the appender of the last element a read saw → the reader;
//! - rw: a reader that saw up to element i → the appender of element i+1
//!   (an empty read → the appender of element 0).
//!
//! Simplified: appends no read ever saw have no known place in the order
//! and yield no edges, as in Elle; end a workload with a final read of
//! every key to make the inference complete.

use std::collections::{HashMap, HashSet};

use super::anomalies::{Anomaly, Findings};
use super::graph::{Evidence, Graph};
use super::history::{KeyId, MicroOp, Outcome, TxnHistory};

/// Who appended an element, and whether it was that transaction's last
/// append to the key (a read ending anywhere else saw an intermediate
/// state).
#[derive(Clone, Copy)]
struct Appender {
    txn: usize,
    last: bool,
}

/// One `ok` read: transaction, value, and whether it came before any of
/// the transaction's own appends to that key (only those give wr/rw).
struct Read<'a> {
    txn: usize,
    elements: &'a [i64],
    external: bool,
    appends_too: bool,
}

/// Adds the edges list-append data implies to `graph`, and the anomalies
/// visible without a cycle to `findings`.
pub fn infer(history: &TxnHistory, graph: &mut Graph, findings: &mut Findings) {
    let label = |t: usize| format!("T{}", history.txns[t].id);
    let key_name = |k: KeyId| history.key_name(k).to_owned();
    let mut appenders: HashMap<(KeyId, i64), Appender> = HashMap::new();
    let mut reads: HashMap<KeyId, Vec<Read<'_>>> = HashMap::new();
    for (t, txn) in history.txns.iter().enumerate() {
        for (i, op) in txn.ops.iter().enumerate() {
            if let MicroOp::Append { key, element } = op {
                let later = txn.ops[i + 1..]
                    .iter()
                    .any(|o| matches!(o, MicroOp::Append { key: k, .. } if k == key));
                appenders.insert(
                    (*key, *element),
                    Appender {
                        txn: t,
                        last: !later,
                    },
                );
            }
        }
        if txn.outcome == Outcome::Ok {
            check_internal(history, t, findings);
            for (i, op) in txn.ops.iter().enumerate() {
                let MicroOp::ReadList {
                    key,
                    elements: Some(elements),
                } = op
                else {
                    continue;
                };
                let touches = |o: &MicroOp| match o {
                    MicroOp::Append { key: k, .. } | MicroOp::ReadList { key: k, .. } => k == key,
                    _ => false,
                };
                let external = !txn.ops[..i].iter().any(touches);
                let appends_too = txn.ops[i + 1..]
                    .iter()
                    .any(|o| matches!(o, MicroOp::Append { key: k, .. } if k == key));
                let mut distinct = HashSet::with_capacity(elements.len());
                if !elements.iter().all(|e| distinct.insert(*e)) {
                    findings.push(Anomaly::DuplicateElements, vec![t], || {
                        format!(
                            "{} read {} = {elements:?}, which holds an element twice",
                            label(t),
                            key_name(*key)
                        )
                    });
                    continue;
                }
                reads.entry(*key).or_default().push(Read {
                    txn: t,
                    elements,
                    external,
                    appends_too,
                });
            }
        }
    }
    let mut keys: Vec<KeyId> = reads.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let Some(key_reads) = reads.get(&key) else {
            continue;
        };
        let order = key_reads
            .iter()
            .map(|r| r.elements)
            .max_by_key(|e| e.len())
            .unwrap_or(&[]);
        let writer = |e: &i64| appenders.get(&(key, *e)).copied();
        let committed = |a: &Appender| history.txns[a.txn].outcome != Outcome::Fail;
        // ww along the version order, between different writers.
        for pair in order.windows(2) {
            if let (Some(a), Some(b)) = (writer(&pair[0]), writer(&pair[1]))
                && committed(&a)
                && committed(&b)
            {
                let evidence = Evidence::Ww {
                    key,
                    before: pair[0],
                    after: pair[1],
                };
                graph.add(a.txn, b.txn, evidence);
            }
        }
        let mut versions: HashMap<usize, usize> = HashMap::new();
        for read in key_reads {
            let r = read.txn;
            if !order.starts_with(read.elements) {
                findings.push(Anomaly::IncompatibleOrder, vec![r], || {
                    format!(
                        "{} read {} = {:?}, not a prefix of {:?} read elsewhere",
                        label(r),
                        key_name(key),
                        read.elements,
                        order
                    )
                });
                continue;
            }
            for element in read.elements {
                match writer(element) {
                    None => findings.push(Anomaly::GarbageRead, vec![r], || {
                        format!(
                            "{} read {element} in {}, which no transaction appended",
                            label(r),
                            key_name(key)
                        )
                    }),
                    Some(w) if history.txns[w.txn].outcome == Outcome::Fail => {
                        findings.push(Anomaly::G1a, vec![r, w.txn], || {
                            format!(
                                "{} read {} = {:?}, including {element} appended by {}, which aborted",
                                label(r),
                                key_name(key),
                                read.elements,
                                label(w.txn)
                            )
                        })
                    }
                    Some(_) => {}
                }
            }
            if !read.external {
                continue;
            }
            let n = read.elements.len();
            let last = read
                .elements
                .last()
                .and_then(|e| writer(e).map(|w| (*e, w)));
            if let Some((element, w)) = last
                && committed(&w)
            {
                if !w.last && w.txn != r {
                    findings.push(Anomaly::G1b, vec![r, w.txn], || {
                        format!(
                            "{} read {} = {:?}, ending at {element}, an intermediate append of {}",
                            label(r),
                            key_name(key),
                            read.elements,
                            label(w.txn)
                        )
                    });
                }
                graph.add(
                    w.txn,
                    r,
                    Evidence::Wr {
                        key,
                        value: element,
                    },
                );
            }
            // The next version is the next *writer's*: skipping the rest of
            // an intermediate writer's run keeps G1b from also posing as a
            // G-single.
            let run_writer = last.map(|(_, w)| w.txn);
            let next = order[n.min(order.len())..]
                .iter()
                .find(|e| writer(e).map(|w| w.txn) != run_writer || run_writer.is_none());
            if let Some(next) = next
                && let Some(w) = writer(next)
                && committed(&w)
            {
                let read_to = read.elements.last().copied();
                graph.add(
                    r,
                    w.txn,
                    Evidence::Rw {
                        key,
                        read: read_to,
                        next: *next,
                    },
                );
            }
            if read.appends_too
                && let Some(other) = versions.insert(n, r)
            {
                findings.push(Anomaly::LostUpdate, vec![other, r], || {
                    format!(
                        "{} and {} both read {} = {:?} and both appended to it",
                        label(other),
                        label(r),
                        key_name(key),
                        read.elements
                    )
                });
            }
        }
    }
}

/// A transaction's reads must reflect its own earlier appends: after
/// reading `v` and appending `a`, the next read is `v ++ [a]`; after
/// appending `a` unread, the next read ends with `a`.
fn check_internal(history: &TxnHistory, t: usize, findings: &mut Findings) {
    let txn = &history.txns[t];
    // Per key: (known full value?, own appends not yet read back).
    let mut state: Vec<(KeyId, Option<Vec<i64>>, Vec<i64>)> = Vec::new();
    for op in &txn.ops {
        match op {
            MicroOp::Append { key, element } => match state.iter_mut().find(|s| s.0 == *key) {
                Some((_, Some(known), _)) => known.push(*element),
                Some((_, None, suffix)) => suffix.push(*element),
                None => state.push((*key, None, vec![*element])),
            },
            MicroOp::ReadList {
                key,
                elements: Some(read),
            } => {
                let entry = state.iter_mut().find(|s| s.0 == *key);
                let expected = match &entry {
                    Some((_, Some(known), _)) => Some(known.clone()),
                    _ => None,
                };
                let consistent = match &entry {
                    Some((_, Some(known), _)) => known == read,
                    Some((_, None, suffix)) => read.ends_with(suffix),
                    None => true,
                };
                if !consistent {
                    findings.push(Anomaly::Internal, vec![t], || {
                        format!(
                            "T{} read {} = {read:?} after its own operations implied {}",
                            txn.id,
                            history.key_name(*key),
                            expected.map_or_else(
                                || "a list ending with its own appends".to_owned(),
                                |e| format!("{e:?}")
                            )
                        )
                    });
                }
                match entry {
                    Some(s) => s.1 = Some(read.clone()),
                    None => state.push((*key, Some(read.clone()), Vec::new())),
                }
            }
            _ => {}
        }
    }
}
