//! Add-wins observed-remove set without tombstones (the optimized OR-Set).
//!
//! Every add is tagged with a fresh dot. A remove deletes the dots its
//! replica has *observed* for that element — so an add concurrent with
//! the remove (a dot the remover never saw) survives: add wins. That much
//! is the classic OR-Set ([`super::naive_orset`]), which must remember
//! every removed dot as a tombstone to stop a merge from resurrecting it.
//!
//! The optimization (Bieniusa et al. 2012; delta form from Almeida,
//! Shoker, Baquero 2018) replaces tombstones with a causal context: the
//! set of every dot this replica has seen, compacted to a version vector.
//! In a merge, a dot absent on one side was removed there exactly when
//! that side's context contains it. The state holds live elements, their
//! dots, and one counter per replica — however many elements were ever
//! removed.
//!
//! ```text
//! keep dot d of element e when:  d in both sides
//!                             or d on one side and not in the other's context
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet<T: Ord> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: CausalContext,
}

impl<T: Ord> Default for OrSet<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::new(),
        }
    }
}

impl<T: Ord + Clone + Debug> OrSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` at `replica`; returns the delta: the element with
    /// its new dot, and a context that also covers the element's older
    /// dots (the new add supersedes them).
    pub fn insert(&mut self, replica: ReplicaId, element: T) -> Self {
        let dot = self.context.next_dot(replica);
        let mut delta = Self::new();
        delta.context.insert(dot);
        if let Some(old) = self.entries.insert(element.clone(), BTreeSet::from([dot])) {
            for old_dot in old {
                delta.context.insert(old_dot);
            }
        }
        delta.entries.insert(element, BTreeSet::from([dot]));
        delta
    }

    /// Removes `element` as this replica observes it; returns the delta:
    /// no entries, a context holding the removed dots. Removing an absent
    /// element yields an empty delta.
    pub fn remove(&mut self, element: &T) -> Self {
        let mut delta = Self::new();
        for dot in self.entries.remove(element).unwrap_or_default() {
            delta.context.insert(dot);
        }
        delta
    }

    pub fn contains(&self, element: &T) -> bool {
        self.entries.contains_key(element)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the state stores, counted: one per element dot, one per
    /// replica in the context, one per dot waiting beyond a gap.
    pub fn stored_entries(&self) -> usize {
        let dots: usize = self.entries.values().map(BTreeSet::len).sum();
        dots + self.context.version_vector().len() + self.context.cloud_len()
    }

    /// The causal context: every dot seen.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Elements with their dots, for encoding.
    pub fn entries(&self) -> impl Iterator<Item = (&T, &BTreeSet<Dot>)> + '_ {
        self.entries.iter()
    }

    /// A set with exactly these entries and context (for decoding). Dots
    /// the context does not cover are added to it, and elements without
    /// dots dropped. Dots must have counters from 1 (the replica's decoder
    /// checks) and each belong to one element, as an honest replica's do.
    pub fn from_parts(entries: BTreeMap<T, BTreeSet<Dot>>, mut context: CausalContext) -> Self {
        let entries: BTreeMap<T, BTreeSet<Dot>> = entries
            .into_iter()
            .filter(|(_, dots)| !dots.is_empty())
            .collect();
        for dot in entries.values().flatten() {
            context.insert(*dot);
        }
        Self { entries, context }
    }
}

impl<T: Ord + Clone + Debug> Crdt for OrSet<T> {
    type Value = BTreeSet<T>;

    fn merge(&mut self, other: &Self) {
        // One walk over both maps in key order, reusing our entries in
        // place: merging is the hot path of anti-entropy.
        let mine = std::mem::take(&mut self.entries);
        let mut merged: Vec<(T, BTreeSet<Dot>)> =
            Vec::with_capacity(mine.len().max(other.entries.len()));
        let mut ours = mine.into_iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        loop {
            let order = match (ours.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            let (element, kept) = match order {
                // Only here: kept unless the other side saw it removed.
                Ordering::Less => {
                    let Some((element, mut dots)) = ours.next() else {
                        break;
                    };
                    dots.retain(|dot| !other.context.contains(dot));
                    (element, dots)
                }
                // Only there: taken unless we saw it removed.
                Ordering::Greater => {
                    let Some((element, dots)) = theirs.next() else {
                        break;
                    };
                    let dots = dots
                        .iter()
                        .filter(|dot| !self.context.contains(dot))
                        .copied()
                        .collect();
                    (element.clone(), dots)
                }
                Ordering::Equal => {
                    let (Some((element, mut dots)), Some((_, their_dots))) =
                        (ours.next(), theirs.next())
                    else {
                        break;
                    };
                    if dots != *their_dots {
                        dots.retain(|dot| their_dots.contains(dot) || !other.context.contains(dot));
                        dots.extend(their_dots.iter().filter(|dot| !self.context.contains(dot)));
                    }
                    (element, dots)
                }
            };
            if !kept.is_empty() {
                merged.push((element, kept));
            }
        }
        // Already sorted: collecting builds the tree in one pass.
        self.entries = merged.into_iter().collect();
        self.context.merge(&other.context);
    }

    fn value(&self) -> BTreeSet<T> {
        self.entries.keys().cloned().collect()
    }
}
