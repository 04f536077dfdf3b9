//! The pure part: an SLO, its error budget, and the history of cumulative
//! counters that every alert window is measured on.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples one history keeps, whatever the sampling rate: 8,192 samples of
/// 24 bytes, under 200 KiB per policy.
pub const MAX_SAMPLES: usize = 8_192;
/// The longest SLO period accepted (a year); windows may not exceed it.
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Rules per policy, and bytes per rule name.
pub const MAX_RULES: usize = 16;
pub const MAX_RULE_NAME: usize = 64;

/// Why an SLO, a rule or a sample was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SloError {
    #[error("an SLO target must lie strictly between 0 and 1 (e.g. 0.999), got {0}")]
    TargetOutOfRange(f64),
    #[error("an SLO period must be positive and at most {max:?}, got {got:?}")]
    PeriodOutOfRange { got: Duration, max: Duration },
    #[error("a policy needs 1 to {max} rules, got {got}")]
    RuleCount { got: usize, max: usize },
    #[error("a rule name must be 1 to {max} bytes, got {got}")]
    RuleName { got: usize, max: usize },
    #[error("rule {rule:?}: the {which} window must be positive")]
    ZeroWindow { rule: String, which: &'static str },
    #[error(
        "rule {rule:?}: the short window ({short:?}) must be shorter than the long one ({long:?})"
    )]
    ShortWindowNotShorter {
        rule: String,
        short: Duration,
        long: Duration,
    },
    #[error("rule {rule:?}: its {window:?} window is longer than the SLO period {period:?}")]
    WindowBeyondPeriod {
        rule: String,
        window: Duration,
        period: Duration,
    },
    #[error("rule {rule:?}: a burn-rate threshold must be positive and finite, got {burn_rate}")]
    BurnRateOutOfRange { rule: String, burn_rate: f64 },
    #[error(
        "rule {rule:?}: a {burn_rate}x burn of a {budget} error budget needs an error ratio above 1; it can never fire"
    )]
    UnreachableThreshold {
        rule: String,
        burn_rate: f64,
        budget: f64,
    },
    #[error("a sample at {got:?} arrived after one at {last:?}: time went backwards")]
    TimeWentBackwards { last: Duration, got: Duration },
    #[error(
        "the {counter} counter went backwards from {last} to {got} (did the process restart? start a new history)"
    )]
    CounterWentBackwards {
        counter: &'static str,
        last: u64,
        got: u64,
    },
    #[error("{good} good events out of only {total} in all")]
    GoodExceedsTotal { good: u64, total: u64 },
    #[error("good events grew by {good} but all events only by {total}")]
    GoodOutpacesTotal { good: u64, total: u64 },
}

/// A service level objective: the share of good events over a period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slo {
    target: f64,
    period: Duration,
}

impl Slo {
    /// `target` strictly between 0 and 1 (0.999 is "three nines"), over
    /// `period` (the workbook's is 30 days).
    pub fn new(target: f64, period: Duration) -> Result<Self, SloError> {
        // `1.0 - target` must be a usable budget: 1 − 1e-17 rounds to 1,
        // leaving a budget of zero that every error would exceed forever.
        if !(target > 0.0 && target < 1.0 && 1.0 - target > 0.0) {
            return Err(SloError::TargetOutOfRange(target));
        }
        if period.is_zero() || period > MAX_PERIOD {
            return Err(SloError::PeriodOutOfRange {
                got: period,
                max: MAX_PERIOD,
            });
        }
        Ok(Self { target, period })
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// The error ratio the SLO allows: 0.001 for 99.9 %.
    pub fn error_budget(&self) -> f64 {
        1.0 - self.target
    }

    /// How fast an error ratio spends the budget: 1 spends exactly the
    /// whole budget over the period, 14.4 spends it in about two days.
    pub fn burn_rate(&self, error_ratio: f64) -> f64 {
        error_ratio / self.error_budget()
    }

    /// The share of the period's budget that burning at `burn_rate` for
    /// `window` spends (14.4 × 1 h of 30 days = 2 %).
    pub fn budget_spent(&self, burn_rate: f64, window: Duration) -> f64 {
        burn_rate * window.as_secs_f64() / self.period.as_secs_f64()
    }
}

/// Cumulative counters as read at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Time since any fixed origin (the same for every sample).
    pub at: Duration,
    pub good: u64,
    pub total: u64,
}

/// Events counted over one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowCounts {
    pub good: u64,
    pub total: u64,
}

impl WindowCounts {
    pub fn bad(&self) -> u64 {
        self.total - self.good
    }

    /// Bad over all events; a window without traffic spends no budget.
    pub fn error_ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad() as f64 / self.total as f64
        }
    }
}

/// A bounded ring of counter samples reaching back `horizon` (the longest
/// window any rule asks about), from which any window's counts are a
/// subtraction — exactly what Prometheus's `increase()` does with scrapes.
#[derive(Clone, Debug)]
pub struct CounterHistory {
    samples: VecDeque<Sample>,
    horizon: Duration,
    spacing: Duration,
}

impl CounterHistory {
    /// A history that answers windows up to `horizon` long. Samples closer
    /// together than `horizon / (MAX_SAMPLES - 8)` are merged, so windows
    /// are exact to that resolution: 32 s for a 3-day horizon.
    pub fn new(horizon: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            horizon,
            spacing: horizon / (MAX_SAMPLES as u32 - 8),
        }
    }

    /// The resolution windows are measured to.
    pub fn spacing(&self) -> Duration {
        self.spacing
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }

    /// Adds a reading; refuses one that contradicts the last.
    pub fn record(&mut self, sample: Sample) -> Result<(), SloError> {
        let Sample { at, good, total } = sample;
        if good > total {
            return Err(SloError::GoodExceedsTotal { good, total });
        }
        if let Some(last) = self.latest() {
            if at < last.at {
                return Err(SloError::TimeWentBackwards {
                    last: last.at,
                    got: at,
                });
            }
            // Pitfall: a restarted server counts from zero again. Read as
            // a delta, the drop would be a huge negative error count — or,
            // with unsigned counters, a huge positive one and a page.
            for (counter, last, got) in [("total", last.total, total), ("good", last.good, good)] {
                if got < last {
                    return Err(SloError::CounterWentBackwards { counter, last, got });
                }
            }
            let (good_delta, total_delta) = (good - last.good, total - last.total);
            if good_delta > total_delta {
                return Err(SloError::GoodOutpacesTotal {
                    good: good_delta,
                    total: total_delta,
                });
            }
        }
        // The newest sample stays provisional until it is `spacing` past
        // the one before it: until then a newer reading replaces it. Kept
        // samples are therefore `spacing` apart, and a caller sampling
        // every millisecond cannot grow the ring.
        let len = self.samples.len();
        let provisional =
            len >= 2 && self.samples[len - 1].at - self.samples[len - 2].at < self.spacing;
        match self.samples.back_mut() {
            Some(newest) if provisional => *newest = sample,
            _ => self.samples.push_back(sample),
        }
        // Keep one sample at or before the horizon's start, so the
        // longest window still has its starting point.
        if let Some(start) = at.checked_sub(self.horizon) {
            while self.samples.len() >= 2 && self.samples[1].at <= start {
                self.samples.pop_front();
            }
        }
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        Ok(())
    }

    /// Events in the `window` ending at the latest sample, measured from
    /// the newest sample at or before its start (so it spans at least
    /// `window`, at most `window` plus one sampling interval). `None`
    /// while the history does not reach back that far.
    pub fn window(&self, window: Duration) -> Option<WindowCounts> {
        let now = self.latest()?;
        let start = now.at.checked_sub(window)?;
        let after = self.samples.partition_point(|s| s.at <= start);
        let first = self.samples.get(after.checked_sub(1)?)?;
        Some(WindowCounts {
            good: now.good - first.good,
            total: now.total - first.total,
        })
    }
}
