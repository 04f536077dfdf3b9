//! Multi-value register: concurrent writes are kept, not decided.
//!
//! Where LWW picks a winner, an MV register keeps every write that no
//! other write has seen — the *siblings* — and lets the application
//! merge them (Amazon's shopping cart in the Dynamo paper, Riak's
//! `allow_mult`). A write replaces exactly the values its replica has
//! seen; concurrent writes on other replicas survive as siblings until a
//! later write, made after reading them all, replaces them. The state is
//! a [`Siblings`] store: each value tagged with its dot, plus the context
//! of every write seen.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;
use crate::clock::dotted::Siblings;
use crate::clock::vector::VersionVector;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MvRegister<V> {
    siblings: Siblings<V>,
}

impl<V> Default for MvRegister<V> {
    fn default() -> Self {
        Self {
            siblings: Siblings::default(),
        }
    }
}

impl<V: Clone + Ord + Debug> MvRegister<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `replica`, replacing every value this replica
    /// has seen; returns the delta.
    pub fn write(&mut self, replica: ReplicaId, value: V) -> Self {
        let seen = self.siblings.context().version_vector().clone();
        self.write_after(replica, &seen, value)
    }

    /// Writes `value` for a client that read the register with
    /// `read_context` (from [`Self::read`]): only the values it saw are
    /// replaced; writes it had not seen stay as siblings.
    pub fn write_after(
        &mut self,
        replica: ReplicaId,
        read_context: &VersionVector,
        value: V,
    ) -> Self {
        Self {
            siblings: self.siblings.write(replica, read_context, value),
        }
    }

    /// The values and the context to send back with the next write.
    pub fn read(&self) -> (Vec<V>, VersionVector) {
        let (values, context) = self.siblings.read();
        let mut values: Vec<V> = values.into_iter().cloned().collect();
        values.sort();
        (values, context)
    }

    /// The underlying dotted store.
    pub fn siblings(&self) -> &Siblings<V> {
        &self.siblings
    }

    pub fn from_siblings(siblings: Siblings<V>) -> Self {
        Self { siblings }
    }
}

impl<V: Clone + Ord + Debug> Crdt for MvRegister<V> {
    /// The siblings, sorted: one value unless writes were concurrent.
    type Value = Vec<V>;

    fn merge(&mut self, other: &Self) {
        self.siblings.merge(&other.siblings);
    }

    fn value(&self) -> Vec<V> {
        self.read().0
    }
}
