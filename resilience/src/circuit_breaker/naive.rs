//! The broken twin: a breaker without a half-open limit.
//!
//! It opens after consecutive failures and waits like the real one. But
//! when the wait is over it simply lets *everything* through until the
//! first result decides. Every caller that piled up during the outage
//! arrives at once at a backend that has just come back — often knocking
//! it straight over again. The real breaker admits exactly
//! `permitted_calls_in_half_open_state` probes.

use std::time::Duration;

use tokio::time::Instant;

/// A deliberately naive breaker, for demos and tests only.
#[derive(Clone, Debug)]
pub struct NaiveCircuitBreaker {
    failures_to_open: u32,
    wait: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl NaiveCircuitBreaker {
    pub fn new(failures_to_open: u32, wait: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            wait,
            consecutive_failures: 0,
            open_until: None,
        }
    }

    /// Whether a call may go ahead now. Pitfall: after the wait, `true`
    /// for every caller, not just a few probes.
    pub fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }

    pub fn record(&mut self, success: bool, now: Instant) {
        if success {
            self.consecutive_failures = 0;
            self.open_until = None;
        } else {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= self.failures_to_open {
                self.open_until = Some(now + self.wait);
            }
        }
    }
}
