//! Judging a policy on a scripted run: when it alerted, how fast it saw
//! each incident, how soon it cleared, and what it alerted on for nothing.

use std::time::Duration;

use crate::plot::Series;

/// Transitions one recorder keeps; a policy flapping beyond that is
/// reported as truncated rather than allowed to grow the log.
pub const MAX_TRANSITIONS: usize = 10_000;

/// A stretch of scripted bad traffic, `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
}

/// One spell of alerting: from `start` until `end` (`None`: still on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertPeriod {
    pub start: Duration,
    pub end: Option<Duration>,
}

impl AlertPeriod {
    fn covers(&self, at: Duration) -> bool {
        self.start <= at && self.end.is_none_or(|end| at < end)
    }
}

/// Records when a policy as a whole (any rule) was alerting.
#[derive(Clone, Debug, Default)]
pub struct AlertRecorder {
    periods: Vec<AlertPeriod>,
    truncated: bool,
}

impl AlertRecorder {
    /// Notes whether the policy is firing at `at` (call after every observe).
    pub fn note(&mut self, at: Duration, firing: bool) {
        let open = self.periods.last().is_some_and(|p| p.end.is_none());
        match (open, firing) {
            (false, true) if self.periods.len() < MAX_TRANSITIONS => {
                self.periods.push(AlertPeriod {
                    start: at,
                    end: None,
                });
            }
            (false, true) => self.truncated = true,
            (true, false) => {
                if let Some(last) = self.periods.last_mut() {
                    last.end = Some(at);
                }
            }
            _ => {}
        }
    }

    pub fn periods(&self) -> &[AlertPeriod] {
        &self.periods
    }

    /// Whether alerts beyond [`MAX_TRANSITIONS`] went unrecorded.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Scores the run against the incidents that really happened. An
    /// alert that starts during an incident or within `grace` after it
    /// belongs to it; any other alert is a false alarm.
    pub fn score(&self, incidents: &[Incident], grace: Duration) -> Score {
        let scores = incidents
            .iter()
            .map(|incident| {
                let mine: Vec<&AlertPeriod> = self
                    .periods
                    .iter()
                    .filter(|p| p.start >= incident.start && p.start < incident.end + grace)
                    .collect();
                IncidentScore {
                    incident: incident.name.clone(),
                    detected_after: mine.first().map(|p| p.start - incident.start),
                    alerts: mine.len(),
                    cleared_after: match self.periods.iter().find(|p| p.covers(incident.end)) {
                        None => Some(Duration::ZERO),
                        Some(period) => period.end.map(|end| end - incident.end),
                    },
                }
            })
            .collect();
        let false_alarms = self
            .periods
            .iter()
            .filter(|p| {
                !incidents
                    .iter()
                    .any(|i| p.start >= i.start && p.start < i.end + grace)
            })
            .map(|p| p.start)
            .collect();
        Score {
            incidents: scores,
            false_alarms,
            alerts: self.periods.len(),
        }
    }

    /// The alert periods as a step line for a chart: at `on` while
    /// alerting, at `off` otherwise, x in `unit`s from 0 to `end`. Put the
    /// two levels above the data and the line reads as an alert timeline.
    pub fn step_series(
        &self,
        name: &str,
        on: f64,
        off: f64,
        unit: Duration,
        end: Duration,
    ) -> Series {
        let x = |at: Duration| at.as_secs_f64() / unit.as_secs_f64();
        let mut points = vec![(0.0, off)];
        for period in &self.periods {
            let stop = period.end.unwrap_or(end);
            points.extend([
                (x(period.start), off),
                (x(period.start), on),
                (x(stop), on),
                (x(stop), off),
            ]);
        }
        points.push((x(end), off));
        Series::line(name, points)
    }
}

/// How one policy did on one incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentScore {
    pub incident: String,
    /// From the incident's start to the first alert it caused.
    pub detected_after: Option<Duration>,
    /// From the incident's end until the policy stopped alerting (`None`:
    /// it never did within the run).
    pub cleared_after: Option<Duration>,
    /// Separate alerts it caused: more than one is flapping.
    pub alerts: usize,
}

/// How one policy did on a whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    pub incidents: Vec<IncidentScore>,
    /// When each alert that matched no incident started.
    pub false_alarms: Vec<Duration>,
    pub alerts: usize,
}

impl Score {
    pub fn incident(&self, name: &str) -> Option<&IncidentScore> {
        self.incidents.iter().find(|s| s.incident == name)
    }
}
