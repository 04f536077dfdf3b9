//! Transactional isolation checking, Elle-style: which anomalies does a
//! history of transactions show, and which isolation level still holds?
//!
//! Episode: 18, "Distributed Transactions" (also 19, 34)
//! Pattern: testing / dependency-graph isolation checking (Elle)
//! Try it:  cargo run -- check history.jsonl --model list-append
//! Test it: cargo test -p replication transactional
//!
//! Kingsbury & Alvaro's Elle ("Elle: inferring isolation anomalies from
//! experimental observations", VLDB 2020) does not search for a serial
//! order, which is NP-hard. It *infers* Adya's dependency graph from the
//! values transactions read and wrote — write-write (ww), write-read
//! (wr), read-write anti-dependencies (rw), plus real-time or process
//! order when asked — and then looks for cycles, naming each by the edges
//! it needs: G0 (ww only), G1c (ww+wr), G-single (one rw), G2-item (two
//! or more rw). Anomalies that need no cycle are read off the data: G1a
//! (aborted read), G1b (intermediate read), lost update, internal
//! inconsistency, incompatible orders. Each anomaly rules out a set of
//! levels ([`anomalies`] has the table); what remains is the strongest
//! level the history satisfies.
//!
//! The trick that makes this work is the data model. In a *list-append*
//! history every read returns the whole list, so a read reveals the order
//! of all writes before it ([`list_append`]). A *read-write register*
//! read shows one version, so less can be inferred ([`rw_register`]).
//!
//! # Format (JSONL)
//!
//! One transaction per line, keys strings or integers, values integers:
//!
//! ```text
//! {"id":0,"process":1,"type":"ok","value":[["append","x",1],["r","y",[1,2]]],"call":10,"return":17}
//! {"id":1,"process":2,"type":"fail","value":[["append","y",3]],"call":11,"return":12}
//! {"id":2,"process":3,"type":"info","value":[["append","x",4],["r","x",null]],"call":13}
//! ```
//!
//! rw-register uses `["w","x",1]`, `["r","x",1]` and `["r","x",null]`
//! (never written). `type` is `ok` (committed), `fail` (known aborted) or
//! `info` (unknown); only `ok` reads are evidence, so reads in `fail` and
//! `info` transactions may be `null`. `call`/`return` are needed only
//! for real-time order. Appended/written values must be unique per key.
//! Bad input (malformed JSON, an unknown micro-op, a non-integer value, a
//! duplicate id or value) is a [`HistoryError`] naming the line.
//!
//! Bounds: memory is O(transactions + micro-ops + edges); findings and
//! cycles are capped per anomaly ([`CheckOptions::cap`], default 8). Time
//! is near-linear for an acyclic history (three Tarjan passes); the cycle
//! search honours the budget and answers Unknown, never a wrong verdict,
//! when it runs out.
//!
//! Pitfall: a checker that infers too much reports anomalies that never
//! happened. Every edge here follows from the data alone; where the data
//! is silent (unread appends, blind register writes), no edge is added,
//! so an anomaly can go unseen but is never invented.

pub mod anomalies;
pub mod cycles;
pub mod graph;
pub mod history;
pub mod list_append;
pub mod order;
mod parse;
pub mod report;
pub mod rw_register;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_brute;
#[cfg(test)]
mod tests_input;
pub mod timeline;

use std::time::{Duration, Instant};

pub use anomalies::{Anomaly, Level};
pub use history::{DataModel, HistoryError, MicroOp, Outcome, Txn, TxnHistory};
pub use report::{LevelVerdict, Report, Strongest};

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Add real-time edges (needed to judge strict serializability).
    pub realtime: bool,
    /// Add process-order edges (strong-session variants).
    pub process_order: bool,
    /// Give up the cycle search after this long (Unknown, not a pass).
    pub budget: Option<Duration>,
    /// Cycles and findings kept per anomaly.
    pub cap: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            realtime: false,
            process_order: false,
            budget: Some(Duration::from_secs(10)),
            cap: 8,
        }
    }
}

/// Infers the dependency graph of `history`, finds and names its
/// anomalies, and reports which levels hold.
pub fn check(history: &TxnHistory, options: &CheckOptions) -> Report {
    let started = Instant::now();
    let deadline = options.budget.map(|b| started + b);
    let mut graph = graph::Graph::new(history.txns.len());
    let mut findings = anomalies::Findings::new(options.cap);
    match history.model {
        DataModel::ListAppend => list_append::infer(history, &mut graph, &mut findings),
        DataModel::RwRegister => rw_register::infer(history, &mut graph, &mut findings),
    }
    if options.realtime {
        order::add_realtime(history, &mut graph);
    }
    if options.process_order {
        order::add_process_order(history, &mut graph);
    }
    let search = cycles::find_cycles(&graph, deadline, options.cap);
    let mut anomalies = findings.counts.clone();
    for cycle in &search.cycles {
        *anomalies.entry(cycle.anomaly).or_insert(0) += 1;
    }
    Report {
        model: history.model,
        anomalies,
        findings: findings.kept,
        cycles: search.cycles,
        complete: search.complete,
        realtime: options.realtime,
        cap: options.cap,
        transactions: history.txns.len(),
        edges: graph.edge_count(),
        elapsed: started.elapsed(),
    }
}
