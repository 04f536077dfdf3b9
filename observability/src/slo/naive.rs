//! The broken twin: one short window, one threshold.

use std::time::Duration;

use super::core::{CounterHistory, Sample, Slo, SloError};
use super::policy::{AlertChange, AlertPolicy, Severity, validate_threshold};

/// "Page when the error ratio over the last 5 minutes is above X": the
/// first alert everyone writes. It is fast, and that is all it is. A short
/// window cannot tell a three-minute blip that spent under 1 % of the
/// month's budget from the start of an outage, so it pages on both; and a
/// threshold high enough to keep it quiet on blips is far above a slow
/// leak that eats the whole budget in two weeks, so that one it never sees.
/// Lower the threshold to catch the leak and it pages on noise instead.
/// The multi-window policy exists because no single (window, threshold)
/// pair gets both right.
#[derive(Clone, Debug)]
pub struct NaiveThresholdPolicy {
    slo: Slo,
    window: Duration,
    burn_rate: f64,
    firing: bool,
    history: CounterHistory,
}

impl NaiveThresholdPolicy {
    /// Fires while the burn rate over `window` exceeds `burn_rate`.
    pub fn new(slo: Slo, window: Duration, burn_rate: f64) -> Result<Self, SloError> {
        validate_threshold("single-threshold", &slo, window, burn_rate)?;
        Ok(Self {
            slo,
            window,
            burn_rate,
            firing: false,
            history: CounterHistory::new(window),
        })
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn threshold(&self) -> f64 {
        self.burn_rate
    }

    /// The burn rate over its window, once history covers it.
    pub fn burn_rate(&self) -> Option<f64> {
        let counts = self.history.window(self.window)?;
        Some(self.slo.burn_rate(counts.error_ratio()))
    }
}

impl AlertPolicy for NaiveThresholdPolicy {
    fn label(&self) -> String {
        format!(
            "single threshold ({} min > {}x)",
            self.window.as_secs() / 60,
            self.burn_rate
        )
    }

    fn observe(
        &mut self,
        at: Duration,
        good: u64,
        total: u64,
    ) -> Result<Vec<AlertChange>, SloError> {
        self.history.record(Sample { at, good, total })?;
        let Some(burn) = self.burn_rate() else {
            return Ok(Vec::new());
        };
        let now = burn > self.burn_rate;
        if now == self.firing {
            return Ok(Vec::new());
        }
        self.firing = now;
        Ok(vec![AlertChange {
            at,
            rule: "single-threshold".to_owned(),
            severity: Severity::Page,
            firing: now,
            long_burn: burn,
            short_burn: burn,
        }])
    }

    fn firing(&self) -> bool {
        self.firing
    }
}
