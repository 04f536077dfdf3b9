//! What an experiment declares: the steady state, the faults, the abort
//! bound — read from JSON and checked before anything runs.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

pub use super::validate::{check_rate, check_target};

/// The longest experiment accepted.
pub const MAX_EXPERIMENT: Duration = Duration::from_secs(3_600);
/// The most faults one experiment may schedule.
pub const MAX_FAULTS: usize = 64;
/// The longest window: a longer one would hide what happened in it (and
/// hold its latencies for that long).
pub const MAX_WINDOW: Duration = Duration::from_secs(60);
/// The largest definition file read, in bytes.
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;
/// The most windows one experiment may measure: the report holds a row
/// per window (an hour of 1 ms windows would be 3.6 million rows).
pub const MAX_WINDOWS: u64 = 3_600;
/// The fewest requests a window must expect (rate × window): an empty
/// window counts as an outage, so a window that expects one request or
/// none measures luck, not the system.
pub const MIN_REQUESTS_PER_WINDOW: f64 = 20.0;
/// The host that sends every request and observes the system.
pub const CLIENT: &str = "client";

/// A measured quantity of one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests that succeeded / requests that finished.
    SuccessRate,
    /// 1 − success rate.
    ErrorRate,
    /// The 99th percentile of finished requests' latency, in milliseconds.
    P99LatencyMs,
    /// Requests finished per second.
    Throughput,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::SuccessRate => "success_rate",
            Metric::ErrorRate => "error_rate",
            Metric::P99LatencyMs => "p99_latency_ms",
            Metric::Throughput => "throughput",
        }
    }
}

/// A bound on a metric: `{"metric": "success_rate", "at_least": 0.99}`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub metric: Metric,
    #[serde(default)]
    pub at_least: Option<f64>,
    #[serde(default)]
    pub at_most: Option<f64>,
}

impl Condition {
    /// Whether `value` satisfies the bound.
    pub fn holds(&self, value: f64) -> bool {
        self.at_least.is_none_or(|low| value >= low)
            && self.at_most.is_none_or(|high| value <= high)
    }

    /// `success_rate ≥ 0.99`.
    pub fn describe(&self) -> String {
        match (self.at_least, self.at_most) {
            (Some(low), _) => format!("{} ≥ {low}", self.metric.name()),
            (_, Some(high)) => format!("{} ≤ {high}", self.metric.name()),
            _ => self.metric.name().to_string(),
        }
    }
}

/// One fault. Hosts are names the target knows: `client`, `n1`, `n2`, …
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The host stops: connections to it are refused.
    Crash { host: String },
    /// Nothing passes between `a` and `b`, either way; calls time out.
    Partition { a: String, b: String },
    /// Each message between `a` and `b` is lost with `probability`.
    Loss {
        a: String,
        b: String,
        probability: f64,
    },
    /// Each message between `a` and `b` takes `ms` longer.
    Latency { a: String, b: String, ms: u64 },
    /// The host stays up but fails a share of its calls with UNAVAILABLE
    /// (a Flaky script: a bad deploy, a sick disk).
    Flaky { host: String, error_rate: f64 },
}

impl Fault {
    /// The replica the fault acts on: its host, or the end of its link
    /// that is not the client.
    pub fn replica(&self) -> &str {
        match self {
            Fault::Crash { host } | Fault::Flaky { host, .. } => host,
            Fault::Partition { a, b } | Fault::Loss { a, b, .. } | Fault::Latency { a, b, .. } => {
                if a == CLIENT {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// The hosts the fault names.
    pub fn hosts(&self) -> Vec<&str> {
        match self {
            Fault::Crash { host } | Fault::Flaky { host, .. } => vec![host],
            Fault::Partition { a, b } | Fault::Loss { a, b, .. } | Fault::Latency { a, b, .. } => {
                vec![a, b]
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Fault::Crash { host } => format!("crash {host}"),
            Fault::Partition { a, b } => format!("partition {a}|{b}"),
            Fault::Loss { a, b, probability } => {
                format!("loss {:.0}% {a}–{b}", probability * 100.0)
            }
            Fault::Latency { a, b, ms } => format!("+{ms} ms {a}–{b}"),
            Fault::Flaky { host, error_rate } => {
                format!("flaky {host} {:.0}%", error_rate * 100.0)
            }
        }
    }
}

/// A fault and its window, in milliseconds from the experiment's start.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub for_ms: u64,
    pub fault: Fault,
}

impl ScheduledFault {
    pub fn start(&self) -> Duration {
        Duration::from_millis(self.at_ms)
    }

    pub fn end(&self) -> Duration {
        Duration::from_millis(self.at_ms.saturating_add(self.for_ms))
    }
}

/// A whole experiment, as written in its file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    /// What "working" means: checked in every window, faults or not.
    pub hypothesis: Condition,
    /// The blast radius: once a window breaks it, every fault is healed
    /// and the experiment stops.
    pub abort: Condition,
    /// Metrics are measured, and decisions taken, once per window.
    pub window_ms: u64,
    /// Windows measured before the first fault: the hypothesis must hold
    /// in them, or there is no steady state to disturb.
    pub steady_windows: u32,
    pub duration_ms: u64,
    pub faults: Vec<ScheduledFault>,
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidChaosExperiment {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses a definition (an experiment, or a file that holds one), at
/// most [`MAX_DEFINITION_BYTES`] long.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(invalid(
            "definition",
            format!(
                "{} bytes exceeds the limit of {MAX_DEFINITION_BYTES}",
                text.len()
            ),
        ));
    }
    serde_json::from_str(text).map_err(|e| invalid("definition", e.to_string()))
}

impl Experiment {
    /// Reads a definition from JSON. Unknown fields, missing fields and
    /// values of the wrong type are errors naming the place; call
    /// [`Experiment::validate`] for the rest.
    pub fn from_json(text: &str) -> Result<Self> {
        parse_json(text)
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    /// Windows in the whole run.
    pub fn windows(&self) -> u64 {
        self.duration_ms / self.window_ms.max(1)
    }
}
