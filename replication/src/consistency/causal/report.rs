//! What the causal checker found, in words and in JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::model::Model;
use super::{CausalVerdict, Finding, Pattern, Variant};

/// A verdict, the bad patterns behind it, and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CausalReport {
    /// The data model the operations belong to (`register` or `kv`).
    pub model: Model,
    pub variant: Variant,
    pub verdict: CausalVerdict,
    /// Up to [`super::MAX_FINDINGS`] examples of each pattern found.
    pub findings: Vec<Finding>,
    /// How many occurrences of each pattern were found.
    pub counts: BTreeMap<Pattern, usize>,
    pub operations: usize,
    /// Checking time; building the graph from the history is excluded.
    pub elapsed: Duration,
}

impl CausalReport {
    pub(super) fn new(model: Model, variant: Variant, operations: usize) -> Self {
        Self {
            model,
            variant,
            verdict: CausalVerdict::Unknown {
                reason: "not checked".into(),
            },
            findings: Vec::new(),
            counts: BTreeMap::new(),
            operations,
            elapsed: Duration::ZERO,
        }
    }

    /// `causal`, `not_causal` or `unknown`.
    pub fn verdict_name(&self) -> &'static str {
        match self.verdict {
            CausalVerdict::Causal => "causal",
            CausalVerdict::NotCausal => "not_causal",
            CausalVerdict::Unknown { .. } => "unknown",
        }
    }

    /// The names of the patterns found.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.counts.keys().copied().collect()
    }

    /// A human explanation: the verdict, then each finding's chain.
    pub fn explain(&self) -> String {
        let checked: Vec<String> = self
            .variant
            .patterns()
            .iter()
            .map(Pattern::to_string)
            .collect();
        let mut out = match &self.verdict {
            CausalVerdict::Causal => format!(
                "causal ({}): {} operations, none of {} ({:?})\n",
                self.variant,
                self.operations,
                checked.join(", "),
                self.elapsed
            ),
            CausalVerdict::Unknown { reason } => format!(
                "unknown ({}): {reason} ({:?}); this is not a pass\n",
                self.variant, self.elapsed
            ),
            CausalVerdict::NotCausal => {
                let counts: Vec<String> = self
                    .counts
                    .iter()
                    .map(|(pattern, count)| format!("{pattern} ×{count}"))
                    .collect();
                format!(
                    "not causal ({}): {} ({:?})\n",
                    self.variant,
                    counts.join(", "),
                    self.elapsed
                )
            }
        };
        for finding in &self.findings {
            let session = finding
                .session
                .map(|g| format!(" (breaks {g})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {}{session}: {}\n    {}\n",
                finding.pattern, finding.chain, finding.explanation
            ));
        }
        out
    }

    /// The report as JSON: `model`, `consistency`, `variant`, `verdict`,
    /// `elapsed_ms`, `patterns` (names), `counts` and `findings`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "model": self.model.name(),
            "consistency": "causal",
            "variant": self.variant.name(),
            "verdict": self.verdict_name(),
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
            "operations": self.operations,
            "patterns": self.patterns().iter().map(Pattern::to_string).collect::<Vec<_>>(),
            "counts": self.counts.iter().map(|(p, c)| (p.to_string(), serde_json::Value::from(*c))).collect::<serde_json::Map<_, _>>(),
            "findings": self.findings.iter().map(|f| serde_json::json!({
                "pattern": f.pattern.to_string(),
                "operations": f.operations,
                "chain": f.chain,
                "explanation": f.explanation,
                "session_guarantee": f.session.map(|g| g.to_string()),
            })).collect::<Vec<_>>(),
            "explanation": self.explain(),
        });
        if let CausalVerdict::Unknown { reason } = &self.verdict {
            json["reason"] = reason.clone().into();
        }
        json
    }
}
