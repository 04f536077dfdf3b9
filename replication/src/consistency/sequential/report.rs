//! The verdict in words and as JSON.

use serde_json::{Value, json};

use super::{GaveUp, SequentialResult, SequentialVerdict};
use crate::consistency::history::History;

/// Witnesses longer than this are summarized, not listed, in words.
const LISTED_OPERATIONS: usize = 24;

impl SequentialResult {
    /// A human explanation of the verdict.
    pub fn explain(&self, history: &History) -> String {
        let describe = |id: usize| match history.operation(id) {
            Some(op) => format!("#{id} client {} {}", op.client, op.describe()),
            None => format!("#{id}"),
        };
        match &self.verdict {
            SequentialVerdict::Sequential { order } => {
                let mut out = format!(
                    "sequentially consistent: {} operations of {} clients fit one order that keeps each client's program order ({:?})",
                    order.len(),
                    self.clients,
                    self.elapsed
                );
                if self.from_linearization {
                    out.push_str(", found as a linearization: linearizable implies sequential");
                }
                if order.len() <= LISTED_OPERATIONS {
                    out.push_str(":\n");
                    for &id in order {
                        out.push_str(&format!("  {}\n", describe(id)));
                    }
                }
                out
            }
            SequentialVerdict::Unknown { reason } => {
                let what = match reason {
                    GaveUp::Time => "time budget",
                    GaveUp::Memory => "memory bound",
                };
                format!(
                    "unknown: the {what} ran out after {} search states ({:?}); this is not a pass",
                    self.states_explored, self.elapsed
                )
            }
            SequentialVerdict::NotSequential(counterexample) => {
                let mut out = format!(
                    "not sequentially consistent: no order of the operations keeps every client's program order and makes every reply legal ({} {}).\n",
                    self.clients,
                    if self.clients == 1 {
                        "client"
                    } else {
                        "clients"
                    }
                );
                let state = counterexample
                    .state
                    .iter()
                    .map(|(key, value)| match key {
                        Some(key) => format!("{key:?} = {value}"),
                        None => format!("the register = {value}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_str(&format!(
                    "The longest valid order places {} {}, leaving {state}; then no client's next operation can go:\n",
                    counterexample.longest_prefix.len(),
                    if counterexample.longest_prefix.len() == 1 { "operation" } else { "operations" }
                ));
                for blocked in &counterexample.blocked {
                    out.push_str(&format!(
                        "  {}: {}\n",
                        describe(blocked.operation),
                        blocked.why
                    ));
                }
                out
            }
        }
    }

    /// The verdict as JSON, for scripts: `verdict` is `sequential`,
    /// `not_sequential` or `unknown`.
    pub fn to_json(&self, history: &History) -> Value {
        let mut report = json!({
            "model": self.model.name(),
            "consistency": "sequential",
            "verdict": self.verdict_name(),
            "operations": history.operations.len(),
            "clients": self.clients,
            "states_explored": self.states_explored,
            "from_linearization": self.from_linearization,
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
            "explanation": self.explain(history),
        });
        match &self.verdict {
            SequentialVerdict::Sequential { order } => report["witness"] = json!(order),
            SequentialVerdict::NotSequential(counterexample) => {
                let state: serde_json::Map<String, Value> = counterexample
                    .state
                    .iter()
                    .map(|(key, value)| (key.as_deref().unwrap_or("").to_owned(), value.to_json()))
                    .collect();
                report["violation"] = json!({
                    "longest_prefix": counterexample.longest_prefix,
                    "state": state,
                    "blocked": counterexample.blocked.iter().map(|b| json!({
                        "client": b.client,
                        "id": b.operation,
                        "why": b.why,
                    })).collect::<Vec<_>>(),
                });
            }
            SequentialVerdict::Unknown { reason } => {
                report["reason"] = match reason {
                    GaveUp::Time => "time",
                    GaveUp::Memory => "memory",
                }
                .into();
            }
        }
        report
    }
}
