//! Last-writer-wins register — and what "last" means.
//!
//! Each write carries a stamp; merge keeps the write with the largest.
//! Ties between equal stamps are broken by the writer's id and then the
//! value, so any two replicas pick the same winner: the order is total,
//! and merge is a lattice join. (Pitfall: `crdts`' `LWWReg` compares
//! markers only, so two different values written with the same marker
//! never converge.)
//!
//! LWW is only as good as its stamps. With wall-clock stamps
//! ([`NaiveWallClockLww`], the broken twin), a replica whose clock runs
//! slow stamps its write *earlier* than one it had already read — and
//! merge silently throws the newer write away (Episode 22's lost update;
//! Cassandra's known edge). With hybrid logical clock stamps
//! ([`HlcLww`]), reading a value advances the reader's clock past its
//! stamp, so a write that causally follows another always wins; only
//! truly concurrent writes are decided by the clocks.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::clock::ReplicaId;
use crate::clock::hlc::HlcTimestamp;

/// One write: ordered by stamp, then writer, then value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamped<V, S> {
    pub stamp: S,
    pub writer: ReplicaId,
    pub value: V,
}

/// A register holding the write with the largest stamp seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister<V, S> {
    winner: Option<Stamped<V, S>>,
}

/// The broken twin: stamps are wall-clock nanoseconds.
pub type NaiveWallClockLww<V> = LwwRegister<V, u64>;

/// Stamps from a hybrid logical clock: causally later writes win.
pub type HlcLww<V> = LwwRegister<V, HlcTimestamp>;

impl<V, S> Default for LwwRegister<V, S> {
    fn default() -> Self {
        Self { winner: None }
    }
}

impl<V: Ord + Clone + Debug, S: Ord + Clone + Debug> LwwRegister<V, S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` with `stamp` at `writer`; returns the delta (that
    /// write). A write with a smaller stamp than the current winner loses
    /// at once — silently, which is the point of the broken twin.
    pub fn set(&mut self, writer: ReplicaId, stamp: S, value: V) -> Self {
        let delta = Self {
            winner: Some(Stamped {
                stamp,
                writer,
                value,
            }),
        };
        self.merge(&delta);
        delta
    }

    /// The winning write, with its stamp.
    pub fn winner(&self) -> Option<&Stamped<V, S>> {
        self.winner.as_ref()
    }

    /// A register holding `winner` (for decoding).
    pub fn from_winner(winner: Option<Stamped<V, S>>) -> Self {
        Self { winner }
    }
}

impl<V: Ord + Clone + Debug, S: Ord + Clone + Debug> Crdt for LwwRegister<V, S> {
    type Value = Option<V>;

    fn merge(&mut self, other: &Self) {
        if other.winner > self.winner {
            self.winner.clone_from(&other.winner);
        }
    }

    fn value(&self) -> Option<V> {
        self.winner.as_ref().map(|write| write.value.clone())
    }
}
