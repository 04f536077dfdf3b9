//! The simulated network's faults: which hosts are down, which links are
//! cut, lossy or slow, and which replicas fail their calls.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use super::definition::Fault;

/// One-way network delay on every link before any fault.
pub(crate) const BASE_LATENCY: Duration = Duration::from_millis(1);

/// A link, its two ends in name order: links are symmetric.
type Link = (String, String);

fn link(a: &str, b: &str) -> Link {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The faults in force.
#[derive(Debug, Default)]
pub(crate) struct Network {
    crashed: BTreeSet<String>,
    partitioned: BTreeSet<Link>,
    loss: BTreeMap<Link, f64>,
    latency: BTreeMap<Link, Duration>,
    flaky: BTreeMap<String, f64>,
}

impl Network {
    /// Starts (`on`) or ends a fault.
    pub(crate) fn apply(&mut self, fault: &Fault, on: bool) {
        match fault {
            Fault::Crash { host } if on => {
                self.crashed.insert(host.clone());
            }
            Fault::Crash { host } => {
                self.crashed.remove(host);
            }
            Fault::Partition { a, b } if on => {
                self.partitioned.insert(link(a, b));
            }
            Fault::Partition { a, b } => {
                self.partitioned.remove(&link(a, b));
            }
            Fault::Loss { a, b, probability } if on => {
                self.loss.insert(link(a, b), *probability);
            }
            Fault::Loss { a, b, .. } => {
                self.loss.remove(&link(a, b));
            }
            Fault::Latency { a, b, ms } if on => {
                self.latency.insert(link(a, b), Duration::from_millis(*ms));
            }
            Fault::Latency { a, b, .. } => {
                self.latency.remove(&link(a, b));
            }
            Fault::Flaky { host, error_rate } if on => {
                self.flaky.insert(host.clone(), *error_rate);
            }
            Fault::Flaky { host, .. } => {
                self.flaky.remove(host);
            }
        }
    }

    /// Faults in force, as descriptions.
    pub(crate) fn active_faults(&self) -> Vec<String> {
        let mut faults: Vec<String> = self.crashed.iter().map(|h| format!("crash {h}")).collect();
        faults.extend(
            self.partitioned
                .iter()
                .map(|(a, b)| format!("partition {a}|{b}")),
        );
        faults.extend(self.loss.keys().map(|(a, b)| format!("loss {a}–{b}")));
        faults.extend(self.latency.keys().map(|(a, b)| format!("latency {a}–{b}")));
        faults.extend(self.flaky.keys().map(|h| format!("flaky {h}")));
        faults
    }

    pub(crate) fn is_crashed(&self, host: &str) -> bool {
        self.crashed.contains(host)
    }

    /// The share of calls `host` fails (0 unless a Flaky fault is on).
    pub(crate) fn error_rate(&self, host: &str) -> f64 {
        self.flaky.get(host).copied().unwrap_or(0.0)
    }

    /// Whether a message from `a` to `b` sent now gets through, and after
    /// how long.
    pub(crate) fn deliver(&self, a: &str, b: &str, rng: &mut impl Rng) -> Option<Duration> {
        let key = link(a, b);
        if self.partitioned.contains(&key) {
            return None;
        }
        let loss = self.loss.get(&key).copied().unwrap_or(0.0);
        if loss > 0.0 && rng.random_bool(loss) {
            return None;
        }
        Some(BASE_LATENCY + self.latency.get(&key).copied().unwrap_or_default())
    }
}
