//! G-Set: a set that only grows. Merge is union.
//!
//! The simplest CRDT, and the building block of most others: anything
//! that only accumulates (seen message ids, tombstones) is a G-Set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Crdt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GSet<T: Ord> {
    elements: BTreeSet<T>,
}

impl<T: Ord> Default for GSet<T> {
    fn default() -> Self {
        Self {
            elements: BTreeSet::new(),
        }
    }
}

impl<T: Ord + Clone + std::fmt::Debug> GSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element`; returns the delta (that element).
    pub fn insert(&mut self, element: T) -> Self {
        self.elements.insert(element.clone());
        Self {
            elements: BTreeSet::from([element]),
        }
    }

    pub fn contains(&self, element: &T) -> bool {
        self.elements.contains(element)
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.elements.iter()
    }
}

impl<T: Ord + Clone + std::fmt::Debug> FromIterator<T> for GSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(elements: I) -> Self {
        Self {
            elements: elements.into_iter().collect(),
        }
    }
}

impl<T: Ord + Clone + std::fmt::Debug> Crdt for GSet<T> {
    type Value = BTreeSet<T>;

    fn merge(&mut self, other: &Self) {
        self.elements.extend(other.elements.iter().cloned());
    }

    fn value(&self) -> BTreeSet<T> {
        self.elements.clone()
    }
}
