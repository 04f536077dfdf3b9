//! The broken twin of [`super::GCounter`]: a "counter" merged by sum.
//!
//! It looks reasonable — each replica counts its increments, merge adds
//! what the other side has — and it works in a demo where each state is
//! delivered exactly once. But merge is not idempotent: gossip redelivers,
//! retries resend, anti-entropy ships the same state twice, and every
//! redelivery counts every increment again. Its states are not a
//! semilattice, so no amount of care in the network fixes it; the
//! per-replica maximum of the G-Counter does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaiveSumCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl NaiveSumCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` at `replica`; returns the "delta" — the increment.
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Self {
        let count = self.counts.entry(replica).or_insert(0);
        *count = count.saturating_add(amount);
        Self {
            counts: BTreeMap::from([(replica, amount)]),
        }
    }
}

impl Crdt for NaiveSumCounter {
    type Value = u128;

    fn merge(&mut self, other: &Self) {
        // Pitfall: this is the bug. Adding cannot tell a new increment
        // from one already counted.
        for (&replica, &count) in &other.counts {
            let entry = self.counts.entry(replica).or_insert(0);
            *entry = entry.saturating_add(count);
        }
    }

    fn value(&self) -> u128 {
        self.counts.values().map(|&count| u128::from(count)).sum()
    }
}
