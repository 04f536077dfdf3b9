//! What an experiment declares: the steady state, the faults, the abort
//! bound — read from JSON and checked before anything runs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

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

    fn validate(&self, field: &str) -> Result<()> {
        let bound = match (self.at_least, self.at_most) {
            (Some(bound), None) | (None, Some(bound)) => bound,
            _ => return Err(invalid(field, "give exactly one of at_least and at_most")),
        };
        // A bound in the wrong direction would hold in an outage (and an
        // abort bound in the wrong direction would abort a healthy run).
        let (wanted, given) = match (self.metric, self.at_least.is_some()) {
            (Metric::SuccessRate | Metric::Throughput, false) => ("at_least", "at_most"),
            (Metric::ErrorRate | Metric::P99LatencyMs, true) => ("at_most", "at_least"),
            _ => ("", ""),
        };
        if !wanted.is_empty() {
            return Err(invalid(
                field,
                format!(
                    "{} needs {wanted}: higher is {} (got {given})",
                    self.metric.name(),
                    if wanted == "at_least" {
                        "better"
                    } else {
                        "worse"
                    }
                ),
            ));
        }
        let valid = match self.metric {
            Metric::SuccessRate | Metric::ErrorRate => (0.0..=1.0).contains(&bound),
            Metric::P99LatencyMs | Metric::Throughput => bound.is_finite() && bound >= 0.0,
        };
        if !valid {
            return Err(invalid(
                field,
                format!("{bound} is not a possible value of {}", self.metric.name()),
            ));
        }
        Ok(())
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

    fn overlaps(&self, other: &ScheduledFault) -> bool {
        self.start() < other.end() && other.start() < self.end()
    }
}

impl Condition {
    /// The bound as the least acceptable success rate, for the metrics
    /// that measure success; `None` for the others.
    fn min_success(&self) -> Option<f64> {
        match self.metric {
            Metric::SuccessRate => self.at_least,
            Metric::ErrorRate => self.at_most.map(|high| 1.0 - high),
            _ => None,
        }
    }

    /// Whether `self`, as an abort bound, can break while `hypothesis`
    /// holds — an abort tighter than the hypothesis stops healthy runs.
    fn tighter_than(&self, hypothesis: &Condition) -> bool {
        if let (Some(abort), Some(hyp)) = (self.min_success(), hypothesis.min_success()) {
            return abort > hyp + 1e-12;
        }
        if self.metric != hypothesis.metric {
            return false;
        }
        match (
            self.at_least,
            hypothesis.at_least,
            self.at_most,
            hypothesis.at_most,
        ) {
            (Some(abort), Some(hyp), _, _) => abort > hyp,
            (_, _, Some(abort), Some(hyp)) => abort < hyp,
            _ => false,
        }
    }
}

/// Checks the shape both targets share: `replicas` copies of a service
/// (at most `max_replicas`) called at `rate` per second (at most
/// `max_rate`), each attempt with a deadline of 1 ms to 60 s. Errors name
/// the field under `section`.
pub fn check_target(
    section: &str,
    (replicas, max_replicas): (usize, usize),
    (rate, max_rate): (f64, f64),
    attempt_timeout_ms: u64,
) -> Result<()> {
    if !(1..=max_replicas).contains(&replicas) {
        return Err(invalid(
            format!("{section}.replicas"),
            format!("{replicas} is outside 1..={max_replicas}"),
        ));
    }
    if !(rate > 0.0 && rate <= max_rate) {
        return Err(invalid(
            format!("{section}.rate"),
            format!("{rate:?} is outside (0, {max_rate}]"),
        ));
    }
    if !(1..=60_000).contains(&attempt_timeout_ms) {
        return Err(invalid(
            format!("{section}.attempt_timeout_ms"),
            "must be in 1..=60000",
        ));
    }
    Ok(())
}

/// Checks that a target's request `rate` fills every window with at
/// least [`MIN_REQUESTS_PER_WINDOW`] expected requests.
pub fn check_rate(field: &str, rate: f64, window: Duration) -> Result<()> {
    let expected = rate * window.as_secs_f64();
    if expected < MIN_REQUESTS_PER_WINDOW {
        return Err(invalid(
            field,
            format!(
                "{rate}/s expects {expected:.1} requests per {} ms window; give at least {MIN_REQUESTS_PER_WINDOW} (a window with none counts as an outage)",
                window.as_millis()
            ),
        ));
    }
    Ok(())
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

    /// Checks the experiment against a target whose hosts are `hosts`.
    pub fn validate(&self, hosts: &BTreeSet<String>) -> Result<()> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(invalid("name", "must be 1 to 200 characters"));
        }
        if self.name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                format!("{:?} holds control characters", self.name),
            ));
        }
        self.hypothesis.validate("hypothesis")?;
        self.abort.validate("abort")?;
        if self.abort.tighter_than(&self.hypothesis) {
            return Err(invalid(
                "abort",
                format!(
                    "{} can break while the hypothesis {} holds; the blast radius must be looser",
                    self.abort.describe(),
                    self.hypothesis.describe()
                ),
            ));
        }
        if self.window_ms == 0 || self.window() > MAX_WINDOW {
            return Err(invalid(
                "window_ms",
                format!("must be in 1..={}", MAX_WINDOW.as_millis()),
            ));
        }
        if self.duration() > MAX_EXPERIMENT || !self.duration_ms.is_multiple_of(self.window_ms) {
            return Err(invalid(
                "duration_ms",
                format!(
                    "{} must be a multiple of window_ms ({}) and at most {} s",
                    self.duration_ms,
                    self.window_ms,
                    MAX_EXPERIMENT.as_secs()
                ),
            ));
        }
        if self.windows() > MAX_WINDOWS {
            return Err(invalid(
                "duration_ms",
                format!(
                    "{} windows of {} ms; at most {MAX_WINDOWS}",
                    self.windows(),
                    self.window_ms
                ),
            ));
        }
        if self.faults.is_empty() || self.faults.len() > MAX_FAULTS {
            return Err(invalid("faults", format!("give 1 to {MAX_FAULTS} faults")));
        }
        let steady_end = self
            .window_ms
            .saturating_mul(u64::from(self.steady_windows));
        if self.steady_windows == 0 {
            return Err(invalid(
                "steady_windows",
                "measure at least one window before the first fault",
            ));
        }
        for (i, scheduled) in self.faults.iter().enumerate() {
            let field = |name: &str| format!("faults[{i}].{name}");
            // Simplified: faults start and end on window boundaries, so
            // each window is measured under one set of faults — which is
            // also what makes the report's table readable.
            for (name, value) in [("at_ms", scheduled.at_ms), ("for_ms", scheduled.for_ms)] {
                if !value.is_multiple_of(self.window_ms) {
                    return Err(invalid(
                        field(name),
                        format!(
                            "{value} is not a multiple of window_ms ({})",
                            self.window_ms
                        ),
                    ));
                }
            }
            if scheduled.at_ms < steady_end {
                return Err(invalid(
                    field("at_ms"),
                    format!(
                        "{} falls inside the {steady_end} ms of steady-state windows",
                        scheduled.at_ms
                    ),
                ));
            }
            if scheduled.for_ms == 0 || scheduled.end() > self.duration() {
                return Err(invalid(
                    field("for_ms"),
                    format!(
                        "the fault must last at least one window and end by duration_ms ({})",
                        self.duration_ms
                    ),
                ));
            }
            for host in scheduled.fault.hosts() {
                if !hosts.contains(host) {
                    let known: Vec<&str> = hosts.iter().map(String::as_str).collect();
                    return Err(invalid(
                        field("fault"),
                        format!(
                            "unknown host {host:?}; this target has {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
            match &scheduled.fault {
                Fault::Partition { a, b }
                | Fault::Loss { a, b, .. }
                | Fault::Latency { a, b, .. }
                    if a == b =>
                {
                    return Err(invalid(
                        field("fault"),
                        format!("a link needs two hosts, got {a:?} twice"),
                    ));
                }
                // The topology both targets share: the client calls each
                // replica, and replicas do not call each other.
                Fault::Partition { a, b }
                | Fault::Loss { a, b, .. }
                | Fault::Latency { a, b, .. }
                    if a != CLIENT && b != CLIENT =>
                {
                    return Err(invalid(
                        field("fault"),
                        format!(
                            "{a}–{b}: replicas do not call each other, so this fault would change nothing; one end must be \"client\""
                        ),
                    ));
                }
                Fault::Crash { host } | Fault::Flaky { host, .. } if host == CLIENT => {
                    return Err(invalid(
                        field("fault"),
                        "the client is the experiment's observer; name a replica",
                    ));
                }
                Fault::Loss { probability, .. } if !(0.0..=1.0).contains(probability) => {
                    return Err(invalid(
                        field("fault.loss.probability"),
                        format!("{probability} is not a probability"),
                    ));
                }
                Fault::Flaky { error_rate, .. } if !(0.0..=1.0).contains(error_rate) => {
                    return Err(invalid(
                        field("fault.flaky.error_rate"),
                        format!("{error_rate} is not a probability"),
                    ));
                }
                Fault::Latency { ms, .. } if *ms > 60_000 => {
                    return Err(invalid(
                        field("fault.latency.ms"),
                        format!("{ms} exceeds 60000"),
                    ));
                }
                _ => {}
            }
            // Simplified: one fault per replica at a time. Two faults on
            // one replica would share one switch (one heal would end both),
            // and a crashed replica cannot be reconfigured.
            let replica = scheduled.fault.replica();
            if let Some((j, earlier)) = self.faults[..i]
                .iter()
                .enumerate()
                .find(|(_, f)| f.fault.replica() == replica && f.overlaps(scheduled))
            {
                return Err(invalid(
                    field("fault"),
                    format!(
                        "{} overlaps faults[{j}] ({}) on {replica}; give one fault per replica at a time",
                        scheduled.fault.describe(),
                        earlier.fault.describe()
                    ),
                ));
            }
        }
        Ok(())
    }
}
