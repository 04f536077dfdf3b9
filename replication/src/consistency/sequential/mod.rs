//! Sequential consistency: one order for everything, each client's order kept.
//!
//! Episode: 19, "Consistency Models Hierarchy" (also 34)
//! Pattern: testing / sequential-consistency checking
//! Try it:  cargo run -- demo consistency-models
//! Test it: cargo test -p replication sequential
//!
//! Lamport's definition (1979): a history is sequentially consistent if
//! some total order of its operations (a) keeps each client's *program
//! order* — a client's operations in the order it issued them — and (b)
//! makes every reply correct under the sequential model. Unlike
//! linearizability, real time between clients is ignored: a read may
//! return an older value after another client's write completed, as long
//! as everything fits one story. The stale-reading register
//! ([`crate::register::stale`]) is the teaching case. A client that only
//! reads may see old values and the history stays sequential; a client
//! that reads *its own* write from the lagging replica and misses it
//! breaks program order, and no story explains that.
//!
//! Pitfall: sequential consistency is **not compositional** (not
//! "local", in Herlihy & Wing's words, 1990). Each key's sub-history can
//! be sequentially consistent while the whole is not. The classic
//! example uses two registers: client A writes x = 1 then reads y as
//! absent, client B writes y = 1 then reads x as absent. Per key, each
//! read simply goes before the other client's write. Together there is
//! no order: A's read of y must precede B's write of y, which precedes
//! B's read of x, which must precede A's write of x, which precedes A's
//! read of y — a cycle. So unlike the linearizability checker, which
//! checks each key on its own, this one searches all keys at once.
//!
//! Linearizable implies sequentially consistent, and linearizability is
//! compositional, so [`check`] first asks the linearizability checker: a
//! linearization merged with program order (and replayed) is a witness.
//! Otherwise the global search decides: depth-first over "which client's
//! next operation goes next", with Lowe-style memoization: two paths that
//! reached the same per-client progress, the same set of unknown-outcome
//! operations applied and the same state of every key have the same
//! future. Reads that are legal now are placed at once without branching
//! (moving a read earlier, to where it is legal, never hurts any order
//! that contains it), which makes read-heavy histories cheap. Deciding
//! sequential consistency is NP-complete in general (Gibbons & Korach,
//! 1997), so the search runs against a time budget and a memory bound,
//! and running out of either is `Unknown` — never a pass.
//!
//! Program order and unknown outcomes: a client's operations must not
//! overlap (one that calls before its previous call returned is refused
//! as bad input, naming both operations), so program order is the order
//! of calls. An operation whose outcome is unknown (a timeout) is
//! detached from program order after its call: its request may still be
//! in flight while the client moves on, so it may take effect anywhere
//! after the client's earlier completed operations — also after the
//! client's later ones — or never. Reads with unknown outcome constrain
//! nothing and are left out.
//!
//! Bounds: the memo and the table of distinct states it refers to stay
//! under [`MAX_MEMO_BYTES`] (each entry costs 4 bytes per client, per
//! 32 unknown-outcome operations and per key, plus [`ENTRY_OVERHEAD_BYTES`]);
//! past it the answer is `Unknown`. The search stack holds at most one
//! frame per operation, each with at most one candidate per client and
//! per unknown-outcome operation (4 bytes each); the longest order found
//! so far is kept once, for the counterexample.

mod demo;
mod memo;
mod problem;
mod report;
mod search;
mod shortcut;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_properties;
#[cfg(test)]
mod tests_recorded;

pub use demo::consistency_models_demo;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::history::{Datum, History};
use super::model::Model;

/// The most the memo may hold by default, in bytes (512 MiB).
pub const MAX_MEMO_BYTES: usize = 512 << 20;

/// What one memo entry costs beyond its words: its hash and table slots.
pub const ENTRY_OVERHEAD_BYTES: usize = 24;

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq)]
pub enum SequentialVerdict {
    /// A witness: operation ids in one order that keeps every client's
    /// program order and makes every reply legal. Unknown-outcome
    /// operations appear if they took effect in it.
    Sequential {
        order: Vec<usize>,
    },
    NotSequential(Counterexample),
    /// The budget ran out: proves nothing either way.
    Unknown {
        reason: GaveUp,
    },
}

/// Why the search stopped without a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaveUp {
    Time,
    Memory,
}

/// Why no order exists: the longest valid order found, and what then
/// stopped each client.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterexample {
    /// The longest valid order the search found.
    pub longest_prefix: Vec<usize>,
    /// Every key's value after that prefix.
    pub state: Vec<(Option<Arc<str>>, Datum)>,
    /// Each client with operations left: its next one, and why it
    /// cannot go next.
    pub blocked: Vec<Blocked>,
}

/// A client's next operation that cannot go next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub client: u64,
    pub operation: usize,
    pub why: String,
}

/// A verdict and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct SequentialResult {
    pub model: Model,
    pub verdict: SequentialVerdict,
    pub clients: usize,
    /// Distinct search states visited.
    pub states_explored: u64,
    /// The witness came from a linearization (linearizable ⇒
    /// sequential), not from the global search.
    pub from_linearization: bool,
    pub elapsed: Duration,
}

impl SequentialResult {
    /// The verdict's word, as `dslab check --json` prints it.
    pub fn verdict_name(&self) -> &'static str {
        match self.verdict {
            SequentialVerdict::Sequential { .. } => "sequential",
            SequentialVerdict::NotSequential(_) => "not_sequential",
            SequentialVerdict::Unknown { .. } => "unknown",
        }
    }
}

/// Checks `history` for sequential consistency under `model`, giving up
/// with `Unknown` after `budget`. Bad input — operations the model does
/// not have, repeated ids, overlapping operations of one client — is an
/// error.
///
/// Linearizability is tried first (it is compositional, so cheap): a
/// linearization merged with program order is a witness. Otherwise the
/// global search decides.
pub fn check(
    history: &History,
    model: Model,
    budget: Option<Duration>,
) -> crate::Result<SequentialResult> {
    check_with(history, model, budget, MAX_MEMO_BYTES, true)
}

/// The global search alone (no linearizability shortcut), its memo
/// capped at `memo_bytes`.
pub fn check_within(
    history: &History,
    model: Model,
    budget: Option<Duration>,
    memo_bytes: usize,
) -> crate::Result<SequentialResult> {
    check_with(history, model, budget, memo_bytes, false)
}

fn check_with(
    history: &History,
    model: Model,
    budget: Option<Duration>,
    memo_bytes: usize,
    shortcut: bool,
) -> crate::Result<SequentialResult> {
    model.validate(history)?;
    history.validate_ids()?;
    let problem = problem::Problem::new(history, model)?;
    let started = Instant::now();
    let deadline = budget.map(|b| started + b);
    let linearization = shortcut
        .then(|| problem.witness_from_linearization(history, deadline))
        .flatten();
    let from_linearization = linearization.is_some();
    let (outcome, states_explored) = match linearization {
        Some(order) => (search::Outcome::Found(order), 0),
        None => problem.solve(deadline, memo_bytes),
    };
    let verdict = match outcome {
        search::Outcome::Found(order) => SequentialVerdict::Sequential { order },
        search::Outcome::Stuck(counterexample) => SequentialVerdict::NotSequential(counterexample),
        search::Outcome::GaveUp(reason) => SequentialVerdict::Unknown { reason },
    };
    Ok(SequentialResult {
        model,
        verdict,
        clients: problem.clients(),
        states_explored,
        from_linearization,
        elapsed: started.elapsed(),
    })
}
