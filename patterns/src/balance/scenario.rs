//! The scenario every balancer is judged by — N `Flaky` backends, one of
//! them ten times slower, Poisson arrivals — and what a balancer made of
//! it. Plain data: the experiment (real services) and the model (no
//! runtime) both read it.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use resilience::flaky::proto::{Distribution, Latency, Script};
use resilience::flaky::{Behaviour, Flaky};

use crate::{Error, Result};

/// Calls a backend lets wait for capacity: Flaky's largest queue.
const QUEUE: u32 = 100_000;
/// The most calls one run may make (each costs a task and a sample).
pub const MAX_REQUESTS: usize = 1_000_000;

/// What the backends do and what the clients send.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub backends: usize,
    /// Mean latency of a healthy backend (half fixed, half exponential).
    pub fast: Duration,
    /// How many times slower the slow backend (the last one) is.
    pub slowdown: u32,
    /// Calls each backend serves at once; the rest queue.
    pub capacity: u32,
    /// Poisson arrivals per second, over all backends.
    pub rate_per_second: f64,
    pub requests: usize,
    /// Each call's deadline: a call not answered by then counts as failed,
    /// with this as its latency, and is cancelled at the backend.
    pub deadline: Duration,
    pub seed: u64,
}

impl Default for Scenario {
    /// Five backends serving 2 calls at once in 10 ms (200/s each), one of
    /// them in 100 ms (20/s); 400 calls per second offered — 46% of what the
    /// five can serve, but twice what one in five may send the slow one.
    fn default() -> Self {
        Self {
            backends: 5,
            fast: Duration::from_millis(10),
            slowdown: 10,
            capacity: 2,
            rate_per_second: 400.0,
            requests: 3_000,
            deadline: Duration::from_secs(1),
            seed: 1,
        }
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidExperiment {
        reason: reason.into(),
    }
}

impl Scenario {
    pub fn validate(&self) -> Result<()> {
        if !(2..=super::MAX_ENDPOINTS).contains(&self.backends) {
            return Err(invalid("backends must be at least 2"));
        }
        if !(self.rate_per_second.is_finite() && self.rate_per_second > 0.0) {
            return Err(invalid("the arrival rate must be positive"));
        }
        if !(1..=MAX_REQUESTS).contains(&self.requests) {
            return Err(invalid(format!("requests must be in 1..={MAX_REQUESTS}")));
        }
        if self.slowdown == 0 || self.capacity == 0 || self.deadline.is_zero() {
            return Err(invalid("slowdown, capacity and deadline must be positive"));
        }
        Ok(())
    }

    /// The slow backend's index: the last one.
    pub fn slow_node(&self) -> usize {
        self.backends - 1
    }

    /// Backend `i`'s script: latency half fixed, half exponential; the
    /// slow one's both `slowdown` times longer.
    pub fn behaviour(&self, i: usize) -> Result<Behaviour> {
        let factor = if i == self.slow_node() {
            self.slowdown
        } else {
            1
        };
        let half = (self.fast * factor / 2).as_micros() as u64;
        let script = Script {
            latency: Some(Latency {
                base_micros: half,
                jitter_micros: half,
                distribution: Distribution::Exponential as i32,
            }),
            capacity: self.capacity,
            // Deep enough never to refuse: overload shows as waiting
            // until the deadline, as in an unbounded queue.
            queue: QUEUE,
            seed: self.seed.wrapping_add(i as u64),
            ..Script::default()
        };
        Behaviour::from_script(&script).map_err(|e| invalid(e.to_string()))
    }

    /// Fresh backends `n1`…`nN`, the last one slow.
    pub fn backends(&self) -> Result<Vec<Flaky>> {
        self.validate()?;
        (0..self.backends)
            .map(|i| Ok(Flaky::new(format!("n{}", i + 1), self.behaviour(i)?)))
            .collect()
    }

    /// Static weights, as an operator who knows the slow node would set
    /// them: `slowdown` for every fast backend, 1 for the slow one. Only
    /// weighted round robin reads them.
    pub fn weights(&self) -> Vec<u32> {
        (0..self.backends)
            .map(|i| {
                if i == self.slow_node() {
                    1
                } else {
                    self.slowdown.min(super::MAX_WEIGHT)
                }
            })
            .collect()
    }

    /// Arrival times since the start: a seeded Poisson process.
    pub fn arrivals(&self) -> Vec<Duration> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut at = 0.0f64;
        (0..self.requests)
            .map(|_| {
                at += -(1.0 - rng.random::<f64>()).ln() / self.rate_per_second;
                Duration::from_secs_f64(at)
            })
            .collect()
    }
}

/// What one balancer did with the scenario.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub balancer: &'static str,
    /// Every call's latency (a failed call's counts too), ascending.
    pub latencies: Vec<Duration>,
    pub failed: u64,
    /// Calls each backend received.
    pub calls: Vec<u64>,
    pub slow_node: usize,
}

impl Outcome {
    /// The `q` quantile of latency (nearest rank), zero with no calls.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        self.latencies[rank - 1]
    }

    /// The share of calls the slow backend received.
    pub fn slow_share(&self) -> f64 {
        let total: u64 = self.calls.iter().sum();
        let slow = self.calls.get(self.slow_node).copied().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            slow as f64 / total as f64
        }
    }
}
