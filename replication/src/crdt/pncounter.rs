//! PN-Counter: a counter that goes both ways.
//!
//! Two G-Counters, one for increments and one for decrements; the value
//! is their difference. A single signed entry per replica would not do:
//! a decrement would make the entry smaller, and merge by maximum would
//! then throw it away.

use serde::{Deserialize, Serialize};

use super::{Crdt, GCounter};
use crate::Result;
use crate::clock::ReplicaId;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` (negative to subtract) at `replica`; returns the delta.
    pub fn add(&mut self, replica: ReplicaId, amount: i64) -> Result<Self> {
        let mut delta = Self::new();
        if amount >= 0 {
            delta.increments = self.increments.increment(replica, amount.unsigned_abs())?;
        } else {
            delta.decrements = self.decrements.increment(replica, amount.unsigned_abs())?;
        }
        Ok(delta)
    }

    /// The two halves, for encoding.
    pub fn parts(&self) -> (&GCounter, &GCounter) {
        (&self.increments, &self.decrements)
    }

    pub fn from_parts(increments: GCounter, decrements: GCounter) -> Self {
        Self {
            increments,
            decrements,
        }
    }
}

impl Crdt for PnCounter {
    type Value = i128;

    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    fn value(&self) -> i128 {
        // Each half is at most 2^64 × replicas, far inside i128.
        let up = i128::try_from(self.increments.value()).unwrap_or(i128::MAX);
        let down = i128::try_from(self.decrements.value()).unwrap_or(i128::MAX);
        up - down
    }
}
