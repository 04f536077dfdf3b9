//! The simulated world of the trade-off experiment: a sender, a jittery
//! network, garbage-collection pauses, and a crash.
//!
//! Latency is `base` plus normal jitter, plus — rarely — a Pareto spike
//! (a retransmission, a queue behind a burst): heavy-tailed, as measured
//! latencies are. Networks also change character: in congested phases
//! jitter and spikes both grow. The sender stalls now and then for a
//! Pareto-distributed pause (most short, a few of seconds), beats once
//! when it thaws and keeps its rhythm from there, as
//! [`super::HeartbeatSender`] does. Everything is drawn from one seeded
//! generator, so a seed is a run.
//!
//! Simplified: one-way latency only (the monitor's clock is the only one
//! that matters); arrivals that are overtaken are dropped as stale, as the
//! monitor's sequence numbers would.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// The most heartbeats one simulated run may send (about four months at
/// one per second): what a run's arrival times may occupy in memory.
pub const MAX_HEARTBEATS_PER_RUN: u64 = 10_000_000;

/// One-way network latency, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// The latency without jitter.
    pub base: f64,
    /// Standard deviation of the normal jitter added to `base`.
    pub jitter: f64,
    /// Chance that a heartbeat is also delayed by a Pareto-distributed
    /// spike (a retransmission, a queue behind a burst).
    pub spike_probability: f64,
    /// The smallest spike; spikes have a Pareto tail with index 2.
    pub spike_min: f64,
    /// Congested phases, if any.
    pub congestion: Option<Congestion>,
}

/// A network that alternates between calm and congested phases, of
/// exponentially distributed lengths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Congestion {
    /// Mean length of a calm phase, in seconds.
    pub mean_calm: f64,
    /// Mean length of a congested phase, in seconds.
    pub mean_congested: f64,
    /// While congested, jitter and spike probability are this many times
    /// larger.
    pub factor: f64,
}

/// Stop-the-world stalls of the sender, as garbage collection causes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pauses {
    /// Mean time between the starts of two pauses (exponential).
    pub mean_gap: f64,
    /// The shortest pause; durations have a Pareto tail with index 1.5.
    pub min: f64,
    /// The longest pause (a pause this long ends in an OOM kill anyway).
    pub max: f64,
}

/// What the network and the sender do, and for how long.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    /// Heartbeat period, in seconds.
    pub interval: f64,
    pub latency: Latency,
    pub pauses: Option<Pauses>,
    /// Seconds from the sender's start to its crash.
    pub healthy: f64,
    /// Seconds at the start during which false positives are not counted:
    /// the detector is still learning the peer.
    pub warm_up: f64,
}

impl Scenario {
    /// The demo's steady world: 1 s heartbeats; 50 ms latency with 20 ms
    /// of jitter and a 1% chance of a spike of 200 ms or more; a GC pause
    /// of 0.3 s or more (at most 10 s) every 10 minutes on average; a
    /// crash after an hour, of which the first 10 minutes are warm-up.
    pub fn steady() -> Self {
        Self {
            interval: 1.0,
            latency: Latency {
                base: 0.05,
                jitter: 0.02,
                spike_probability: 0.01,
                spike_min: 0.2,
                congestion: None,
            },
            pauses: Some(Pauses {
                mean_gap: 600.0,
                min: 0.3,
                max: 10.0,
            }),
            healthy: 3_600.0,
            warm_up: 600.0,
        }
    }

    /// The steady world, except that the network is congested about a
    /// quarter of the time (10-minute phases, every 40 minutes on
    /// average), with ten times the jitter and spikes.
    pub fn shifting() -> Self {
        let mut scenario = Self::steady();
        scenario.latency.congestion = Some(Congestion {
            mean_calm: 1_800.0,
            mean_congested: 600.0,
            factor: 10.0,
        });
        scenario
    }

    /// The same world with a sender that never stalls.
    pub fn without_pauses(mut self) -> Self {
        self.pauses = None;
        self
    }

    /// Refuses worlds that cannot be simulated: non-finite or negative
    /// numbers, probabilities outside 0..=1, runs of more than
    /// [`MAX_HEARTBEATS_PER_RUN`] heartbeats (the memory a run may take),
    /// and phases or pauses that come more often than heartbeats (the
    /// work a run may take).
    pub fn validate(&self) -> Result<()> {
        let latency = &self.latency;
        let mut checks = vec![
            ("interval", self.interval, self.interval > 0.0),
            ("warm-up", self.warm_up, self.warm_up >= 0.0),
            ("healthy time", self.healthy, self.healthy > self.warm_up),
            (
                "heartbeats per run",
                self.healthy / self.interval,
                self.healthy / self.interval <= MAX_HEARTBEATS_PER_RUN as f64,
            ),
            ("latency base", latency.base, latency.base >= 0.0),
            ("latency jitter", latency.jitter, latency.jitter >= 0.0),
            (
                "spike probability",
                latency.spike_probability,
                (0.0..=1.0).contains(&latency.spike_probability),
            ),
            ("spike minimum", latency.spike_min, latency.spike_min > 0.0),
        ];
        if let Some(congestion) = latency.congestion {
            checks.extend([
                (
                    "mean calm phase",
                    congestion.mean_calm,
                    congestion.mean_calm >= self.interval,
                ),
                (
                    "mean congested phase",
                    congestion.mean_congested,
                    congestion.mean_congested >= self.interval,
                ),
                (
                    "congestion factor",
                    congestion.factor,
                    congestion.factor >= 0.0,
                ),
            ]);
        }
        if let Some(pauses) = self.pauses {
            checks.extend([
                (
                    "mean gap between pauses",
                    pauses.mean_gap,
                    pauses.mean_gap >= self.interval,
                ),
                ("shortest pause", pauses.min, pauses.min > 0.0),
                ("longest pause", pauses.max, pauses.max >= pauses.min),
            ]);
        }
        match checks
            .into_iter()
            .find(|(_, value, ok)| !value.is_finite() || !ok)
        {
            Some((setting, value, _)) => Err(Error::InvalidDetectorSetting {
                setting,
                value: value.to_string(),
                expected: "a finite value in the range the scenario documents",
            }),
            None => Ok(()),
        }
    }
}

/// One run: heartbeat arrival times in order (stale ones dropped), and
/// when the sender crashed, in seconds since it started.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub arrivals: Vec<f64>,
    pub crash: f64,
}

/// The heartbeats of run `seed`. The crash falls at a uniformly random
/// point of a heartbeat interval after `healthy`, as real crashes do.
/// The scenario must be valid ([`Scenario::validate`]).
pub fn run(scenario: &Scenario, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let crash = scenario.healthy + rng.random::<f64>() * scenario.interval;
    let latency = scenario.latency;
    let mut congestion = Phases::new(latency.congestion, &mut rng);
    let mut next_pause = scenario.pauses.map(|p| exponential(&mut rng, p.mean_gap));
    let mut sent = Vec::new();
    let mut at = 0.0;
    while at < crash {
        if let (Some(pauses), Some(start)) = (scenario.pauses, next_pause)
            && at >= start
        {
            let length = pareto(&mut rng, pauses.min, 1.5).min(pauses.max);
            // Frozen from `start`: this heartbeat leaves when it thaws,
            // and the rhythm restarts from there.
            at = at.max(start + length);
            next_pause = Some(start + length + exponential(&mut rng, pauses.mean_gap));
            continue;
        }
        let factor = congestion.factor_at(at, &mut rng);
        let mut delay = latency.base + normal(&mut rng) * latency.jitter * factor;
        if rng.random::<f64>() < latency.spike_probability * factor {
            delay += pareto(&mut rng, latency.spike_min, 2.0);
        }
        sent.push(at + delay.max(0.0));
        at += scenario.interval;
    }
    // Arrival order; one overtaken by a later heartbeat is stale.
    let mut arrivals = Vec::with_capacity(sent.len());
    let mut order: Vec<(f64, usize)> = sent.iter().copied().zip(0..).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut newest = None;
    for (arrival, sequence) in order {
        if newest.is_none_or(|newest| sequence > newest) {
            newest = Some(sequence);
            arrivals.push(arrival);
        }
    }
    Run { arrivals, crash }
}

/// Calm and congested phases, switched at exponential times.
struct Phases {
    congestion: Option<Congestion>,
    congested: bool,
    until: f64,
}

impl Phases {
    fn new(congestion: Option<Congestion>, rng: &mut SmallRng) -> Self {
        let until = congestion.map_or(f64::INFINITY, |c| exponential(rng, c.mean_calm));
        Self {
            congestion,
            congested: false,
            until,
        }
    }

    fn factor_at(&mut self, at: f64, rng: &mut SmallRng) -> f64 {
        let Some(congestion) = self.congestion else {
            return 1.0;
        };
        while at >= self.until {
            self.congested = !self.congested;
            let mean = if self.congested {
                congestion.mean_congested
            } else {
                congestion.mean_calm
            };
            self.until += exponential(rng, mean);
        }
        if self.congested {
            congestion.factor
        } else {
            1.0
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u = 1.0 - rng.random::<f64>(); // in (0, 1]: ln is finite
    let v = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn exponential(rng: &mut SmallRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A Pareto draw with scale `min` and tail index `alpha`.
fn pareto(rng: &mut SmallRng, min: f64, alpha: f64) -> f64 {
    min * (1.0 - rng.random::<f64>()).powf(-1.0 / alpha)
}
