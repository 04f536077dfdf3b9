//! Hinted handoff: writes a stand-in holds for a replica that was down.
//!
//! When a preferred replica does not answer, a sloppy-quorum coordinator
//! sends the write to the next node on the ring instead, with a *hint*
//! naming the replica it belongs to. The stand-in stores the state and
//! remembers the hint; a handoff loop offers each hinted key to its owner
//! until the owner takes it. The write counts toward W at once, so writes
//! stay available through a failure — but a read of the preferred
//! replicas will not see it until the handoff, which is why a sloppy
//! quorum does not give R + W > N's guarantee.
//!
//! Pitfall: an unbounded hint queue turns a long outage into an
//! out-of-memory crash of the stand-ins. Here a full queue refuses the
//! hinted write (`ResourceExhausted`), so the coordinator tries the next
//! stand-in or reports the write as not acknowledged — never silently
//! drops a hint it acknowledged.

use std::collections::BTreeMap;

use super::MAX_HINTS;
use crate::clock::ReplicaId;
use crate::{Error, Result};

/// The hints one node holds: (owner, key) pairs; the state itself is the
/// node's own copy of the key, so a hint for a key written twice is one
/// entry carrying both writes. Each carries the generation of its last
/// write, see [`Hints::delivered`].
#[derive(Clone, Debug, Default)]
pub struct Hints {
    pending: BTreeMap<(ReplicaId, String), u64>,
    generation: u64,
    delivered: u64,
}

/// A hinted key and the generation it was sent at.
pub type Hinted = (String, u64);

impl Hints {
    /// Remembers that `key` must reach `owner`. Refuses a new hint when
    /// [`MAX_HINTS`] are pending; a hint already pending is free.
    pub fn add(&mut self, owner: ReplicaId, key: &str) -> Result<()> {
        self.generation += 1;
        if let Some(generation) = self.pending.get_mut(&(owner, key.to_owned())) {
            *generation = self.generation;
            return Ok(());
        }
        if self.pending.len() >= MAX_HINTS {
            return Err(Error::HintsFull { max: MAX_HINTS });
        }
        self.pending
            .insert((owner, key.to_owned()), self.generation);
        Ok(())
    }

    /// Up to `limit` pending keys per owner, owners in id order.
    pub fn batches(&self, limit: usize) -> BTreeMap<ReplicaId, Vec<Hinted>> {
        let mut batches: BTreeMap<ReplicaId, Vec<Hinted>> = BTreeMap::new();
        for ((owner, key), &generation) in &self.pending {
            let batch = batches.entry(*owner).or_default();
            if batch.len() < limit {
                batch.push((key.clone(), generation));
            }
        }
        batches
    }

    /// The owner took these keys, in the state they had at `generation`.
    ///
    /// Pitfall: a key re-hinted while its handoff was in flight must stay
    /// pending — the owner got the older state, without the newer write.
    /// Its generation moved on, so it is kept and sent again.
    pub fn delivered(&mut self, owner: ReplicaId, keys: &[Hinted]) {
        for (key, generation) in keys {
            let entry = (owner, key.clone());
            if self.pending.get(&entry) == Some(generation) {
                self.pending.remove(&entry);
                self.delivered += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Hints handed off since the node started.
    pub fn delivered_count(&self) -> u64 {
        self.delivered
    }
}
