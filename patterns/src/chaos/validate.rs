//! Checking an experiment before anything runs: every bound points the
//! healthy way, the abort bound is looser than the hypothesis, faults name
//! hosts the target has and never overlap on one replica, and the run fits
//! the window and request limits of [`super::definition`].

use std::collections::BTreeSet;
use std::time::Duration;

use super::definition::*;
use crate::error::Result;

impl Condition {
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

impl ScheduledFault {
    fn overlaps(&self, other: &ScheduledFault) -> bool {
        self.start() < other.end() && other.start() < self.end()
    }
}

impl Experiment {
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
