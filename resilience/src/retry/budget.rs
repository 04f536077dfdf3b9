//! A retry budget: gRPC's retry throttling (gRFC A6).
//!
//! Backoff limits how fast one call retries; a budget limits how much of
//! the *traffic* may be retries. Every client shares a token bucket of
//! `max_tokens`: a failed call (with a retryable status) costs one token,
//! a successful one earns back `token_ratio`. Retries are allowed only
//! while more than half the tokens remain. When the backend is healthy
//! the bucket stays full and retries flow; when most calls fail it drains
//! within a few calls and the client stops multiplying load on a backend
//! that is already down — the retry storm's fuel is cut.
//!
//! With a ratio r, in steady failure the budget allows at most about one
//! retry per 1/r successes: `token_ratio = 0.1` caps retries near 10 % of
//! traffic once the bucket is drained.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Result, invalid};

/// Tokens are kept in thousandths, as gRFC A6 specifies (three decimal
/// places), so the bucket is one atomic integer.
const MILLI: f64 = 1000.0;

/// A shared retry token bucket.
#[derive(Debug)]
pub struct RetryBudget {
    max_milli: u32,
    ratio_milli: u32,
    tokens_milli: AtomicU32,
}

impl RetryBudget {
    /// gRPC's limits: `max_tokens` in (0, 1000], `token_ratio` in (0, 1].
    pub fn new(max_tokens: f64, token_ratio: f64) -> Result<Self> {
        if !(max_tokens > 0.0 && max_tokens <= 1000.0) {
            return Err(invalid(
                "retry",
                "budget.max_tokens",
                format!("must be in (0, 1000], got {max_tokens}"),
            ));
        }
        if !(token_ratio > 0.0 && token_ratio <= 1.0) {
            return Err(invalid(
                "retry",
                "budget.token_ratio",
                format!("must be in (0, 1], got {token_ratio}"),
            ));
        }
        let max_milli = (max_tokens * MILLI).round() as u32;
        Ok(Self {
            max_milli,
            ratio_milli: ((token_ratio * MILLI).round() as u32).max(1),
            tokens_milli: AtomicU32::new(max_milli),
        })
    }

    fn update(&self, change: impl Fn(u32) -> u32) {
        // Only fails if the closure returns None, which it never does.
        let _ = self
            .tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(change(t)));
    }

    /// A call failed with a retryable status.
    pub fn on_failure(&self) {
        self.update(|tokens| tokens.saturating_sub(1000));
    }

    /// A call succeeded.
    pub fn on_success(&self) {
        let max = self.max_milli;
        let ratio = self.ratio_milli;
        self.update(|tokens| (tokens + ratio).min(max));
    }

    /// Whether a retry may be sent now.
    pub fn allows_retry(&self) -> bool {
        self.tokens_milli.load(Ordering::Acquire) > self.max_milli / 2
    }

    pub fn tokens(&self) -> f64 {
        f64::from(self.tokens_milli.load(Ordering::Acquire)) / MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_budget_drains_on_failures_and_refills_on_successes() {
        let budget = RetryBudget::new(10.0, 0.5).expect("valid");
        assert!(budget.allows_retry());
        for _ in 0..5 {
            budget.on_failure();
        }
        assert_eq!(budget.tokens(), 5.0);
        assert!(!budget.allows_retry(), "exactly half is not more than half");
        budget.on_success();
        assert!(budget.allows_retry(), "5.5 > 5");
        for _ in 0..100 {
            budget.on_success();
        }
        assert_eq!(budget.tokens(), 10.0, "capped at max");
    }

    #[test]
    fn retry_budget_refuses_nonsense_limits() {
        for (max, ratio) in [
            (0.0, 0.1),
            (1001.0, 0.1),
            (10.0, 0.0),
            (10.0, 1.5),
            (f64::NAN, 0.1),
        ] {
            assert!(RetryBudget::new(max, ratio).is_err(), "{max} {ratio}");
        }
    }
}
