//! The verdict: which anomalies, which levels still hold, and each cycle
//! explained edge by edge in the history's own values, as Elle prints
//! them ("T3 —rw→ T7: T3 read x = [1, 2] and T7 appended 3 after it").

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::anomalies::{Anomaly, Finding, Level};
use super::cycles::Cycle;
use super::graph::{Edge, Evidence};
use super::history::{DataModel, TxnHistory};

/// Everything the checker concluded about one history.
#[derive(Clone, Debug)]
pub struct Report {
    pub model: DataModel,
    /// Anomalies seen, with how many instances (cycles count up to the
    /// per-anomaly cap).
    pub anomalies: BTreeMap<Anomaly, usize>,
    /// Non-cycle anomalies, at most `cap` kept per anomaly.
    pub findings: Vec<Finding>,
    /// Cycles, at most `cap` per anomaly.
    pub cycles: Vec<Cycle>,
    /// False when the budget ran out before the cycle search finished.
    pub complete: bool,
    /// Whether real-time edges were in the graph (strict serializability
    /// is only judged then).
    pub realtime: bool,
    pub cap: usize,
    pub transactions: usize,
    pub edges: usize,
    /// Checking time, parsing excluded.
    pub elapsed: Duration,
}

/// What the report says about one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelVerdict {
    Holds,
    Violated,
    Unknown,
}

/// The strongest level of the chain that holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strongest {
    Level(Level),
    /// Not even read uncommitted.
    None,
    /// The budget ran out before a level could be confirmed.
    Unknown,
}

impl Report {
    /// Does the history satisfy `level`? An anomaly that rules it out is
    /// proof; its absence is proof only after a complete search.
    pub fn level(&self, level: Level) -> LevelVerdict {
        if self.anomalies.keys().any(|a| a.violates(level)) {
            LevelVerdict::Violated
        } else if !self.complete || (level == Level::StrictSerializable && !self.realtime) {
            LevelVerdict::Unknown
        } else {
            LevelVerdict::Holds
        }
    }

    /// Walks the chain from the strongest level; strict serializability is
    /// skipped unless real-time edges were inferred.
    pub fn strongest_level(&self) -> Strongest {
        for level in Level::CHAIN {
            if level == Level::StrictSerializable && !self.realtime {
                continue;
            }
            match self.level(level) {
                LevelVerdict::Holds => return Strongest::Level(level),
                LevelVerdict::Violated => {}
                LevelVerdict::Unknown => return Strongest::Unknown,
            }
        }
        Strongest::None
    }

    fn strongest_name(&self) -> String {
        match self.strongest_level() {
            Strongest::Level(level) => level.json_key(),
            Strongest::None => "none".into(),
            Strongest::Unknown => "unknown".into(),
        }
    }

    /// `serializable` / `not_serializable` / `unknown` for `level`.
    pub fn verdict_name(&self, level: Level) -> String {
        match self.level(level) {
            LevelVerdict::Holds => level.json_key(),
            LevelVerdict::Violated => format!("not_{}", level.json_key()),
            LevelVerdict::Unknown => "unknown".into(),
        }
    }

    /// The report for `--json`.
    pub fn to_json(&self, history: &TxnHistory, isolation: Level) -> Value {
        let levels: serde_json::Map<String, Value> = Level::CHAIN
            .iter()
            .map(|&l| {
                let v = match self.level(l) {
                    LevelVerdict::Holds => Value::Bool(true),
                    LevelVerdict::Violated => Value::Bool(false),
                    LevelVerdict::Unknown => Value::Null,
                };
                (l.json_key(), v)
            })
            .collect();
        let cycles: Vec<Value> = self
            .cycles
            .iter()
            .map(|c| {
                let steps: Vec<Value> = c
                    .steps
                    .iter()
                    .map(|(from, edge)| {
                        json!({
                            "from": history.txns[*from].id,
                            "to": history.txns[edge.to as usize].id,
                            "type": edge.evidence.kind().name(),
                            "evidence": explain_edge(history, *from, edge),
                        })
                    })
                    .collect();
                json!({ "anomaly": c.anomaly.name(), "steps": steps })
            })
            .collect();
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "anomaly": f.anomaly.name(),
                    "txns": f.txns.iter().map(|t| history.txns[*t].id).collect::<Vec<_>>(),
                    "explanation": f.explanation,
                })
            })
            .collect();
        json!({
            "model": self.model.name(),
            "isolation": isolation.json_key(),
            "verdict": self.verdict_name(isolation),
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
            "transactions": self.transactions,
            "edges": self.edges,
            "complete": self.complete,
            "anomalies": self.anomalies.keys().map(|a| a.name()).collect::<Vec<_>>(),
            "anomaly_counts": self.anomalies.iter().map(|(a, n)| (a.name(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "strongest_level": self.strongest_name(),
            "levels": levels,
            "cycles": cycles,
            "findings": findings,
            "cap_per_anomaly": self.cap,
        })
    }

    /// The report for a terminal: verdict, levels, then every kept cycle
    /// and finding with its evidence.
    pub fn explain(&self, history: &TxnHistory, isolation: Level) -> String {
        let mut out = String::new();
        let verdict = match self.level(isolation) {
            LevelVerdict::Holds => format!("{isolation}: holds"),
            LevelVerdict::Violated => format!("{isolation}: violated"),
            LevelVerdict::Unknown if !self.complete => {
                format!("{isolation}: unknown, the budget ran out (not a pass)")
            }
            LevelVerdict::Unknown => format!("{isolation}: unknown (needs --realtime)"),
        };
        let _ = writeln!(
            out,
            "{verdict}; strongest level {} ({} transactions, {} edges, {} model)",
            self.strongest_name(),
            self.transactions,
            self.edges,
            self.model.name()
        );
        if !self.anomalies.is_empty() {
            let names: Vec<String> = self
                .anomalies
                .iter()
                .map(|(a, n)| format!("{a} ×{n}"))
                .collect();
            let _ = writeln!(out, "anomalies: {}", names.join(", "));
        }
        for cycle in &self.cycles {
            let _ = writeln!(out, "{} cycle:", cycle.anomaly);
            for (from, edge) in &cycle.steps {
                let _ = writeln!(out, "  {}", explain_step(history, *from, edge));
            }
        }
        for finding in &self.findings {
            let _ = writeln!(out, "{}: {}", finding.anomaly, finding.explanation);
        }
        if self.anomalies.values().any(|n| *n > self.cap) {
            let _ = writeln!(out, "(at most {} instances shown per anomaly)", self.cap);
        }
        out
    }
}

/// `T3 —rw→ T7: …`
pub fn explain_step(history: &TxnHistory, from: usize, edge: &Edge) -> String {
    format!(
        "T{} —{}→ T{}: {}",
        history.txns[from].id,
        edge.evidence.kind().name(),
        history.txns[edge.to as usize].id,
        explain_edge(history, from, edge)
    )
}

/// One edge's evidence as a sentence.
pub fn explain_edge(history: &TxnHistory, from: usize, edge: &Edge) -> String {
    let a = format!("T{}", history.txns[from].id);
    let b = format!("T{}", history.txns[edge.to as usize].id);
    let append = history.model == DataModel::ListAppend;
    match edge.evidence {
        Evidence::Ww { key, before, after } => {
            let k = history.key_name(key);
            if append {
                format!("{b} appended {after} to {k} right after {a}'s {before}")
            } else {
                format!("{b} wrote {k} = {after}, the version after {a}'s {before}")
            }
        }
        Evidence::Wr { key, value } => {
            let k = history.key_name(key);
            if append {
                format!("{b} read {k} ending at {value}, appended by {a}")
            } else {
                format!("{b} read {k} = {value}, written by {a}")
            }
        }
        Evidence::Rw { key, read, next } => {
            let k = history.key_name(key);
            let seen = match (read, append) {
                (Some(v), true) => format!("{a} read {k} up to {v}"),
                (None, true) => format!("{a} read {k} empty"),
                (Some(v), false) => format!("{a} read {k} = {v}"),
                (None, false) => format!("{a} read {k} = null (initial)"),
            };
            if append {
                format!("{seen} and {b} appended {next} next")
            } else {
                format!("{seen} and {b} wrote the next version, {next}")
            }
        }
        Evidence::Realtime { returned, called } => {
            format!("{a} returned at {returned}, before {b} was called at {called}")
        }
        Evidence::Process { process } => format!("process {process} ran {a}, then {b}"),
    }
}
