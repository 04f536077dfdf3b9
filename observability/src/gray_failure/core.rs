//! The differential detector: what callers see against what the health
//! check says.

use std::time::Duration;

use super::stats::{binomial_tail_bound, smoothed_ratio};
use super::window::{Counts, Tally};

/// Observers (callers) and methods tracked at once; beyond, newcomers
/// share one overflow key. With 10 buckets of 24 bytes per key, the
/// tables stay under 100 KiB plus the names.
pub const MAX_OBSERVERS: usize = 256;
pub const MAX_METHODS: usize = 64;
/// The longest observer or method name accepted.
pub const MAX_NAME_BYTES: usize = 128;

/// What the health check last said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    Serving,
    NotServing,
    /// Not asked yet, unreachable, or the service is unknown to it.
    Unknown,
}

/// Why a configuration or a report was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GrayError {
    #[error("invalid gray-failure detector setting {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("{what} name must be 1 to {max} bytes, got {bytes}")]
    BadName {
        what: &'static str,
        bytes: usize,
        max: usize,
    },
}

/// How sure the detector must be before it calls a gray failure.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// The sliding window outcomes are compared over.
    pub window: Duration,
    /// Calls a group — and the rest — must have made in the window before
    /// it is compared: the normal approximation needs them.
    pub min_calls: u64,
    /// Failures a group must have seen: one unlucky call is not a pattern.
    pub min_failures: u64,
    /// How much worse (absolute failure ratio) a group must fare than the
    /// rest to matter: with enough calls, 1.1 % against 1.0 % is
    /// "significant" and useless.
    pub min_effect: f64,
    /// The chance, per evaluation, of any false alarm that the test
    /// allows; split evenly across the groups compared (Bonferroni). At
    /// one evaluation a second, 1e-5 is at most one false alarm a day.
    pub family_alpha: f64,
    /// The failure ratio every caller may see on a good day; above it,
    /// significantly, with health SERVING, is a gray failure too.
    pub expected_error_ratio: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_calls: 30,
            min_failures: 5,
            min_effect: 0.05,
            family_alpha: 1e-5,
            expected_error_ratio: 0.01,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<(), GrayError> {
        let bad = |field, reason: &str| {
            Err(GrayError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.window.is_zero() {
            return bad("window", "must be positive");
        }
        if self.min_calls == 0 {
            return bad("min_calls", "must be at least 1");
        }
        if !(self.min_effect >= 0.0 && self.min_effect < 1.0) {
            return bad("min_effect", "must be in [0, 1)");
        }
        if !(self.family_alpha > 0.0 && self.family_alpha < 1.0) {
            return bad("family_alpha", "must be in (0, 1)");
        }
        if !(self.expected_error_ratio > 0.0 && self.expected_error_ratio < 1.0) {
            return bad("expected_error_ratio", "must be in (0, 1)");
        }
        Ok(())
    }
}

/// Which way the callers were grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Observer,
    Method,
    /// All callers together, against the expected failure ratio.
    Everyone,
}

/// A group that fares significantly worse than the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspect {
    pub dimension: Dimension,
    pub key: String,
    pub seen: Counts,
    /// Everyone else (for [`Dimension::Everyone`]: the expectation, per
    /// 1,000,000 calls).
    pub rest: Counts,
    /// An upper bound on the chance of failing this often by bad luck at
    /// the rest's failure ratio.
    pub p_value: f64,
}

/// The detector's call.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Nothing significant (which includes "not enough calls yet").
    Healthy,
    /// The health check itself reports trouble: a failure, but not a gray one.
    Down(HealthStatus),
    /// Health says SERVING, and these callers or methods say otherwise.
    GrayFailure(Vec<Suspect>),
}

/// Compares client-side outcomes by observer and by method against each
/// other and against the health check.
#[derive(Clone, Debug)]
pub struct GrayFailureDetector {
    config: DetectorConfig,
    observers: Tally,
    methods: Tally,
    health: HealthStatus,
}

fn check_name(what: &'static str, name: &str) -> Result<(), GrayError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(GrayError::BadName {
            what,
            bytes: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    Ok(())
}

impl GrayFailureDetector {
    pub fn new(config: DetectorConfig) -> Result<Self, GrayError> {
        config.validate()?;
        Ok(Self {
            observers: Tally::new(config.window, MAX_OBSERVERS),
            methods: Tally::new(config.window, MAX_METHODS),
            health: HealthStatus::Unknown,
            config,
        })
    }

    /// One call's outcome as `observer` saw it, at `at` (any fixed origin).
    pub fn report(
        &mut self,
        at: Duration,
        observer: &str,
        method: &str,
        failed: bool,
    ) -> Result<(), GrayError> {
        check_name("observer", observer)?;
        check_name("method", method)?;
        self.observers.add(at, observer, failed);
        self.methods.add(at, method, failed);
        Ok(())
    }

    /// What the health check answered last.
    pub fn set_health(&mut self, health: HealthStatus) {
        self.health = health;
    }

    /// Observers and methods tracked now (each within its bound).
    pub fn tracked(&self) -> (usize, usize) {
        (self.observers.len(), self.methods.len())
    }

    /// Reports that arrived more than a window late and were dropped.
    pub fn stale_reports(&self) -> u64 {
        self.observers.stale
    }

    /// The verdict on the window ending at `at`.
    pub fn evaluate(&mut self, at: Duration) -> Verdict {
        if self.health != HealthStatus::Serving {
            return Verdict::Down(self.health);
        }
        self.observers.evict_idle(at);
        self.methods.evict_idle(at);
        let config = &self.config;
        let groups: Vec<(Dimension, String, Counts)> = [
            (Dimension::Observer, &self.observers),
            (Dimension::Method, &self.methods),
        ]
        .into_iter()
        .flat_map(|(dimension, tally)| {
            tally
                .counts(at)
                .map(move |(key, counts)| (dimension, key.to_owned(), counts))
        })
        .collect();
        let total = self
            .observers
            .counts(at)
            .fold(Counts::default(), |t, (_, c)| Counts {
                calls: t.calls + c.calls,
                failures: t.failures + c.failures,
            });
        // Pitfall: twenty callers tested at 1 % each give a 1-in-5 chance
        // that one of them looks "significant" by luck alone. The test
        // budget is split across every comparison made (Bonferroni).
        let comparisons = 1 + groups
            .iter()
            .filter(|g| g.2.calls >= config.min_calls)
            .count();
        let alpha = config.family_alpha / comparisons as f64;
        let mut suspects = Vec::new();
        for (dimension, key, seen) in groups {
            let rest = Counts {
                calls: total.calls - seen.calls,
                failures: total.failures - seen.failures,
            };
            let enough = seen.calls >= config.min_calls
                && rest.calls >= config.min_calls
                && seen.failures >= config.min_failures;
            if !enough || ratio(seen) - ratio(rest) < config.min_effect {
                continue;
            }
            let p_value = binomial_tail_bound(
                seen.failures,
                seen.calls,
                smoothed_ratio(rest.failures, rest.calls),
            );
            if p_value < alpha {
                suspects.push(Suspect {
                    dimension,
                    key,
                    seen,
                    rest,
                    p_value,
                });
            }
        }
        let expected = config.expected_error_ratio;
        let p_value = binomial_tail_bound(total.failures, total.calls, expected);
        if total.calls >= config.min_calls
            && total.failures >= config.min_failures
            && ratio(total) - expected >= config.min_effect
            && p_value < alpha
        {
            suspects.push(Suspect {
                dimension: Dimension::Everyone,
                key: "*".to_owned(),
                seen: total,
                rest: Counts {
                    calls: 1_000_000,
                    failures: (expected * 1e6).round() as u64,
                },
                p_value,
            });
        }
        if suspects.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::GrayFailure(suspects)
        }
    }
}

fn ratio(counts: Counts) -> f64 {
    if counts.calls == 0 {
        0.0
    } else {
        counts.failures as f64 / counts.calls as f64
    }
}
