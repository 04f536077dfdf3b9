//! The fixed-timeout detector: suspect after T of silence.
//!
//! The detector every system starts with (and many keep: Raft's election
//! timeout, a load balancer's health check). Its one number carries the
//! whole trade-off: a small T suspects a peer that merely paused, a large
//! T leaves a crashed peer trusted for T. It knows nothing about how
//! regular this peer's heartbeats have been, so T must be set for the
//! worst network it will ever meet.

use std::time::Duration;

use tokio::time::Instant;

use super::{FailureDetector, check_duration};
use crate::{Error, Result};

/// Suspects a peer once nothing has arrived for longer than `timeout`.
#[derive(Clone, Debug)]
pub struct FixedTimeout {
    timeout: Duration,
    last: Option<Instant>,
}

impl FixedTimeout {
    /// A detector with the given timeout: more than zero, at most
    /// [`super::MAX_DURATION`].
    pub fn new(timeout: Duration) -> Result<Self> {
        check_duration("timeout", timeout)?;
        Ok(Self {
            timeout,
            last: None,
        })
    }

    /// A timeout of `multiple` heartbeat intervals (e.g. 3 × 1 s), the way
    /// timeouts are usually specified. `multiple` must be finite and
    /// positive.
    pub fn intervals(interval: Duration, multiple: f64) -> Result<Self> {
        let invalid = || Error::InvalidDetectorSetting {
            setting: "timeout multiple",
            value: multiple.to_string(),
            expected: "a finite number of intervals above zero",
        };
        if !multiple.is_finite() || multiple <= 0.0 {
            return Err(invalid());
        }
        let timeout = Duration::try_from_secs_f64(interval.as_secs_f64() * multiple)
            .map_err(|_| invalid())?;
        Self::new(timeout)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time since the last heartbeat (or start), if the clock has started.
    pub fn silence(&self, now: Instant) -> Option<Duration> {
        self.last.map(|last| now.saturating_duration_since(last))
    }
}

impl FailureDetector for FixedTimeout {
    fn start(&mut self, at: Instant) {
        self.last = Some(at);
    }

    fn heartbeat(&mut self, at: Instant) {
        // A heartbeat stamped before the last one says nothing new.
        if self.last.is_none_or(|last| at >= last) {
            self.last = Some(at);
        }
    }

    fn suspect(&self, now: Instant) -> bool {
        self.silence(now)
            .is_some_and(|silence| silence > self.timeout)
    }

    fn suspicion_time(&self) -> Option<Instant> {
        // Strictly after `last + timeout`; one nanosecond is the smallest
        // step the clock can take.
        self.last?
            .checked_add(self.timeout + Duration::from_nanos(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_detector_timeout_suspects_only_after_the_timeout() {
        let t0 = Instant::now();
        let mut detector = FixedTimeout::new(Duration::from_secs(3)).expect("valid");
        assert!(
            !detector.suspect(t0 + Duration::from_secs(100)),
            "not started"
        );
        detector.heartbeat(t0);
        assert!(!detector.suspect(t0 + Duration::from_secs(3)));
        assert!(detector.suspect(t0 + Duration::from_millis(3_001)));
        let at = detector.suspicion_time().expect("started");
        assert!(!detector.suspect(at - Duration::from_nanos(1)) && detector.suspect(at));
        // A late, out-of-order heartbeat does not move the clock back.
        detector.heartbeat(t0 + Duration::from_secs(2));
        detector.heartbeat(t0 + Duration::from_secs(1));
        assert!(detector.suspect(t0 + Duration::from_millis(5_001)));
    }

    #[test]
    fn failure_detector_timeout_refuses_absurd_settings() {
        for multiple in [f64::NAN, -1.0, 0.0, f64::INFINITY, 1e30] {
            let refused = FixedTimeout::intervals(Duration::from_secs(1), multiple);
            assert!(
                matches!(refused, Err(Error::InvalidDetectorSetting { .. })),
                "{multiple}: {refused:?}"
            );
        }
        assert!(FixedTimeout::new(Duration::ZERO).is_err());
        assert!(FixedTimeout::new(Duration::MAX).is_err());
        let three = FixedTimeout::intervals(Duration::from_secs(1), 3.0).expect("valid");
        assert_eq!(three.timeout(), Duration::from_secs(3));
    }
}
