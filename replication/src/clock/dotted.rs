//! Dots and dotted version vectors: sibling tracking as Riak does it.
//!
//! A *dot* `(replica, n)` names one event: the n-th write coordinated by
//! that replica. A set of dots that has no gaps per replica is a version
//! vector; the [`CausalContext`] below stores exactly that, plus the few
//! dots that arrived out of order (its "cloud"), compacted as gaps fill.
//!
//! Why dots on values (Preguiça, Baquero et al., "Dotted Version
//! Vectors", 2012): tag each stored value with the *server's* version
//! vector, and two clients writing concurrently through the same server
//! get vectors that look ordered — the second silently replaces the
//! first. Give the store one version vector for everything it has seen
//! and tag each value with its own dot instead: a write replaces exactly
//! the values its client had read (the dots covered by the context the
//! client sends back), and a concurrent write survives as a *sibling*
//! for a client to resolve. [`Siblings`] is that store for one key; the
//! multi-value register and the observed-remove set are built on it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReplicaId;
use super::vector::VersionVector;

/// One event: the `counter`-th write coordinated by `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub replica: ReplicaId,
    pub counter: u64,
}

/// The set of dots a replica has seen: a version vector for the prefix
/// without gaps, and a cloud for the dots beyond a gap. Deltas arrive out
/// of order, so gaps happen; they close when the missing delta arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    compact: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter <= self.compact.get(dot.replica) || self.cloud.contains(dot)
    }

    /// A fresh dot for a write coordinated by `replica`, recorded as seen:
    /// one past every dot of `replica` seen so far, gaps included, so a
    /// dot is never issued twice.
    pub fn next_dot(&mut self, replica: ReplicaId) -> Dot {
        let counter = self.highest(replica).saturating_add(1);
        let dot = Dot { replica, counter };
        self.insert(dot);
        dot
    }

    /// The highest dot of `replica` seen, gaps included (0 for none).
    pub fn highest(&self, replica: ReplicaId) -> u64 {
        let highest_beyond_gap = self
            .cloud
            .range(
                Dot {
                    replica,
                    counter: 0,
                }..=Dot {
                    replica,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |dot| dot.counter);
        self.compact.get(replica).max(highest_beyond_gap)
    }

    /// Records `dot` as seen, in O(log n): a dot that extends the prefix
    /// pulls in the run of cloud dots it makes contiguous.
    pub fn insert(&mut self, dot: Dot) {
        let seen = self.compact.get(dot.replica);
        if dot.counter <= seen {
            return;
        }
        if seen.checked_add(1) != Some(dot.counter) {
            self.cloud.insert(dot);
            return;
        }
        let mut top = dot.counter;
        while let Some(next) = top.checked_add(1)
            && self.cloud.remove(&Dot {
                replica: dot.replica,
                counter: next,
            })
        {
            top = next;
        }
        self.compact.observe(dot.replica, top);
    }

    /// Joins another context into this one.
    pub fn merge(&mut self, other: &Self) {
        self.compact.merge(&other.compact);
        self.cloud.extend(other.cloud.iter().copied());
        self.compact_cloud();
    }

    /// The gap-free prefix, as a version vector.
    pub fn version_vector(&self) -> &VersionVector {
        &self.compact
    }

    /// How many dots wait beyond a gap.
    pub fn cloud_len(&self) -> usize {
        self.cloud.len()
    }

    /// The dots beyond a gap.
    pub fn cloud(&self) -> impl Iterator<Item = Dot> + '_ {
        self.cloud.iter().copied()
    }

    /// A context of this prefix and these dots (for decoding), compacted.
    pub fn from_parts(compact: VersionVector, cloud: impl IntoIterator<Item = Dot>) -> Self {
        let mut context = Self {
            compact,
            cloud: cloud.into_iter().collect(),
        };
        context.compact_cloud();
        context
    }

    /// Moves every cloud dot that extends (or is inside) the compact
    /// prefix into it. The cloud is sorted by replica then counter, so one
    /// pass moves each replica's run in order.
    fn compact_cloud(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let seen = self.compact.get(dot.replica);
            if seen.checked_add(1) == Some(dot.counter) {
                self.compact.observe(dot.replica, dot.counter);
            } else if dot.counter > seen {
                self.cloud.insert(dot);
            }
        }
    }
}

/// The values stored under one key, each tagged with the dot of the write
/// that made it, and the context of every write the store has seen.
///
/// This is also the state of a multi-value register: its merge keeps a
/// value when both sides hold it, or when the other side has never seen
/// its dot (it is new, not deleted there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Siblings<V> {
    values: BTreeMap<Dot, V>,
    context: CausalContext,
}

impl<V> Default for Siblings<V> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            context: CausalContext::new(),
        }
    }
}

impl<V: Clone> Siblings<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current values (one, or several concurrent siblings) and the
    /// context a client must send back with its next write.
    pub fn read(&self) -> (Vec<&V>, VersionVector) {
        (
            self.values.values().collect(),
            self.context.version_vector().clone(),
        )
    }

    /// The current values, oldest dot first.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values.values()
    }

    /// Writes `value` through `coordinator` on behalf of a client that had
    /// read `read_context`: the values that client saw are replaced, values
    /// it had not seen stay as siblings.
    ///
    /// Returns the delta: the new value with its dot, and a context
    /// holding the dots it replaced, so a peer that merges the delta drops
    /// those values too — and nothing else.
    pub fn write(
        &mut self,
        coordinator: ReplicaId,
        read_context: &VersionVector,
        value: V,
    ) -> Self {
        let mut delta = Self::new();
        self.values.retain(|&dot, _| {
            let seen_by_client = dot.counter <= read_context.get(dot.replica);
            if seen_by_client {
                delta.context.insert(dot);
            }
            !seen_by_client
        });
        let dot = self.context.next_dot(coordinator);
        delta.context.insert(dot);
        delta.values.insert(dot, value.clone());
        self.values.insert(dot, value);
        delta
    }

    /// Joins another replica's state (or a delta) into this one.
    pub fn merge(&mut self, other: &Self) {
        // Keep ours unless the other side saw the dot and dropped it.
        self.values
            .retain(|dot, _| other.values.contains_key(dot) || !other.context.contains(dot));
        // Take theirs unless we saw the dot and dropped it.
        for (dot, value) in &other.values {
            if !self.values.contains_key(dot) && !self.context.contains(dot) {
                self.values.insert(*dot, value.clone());
            }
        }
        self.context.merge(&other.context);
    }

    /// The values with their dots.
    pub fn dotted_values(&self) -> impl Iterator<Item = (Dot, &V)> + '_ {
        self.values.iter().map(|(&dot, value)| (dot, value))
    }

    /// A store of these values and context (for decoding); the values'
    /// dots are added to the context. Dots must have counters from 1
    /// (a zero dot reads as seen by everyone); the replica's decoder
    /// checks that, and that no dot carries two values.
    pub fn from_parts(values: BTreeMap<Dot, V>, mut context: CausalContext) -> Self {
        for &dot in values.keys() {
            context.insert(dot);
        }
        Self { values, context }
    }

    /// The context of every write seen.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// How many values are stored (siblings included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
