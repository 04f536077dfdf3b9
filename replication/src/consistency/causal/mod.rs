//! Causal consistency for read/write registers, by bad patterns.
//!
//! Episode: 19, "Consistency Models Hierarchy" (also 20, 34)
//! Pattern: testing / causal-consistency checking
//! Try it:  cargo run -- check history.jsonl --consistency causal
//! Test it: cargo test -p replication causal
//!
//! Causal consistency promises less than linearizability: clients may
//! disagree on the order of concurrent writes, but never on cause and
//! effect. If a client wrote `x = 1` and then `y = 2`, nobody who sees
//! `y = 2` may still see the old `x`. The causal order `co` is the
//! transitive closure of program order (`po`, each client's operations
//! in order) and read-from (`rf`, a write before every read that
//! returned its value).
//!
//! Checking causal consistency is NP-complete in general, but Bouajjani,
//! Enea, Guerraoui and Hamza ("On Verifying Causal Consistency", POPL
//! 2017) show that for *differentiated* histories — each value written at
//! most once per key, so every read names the one write it read from — a
//! history is causally consistent exactly when it contains none of a few
//! bad patterns, each checkable in polynomial time. Their three variants,
//! and the patterns (their Table 3) this module checks for each:
//!
//! - **CC** (causal consistency, the default): [`Pattern::ThinAirRead`],
//!   [`Pattern::CyclicCO`], [`Pattern::WriteCOInitRead`],
//!   [`Pattern::WriteCORead`].
//! - **CCv** (causal convergence: replicas also agree on one arbitration
//!   order of all writes): the CC patterns and [`Pattern::CyclicCF`].
//! - **CM** (causal memory: each client's whole session, not just each
//!   operation, is explained by its causal past): the CC patterns,
//!   [`Pattern::WriteHBInitRead`] and [`Pattern::CyclicHB`].
//!
//! Session guarantees come along: causal consistency implies all four
//! (read-your-writes, monotonic reads, monotonic writes,
//! writes-follow-reads), and a stale read whose chain stays within one
//! client's session is reported with the guarantee it breaks
//! ([`Finding::session`]): the reader's own write (read-your-writes) or a
//! newer value it had read (monotonic reads) was causally before it.
//!
//! The key pattern is WriteCORead: `w(x,1) co w(x,2) co r(x)=1` — a read
//! returns a value although a newer write to its key is causally before
//! it. A read that returns a value written causally *after* it shows up
//! as CyclicCO (`w rf r co w`).
//!
//! Bounds: the causal order is one bitset row per operation, n²/8 bytes
//! for n operations; histories over [`MAX_OPERATIONS`] (20 000, 50 MB)
//! answer Unknown instead of allocating. CM builds one more n × n bitset
//! per client, one at a time. Every loop watches the budget and answers
//! Unknown when it runs out. Reports keep at most [`MAX_FINDINGS`]
//! examples of each pattern (all are counted).
//!
//! Simplified: a history's values identify writes, so a store that writes
//! the same value twice must be tested with unique values (the test
//! harnesses write `c3-17`: client 3's seventeenth write).

mod graph;
mod memory;
mod patterns;
mod report;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::history::History;
use super::model::Model;
use super::session::Guarantee;
use crate::Result;
use graph::Graph;

pub use report::CausalReport;

/// The most operations checked: the closure takes n²/8 bytes.
pub const MAX_OPERATIONS: usize = 20_000;
/// Examples kept per pattern.
pub const MAX_FINDINGS: usize = 16;

/// The three causal models of Bouajjani et al.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// Causal consistency: each operation explained by its causal past.
    #[default]
    Cc,
    /// Causal convergence: and one arbitration order for all.
    Ccv,
    /// Causal memory: each client's session explained by its causal past.
    Cm,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Cc, Variant::Ccv, Variant::Cm];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Cc => "CC",
            Variant::Ccv => "CCv",
            Variant::Cm => "CM",
        }
    }

    /// The bad patterns whose absence is this model (POPL'17, Table 3).
    pub fn patterns(self) -> &'static [Pattern] {
        use Pattern::*;
        match self {
            Variant::Cc => &[ThinAirRead, CyclicCO, WriteCOInitRead, WriteCORead],
            Variant::Ccv => &[
                ThinAirRead,
                CyclicCO,
                WriteCOInitRead,
                WriteCORead,
                CyclicCF,
            ],
            Variant::Cm => &[
                ThinAirRead,
                CyclicCO,
                WriteCOInitRead,
                WriteCORead,
                WriteHBInitRead,
                CyclicHB,
            ],
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "cc" | "causal" => Ok(Variant::Cc),
            "ccv" | "causal-convergence" => Ok(Variant::Ccv),
            "cm" | "causal-memory" => Ok(Variant::Cm),
            _ => Err(format!(
                "unknown causal variant {name:?}; choose CC, CCv or CM"
            )),
        }
    }
}

/// The bad patterns, named as in the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// A read returns a value no write wrote.
    ThinAirRead,
    /// The causal order has a cycle: some operation is its own cause.
    CyclicCO,
    /// A read returns the initial value although a write to its key is
    /// causally before it.
    WriteCOInitRead,
    /// `w(x,v) co w(x,v') co r(x)=v`: a read returns a value overwritten
    /// by a write causally before the read.
    WriteCORead,
    /// CCv: the causal order plus the conflict order (`w1 cf w2` when `w1`
    /// is causally before a read of `w2`'s value) has a cycle, so no single
    /// arbitration order of the writes explains every read.
    CyclicCF,
    /// CM: in some client's view (its happened-before relation), a read
    /// of the initial value comes after a write to its key.
    WriteHBInitRead,
    /// CM: some client's happened-before relation has a cycle.
    CyclicHB,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One occurrence of a bad pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub pattern: Pattern,
    /// The operations involved, by id.
    pub operations: Vec<usize>,
    /// The causal chain that makes it bad:
    /// `w(x,1)#3 →po w(y,2)#4 →rf r(y)=2#9 →po r(x)=∅#10`.
    pub chain: String,
    pub explanation: String,
    /// The session guarantee (Terry et al.) this occurrence also breaks,
    /// when its chain stays within one client's session: the newer write
    /// was the reader's own (read-your-writes) or one it had read
    /// (monotonic reads). Causal consistency implies all four guarantees,
    /// so a session violation is always a causal one; this names the
    /// simpler promise.
    pub session: Option<Guarantee>,
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CausalVerdict {
    Causal,
    /// At least one bad pattern of the variant.
    NotCausal,
    /// The budget or the size bound ran out: proves nothing.
    Unknown {
        reason: String,
    },
}

/// Checks `history` (reads and writes, or gets and puts, with each value
/// written at most once per key) against `variant`, giving up with
/// Unknown after `budget`.
///
/// Refuses, as a typed error: appends and compare-and-set (the
/// polynomial result is for registers), a value written twice to one key
/// ([`crate::Error::NotDifferentiated`]), a write of the initial value,
/// overlapping operations of one client, duplicate ids.
pub fn check_causal(
    history: &History,
    variant: Variant,
    budget: Option<Duration>,
) -> Result<CausalReport> {
    let mut graph = Graph::build(history)?;
    let model = Model::detect(history)?;
    let started = Instant::now();
    let deadline = budget.map(|b| started + b);
    let mut report = CausalReport::new(model, variant, history.operations.len());
    if graph.len() > MAX_OPERATIONS {
        report.verdict = CausalVerdict::Unknown {
            reason: format!(
                "{} operations exceed the limit of {MAX_OPERATIONS} (the causal order takes n²/8 bytes)",
                graph.len()
            ),
        };
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let mut checker = patterns::Checker::new(&mut graph, deadline);
    let outcome = checker.run(variant);
    report.findings = checker.findings;
    report.counts = checker.counts;
    // A pattern found before the budget ran out is a real violation; only
    // a clean partial check is Unknown.
    report.verdict = match outcome {
        _ if !report.counts.is_empty() => CausalVerdict::NotCausal,
        Err(reason) => CausalVerdict::Unknown { reason },
        Ok(()) => CausalVerdict::Causal,
    };
    report.elapsed = started.elapsed();
    Ok(report)
}
