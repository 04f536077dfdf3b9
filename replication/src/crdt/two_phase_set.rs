//! 2P-Set: add, then remove — once and for all.
//!
//! Two G-Sets: added and removed (the removed set is a set of
//! tombstones). An element is present if added and not removed. Remove
//! wins over any concurrent or later add, so an element can never come
//! back; the tombstones stay forever. [`super::orset`] lifts both limits.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Crdt, GSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoPhaseSet<T: Ord> {
    added: GSet<T>,
    removed: GSet<T>,
}

impl<T: Ord> Default for TwoPhaseSet<T> {
    fn default() -> Self {
        Self {
            added: GSet::default(),
            removed: GSet::default(),
        }
    }
}

impl<T: Ord + Clone + std::fmt::Debug> TwoPhaseSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` (a no-op for the value once it was removed);
    /// returns the delta.
    pub fn insert(&mut self, element: T) -> Self {
        Self {
            added: self.added.insert(element),
            removed: GSet::new(),
        }
    }

    /// Removes `element` if this replica has it; returns the delta, or
    /// `None` when there was nothing to remove (removing an element never
    /// added would block its future add everywhere).
    pub fn remove(&mut self, element: &T) -> Option<Self> {
        if !self.contains(element) {
            return None;
        }
        Some(Self {
            added: GSet::new(),
            removed: self.removed.insert(element.clone()),
        })
    }

    pub fn contains(&self, element: &T) -> bool {
        self.added.contains(element) && !self.removed.contains(element)
    }

    /// Tombstones held: every element ever removed.
    pub fn tombstones(&self) -> usize {
        self.removed.len()
    }
}

impl<T: Ord + Clone + std::fmt::Debug> Crdt for TwoPhaseSet<T> {
    type Value = BTreeSet<T>;

    fn merge(&mut self, other: &Self) {
        self.added.merge(&other.added);
        self.removed.merge(&other.removed);
    }

    fn value(&self) -> BTreeSet<T> {
        self.added
            .iter()
            .filter(|element| !self.removed.contains(element))
            .cloned()
            .collect()
    }
}
