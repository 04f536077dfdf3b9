//! AIMD: additive increase, multiplicative decrease.

use super::{LimitAlgorithm, LimitBounds, Sample};
use crate::error::{Result, invalid};

/// Grows by one per successful sample while the limit is in use; cuts by
/// `backoff_ratio` when a call is dropped or slower than `timeout`.
#[derive(Clone, Debug)]
pub struct Aimd {
    bounds: LimitBounds,
    backoff_ratio: f64,
    timeout: std::time::Duration,
    limit: f64,
}

impl Aimd {
    /// Netflix's defaults: backoff 0.9, timeout 5 s.
    pub fn new(bounds: LimitBounds) -> Self {
        Self {
            bounds,
            backoff_ratio: 0.9,
            timeout: std::time::Duration::from_secs(5),
            limit: bounds.initial as f64,
        }
    }

    pub fn with_backoff(
        mut self,
        backoff_ratio: f64,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        if !(0.5..1.0).contains(&backoff_ratio) {
            return Err(invalid(
                "adaptive concurrency",
                "backoff_ratio",
                format!("must be in [0.5, 1), got {backoff_ratio}"),
            ));
        }
        if timeout.is_zero() {
            return Err(invalid(
                "adaptive concurrency",
                "timeout",
                "must be positive",
            ));
        }
        self.backoff_ratio = backoff_ratio;
        self.timeout = timeout;
        Ok(self)
    }
}

impl LimitAlgorithm for Aimd {
    fn limit(&self) -> usize {
        self.limit as usize
    }

    fn update(&mut self, sample: Sample) {
        if sample.dropped || sample.rtt > self.timeout {
            self.limit *= self.backoff_ratio;
        } else if sample.inflight * 2 >= self.limit as usize {
            // Only grow a limit that is actually being used; an idle
            // client would otherwise inflate it without evidence.
            self.limit += 1.0;
        }
        self.limit = self.bounds.clamp(self.limit);
    }
}
