//! Adaptive concurrency: discover how much a backend can take, shed the rest.
//!
//! Episode: 42, "Backpressure" (also 7, "Phase Transitions": admission control, load shedding; 26, Little's law)
//! Pattern: resilience / adaptive concurrency limits, load shedding, client-side throttling
//! Try it:  cargo test -p resilience adaptive_limit_converges -- --nocapture
//! Test it: cargo test -p resilience adaptive
//!
//! Little's law: calls in flight = throughput × latency. A backend that
//! serves C calls at once in time S has throughput C / S; send it more
//! than C at once and the extra calls only queue — latency grows, the
//! throughput does not. So the right number of calls in flight is about
//! C, and the way to find it without being told is to watch latency: as
//! long as raising the limit leaves latency alone there is spare capacity;
//! when latency climbs above its no-load value, the excess is queueing.
//! Calls beyond the limit are *shed* at once (`ResourceExhausted`) rather
//! than joining a queue that only makes everyone late. Netflix's
//! concurrency-limits library made this practical; its three algorithms:
//!
//! - [`Aimd`]: additive increase while calls succeed, multiplicative
//!   decrease when one is dropped (TCP Reno's loss-based control);
//! - [`Vegas`]: estimates the queue from `limit × (1 − rtt_noload / rtt)`
//!   and keeps it between α and β (TCP Vegas' delay-based control);
//! - [`Gradient2`]: follows the ratio of a long-term to the current
//!   latency, plus a small queue allowance.
//!
//! [`throttle`] is the client-side counterpart (Google SRE book): a client
//! that sees the backend reject calls starts rejecting them locally, in
//! proportion, so an overloaded backend is not also flooded with work it
//! will only refuse.

mod aimd;
mod gradient;
mod layer;
pub mod throttle;
mod vegas;

pub use aimd::Aimd;
pub use gradient::Gradient2;
pub use layer::{AdaptiveConcurrencyLayer, AdaptiveConcurrencyService, LimiterHandle};
pub use throttle::{AdaptiveThrottle, ThrottleLayer};
pub use vegas::Vegas;

use std::time::Duration;

use crate::error::{Result, invalid};

/// One finished call, as a limit algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// How long the call took.
    pub rtt: Duration,
    /// Calls in flight when it started (itself included).
    pub inflight: usize,
    /// The call was dropped: timed out, refused for overload.
    pub dropped: bool,
}

/// A concurrency limit that learns from samples.
pub trait LimitAlgorithm: Send + std::fmt::Debug {
    fn limit(&self) -> usize;
    fn update(&mut self, sample: Sample);
}

/// Bounds every algorithm shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitBounds {
    pub initial: usize,
    pub min: usize,
    pub max: usize,
}

impl LimitBounds {
    pub fn new(initial: usize, min: usize, max: usize) -> Result<Self> {
        if min == 0 {
            return Err(invalid("adaptive concurrency", "min", "must be at least 1"));
        }
        if max < min || max > 100_000 {
            return Err(invalid(
                "adaptive concurrency",
                "max",
                format!("must be in {min}..=100000, got {max}"),
            ));
        }
        if !(min..=max).contains(&initial) {
            return Err(invalid(
                "adaptive concurrency",
                "initial",
                format!("must be in {min}..={max}, got {initial}"),
            ));
        }
        Ok(Self { initial, min, max })
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(self.min as f64, self.max as f64)
    }
}

#[cfg(test)]
mod tests;
