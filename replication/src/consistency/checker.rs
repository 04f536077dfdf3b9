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
//! - **Numbered states** (`states.rs`): each distinct value is a `u32`, so
//!   stepping and memo keys never copy or hash a string; an append is an
//!   O(1) node with an incremental hash, confirmed letter by letter.
//!
//! Operations with unknown outcome return at +∞: they may be linearized
//! anywhere after their call — or after everything, which is the same as
//! never having happened. The search (`search.rs`) skips them where they
//! would change nothing and places identical ones in call order — the two
//! prunings that make Jepsen's etcd histories cheap.
//!
//! The search can blow up on adversarial histories, so it runs against a
//! time budget; running out yields `Unknown`, never a pass.
//!
//! Memory bound: a key's search holds its memo (bitset arena plus ~24
//! bytes per entry) and its numbered states (~64 bytes each plus the
//! values' bytes); both are charged against one cap of `memo_words`
//! 64-bit words, and reaching it makes that key `Unknown`. [`check`] sets
//! the cap at 2^32 words, what the memo's 32-bit offsets can address; in
//! practice the time budget ends a runaway search first. At most one key
//! per core is searched at a time, so the checker holds at most
//! cores × cap, plus O(operations) for the entry lists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::history::{Datum, History, Operation};
use super::model::Model;
use super::search::{Outcome, Pruning, Stop, search};

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

/// Histories shorter than this are checked on the calling thread.
const PARALLEL_THRESHOLD: usize = 1_000;

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
    check_with(history, model, budget, memo_words, Pruning::Full)
}

/// [`check_within`] with a choice of prunings (the tests compare them).
pub(super) fn check_with(
    history: &History,
    model: Model,
    budget: Option<Duration>,
    memo_words: usize,
    pruning: Pruning,
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
            let outcome = search(model, &ops, deadline, memo_words, &stop, pruning);
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
