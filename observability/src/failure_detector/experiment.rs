//! The trade-off experiment: detection time against false suspicions.
//!
//! A sender beats through a jittery network, stalls now and then, and
//! finally crashes ([`super::network`]). Every detector setting judges the
//! same heartbeats: a suspicion that begins while the sender is alive is a
//! false positive, the first one after the crash is the detection. Two
//! settings are compared fairly only at the same false-positive rate, so
//! [`Experiment::matching_timeout`] finds, for any count of false
//! positives, the fastest fixed timeout that makes no more on the very same
//! heartbeats — a timeout tuned with hindsight, the strongest opponent a
//! phi detector can meet.
//!
//! Why a discrete-event simulation is faithful here: between two arrivals
//! both detectors are monotone — silence only grows, so once suspected a
//! peer stays suspected until the next heartbeat. Each detector can
//! therefore say, right after a heartbeat, the exact instant it *would*
//! start suspecting ([`FailureDetector::suspicion_time`]); comparing that
//! instant with the next arrival decides, exactly, whether a suspicion
//! happened in between. That is what a monitor polling infinitely often
//! would see — no polling period blurs the detection times — and it costs
//! O(1) per heartbeat, so hours of heartbeats take milliseconds. The
//! detectors are the real ones, fed `Instant`s hours ahead of the clock.

use std::time::Duration;

use tokio::time::Instant;

use super::network::{Run, Scenario, run};
use super::{FailureDetector, FixedTimeout, PhiAccrual, PhiConfig};
use crate::Result;

/// A detector setting the experiment sweeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DetectorSpec {
    /// Suspect after `intervals` × the heartbeat interval of silence.
    Timeout {
        intervals: f64,
    },
    Phi(PhiConfig),
}

impl DetectorSpec {
    fn build(&self, interval: f64) -> Result<Box<dyn FailureDetector>> {
        Ok(match self {
            Self::Timeout { intervals } => Box::new(FixedTimeout::intervals(
                Duration::from_secs_f64(interval),
                *intervals,
            )?),
            Self::Phi(config) => Box::new(PhiAccrual::new(*config)?),
        })
    }
}

/// What one detector setting did over all runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub spec: DetectorSpec,
    /// Suspicions of a live sender, and the healthy seconds they happened in.
    pub false_positives: u64,
    pub healthy_seconds: f64,
    /// Crash → first suspicion, one per run, in seconds, sorted.
    pub detections: Vec<f64>,
}

impl Outcome {
    pub fn false_positives_per_hour(&self) -> f64 {
        self.false_positives as f64 * 3_600.0 / self.healthy_seconds.max(f64::MIN_POSITIVE)
    }

    pub fn mean_detection(&self) -> f64 {
        self.detections.iter().sum::<f64>() / self.detections.len().max(1) as f64
    }

    /// The `q`-quantile of detection times (nearest rank).
    pub fn detection_quantile(&self, q: f64) -> f64 {
        let rank = (q * self.detections.len() as f64).ceil() as usize;
        self.detections
            .get(
                rank.saturating_sub(1)
                    .min(self.detections.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// A scenario's runs, generated once, for every detector to judge.
#[derive(Clone, Debug)]
pub struct Experiment {
    scenario: Scenario,
    runs: Vec<Run>,
}

impl Experiment {
    /// One run per seed. Every detector then judges the same heartbeats,
    /// so their differences are the detectors', not the dice's.
    pub fn new(scenario: Scenario, seeds: impl IntoIterator<Item = u64>) -> Result<Self> {
        scenario.validate()?;
        let runs = seeds.into_iter().map(|seed| run(&scenario, seed)).collect();
        Ok(Self { scenario, runs })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Healthy time in which false positives were counted, in hours.
    pub fn healthy_hours(&self) -> f64 {
        self.runs
            .iter()
            .map(|run| run.crash - self.scenario.warm_up)
            .sum::<f64>()
            / 3_600.0
    }

    /// How `spec` did over every run.
    pub fn judge(&self, spec: DetectorSpec) -> Result<Outcome> {
        let origin = Instant::now();
        let mut outcome = Outcome {
            spec,
            false_positives: 0,
            healthy_seconds: self.healthy_hours() * 3_600.0,
            detections: Vec::with_capacity(self.runs.len()),
        };
        for run in &self.runs {
            let mut detector = spec.build(self.scenario.interval)?;
            let (false_positives, detection) =
                judge(&mut *detector, run, self.scenario.warm_up, origin);
            outcome.false_positives += false_positives;
            outcome.detections.push(detection);
        }
        outcome.detections.sort_by(f64::total_cmp);
        Ok(outcome)
    }

    pub fn sweep(&self, specs: &[DetectorSpec]) -> Result<Vec<Outcome>> {
        specs.iter().map(|spec| self.judge(*spec)).collect()
    }

    /// The shortest fixed timeout that makes at most `false_positives`
    /// false suspicions on these very heartbeats, and how it does: the
    /// fair opponent for a phi setting that made that many.
    ///
    /// A timeout T suspects wrongly in a healthy gap of length g exactly
    /// when T < g, so the answer is the (n+1)-th longest healthy gap.
    pub fn matching_timeout(&self, false_positives: u64) -> Result<Outcome> {
        let mut gaps: Vec<f64> = Vec::new();
        for run in &self.runs {
            let mut last = 0.0;
            for &arrival in run.arrivals.iter().chain([&f64::INFINITY]) {
                if last >= self.scenario.warm_up && last < run.crash {
                    gaps.push(arrival.min(run.crash) - last);
                }
                last = arrival;
            }
        }
        let index = usize::try_from(false_positives).unwrap_or(usize::MAX);
        let longest = if index < gaps.len() {
            // Partitioning finds the (n+1)-th longest without a full sort.
            *gaps.select_nth_unstable_by(index, |a, b| b.total_cmp(a)).1
        } else {
            0.0
        };
        // A microsecond more absorbs the rounding of arrival times to the
        // detectors' nanosecond clock.
        let timeout = longest.max(0.0) + 1e-6;
        self.judge(DetectorSpec::Timeout {
            intervals: timeout / self.scenario.interval,
        })
    }
}

/// One detector over one run: (false positives, detection seconds). A
/// suspicion is a false positive if the sender was alive when it began,
/// counted once the heartbeat before it arrived after the warm-up.
fn judge(
    detector: &mut dyn FailureDetector,
    run: &Run,
    warm_up: f64,
    origin: Instant,
) -> (u64, f64) {
    let instant = |secs: f64| origin + Duration::from_secs_f64(secs.max(0.0));
    let seconds = |at: Instant| at.saturating_duration_since(origin).as_secs_f64();
    let crash = run.crash;
    // Monitoring starts with the sender.
    detector.start(origin);
    let mut false_positives = 0;
    let mut last = 0.0;
    for &arrival in run.arrivals.iter().chain([&f64::INFINITY]) {
        let suspected_at = detector.suspicion_time().map_or(f64::INFINITY, seconds);
        if suspected_at < arrival {
            if suspected_at >= crash {
                return (false_positives, suspected_at - crash);
            }
            if last >= warm_up {
                false_positives += 1;
            }
            if arrival > crash {
                // Suspected before the crash and still suspected at it.
                return (false_positives, 0.0);
            }
        }
        if arrival.is_finite() {
            detector.heartbeat(instant(arrival));
        }
        last = arrival;
    }
    // Unreachable for any detector that suspects eventually: the infinite
    // "arrival" after the last heartbeat is later than every suspicion.
    (false_positives, f64::INFINITY)
}
