//! Conflict-free replicated data types: replicas that accept writes
//! independently and still converge.
//!
//! Episode: 21, "CRDTs - Conflict-Free Replicated Data Types" (also 22)
//! Pattern: replication / state-based and delta-state CRDTs
//! Try it:  cargo run -- demo crdt-partition
//! Test it: cargo test -p replication crdt
//!
//! A state-based CRDT's states form a *join-semilattice*: [`Crdt::merge`]
//! computes the least upper bound of two states, and every law below
//! holds for every pair of states. Together they mean a replica may
//! receive another's state any number of times, in any order, batched
//! any way, and all replicas that have seen the same updates hold the
//! same state. No coordination, no lost update — only some operations
//! are expressible (a counter, a set; not "decrement unless zero").
//!
//! ```text
//! commutative   a ⊔ b = b ⊔ a              order of delivery does not matter
//! associative   (a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)  batching does not matter
//! idempotent    a ⊔ a = a                  redelivery does not matter
//! inflation     a ⊑ mutate(a)              updates only move up the lattice
//! ```
//!
//! *Delta-state* (Almeida, Shoker, Baquero, 2018): every mutator here
//! returns a delta — itself a small state of the same type — such that
//! `old ⊔ delta = new`. A replica ships deltas instead of its whole state,
//! and because deltas are states, they merge (and join into batches) with
//! the same `merge`. Operation-based CRDTs would ship operations instead,
//! but need exactly-once causal delivery; deltas only need the lattice.
//!
//! The types, from simplest up: [`gcounter`], [`pncounter`], [`gset`],
//! [`two_phase_set`], [`lww`] and [`mvregister`] (one value, or the
//! concurrent siblings), [`orset`] (add-wins observed-remove, no
//! tombstones) and its memory twin [`naive_orset`], [`map`] (CRDTs
//! composed), and [`naive_counter`], the counter that is not a CRDT.
//!
//! Bounds: these are in-memory types with no limits of their own; the
//! replica service bounds what a request can add (element and delta
//! sizes, objects per replica, replica ids it accepts).

pub mod gcounter;
pub mod gset;
pub mod lww;
pub mod map;
pub mod mvregister;
pub mod naive_counter;
pub mod naive_orset;
pub mod orset;
pub mod pncounter;
pub mod two_phase_set;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use std::fmt::Debug;

pub use gcounter::GCounter;
pub use gset::GSet;
pub use lww::LwwRegister;
pub use map::CrdtMap;
pub use mvregister::MvRegister;
pub use naive_counter::NaiveSumCounter;
pub use naive_orset::NaiveOrSet;
pub use orset::OrSet;
pub use pncounter::PnCounter;
pub use two_phase_set::TwoPhaseSet;

/// A state-based CRDT: states form a join-semilattice under [`Self::merge`].
pub trait Crdt: Clone + PartialEq + Debug {
    /// What a reader sees.
    type Value;

    /// Joins `other` into `self`: the least upper bound of the two
    /// states. Commutative, associative and idempotent.
    fn merge(&mut self, other: &Self);

    /// The observable value.
    fn value(&self) -> Self::Value;
}
