//! The phi accrual failure detector (Hayashibara, Défago, Yared and
//! Katayama, "The φ Accrual Failure Detector", SRDS 2004).
//!
//! Instead of a verdict, the detector outputs a level of suspicion that
//! accrues with silence:
//!
//! ```text
//! phi(t_now) = -log10( 1 - F(t_now - t_last) )
//! ```
//!
//! where `F` is the CDF of a normal distribution fitted to the last N
//! inter-arrival times. `1 - F(t)` is the probability that a live peer's
//! next heartbeat takes longer than `t`; phi = 1 means a 10% chance that we
//! are wrong to suspect now, phi = 3 a 0.1% chance, phi = 8 one in 10^8.
//! The application picks the threshold, and the detector adapts the
//! *timeout* that threshold implies to how regular this peer's heartbeats
//! actually are.
//!
//! Two additions from production (Akka, then Cassandra and others) keep the
//! normal fit from being too sure of itself:
//!
//! - `min_std_deviation`: a floor under the fitted spread. On a quiet LAN
//!   heartbeats can be so regular that the fit predicts the next one to the
//!   microsecond, and a 5 ms hiccup would be "impossible" — phi 100.
//! - `acceptable_heartbeat_pause`: added to the mean. A normal fit has
//!   no room for GC pauses and other stalls (heavy tails); this buys a
//!   fixed allowance for them, at the same price in detection time.
//!
//! Bounded: the window holds at most `max_sample_size` ≤
//! [`super::MAX_WINDOW`] intervals; every method is O(1).

use std::time::Duration;

use tokio::time::Instant;

use super::window::IntervalWindow;
use super::{FailureDetector, MAX_PHI_THRESHOLD, MAX_WINDOW, check_duration, normal};
use crate::{Error, Result};

/// How a phi accrual detector is tuned. The defaults are Akka's cluster
/// failure detector's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiConfig {
    /// Suspect at or above this phi: finite, in (0, [`MAX_PHI_THRESHOLD`]].
    pub threshold: f64,
    /// Inter-arrival times kept: 1..=[`MAX_WINDOW`].
    pub max_sample_size: usize,
    /// Floor under the fitted standard deviation; above zero.
    pub min_std_deviation: Duration,
    /// Added to the fitted mean: silence tolerated for free.
    pub acceptable_heartbeat_pause: Duration,
    /// The interval assumed before any has been measured; above zero.
    pub first_heartbeat_estimate: Duration,
}

impl Default for PhiConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            max_sample_size: 1_000,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_secs(3),
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

impl PhiConfig {
    /// Akka's defaults with another threshold.
    pub fn with_threshold(threshold: f64) -> Self {
        Self {
            threshold,
            ..Self::default()
        }
    }

    /// Refuses settings no detector can work with.
    pub fn validate(&self) -> Result<()> {
        if !self.threshold.is_finite()
            || self.threshold <= 0.0
            || self.threshold > MAX_PHI_THRESHOLD
        {
            return Err(Error::InvalidDetectorSetting {
                setting: "phi threshold",
                value: self.threshold.to_string(),
                // Phi 100 claims a one-in-10^100 chance of being wrong:
                // no normal fit to real heartbeats supports more.
                expected: "a finite phi in (0, 100]",
            });
        }
        if self.max_sample_size == 0 || self.max_sample_size > MAX_WINDOW {
            return Err(Error::InvalidDetectorSetting {
                setting: "max sample size",
                value: self.max_sample_size.to_string(),
                expected: "1..=10000 inter-arrival times",
            });
        }
        check_duration("min std deviation", self.min_std_deviation)?;
        check_duration("first heartbeat estimate", self.first_heartbeat_estimate)?;
        if !self.acceptable_heartbeat_pause.is_zero() {
            check_duration(
                "acceptable heartbeat pause",
                self.acceptable_heartbeat_pause,
            )?;
        }
        Ok(())
    }
}

/// The phi accrual detector for one peer.
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    config: PhiConfig,
    /// `phi(y) = threshold` at this many standard deviations past the mean:
    /// computed once, so the suspicion time costs O(1).
    threshold_y: f64,
    intervals: IntervalWindow,
    last: Option<Instant>,
    /// False right after `start`: the silence before a peer's first
    /// heartbeat is not one of its heartbeat intervals.
    measuring: bool,
}

impl PhiAccrual {
    pub fn new(config: PhiConfig) -> Result<Self> {
        config.validate()?;
        let mut intervals = IntervalWindow::new(config.max_sample_size);
        // Akka's bootstrap: two samples a quarter of the estimate either
        // side of it, so the very first silence is judged against a
        // plausible mean and a generous spread instead of nothing.
        let estimate = config.first_heartbeat_estimate;
        intervals.push(estimate - estimate / 4);
        intervals.push(estimate + estimate / 4);
        Ok(Self {
            config,
            threshold_y: normal::y_at_phi(config.threshold),
            intervals,
            last: None,
            measuring: false,
        })
    }

    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// The fitted distribution the next silence is judged against, in
    /// seconds: mean (with the acceptable pause) and floored deviation.
    pub fn fitted(&self) -> (f64, f64) {
        let mean =
            self.intervals.mean_secs() + self.config.acceptable_heartbeat_pause.as_secs_f64();
        let std_dev = self
            .intervals
            .std_dev_secs()
            .max(self.config.min_std_deviation.as_secs_f64());
        (mean, std_dev)
    }

    /// Intervals measured so far (bootstrap samples included), at most the
    /// window's size.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// Suspicion now: 0 before the clock has started, then growing with
    /// every moment of silence.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let silence = now.saturating_duration_since(last).as_secs_f64();
        let (mean, std_dev) = self.fitted();
        normal::phi((silence - mean) / std_dev)
    }

    /// Time since the last heartbeat (or start), if the clock has started.
    pub fn silence(&self, now: Instant) -> Option<Duration> {
        self.last.map(|last| now.saturating_duration_since(last))
    }
}

impl FailureDetector for PhiAccrual {
    fn start(&mut self, at: Instant) {
        self.last = Some(at);
        self.measuring = false;
    }

    fn heartbeat(&mut self, at: Instant) {
        match self.last {
            Some(last) if at < last => return,
            Some(last) if self.measuring => self.intervals.push(at - last),
            _ => {}
        }
        self.last = Some(at);
        self.measuring = true;
    }

    fn suspect(&self, now: Instant) -> bool {
        self.phi(now) >= self.config.threshold
    }

    fn suspicion_time(&self) -> Option<Instant> {
        let last = self.last?;
        let (mean, std_dev) = self.fitted();
        // phi is increasing in the silence, so it reaches the threshold
        // exactly once: at mean + y·σ. A tiny threshold can put that before
        // the last heartbeat; then the peer is suspected at once.
        let silence = (mean + self.threshold_y * std_dev).max(0.0);
        last.checked_add(Duration::try_from_secs_f64(silence).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> PhiConfig {
        PhiConfig {
            threshold: 3.0,
            max_sample_size: 100,
            min_std_deviation: Duration::from_millis(10),
            acceptable_heartbeat_pause: Duration::ZERO,
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }

    /// Episode 13. Heartbeats every 1 s ± 50 ms: phi is small just after a
    /// heartbeat, passes 1 when a late one is 10% likely, and the
    /// suspicion time is where phi crosses the threshold.
    #[test]
    fn failure_detector_phi_grows_with_silence_and_crosses_at_its_deadline() {
        let t0 = Instant::now();
        let mut detector = PhiAccrual::new(quiet()).expect("valid");
        assert_eq!(
            detector.phi(t0 + Duration::from_secs(60)),
            0.0,
            "not started"
        );
        let mut at = t0;
        for i in 0..200u64 {
            at += Duration::from_millis(if i % 2 == 0 { 950 } else { 1_050 });
            detector.heartbeat(at);
        }
        let (mean, std_dev) = detector.fitted();
        assert!((mean - 1.0).abs() < 1e-3 && (std_dev - 0.05).abs() < 1e-3);
        assert!(detector.phi(at + Duration::from_millis(500)) < 0.01);
        // Silence of mean + 1.2816 σ: exactly a 10% tail.
        let phi_one = detector.phi(at + Duration::from_secs_f64(mean + 1.281_551_6 * std_dev));
        assert!((phi_one - 1.0).abs() < 1e-4, "{phi_one}");
        let deadline = detector.suspicion_time().expect("started");
        assert!(!detector.suspect(deadline - Duration::from_micros(1)));
        assert!(detector.suspect(deadline + Duration::from_micros(1)));
        assert!(detector.phi(at + Duration::from_secs(3_600)).is_finite());
    }

    /// The floor and the pause allowance both push the deadline out.
    #[test]
    fn failure_detector_phi_floor_and_pause_loosen_the_deadline() {
        let t0 = Instant::now();
        let deadline = |config: PhiConfig| {
            let mut detector = PhiAccrual::new(config).expect("valid");
            for i in 0..=100u32 {
                detector.heartbeat(t0 + Duration::from_secs(u64::from(i)));
            }
            detector.suspicion_time().expect("started") - (t0 + Duration::from_secs(100))
        };
        let tight = deadline(quiet());
        let floored = deadline(PhiConfig {
            min_std_deviation: Duration::from_millis(100),
            ..quiet()
        });
        let paused = deadline(PhiConfig {
            acceptable_heartbeat_pause: Duration::from_secs(2),
            ..quiet()
        });
        // Bootstrap samples aside, σ is 0: the floor decides (3.09 σ).
        assert!(tight < Duration::from_millis(1_040), "{tight:?}");
        assert!(floored > Duration::from_millis(1_250), "{floored:?}");
        assert!(paused > tight + Duration::from_millis(1_999), "{paused:?}");
    }

    /// The silence before the first heartbeat, and a heartbeat from the
    /// past, are not intervals.
    #[test]
    fn failure_detector_phi_start_and_stale_heartbeats_leave_the_window_alone() {
        let t0 = Instant::now();
        let mut detector = PhiAccrual::new(quiet()).expect("valid");
        detector.start(t0);
        detector.heartbeat(t0 + Duration::from_secs(300));
        assert_eq!(detector.samples(), 2, "only the bootstrap samples");
        detector.heartbeat(t0 + Duration::from_secs(301));
        detector.heartbeat(t0 + Duration::from_secs(250));
        assert_eq!(detector.samples(), 3);
        assert_eq!(
            detector.silence(t0 + Duration::from_secs(302)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn failure_detector_phi_refuses_absurd_settings() {
        let refused = |config: PhiConfig| {
            matches!(
                PhiAccrual::new(config),
                Err(Error::InvalidDetectorSetting { .. })
            )
        };
        for threshold in [f64::NAN, -1.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, 101.0] {
            assert!(refused(PhiConfig::with_threshold(threshold)), "{threshold}");
        }
        assert!(refused(PhiConfig {
            max_sample_size: 0,
            ..PhiConfig::default()
        }));
        assert!(refused(PhiConfig {
            max_sample_size: MAX_WINDOW + 1,
            ..PhiConfig::default()
        }));
        assert!(refused(PhiConfig {
            min_std_deviation: Duration::ZERO,
            ..PhiConfig::default()
        }));
        assert!(refused(PhiConfig {
            first_heartbeat_estimate: Duration::ZERO,
            ..PhiConfig::default()
        }));
        assert!(refused(PhiConfig {
            acceptable_heartbeat_pause: Duration::MAX,
            ..PhiConfig::default()
        }));
        assert!(PhiAccrual::new(PhiConfig::with_threshold(100.0)).is_ok());
        assert!(PhiAccrual::new(PhiConfig::with_threshold(1e-9)).is_ok());
    }
}
