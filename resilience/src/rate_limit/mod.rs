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
//!   tenant exhausts only its own allowance. Keys come from clients, so
//!   the table is bounded: `max_keys` × [`keyed::BYTES_PER_KEY`] bytes,
//!   least recently used keys evicted in O(1).
//!
//! [`RateLimitLayer`] puts any of them in front of a service. Clones of
//! the layer share one limiter — unlike tower's own `RateLimit`, whose
//! clones each get a fresh allowance, silently multiplying the limit.
//!
//! Time comes from `tokio::time` by default, so limits follow simulated
//! and paused time in tests; [`clock::TscClock`] trades that for speed.

pub mod clock;
mod gcra;
pub mod keyed;
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
        // Pitfall: the burst tolerance, period × (burst − 1), is kept in
        // nanoseconds in a u64. An hour's period with a burst over ~5.1
        // million overflows it, and a wrapped tolerance admits garbage.
        let tolerance = (period.as_nanos() as u64).checked_mul(u64::from(burst - 1));
        if tolerance.is_none_or(|t| t > MAX_TOLERANCE_NANOS) {
            return Err(invalid(
                "rate limit",
                "burst",
                format!(
                    "period × (burst − 1) must stay under {} years; got {period:?} × {}",
                    MAX_TOLERANCE_NANOS / 1_000_000_000 / 86_400 / 365,
                    burst - 1
                ),
            ));
        }
        Ok(Self { period, burst })
    }

    /// The period in nanoseconds (at least 1).
    pub(crate) fn emission_nanos(&self) -> u64 {
        (self.period.as_nanos() as u64).max(1)
    }

    /// How far ahead of now the limiter may run: period × (burst − 1).
    /// (Saturating: the fields are public, so a quota built without
    /// [`Quota::new`] must not panic here either.)
    pub(crate) fn tolerance_nanos(&self) -> u64 {
        self.emission_nanos()
            .saturating_mul(u64::from(self.burst.saturating_sub(1)))
            .min(MAX_TOLERANCE_NANOS)
    }
}

/// The largest burst tolerance a quota may have: about 146 years, which
/// leaves room in a u64 of nanoseconds for the clock itself to advance.
const MAX_TOLERANCE_NANOS: u64 = u64::MAX / 4;

/// Something that admits or refuses a call now; `Err` says how long
/// until it would admit one.
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Checks one call; `key` identifies the caller for keyed limiters.
    fn check(&self, key: Option<&str>) -> Result<(), Duration>;
}

#[cfg(test)]
mod tests;
