//! The runner's decisions, without any IO: it is told what each window
//! measured and answers which faults to inject or heal, and when to stop.
//! The simulated target ([`super::sim`]) and the process-group runner of
//! the CLI (`dslab chaos run`) drive the same state machine.

use std::collections::BTreeSet;
use std::time::Duration;

use super::definition::{Experiment, Metric};

/// What one window measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowMetrics {
    /// Requests that finished in the window (succeeded or failed).
    pub finished: u64,
    pub succeeded: u64,
    /// Latencies of the finished requests, any order.
    pub latencies: Vec<Duration>,
}

impl WindowMetrics {
    /// The metric's value over a window of length `window`. A window in
    /// which nothing finished counts as a total outage: no evidence of
    /// health is not health.
    pub fn value(&self, metric: Metric, window: Duration) -> f64 {
        let success = if self.finished == 0 {
            0.0
        } else {
            self.succeeded as f64 / self.finished as f64
        };
        match metric {
            Metric::SuccessRate => success,
            Metric::ErrorRate => 1.0 - success,
            Metric::Throughput => {
                self.finished as f64 / window.as_secs_f64().max(f64::MIN_POSITIVE)
            }
            Metric::P99LatencyMs => {
                let mut sorted = self.latencies.clone();
                sorted.sort_unstable();
                match sorted.len() {
                    0 => f64::INFINITY,
                    n => sorted[(n * 99).div_ceil(100).saturating_sub(1)].as_secs_f64() * 1_000.0,
                }
            }
        }
    }
}

/// What the driver must do before the next window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start fault `index` of the experiment.
    Inject(usize),
    /// End fault `index`.
    Heal(usize),
}

/// How the experiment ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The hypothesis held in every window: confidence gained.
    Passed,
    /// The hypothesis broke in these windows but the blast radius stayed
    /// within bounds: a weakness found, at a price that was agreed.
    Failed { windows: Vec<u64> },
    /// A window broke the abort bound: every fault was healed at once.
    Aborted {
        window: u64,
        at: Duration,
        value: f64,
    },
    /// The hypothesis did not hold before any fault: nothing was injected.
    NotSteady { window: u64, value: f64 },
    /// The run stopped before its end for a reason outside the
    /// experiment (a signal, a fault the target could not apply): the
    /// windows measured so far are kept, but nothing is concluded.
    Incomplete { reason: String },
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    pub index: u64,
    pub start: Duration,
    /// Descriptions of the faults active during the window.
    pub faults: Vec<String>,
    /// Requests that finished in the window.
    pub requests: u64,
    pub hypothesis_value: f64,
    pub hypothesis_held: bool,
    pub abort_value: f64,
    pub success_rate: f64,
    pub p99_latency_ms: f64,
}

/// The experiment's result: one row per window, and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosReport {
    pub name: String,
    pub hypothesis: String,
    pub abort: String,
    pub rows: Vec<WindowRow>,
    pub outcome: Outcome,
}

impl ChaosReport {
    /// The report as a plain-text table, one line per window.
    pub fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let header = vec![
            "window",
            "t (s)",
            "faults",
            "requests",
            "success",
            "p99 ms",
            "hypothesis",
        ];
        let rows = self
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.index.to_string(),
                    format!("{:.1}", row.start.as_secs_f64()),
                    if row.faults.is_empty() {
                        "-".into()
                    } else {
                        row.faults.join(", ")
                    },
                    row.requests.to_string(),
                    format!("{:.3}", row.success_rate),
                    if row.p99_latency_ms.is_finite() {
                        format!("{:.1}", row.p99_latency_ms)
                    } else {
                        "-".into()
                    },
                    if row.hypothesis_held {
                        "held"
                    } else {
                        "BROKEN"
                    }
                    .into(),
                ]
            })
            .collect();
        (header, rows)
    }

    pub fn verdict(&self) -> String {
        match &self.outcome {
            Outcome::Passed => format!("PASSED: {} held in every window", self.hypothesis),
            Outcome::Failed { windows } => format!(
                "FAILED: {} broke in windows {windows:?}; blast radius stayed within {}",
                self.hypothesis, self.abort
            ),
            Outcome::Aborted { window, at, value } => format!(
                "ABORTED in window {window} at {:.1} s: {} broken ({value:.3}); all faults healed",
                at.as_secs_f64(),
                self.abort
            ),
            Outcome::NotSteady { window, value } => format!(
                "NOT STEADY: {} did not hold before any fault (window {window}: {value:.3}); nothing injected",
                self.hypothesis
            ),
            Outcome::Incomplete { reason } => format!(
                "INCOMPLETE after {} windows: {reason}; nothing concluded",
                self.rows.len()
            ),
        }
    }
}

/// The decision after a window.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Apply these actions, then measure the next window.
    Continue(Vec<Action>),
    /// Apply these actions (heals), then stop: the experiment is over.
    Stop(Vec<Action>, ChaosReport),
}

/// The runner's state.
#[derive(Debug)]
pub struct Runner {
    experiment: Experiment,
    window: u64,
    active: BTreeSet<usize>,
    rows: Vec<WindowRow>,
    broken: Vec<u64>,
}

impl Runner {
    /// A runner for an experiment already validated against its target.
    /// Nothing is due before the first window: the first windows measure
    /// the steady state.
    pub fn new(experiment: Experiment) -> Self {
        Self {
            experiment,
            window: 0,
            active: BTreeSet::new(),
            rows: Vec::new(),
            broken: Vec::new(),
        }
    }

    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// Faults active now.
    pub fn active(&self) -> impl Iterator<Item = usize> + '_ {
        self.active.iter().copied()
    }

    fn report(&mut self, outcome: Outcome) -> ChaosReport {
        ChaosReport {
            name: self.experiment.name.clone(),
            hypothesis: self.experiment.hypothesis.describe(),
            abort: self.experiment.abort.describe(),
            rows: std::mem::take(&mut self.rows),
            outcome,
        }
    }

    /// Ends the run early, for `reason`: the report of the windows
    /// measured so far.
    pub fn interrupt(&mut self, reason: impl Into<String>) -> ChaosReport {
        self.report(Outcome::Incomplete {
            reason: reason.into(),
        })
    }

    fn heal_all(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.active)
            .into_iter()
            .map(Action::Heal)
            .collect()
    }

    /// Records the window that just ended and decides what comes next.
    pub fn end_window(&mut self, metrics: &WindowMetrics) -> Decision {
        let window = self.experiment.window();
        let index = self.window;
        let start = window * index as u32;
        let hypothesis = self.experiment.hypothesis;
        let abort = self.experiment.abort;
        let hypothesis_value = metrics.value(hypothesis.metric, window);
        let abort_value = metrics.value(abort.metric, window);
        let held = hypothesis.holds(hypothesis_value);
        self.rows.push(WindowRow {
            index,
            start,
            faults: self
                .active
                .iter()
                .map(|&i| self.experiment.faults[i].fault.describe())
                .collect(),
            requests: metrics.finished,
            hypothesis_value,
            hypothesis_held: held,
            abort_value,
            success_rate: metrics.value(Metric::SuccessRate, window),
            p99_latency_ms: metrics.value(Metric::P99LatencyMs, window),
        });
        self.window += 1;
        if index < u64::from(self.experiment.steady_windows) && !held {
            let report = self.report(Outcome::NotSteady {
                window: index,
                value: hypothesis_value,
            });
            return Decision::Stop(Vec::new(), report);
        }
        if !abort.holds(abort_value) {
            // Pitfall: an abort that waits for the schedule is no abort.
            // Every fault is healed now, not at its planned end.
            let heals = self.heal_all();
            let report = self.report(Outcome::Aborted {
                window: index,
                at: start + window,
                value: abort_value,
            });
            return Decision::Stop(heals, report);
        }
        if !held {
            self.broken.push(index);
        }
        if self.window >= self.experiment.windows() {
            let heals = self.heal_all();
            let outcome = if self.broken.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed {
                    windows: self.broken.clone(),
                }
            };
            return Decision::Stop(heals, self.report(outcome));
        }
        let now = window * self.window as u32;
        let mut actions = Vec::new();
        for (i, scheduled) in self.experiment.faults.iter().enumerate() {
            if scheduled.end() == now && self.active.remove(&i) {
                actions.push(Action::Heal(i));
            }
        }
        for (i, scheduled) in self.experiment.faults.iter().enumerate() {
            if scheduled.start() == now && self.active.insert(i) {
                actions.push(Action::Inject(i));
            }
        }
        Decision::Continue(actions)
    }
}
