//! Circuit breaker configuration, with Resilience4j's names and meanings.

use std::time::Duration;

use crate::classify::GrpcClassifier;
use crate::error::{Result, invalid};

/// Which recent calls the closed-state failure rate is computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `n` whole seconds.
    Time(u32),
}

/// When to trip, how long to stay open, how to probe.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    pub name: String,
    /// Open when this share of calls (percent, 0 < x ≤ 100) failed.
    pub failure_rate_threshold: f64,
    /// Open when this share of calls (percent) was slow; `None` disables
    /// slow-call tracking (and the clock reads it costs).
    pub slow_call_rate_threshold: Option<f64>,
    /// A call slower than this is slow.
    pub slow_call_duration_threshold: Duration,
    pub sliding_window: SlidingWindow,
    /// No verdict until at least this many calls are in the window.
    pub minimum_number_of_calls: u32,
    /// How long to stay open before probing.
    pub wait_duration_in_open_state: Duration,
    /// Each re-opening after a failed probe multiplies the wait (≥ 1).
    pub wait_multiplier: f64,
    /// …up to this.
    pub max_wait_duration_in_open_state: Duration,
    /// Exactly this many probe calls are let through in half-open.
    pub permitted_calls_in_half_open_state: u32,
    /// Re-open if the probes have not all finished within this.
    pub max_wait_duration_in_half_open_state: Option<Duration>,
    pub classifier: GrpcClassifier,
}

impl BreakerConfig {
    /// Resilience4j's defaults: 50 % failures over the last 100 calls, at
    /// least 100 calls, 60 s open, 10 probes; slow calls not tracked.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: None,
            slow_call_duration_threshold: Duration::from_secs(60),
            sliding_window: SlidingWindow::Count(100),
            minimum_number_of_calls: 100,
            wait_duration_in_open_state: Duration::from_secs(60),
            wait_multiplier: 1.0,
            max_wait_duration_in_open_state: Duration::from_secs(60),
            permitted_calls_in_half_open_state: 10,
            max_wait_duration_in_half_open_state: None,
            classifier: GrpcClassifier::default(),
        }
    }

    /// Refuses values the state machine cannot honour.
    pub fn validate(&self) -> Result<()> {
        let breaker = "circuit breaker";
        let rate_ok = |rate: f64| rate > 0.0 && rate <= 100.0;
        if !rate_ok(self.failure_rate_threshold) {
            return Err(invalid(
                breaker,
                "failure_rate_threshold",
                format!("must be in (0, 100], got {}", self.failure_rate_threshold),
            ));
        }
        if let Some(rate) = self.slow_call_rate_threshold {
            if !rate_ok(rate) {
                return Err(invalid(
                    breaker,
                    "slow_call_rate_threshold",
                    format!("must be in (0, 100], got {rate}"),
                ));
            }
            if self.slow_call_duration_threshold.is_zero() {
                return Err(invalid(
                    breaker,
                    "slow_call_duration_threshold",
                    "must be positive",
                ));
            }
        }
        match self.sliding_window {
            SlidingWindow::Count(0) | SlidingWindow::Time(0) => {
                return Err(invalid(
                    breaker,
                    "sliding_window",
                    "must hold at least one call or second",
                ));
            }
            SlidingWindow::Count(n) if n > 100_000 => {
                return Err(invalid(breaker, "sliding_window", "count above 100000"));
            }
            SlidingWindow::Time(n) if n > 3_600 => {
                return Err(invalid(breaker, "sliding_window", "longer than an hour"));
            }
            _ => {}
        }
        if self.minimum_number_of_calls == 0 {
            return Err(invalid(
                breaker,
                "minimum_number_of_calls",
                "must be at least 1",
            ));
        }
        if self.wait_duration_in_open_state.is_zero() {
            return Err(invalid(
                breaker,
                "wait_duration_in_open_state",
                "must be positive",
            ));
        }
        if !(self.wait_multiplier >= 1.0 && self.wait_multiplier.is_finite()) {
            return Err(invalid(
                breaker,
                "wait_multiplier",
                format!("must be a finite number ≥ 1, got {}", self.wait_multiplier),
            ));
        }
        if self.max_wait_duration_in_open_state < self.wait_duration_in_open_state {
            return Err(invalid(
                breaker,
                "max_wait_duration_in_open_state",
                "must be at least the initial wait",
            ));
        }
        if self.permitted_calls_in_half_open_state == 0 {
            return Err(invalid(
                breaker,
                "permitted_calls_in_half_open_state",
                "must be at least 1",
            ));
        }
        if self
            .max_wait_duration_in_half_open_state
            .is_some_and(|d| d.is_zero())
        {
            return Err(invalid(
                breaker,
                "max_wait_duration_in_half_open_state",
                "must be positive when set",
            ));
        }
        Ok(())
    }

    /// Whether results need timing (slow calls) or the clock (time window).
    pub(crate) fn needs_clock(&self) -> bool {
        self.slow_call_rate_threshold.is_some()
            || matches!(self.sliding_window, SlidingWindow::Time(_))
    }
}
