//! A map of CRDTs: composition.
//!
//! A map whose values are CRDTs is itself a CRDT when merge joins the
//! values key by key (the product of lattices is a lattice). That is how
//! real systems build rich documents — Riak's maps, Automerge's objects —
//! from counters, sets and registers. Deltas compose the same way: a
//! mutation of one entry ships as a map holding that entry's delta.
//!
//! Simplified: keys are never removed. Removing a key needs the same
//! observed-remove machinery as [`super::OrSet`] (Riak's map resets the
//! entry's causal history); here an entry can only be emptied through its
//! own type's operations.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Crdt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrdtMap<K: Ord, V> {
    entries: BTreeMap<K, V>,
}

impl<K: Ord, V> Default for CrdtMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone + Debug, V: Crdt + Default> CrdtMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mutates the entry at `key` (created empty if absent) with `mutate`,
    /// which returns the entry's delta; returns the map's delta.
    pub fn update<E>(
        &mut self,
        key: K,
        mutate: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<Self, E> {
        let entry_delta = mutate(self.entries.entry(key.clone()).or_default())?;
        Ok(Self {
            entries: BTreeMap::from([(key, entry_delta)]),
        })
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Ord + Clone + Debug, V: Crdt> Crdt for CrdtMap<K, V> {
    type Value = BTreeMap<K, V::Value>;

    fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.entries {
            match self.entries.get_mut(key) {
                Some(ours) => ours.merge(theirs),
                None => {
                    self.entries.insert(key.clone(), theirs.clone());
                }
            }
        }
    }

    fn value(&self) -> BTreeMap<K, V::Value> {
        self.entries
            .iter()
            .map(|(key, value)| (key.clone(), value.value()))
            .collect()
    }
}
