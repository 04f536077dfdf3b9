//! Rate-limited sampling: at most N new traces per second, whatever the
//! traffic.
//!
//! A ratio keeps a fixed share, so the cost of tracing grows with load —
//! and the busiest moment, when tracing is most wanted, is when a ratio
//! tuned for a quiet day floods the collector. A rate limit keeps the
//! cost flat: a token bucket of `per_second` tokens refilled continuously,
//! holding at most one second's worth (at least one), one token per trace.
//!
//! It decides for roots only: wrap it in `Sampler::ParentBased` (the CLI's
//! `parentbased_ratelimited`) so that every span below a root follows the
//! root's decision. On its own it would spend a token per span and cut
//! traces in half whenever the bucket ran dry mid-trace.
//!
//! Bounds: `per_second` is at most [`MAX_TRACES_PER_SECOND`]; the bucket
//! holds at most [`MAX_BURST`] tokens; the state is two numbers.

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};
use tokio::time::Instant;

use crate::{Error, Result};

/// The highest rate accepted.
pub const MAX_TRACES_PER_SECOND: f64 = 1_000_000.0;
/// The most traces admitted back to back after a quiet spell.
pub const MAX_BURST: f64 = 10_000.0;

/// A token bucket, time passed in.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket admitting `per_second` on average.
    pub fn new(per_second: f64) -> Result<Self> {
        if !(per_second > 0.0 && per_second <= MAX_TRACES_PER_SECOND) {
            return Err(Error::InvalidSampler {
                setting: format!("rate {per_second}"),
                reason: format!(
                    "traces per second must be above 0 and at most {MAX_TRACES_PER_SECOND}"
                ),
            });
        }
        let capacity = per_second.clamp(1.0, MAX_BURST);
        Ok(Self {
            per_second,
            capacity,
            tokens: capacity,
            last: None,
        })
    }

    /// Takes a token at `now` if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Samples at most `per_second` new traces per second. Clones share one
/// bucket: the SDK clones samplers, and a clone must not double the rate.
#[derive(Clone, Debug)]
pub struct RateLimitedSampler {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl RateLimitedSampler {
    pub fn new(per_second: f64) -> Result<Self> {
        Ok(Self {
            bucket: Arc::new(Mutex::new(TokenBucket::new(per_second)?)),
        })
    }
}

impl ShouldSample for RateLimitedSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        // Simplified: one mutex around two floats. Sampling runs once per
        // trace, not per span, so it is far from the hot path; a lock-free
        // GCRA (see resilience's rate limiter) would do the same job.
        let admitted = self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_take(Instant::now());
        SamplingResult {
            decision: if admitted {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent_context
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Episode 31. A burst of a thousand traces at one instant gets the
    /// bucket's worth; a second later, one second's worth more.
    #[test]
    fn sampling_rate_limited_admits_rate_per_second_under_any_load() {
        let mut bucket = TokenBucket::new(10.0).expect("valid rate");
        let start = Instant::now();
        let burst = (0..1000).filter(|_| bucket.try_take(start)).count();
        assert_eq!(burst, 10);
        let later = start + Duration::from_secs(1);
        let next = (0..1000).filter(|_| bucket.try_take(later)).count();
        assert_eq!(next, 10);
        // A steady 100 calls/s for 10 s, on a 10/s limit: ~10 per second.
        let mut admitted = 0;
        for i in 1..=1000u64 {
            if bucket.try_take(later + Duration::from_millis(10 * i)) {
                admitted += 1;
            }
        }
        assert!((99..=101).contains(&admitted), "{admitted}");
        // Quiet for a minute: the bucket holds one second's worth, no more.
        let quiet = later + Duration::from_secs(70);
        assert_eq!((0..1000).filter(|_| bucket.try_take(quiet)).count(), 10);
    }

    /// A rate below one per second still admits whole traces (a bucket of
    /// one); absurd rates are refused.
    #[test]
    fn sampling_rate_limited_refuses_absurd_rates() {
        let mut slow = TokenBucket::new(0.5).expect("valid rate");
        let start = Instant::now();
        assert!(slow.try_take(start));
        assert!(!slow.try_take(start + Duration::from_secs(1)));
        assert!(slow.try_take(start + Duration::from_secs(2)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(
                matches!(TokenBucket::new(bad), Err(Error::InvalidSampler { .. })),
                "{bad}"
            );
        }
    }
}
