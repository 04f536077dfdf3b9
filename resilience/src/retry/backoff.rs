//! How long to wait before each retry: exponential backoff, and jitter.
//!
//! Exponential backoff alone spaces one client's retries out; it does
//! nothing for a thousand clients that failed at the same instant — they
//! retry at the same instants too, in synchronized waves that hit the
//! recovering backend like the original spike (Episode 8). Jitter
//! randomizes the wait (AWS Architecture Blog, "Exponential Backoff and
//! Jitter", 2015):
//!
//! - `None`: `d = min(max, initial × multiplier^(n−1))` — the broken twin;
//! - `Full`: uniform in `[0, d]` — least total work, most spread;
//! - `Equal`: `d/2 + uniform[0, d/2]` — never retries immediately;
//! - `Decorrelated`: `min(max, uniform[initial, 3 × previous])` — grows
//!   from the previous wait rather than the attempt number.

use std::time::Duration;

use rand::Rng;

use crate::error::{Result, invalid};

/// The jitter strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
    Equal,
    Decorrelated,
}

/// Exponential backoff with jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// 50 ms doubling up to 5 s, full jitter.
    pub fn new() -> Self {
        Self {
            initial: Duration::from_millis(50),
            multiplier: 2.0,
            max: Duration::from_secs(5),
            jitter: Jitter::Full,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.initial.is_zero() {
            return Err(invalid("retry", "backoff.initial", "must be positive"));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(invalid(
                "retry",
                "backoff.multiplier",
                format!("must be a finite number ≥ 1, got {}", self.multiplier),
            ));
        }
        if self.max < self.initial {
            return Err(invalid(
                "retry",
                "backoff.max",
                "must be at least the initial backoff",
            ));
        }
        Ok(())
    }

    /// The un-jittered delay before retry number `retry` (1-based).
    pub fn exponential(&self, retry: u32) -> Duration {
        let grown = self.initial.as_secs_f64()
            * self.multiplier.powi(retry.saturating_sub(1).min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// The delay before retry number `retry`, given the previous delay
    /// (used by decorrelated jitter; pass `initial` before the first).
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut impl Rng) -> Duration {
        let cap = self.exponential(retry);
        let uniform = |rng: &mut dyn rand::RngCore, low: f64, high: f64| {
            if high <= low {
                low
            } else {
                rng.random_range(low..=high)
            }
        };
        let seconds = match self.jitter {
            Jitter::None => cap.as_secs_f64(),
            Jitter::Full => uniform(rng, 0.0, cap.as_secs_f64()),
            Jitter::Equal => cap.as_secs_f64() / 2.0 + uniform(rng, 0.0, cap.as_secs_f64() / 2.0),
            Jitter::Decorrelated => {
                let high = (previous.as_secs_f64() * 3.0).max(self.initial.as_secs_f64());
                uniform(rng, self.initial.as_secs_f64(), high).min(self.max.as_secs_f64())
            }
        };
        Duration::from_secs_f64(seconds)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            jitter,
        }
    }

    #[test]
    fn retry_backoff_grows_exponentially_to_the_cap() {
        let plain = backoff(Jitter::None);
        let delays: Vec<u128> = (1..=6).map(|n| plain.exponential(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn retry_jitter_stays_within_its_bounds() {
        let mut rng = SmallRng::seed_from_u64(7);
        for retry in 1..=8 {
            let cap = backoff(Jitter::None).exponential(retry);
            for _ in 0..200 {
                let full = backoff(Jitter::Full).delay(retry, cap, &mut rng);
                assert!(full <= cap);
                let equal = backoff(Jitter::Equal).delay(retry, cap, &mut rng);
                assert!(equal >= cap / 2 && equal <= cap);
                let decorrelated = backoff(Jitter::Decorrelated).delay(
                    retry,
                    Duration::from_millis(300),
                    &mut rng,
                );
                assert!(
                    decorrelated >= Duration::from_millis(100)
                        && decorrelated <= Duration::from_millis(900)
                );
            }
        }
        assert_eq!(
            backoff(Jitter::None).delay(3, Duration::ZERO, &mut rng),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn retry_full_jitter_spreads_a_synchronized_crowd() {
        let mut rng = SmallRng::seed_from_u64(1);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| backoff(Jitter::Full).delay(3, Duration::ZERO, &mut rng))
            .collect();
        let mean = waits.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
        assert!(
            (mean - 0.2).abs() < 0.02,
            "uniform over [0, 400 ms] averages 200 ms: {mean}"
        );
        let mut distinct: Vec<u128> = waits.iter().map(Duration::as_micros).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 900, "no two clients wait the same");
    }
}
