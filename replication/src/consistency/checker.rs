//! The linearizability checker: Wing & Gong's search with Lowe's
//! memoization, one key at a time.
//!
//! A history is linearizable if its operations can be put in one order
//! that (a) respects real time — an operation that returned before
//! another was called comes first — and (b) makes every reply correct
//! under the sequential model. The checker searches for that order:
//!
//! - **P-compositionality.** Operations on different keys never
//!   constrain each other, so each key's sub-history is checked on its
//!   own (and in parallel). The search space is exponential in the number
//!   of overlapping operations *per key*, not in the whole history.
//! - **Depth-first search over the entry list** (call and return events in
//!   time order). The next operation to linearize must be one whose call
//!   comes before the first pending return; if none fits, backtrack.
//! - **Memoization.** Two search paths that linearized the same *set* of
//!   operations and reached the same state have the same future. The set
//!   is a bitset hashed Zobrist-style (one XOR per operation), so the
//!   check is cheap.
//!
//! Operations with unknown outcome return at +∞: they may be linearized
//! anywhere after their call — or after everything, which is the same as
//! never having happened.
//!
//! The search can blow up on adversarial histories, so it runs against a
//! time budget; running out yields `Unknown`, never a pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::history::{Datum, History, Operation};
use super::memo::{Memo, zobrist};
use super::model::Model;

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// A witness: for each key, the operation ids in a valid order.
    Linearizable {
        witness: BTreeMap<Option<Arc<str>>, Vec<usize>>,
    },
    NotLinearizable(Violation),
    /// The time or memory budget ran out before a verdict: proves nothing
    /// either way.
    Unknown {
        checked_keys: usize,
        keys: usize,
    },
}

/// Why a history is not linearizable, for the smallest failing key.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub key: Option<Arc<str>>,
    /// Every operation on the key.
    pub operations: Vec<usize>,
    /// The longest valid order the search found before getting stuck.
    pub longest_prefix: Vec<usize>,
    /// The state after that prefix.
    pub state: Datum,
    /// The operations that could have gone next, and why none could.
    pub blocked: Vec<(usize, String)>,
}

/// A verdict and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub model: Model,
    pub verdict: Verdict,
    pub keys: usize,
    pub elapsed: Duration,
}

impl CheckResult {
    /// A human explanation of the verdict.
    pub fn explain(&self, history: &History) -> String {
        let describe = |id: usize| match history.operation(id) {
            Some(op) => format!("#{id} client {} {}", op.client, op.describe()),
            None => format!("#{id}"),
        };
        match &self.verdict {
            Verdict::Linearizable { witness } => {
                let ops: usize = witness.values().map(Vec::len).sum();
                format!(
                    "linearizable: {ops} operations on {} keys fit one order ({:?})",
                    witness.len(),
                    self.elapsed
                )
            }
            Verdict::Unknown { checked_keys, keys } => format!(
                "unknown: the time or memory budget ran out after {checked_keys} of {keys} keys ({:?}); this is not a pass",
                self.elapsed
            ),
            Verdict::NotLinearizable(violation) => {
                let key = violation
                    .key
                    .as_deref()
                    .map_or("the register".to_owned(), |k| format!("key {k:?}"));
                let mut out = format!(
                    "not linearizable: {key} ({} operations) has no valid order.\n",
                    violation.operations.len()
                );
                out.push_str(&format!(
                    "The longest valid order covers {} of them, leaving the value at {}; then no operation can go next:\n",
                    violation.longest_prefix.len(),
                    violation.state
                ));
                for (id, why) in &violation.blocked {
                    out.push_str(&format!("  {}: {why}\n", describe(*id)));
                }
                out
            }
        }
    }
}

/// Checks `history` against `model`, giving up with `Unknown` after `budget`.
pub fn check(
    history: &History,
    model: Model,
    budget: Option<Duration>,
) -> crate::Result<CheckResult> {
    check_within(history, model, budget, u32::MAX as usize)
}

/// [`check`] with the memo's arena capped at `memo_words` 64-bit words.
pub(super) fn check_within(
    history: &History,
    model: Model,
    budget: Option<Duration>,
    memo_words: usize,
) -> crate::Result<CheckResult> {
    model.validate(history)?;
    history.validate_ids()?;
    let started = Instant::now();
    let deadline = budget.map(|b| started + b);
    // Positions in `history.operations`; reports name operations by id.
    let mut by_key: BTreeMap<Option<Arc<str>>, Vec<usize>> = BTreeMap::new();
    for (position, op) in history.operations.iter().enumerate() {
        let key = match model {
            Model::EtcdRegister => None,
            Model::Kv | Model::Register => op.key.clone(),
        };
        by_key.entry(key).or_default().push(position);
    }
    // Smallest keys first: the first refutation stops the other searches,
    // so the key reported is (almost always) the smallest failing one.
    let mut partitions: Vec<(Option<Arc<str>>, Vec<usize>)> = by_key.into_iter().collect();
    partitions.sort_by_key(|(_, ids)| ids.len());
    let next = AtomicUsize::new(0);
    let stop = Stop::default();
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some((_, positions)) = partitions.get(index) else {
                break;
            };
            let ops: Vec<&Operation> = positions
                .iter()
                .map(|&at| &history.operations[at])
                .collect();
            let outcome = search(model, &ops, deadline, memo_words, &stop);
            if matches!(outcome, Outcome::Stuck { .. }) {
                stop.refuted.store(true, Ordering::Relaxed);
            }
            done.push((index, outcome));
        }
        done
    };
    // Threads pay off only when there is enough to share: a thread costs
    // tens of microseconds, as much as checking a small history.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(partitions.len());
    let outcomes: Vec<(usize, Outcome)> =
        if workers <= 1 || history.operations.len() < PARALLEL_THRESHOLD {
            work()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
                // A worker only panics on a bug; surface it rather than a verdict.
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("checker worker does not panic"))
                    .collect()
            })
        };

    let mut witness = BTreeMap::new();
    let mut smallest: Option<Violation> = None;
    let mut checked = 0;
    for (index, outcome) in outcomes {
        let (key, positions) = &partitions[index];
        match outcome {
            Outcome::Linearizable(order) => {
                checked += 1;
                witness.insert(key.clone(), order);
            }
            Outcome::Stuck {
                prefix,
                state,
                blocked,
            } => {
                checked += 1;
                let violation = Violation {
                    key: key.clone(),
                    operations: positions
                        .iter()
                        .map(|&at| history.operations[at].id)
                        .collect(),
                    longest_prefix: prefix,
                    state,
                    blocked,
                };
                if smallest
                    .as_ref()
                    .is_none_or(|s| violation.operations.len() < s.operations.len())
                {
                    smallest = Some(violation);
                }
            }
            Outcome::OutOfTime | Outcome::OutOfMemory | Outcome::Abandoned => {}
        }
    }
    let verdict = match smallest {
        // One key with no valid order settles it, whatever the others do.
        Some(violation) => Verdict::NotLinearizable(violation),
        None if checked < partitions.len() => Verdict::Unknown {
            checked_keys: checked,
            keys: partitions.len(),
        },
        None => Verdict::Linearizable { witness },
    };
    Ok(CheckResult {
        model,
        verdict,
        keys: partitions.len(),
        elapsed: started.elapsed(),
    })
}

enum Outcome {
    Linearizable(Vec<usize>),
    Stuck {
        prefix: Vec<usize>,
        state: Datum,
        blocked: Vec<(usize, String)>,
    },
    OutOfTime,
    /// The memo outgrew what its 32-bit offsets can address: no verdict.
    OutOfMemory,
    /// Another key already proved the history not linearizable.
    Abandoned,
}

/// Why searches should stop early, shared by the workers.
#[derive(Default)]
struct Stop {
    out_of_time: AtomicBool,
    refuted: AtomicBool,
}

const NIL: usize = usize::MAX;

/// Histories shorter than this are checked on the calling thread.
const PARALLEL_THRESHOLD: usize = 1_000;

/// Searches one key's operations for a linearization.
fn search(
    model: Model,
    ops: &[&Operation],
    deadline: Option<Instant>,
    memo_words: usize,
    stop: &Stop,
) -> Outcome {
    let n = ops.len();
    // Entries: 2i is op i's call, 2i+1 its return. Sorted by time; at equal
    // times calls first, so touching operations count as concurrent.
    let mut order: Vec<usize> = (0..2 * n).collect();
    let time = |e: usize| {
        if e.is_multiple_of(2) {
            ops[e / 2].call
        } else {
            ops[e / 2].ret
        }
    };
    order.sort_by_key(|&e| (time(e), e % 2, e / 2));
    // A doubly linked list over entries; index 2n is the head sentinel.
    let head = 2 * n;
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = head;
    for &e in &order {
        next[last] = e;
        prev[e] = last;
        last = e;
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        if q != NIL {
            prev[q] = e;
        }
    };

    let words = n.div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut bits_hash = 0u64;
    let mut state = model.init();
    let mut stack: Vec<(usize, Datum)> = Vec::with_capacity(n);
    let mut memo = Memo::new(words, memo_words);
    let mut deepest: (usize, Vec<usize>, Datum) = (0, Vec::new(), state.clone());
    let mut entry = next[head];
    let mut steps = 0u64;

    while next[head] != NIL {
        steps += 1;
        if steps.is_multiple_of(4096) {
            if stop.refuted.load(Ordering::Relaxed) {
                return Outcome::Abandoned;
            }
            if stop.out_of_time.load(Ordering::Relaxed) {
                return Outcome::OutOfTime;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop.out_of_time.store(true, Ordering::Relaxed);
                return Outcome::OutOfTime;
            }
        }
        if entry == NIL {
            // Every candidate failed: only reachable with an empty stack.
            break;
        }
        if entry.is_multiple_of(2) {
            let i = entry / 2;
            if let Some(after) = model.step(&state, ops[i]) {
                bits[i / 64] |= 1 << (i % 64);
                let inserted = memo
                    .state_id(&after)
                    .and_then(|state_id| memo.insert(bits_hash ^ zobrist(i), &bits, state_id));
                let Some(inserted) = inserted else {
                    return Outcome::OutOfMemory;
                };
                if inserted {
                    bits_hash ^= zobrist(i);
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, entry + 1);
                    if stack.len() > deepest.0 {
                        deepest = (
                            stack.len(),
                            stack.iter().map(|(e, _)| e / 2).collect(),
                            state.clone(),
                        );
                    }
                    entry = next[head];
                    continue;
                }
                bits[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            // A return with its call still pending: this path is dead.
            let Some((call, before)) = stack.pop() else {
                break;
            };
            let i = call / 2;
            bits[i / 64] &= !(1 << (i % 64));
            bits_hash ^= zobrist(i);
            state = before;
            relink(&mut next, &mut prev, call + 1);
            relink(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
    if next[head] == NIL {
        return Outcome::Linearizable(stack.iter().map(|(e, _)| ops[e / 2].id).collect());
    }
    let (_, prefix_local, state) = deepest;
    let mut done = vec![false; n];
    for &i in &prefix_local {
        done[i] = true;
    }
    let first_return = (0..n)
        .filter(|&i| !done[i])
        .map(|i| ops[i].ret)
        .min()
        .unwrap_or(u64::MAX);
    let blocked = (0..n)
        .filter(|&i| !done[i] && ops[i].call <= first_return)
        .map(|i| (ops[i].id, model.explain(&state, ops[i])))
        .collect();
    Outcome::Stuck {
        prefix: prefix_local.iter().map(|&i| ops[i].id).collect(),
        state,
        blocked,
    }
}

impl CheckResult {
    /// The verdict as JSON, for scripts: `verdict` is `linearizable`,
    /// `not_linearizable` or `unknown`.
    pub fn to_json(&self, history: &History) -> serde_json::Value {
        let key_name = |key: &Option<Arc<str>>| key.as_deref().unwrap_or("").to_owned();
        let mut json = serde_json::json!({
            "model": self.model.name(),
            "operations": history.operations.len(),
            "keys": self.keys,
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
            "explanation": self.explain(history),
        });
        match &self.verdict {
            Verdict::Linearizable { witness } => {
                json["verdict"] = "linearizable".into();
                json["witness"] = witness
                    .iter()
                    .map(|(key, order)| (key_name(key), serde_json::json!(order)))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            Verdict::NotLinearizable(violation) => {
                json["verdict"] = "not_linearizable".into();
                json["violation"] = serde_json::json!({
                    "key": violation.key.as_deref(),
                    "operations": violation.operations,
                    "longest_prefix": violation.longest_prefix,
                    "state": violation.state.to_json(),
                    "blocked": violation.blocked.iter().map(|(id, why)| serde_json::json!({"id": id, "why": why})).collect::<Vec<_>>(),
                });
            }
            Verdict::Unknown { checked_keys, keys } => {
                json["verdict"] = "unknown".into();
                json["checked_keys"] = (*checked_keys).into();
                json["keys"] = (*keys).into();
            }
        }
        json
    }
}
