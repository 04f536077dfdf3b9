//! Rate limiting: at most so many calls per unit of time.
//!
//! Episode: 41, "Rate Limiting"
//! Pattern: resilience / rate limiting (token bucket, GCRA, keyed)
//! Try it:  cargo bench -p resilience --bench rate_limiter
//! Test it: cargo test -p resilience rate_limit
//!
//! A rate limit protects a service from being asked for more than it
//! promised to serve — by a runaway client, a retry storm, a tenant that
//! outgrew its plan. Three limiters:
//!
//! - [`TokenBucket`]: tokens drip in at a fixed rate up to a burst size;
//!   a call spends one. The textbook picture.
//! - [`Gcra`]: the Generic Cell Rate Algorithm — the same admissions as a
//!   token bucket, but kept as one number, the *theoretical arrival time*
//!   of the next call, updated with a single atomic compare-and-swap. No
//!   lock, no refill arithmetic.
//! - [`KeyedGcra`]: one GCRA per key (tenant, client id), so one noisy
//!   tenant exhausts only its own allowance.
//!
//! [`RateLimitLayer`] puts any of them in front of a service. Clones of
//! the layer share one limiter — unlike tower's own `RateLimit`, whose
//! clones each get a fresh allowance, silently multiplying the limit.
//!
//! Time comes from `tokio::time` by default, so limits follow simulated
//! and paused time in tests; [`clock::TscClock`] trades that for speed.

pub mod clock;
mod gcra;
mod keyed;
mod layer;
mod token_bucket;

pub use clock::{Clock, TokioClock, TscClock};
pub use gcra::Gcra;
pub use keyed::KeyedGcra;
pub use layer::{RateLimitLayer, RateLimitService};
pub use token_bucket::TokenBucket;

use std::time::Duration;

use crate::error::{Result, invalid};

/// How much traffic a limiter admits: one call per `period` on average,
/// and up to `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    /// `n` calls per second, bursting to `n`.
    pub fn per_second(n: u32) -> Result<Self> {
        if n == 0 {
            return Err(invalid("rate limit", "per_second", "must be at least 1"));
        }
        Self::new(Duration::from_secs(1) / n, n)
    }

    pub fn new(period: Duration, burst: u32) -> Result<Self> {
        if period.is_zero() || period > Duration::from_secs(24 * 3600) {
            return Err(invalid(
                "rate limit",
                "period",
                format!("must be in (0, 24 h], got {period:?}"),
            ));
        }
        if burst == 0 {
            return Err(invalid("rate limit", "burst", "must be at least 1"));
        }
        Ok(Self { period, burst })
    }
}

/// Something that admits or refuses a call now; `Err` says how long
/// until it would admit one.
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Checks one call; `key` identifies the caller for keyed limiters.
    fn check(&self, key: Option<&str>) -> Result<(), Duration>;
}

#[cfg(test)]
mod tests;
