//! Vector clocks (Fidge, Mattern 1988) and version vectors.
//!
//! Each process counts its own events and remembers the highest count it
//! has heard of from every other process. Comparing two vectors entry by
//! entry answers what a Lamport clock cannot: `a → b` exactly when
//! `V(a) < V(b)`, and two events with incomparable vectors are
//! *concurrent* — neither could have influenced the other.
//!
//! A version vector is the same lattice put to a different use: it
//! counts updates to a replica's data rather than events of a process,
//! and two replicas compare their vectors to learn whether one has seen
//! everything the other has (anti-entropy can skip it), or whether they
//! diverged (a conflict to merge).
//!
//! The cost is one entry per process ever seen: fine for a cluster's
//! replicas, wrong for per-client ids (see [`super::dotted`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ReplicaId;

/// How two vector clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Every entry ≤ the other's, at least one strictly: happened before.
    Before,
    /// The mirror image: happened after.
    After,
    /// Identical vectors: the same causal history.
    Equal,
    /// Each has an entry larger than the other's: neither saw the other.
    Concurrent,
}

/// A vector clock: replica → the number of its events seen. Missing
/// entries are zero, so a vector never stores a zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock {
    entries: BTreeMap<ReplicaId, u64>,
}

/// A version vector: the same lattice, counting updates to data.
pub type VersionVector = VectorClock;

impl VectorClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The count for `replica` (zero if never seen).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.entries.get(&replica).copied().unwrap_or(0)
    }

    /// A local event at `replica`: its new count.
    pub fn tick(&mut self, replica: ReplicaId) -> u64 {
        let count = self.entries.entry(replica).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Sets `replica`'s entry to at least `count`.
    pub fn observe(&mut self, replica: ReplicaId, count: u64) {
        if count > 0 {
            let entry = self.entries.entry(replica).or_insert(0);
            *entry = (*entry).max(count);
        }
    }

    /// Joins another vector into this one: the entry-wise maximum, the
    /// least vector that has seen both histories.
    pub fn merge(&mut self, other: &Self) {
        for (&replica, &count) in &other.entries {
            self.observe(replica, count);
        }
    }

    /// Receiving a message stamped `remote` at `replica`: merge, then
    /// count the receive event itself.
    pub fn receive(&mut self, replica: ReplicaId, remote: &Self) {
        self.merge(remote);
        self.tick(replica);
    }

    /// How this clock relates to `other`: one walk over both sorted
    /// entry lists, stopping as soon as each side is ahead somewhere.
    pub fn compare(&self, other: &Self) -> Causality {
        let mut mine = self.entries.iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        let (mut less, mut greater) = (false, false);
        loop {
            // An entry only one side has is a non-zero count against zero.
            let order = match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => {
                    mine.next();
                    Ordering::Greater
                }
                (None, Some(_)) => {
                    theirs.next();
                    Ordering::Less
                }
                (Some((a, x)), Some((b, y))) => match a.cmp(b) {
                    Ordering::Less => {
                        mine.next();
                        Ordering::Greater
                    }
                    Ordering::Greater => {
                        theirs.next();
                        Ordering::Less
                    }
                    Ordering::Equal => {
                        let order = x.cmp(y);
                        mine.next();
                        theirs.next();
                        order
                    }
                },
            };
            match order {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// True when this clock has seen everything `other` has.
    pub fn dominates(&self, other: &Self) -> bool {
        matches!(self.compare(other), Causality::After | Causality::Equal)
    }

    /// The entries, smallest replica first.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.entries
            .iter()
            .map(|(&replica, &count)| (replica, count))
    }

    /// How many replicas have a non-zero entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(ReplicaId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(entries: I) -> Self {
        let mut clock = Self::new();
        for (replica, count) in entries {
            clock.observe(replica, count);
        }
        clock
    }
}
