//! G-Counter: a counter that only grows.
//!
//! Each replica counts its own increments in its own entry; the value is
//! the sum. Merge takes the per-replica *maximum*: an entry only ever
//! grows, so the larger one has seen every increment of the smaller one.
//! (Adding entries instead is the classic bug: see
//! [`super::naive_counter`].) The state is one entry per replica that
//! ever incremented — the memory cost Episode 21 warns about.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;
use crate::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

/// The largest count one replica's entry may reach (2^62 − 1): sums of
/// entries stay far inside `u128`, and every entry fits the wire checks
/// replicas apply to each other's states.
pub const MAX_COUNT: u64 = (1 << 62) - 1;

impl GCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` at `replica`; returns the delta (that one entry, or
    /// nothing for an increment of zero).
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Result<Self> {
        if amount == 0 {
            return Ok(Self::new());
        }
        // Checked before touching the map: a refused increment leaves
        // no trace, not even a zero entry.
        let count = self
            .count_of(replica)
            .checked_add(amount)
            .filter(|&count| count <= MAX_COUNT)
            .ok_or(Error::CounterOverflow {
                replica,
                max: MAX_COUNT,
            })?;
        self.merge_entry(replica, count);
        let mut delta = Self::new();
        delta.merge_entry(replica, count);
        Ok(delta)
    }

    /// `replica`'s own count.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }

    /// The entries, one per replica that incremented.
    pub fn entries(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts
            .iter()
            .map(|(&replica, &count)| (replica, count))
    }

    /// A counter holding exactly these entries (for decoding).
    pub fn from_entries(entries: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        let mut counter = Self::new();
        for (replica, count) in entries {
            counter.merge_entry(replica, count);
        }
        counter
    }

    fn merge_entry(&mut self, replica: ReplicaId, count: u64) {
        if count == 0 {
            return;
        }
        let entry = self.counts.entry(replica).or_insert(0);
        *entry = (*entry).max(count);
    }
}

impl Crdt for GCounter {
    /// The sum of every replica's count: u64 entries cannot overflow it.
    type Value = u128;

    fn merge(&mut self, other: &Self) {
        for (&replica, &count) in &other.counts {
            self.merge_entry(replica, count);
        }
    }

    fn value(&self) -> u128 {
        self.counts.values().map(|&count| u128::from(count)).sum()
    }
}
