//! The `processes` section of an experiment file and its checks.

use std::collections::BTreeSet;
use std::time::Duration;

use patterns::chaos::definition::{CLIENT, check_rate, check_target};
use serde::Deserialize;

/// The most replicas a group may have.
pub const MAX_REPLICAS: usize = 5;
/// The highest probe rate, per second.
pub const MAX_RATE: f64 = 500.0;

/// The `processes` section of an experiment file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessGroupConfig {
    /// Replicas `n1` … `nR`, each a `dslab serve flaky` process.
    pub replicas: usize,
    /// Probe calls per second from the runner's client.
    pub rate: f64,
    /// Whether a failed attempt is retried on the next replica.
    pub failover: bool,
    /// Each attempt's deadline.
    pub attempt_timeout_ms: u64,
}

impl ProcessGroupConfig {
    pub fn hosts(&self) -> BTreeSet<String> {
        std::iter::once(CLIENT.to_string())
            .chain((1..=self.replicas).map(|i| format!("n{i}")))
            .collect()
    }

    /// Rejects a group that cannot start, naming the field. Which faults
    /// make sense is the experiment's own check, shared with the
    /// simulation ([`patterns::chaos::Experiment::validate`]); whether
    /// the probe fills a window is [`ProcessGroupConfig::check_windows`].
    pub fn validate(&self) -> patterns::Result<()> {
        check_target(
            "processes",
            (self.replicas, MAX_REPLICAS),
            (self.rate, MAX_RATE),
            self.attempt_timeout_ms,
        )
    }

    /// Rejects a probe rate that would leave windows of `window`
    /// (nearly) empty.
    pub fn check_windows(&self, window: Duration) -> patterns::Result<()> {
        check_rate("processes.rate", self.rate, window)
    }
}
