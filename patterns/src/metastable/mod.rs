//! Metastable failure: a short trigger, a retry loop, and an outage that
//! outlives its cause.
//!
//! Episode: 9, "Emergent Behavior in Distributed Systems" (also 8, 7)
//! Pattern: emergent behaviour / metastable failure, feedback loops
//! Try it:  cargo run -- demo metastable --svg target/figures
//! Test it: cargo test -p patterns metastable
//!
//! Bronson et al. ("Metastable Failures in Distributed Systems", HotOS
//! 2021) describe systems that run happily at 60 % load for months, then
//! fall over after a three-second blip and *stay* down long after the
//! blip is gone. The trigger is not the cause: the cause is a feedback
//! loop that the trigger switches on. Here it is the classic one. A
//! spike fills the server's queue until waiting takes longer than the
//! client's timeout; timed-out clients retry, but the server still serves
//! the abandoned attempts (it cannot tell they were abandoned), so each
//! request now costs up to `max_attempts` units of work. 60 % load times
//! four attempts is 240 %: the queue keeps growing with the spike long
//! over, every answer arrives too late, and goodput stays at zero. That
//! is [`Intervention::Naive`], the broken twin.
//!
//! Each intervention breaks the loop at a different link: a retry budget
//! caps the amplification, load shedding (a bounded queue) caps the wait
//! below the timeout, adaptive LIFO serves the fresh requests while the
//! stale ones wait, and extra capacity drains the backlog — but only if
//! it exceeds the *amplified* load, not the normal one (doubling is not
//! enough here; tripling is). The one thing to watch for: removing the
//! trigger does nothing, which is why restarts and rollbacks so often
//! fail to end these outages.
//!
//! Bounds: a run lasts at most [`MAX_DURATION`] of simulated time with at
//! most [`MAX_WORKERS`] workers and [`MAX_ARRIVAL_RATE`] requests per
//! second, and may generate at most [`MAX_ATTEMPTS_PER_RUN`] attempts
//! (peak rate × duration × max attempts), which also bounds the
//! (deliberately unbounded) queue of the twin and every event list, in at
//! most [`MAX_BUCKETS`] timeline buckets; trigger factors are at most
//! [`MAX_TRIGGER_FACTOR`], delays at most [`MAX_DELAY`], and the trigger
//! ends within the run.
//!
//! Simplified: one server pool, no network delay, exponential service
//! times, one retry budget shared by the whole client fleet, and servers
//! that cannot see client deadlines (deadline propagation, Episode 39, is
//! a fifth fix). Real metastable loops also run through caches going cold,
//! GC pressure and connection storms; the shape is the same.

mod demo;
mod sim;

pub use demo::metastable_demo;
pub use sim::{Bucket, MetastableReport, simulate};

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest simulated run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most workers a run may have, extra capacity included.
pub const MAX_WORKERS: u32 = 1_000;
/// The highest arrival rate accepted (fresh requests per second), spike included.
pub const MAX_ARRIVAL_RATE: f64 = 10_000.0;
/// The most timeline buckets a run may have (one `Bucket` and one sample
/// event each).
pub const MAX_BUCKETS: u128 = 10_000;
/// The largest trigger factor (spike or slowdown).
pub const MAX_TRIGGER_FACTOR: f64 = 100.0;
/// The longest service time, client timeout, retry backoff or adaptive
/// LIFO threshold accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The most attempts a run may generate: peak arrival rate × duration ×
/// max attempts. Episode 9's run needs under 200,000.
pub const MAX_ATTEMPTS_PER_RUN: f64 = 10_000_000.0;

/// What pushes the system out of its healthy state, for a while.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TriggerKind {
    /// Fresh arrivals multiplied by `factor` (a marketing email, a failover).
    LoadSpike { factor: f64 },
    /// Service times multiplied by `factor` (a GC pause, a noisy neighbour).
    Slowdown { factor: f64 },
}

/// A trigger and its window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub start: Duration,
    pub length: Duration,
}

impl Trigger {
    pub fn end(&self) -> Duration {
        self.start.saturating_add(self.length)
    }

    fn active(&self, now: Duration) -> bool {
        now >= self.start && now < self.end()
    }
}

/// The fix applied to the system (and the broken twin without one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Intervention {
    /// The broken twin: no mitigation — an unbounded FIFO, and every
    /// timed-out attempt retried.
    Naive,
    /// A retry budget shared by the clients (gRFC A6 token bucket).
    RetryBudget { max_tokens: f64, token_ratio: f64 },
    /// A bounded FIFO: arrivals beyond `queue_limit` are refused at once.
    LoadShedding { queue_limit: usize },
    /// Adaptive LIFO: newest first once the oldest waited `congested_after`.
    AdaptiveLifo { congested_after: Duration },
    /// `extra_workers` more workers from the end of the trigger for `hold`.
    Capacity { extra_workers: u32, hold: Duration },
}

impl Intervention {
    /// The interventions the episode compares, the twin first.
    pub fn episode_9() -> [Intervention; 5] {
        [
            Intervention::Naive,
            Intervention::RetryBudget {
                max_tokens: 10.0,
                token_ratio: 0.1,
            },
            Intervention::LoadShedding { queue_limit: 200 },
            Intervention::AdaptiveLifo {
                congested_after: Duration::from_millis(100),
            },
            Intervention::Capacity {
                extra_workers: 8,
                hold: Duration::from_secs(15),
            },
        ]
    }

    pub fn name(&self) -> String {
        match self {
            Intervention::Naive => "none (the naive twin)".into(),
            Intervention::RetryBudget { token_ratio, .. } => {
                format!("retry budget {:.0}%", token_ratio * 100.0)
            }
            Intervention::LoadShedding { queue_limit } => {
                format!("load shedding (queue {queue_limit})")
            }
            Intervention::AdaptiveLifo { .. } => "adaptive LIFO".into(),
            Intervention::Capacity {
                extra_workers,
                hold,
            } => {
                format!("+{extra_workers} workers for {} s", hold.as_secs())
            }
        }
    }
}

/// The system and its clients.
#[derive(Clone, Debug, PartialEq)]
pub struct MetastableConfig {
    pub workers: u32,
    /// Mean service time (exponential).
    pub service_time: Duration,
    /// Fresh requests per second (Poisson), outside the trigger.
    pub arrival_rate: f64,
    /// A client abandons an attempt after this long.
    pub client_timeout: Duration,
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    /// Pause before a retry; a uniform jitter of the same size is added.
    pub retry_backoff: Duration,
    pub trigger: Trigger,
    pub intervention: Intervention,
    pub duration: Duration,
    /// Width of the timeline's buckets.
    pub bucket: Duration,
    pub seed: u64,
}

impl MetastableConfig {
    /// Episode 9's system: 4 workers × 10 ms (400/s), 240/s offered (60 %),
    /// 1 s client timeout, 4 attempts; a 3× load spike from 10 s to 13 s;
    /// 60 s observed in 1 s buckets.
    pub fn episode_9(intervention: Intervention, seed: u64) -> Self {
        Self {
            workers: 4,
            service_time: Duration::from_millis(10),
            arrival_rate: 240.0,
            client_timeout: Duration::from_secs(1),
            max_attempts: 4,
            retry_backoff: Duration::from_millis(50),
            trigger: Trigger {
                kind: TriggerKind::LoadSpike { factor: 3.0 },
                start: Duration::from_secs(10),
                length: Duration::from_secs(3),
            },
            intervention,
            duration: Duration::from_secs(60),
            bucket: Duration::from_secs(1),
            seed,
        }
    }

    /// Capacity in requests per second outside the trigger.
    pub fn capacity(&self) -> f64 {
        f64::from(self.workers) / self.service_time.as_secs_f64()
    }

    /// Rejects a configuration that cannot run or would not stay bounded.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidExperiment { reason });
        let extra = match self.intervention {
            Intervention::Capacity { extra_workers, .. } => extra_workers,
            _ => 0,
        };
        let factor = match self.trigger.kind {
            TriggerKind::LoadSpike { factor } | TriggerKind::Slowdown { factor } => factor,
        };
        if self.workers == 0 || self.workers.saturating_add(extra) > MAX_WORKERS {
            return invalid(format!(
                "workers {} (+{extra} extra) must be in 1..={MAX_WORKERS}",
                self.workers
            ));
        }
        let congested_after = match self.intervention {
            Intervention::AdaptiveLifo { congested_after } => congested_after,
            _ => Duration::ZERO,
        };
        for (name, delay) in [
            ("service time", self.service_time),
            ("client timeout", self.client_timeout),
        ] {
            if delay.is_zero() || delay > MAX_DELAY {
                return invalid(format!("{name} {delay:?} must be in (0, {MAX_DELAY:?}]"));
            }
        }
        for (name, delay) in [
            ("retry backoff", self.retry_backoff),
            ("adaptive LIFO threshold", congested_after),
        ] {
            if delay > MAX_DELAY {
                return invalid(format!("{name} {delay:?} exceeds {MAX_DELAY:?}"));
            }
        }
        if !(factor.is_finite() && factor > 0.0 && factor <= MAX_TRIGGER_FACTOR) {
            return invalid(format!(
                "trigger factor {factor} must be in (0, {MAX_TRIGGER_FACTOR}]"
            ));
        }
        let peak = self.arrival_rate * factor.max(1.0);
        if !(self.arrival_rate > 0.0 && peak <= MAX_ARRIVAL_RATE) {
            return invalid(format!(
                "arrival rate {} (peak {peak}) must be in (0, {MAX_ARRIVAL_RATE}]",
                self.arrival_rate
            ));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return invalid(format!(
                "max attempts {} must be in 1..=10",
                self.max_attempts
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return invalid(format!(
                "duration {:?} must be in (0, {MAX_DURATION:?}]",
                self.duration
            ));
        }
        let attempts = peak * self.duration.as_secs_f64() * f64::from(self.max_attempts);
        if attempts > MAX_ATTEMPTS_PER_RUN {
            return invalid(format!(
                "up to {attempts:.0} attempts (peak rate × duration × max attempts) exceeds {MAX_ATTEMPTS_PER_RUN:.0}"
            ));
        }
        if self.bucket.is_zero() || self.bucket > self.duration {
            return invalid("bucket must be positive and no longer than the run".into());
        }
        let buckets = self.duration.as_nanos().div_ceil(self.bucket.as_nanos());
        if buckets > MAX_BUCKETS {
            return invalid(format!(
                "{buckets} buckets of {:?} exceeds {MAX_BUCKETS}",
                self.bucket
            ));
        }
        let trigger_end = self.trigger.start.checked_add(self.trigger.length);
        if self.trigger.length.is_zero() || trigger_end.is_none_or(|end| end > self.duration) {
            return invalid(format!(
                "the trigger ({:?} from {:?}) must last a while and end within the run ({:?})",
                self.trigger.length, self.trigger.start, self.duration
            ));
        }
        if let Intervention::Capacity { hold, .. } = self.intervention
            && hold > MAX_DURATION
        {
            return invalid(format!("capacity hold {hold:?} exceeds {MAX_DURATION:?}"));
        }
        if let Intervention::RetryBudget {
            max_tokens,
            token_ratio,
        } = self.intervention
        {
            resilience::retry::RetryBudget::new(max_tokens, token_ratio).map_err(|e| {
                Error::InvalidExperiment {
                    reason: e.to_string(),
                }
            })?;
        }
        if let Intervention::LoadShedding { queue_limit: 0 } = self.intervention {
            return invalid("a load-shedding queue needs room for at least one request".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
