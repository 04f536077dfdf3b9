//! The memory twin of [`super::OrSet`]: an OR-Set with tombstones.
//!
//! The textbook observed-remove set (Shapiro et al. 2011): each add
//! carries a unique tag; a remove moves the tags it observed into a
//! tombstone set; an element is present while it has a tag that is not a
//! tombstone. It is correct — add wins, removes are never undone — but
//! merge is a plain union, so neither the tags nor the tombstones can
//! ever be dropped: a replica cannot know whether some peer still holds
//! the add that a tombstone cancels. Memory grows with every operation
//! ever made, not with the set. The test and `dslab demo crdt-partition`
//! measure both after 10,000 add/remove cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;
use crate::clock::dotted::Dot;
use crate::clock::vector::VersionVector;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaiveOrSet<T: Ord> {
    tags: BTreeMap<T, BTreeSet<Dot>>,
    tombstones: BTreeSet<Dot>,
    /// Tags issued per replica, so every tag is unique.
    issued: VersionVector,
}

impl<T: Ord> Default for NaiveOrSet<T> {
    fn default() -> Self {
        Self {
            tags: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            issued: VersionVector::new(),
        }
    }
}

impl<T: Ord + Clone + Debug> NaiveOrSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` at `replica` with a fresh tag; returns the delta.
    pub fn insert(&mut self, replica: ReplicaId, element: T) -> Self {
        let tag = Dot {
            replica,
            counter: self.issued.tick(replica),
        };
        self.tags.entry(element.clone()).or_default().insert(tag);
        let mut delta = Self::new();
        delta.tags.insert(element, BTreeSet::from([tag]));
        delta.issued.observe(replica, tag.counter);
        delta
    }

    /// Tombstones every tag of `element` this replica has seen; returns
    /// the delta (those tombstones).
    pub fn remove(&mut self, element: &T) -> Self {
        let mut delta = Self::new();
        if let Some(tags) = self.tags.get(element) {
            for tag in tags {
                if self.tombstones.insert(*tag) {
                    delta.tombstones.insert(*tag);
                }
            }
        }
        delta
    }

    pub fn contains(&self, element: &T) -> bool {
        self.tags
            .get(element)
            .is_some_and(|tags| tags.iter().any(|tag| !self.tombstones.contains(tag)))
    }

    /// What the state stores, counted as [`super::OrSet::stored_entries`]
    /// counts: one per tag, one per tombstone, one per replica counter.
    pub fn stored_entries(&self) -> usize {
        let tags: usize = self.tags.values().map(BTreeSet::len).sum();
        tags + self.tombstones.len() + self.issued.len()
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }
}

impl<T: Ord + Clone + Debug> Crdt for NaiveOrSet<T> {
    type Value = BTreeSet<T>;

    fn merge(&mut self, other: &Self) {
        for (element, tags) in &other.tags {
            self.tags
                .entry(element.clone())
                .or_default()
                .extend(tags.iter().copied());
        }
        self.tombstones.extend(other.tombstones.iter().copied());
        self.issued.merge(&other.issued);
    }

    fn value(&self) -> BTreeSet<T> {
        self.tags
            .keys()
            .filter(|element| self.contains(element))
            .cloned()
            .collect()
    }
}
