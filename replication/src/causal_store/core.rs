//! One replica of the causal store: a map of registers, a vector clock,
//! and the writes that arrived before their causes.

use std::collections::BTreeMap;

use crate::clock::ReplicaId;
use crate::clock::vector::VectorClock;
use crate::{Error, Result};

/// A write on its way to the other replicas: its origin's clock right
/// after the write names exactly the writes it depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub origin: ReplicaId,
    pub clock: VectorClock,
    pub key: String,
    pub value: String,
}

impl Update {
    /// The last-writer-wins order: the sum of the clock grows along every
    /// causal chain, so a write always wins over the writes it depends on;
    /// the origin breaks ties between concurrent ones.
    fn stamp(&self) -> (u64, ReplicaId) {
        let sum = self
            .clock
            .iter()
            .fold(0u64, |sum, (_, count)| sum.saturating_add(count));
        (sum, self.origin)
    }
}

/// When a replica applies a write that arrives from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Only once every write it depends on is applied; until then it
    /// waits in a bounded buffer.
    Causal,
    /// At once, over whatever the replica holds: the broken twin.
    OnArrival,
}

/// One replica.
#[derive(Clone, Debug)]
pub struct Replica {
    id: ReplicaId,
    delivery: Delivery,
    /// Writes applied here, per origin.
    clock: VectorClock,
    values: BTreeMap<String, ((u64, ReplicaId), String)>,
    pending: Vec<Update>,
    max_pending: usize,
}

impl Replica {
    pub fn new(id: ReplicaId, delivery: Delivery, max_pending: usize) -> Self {
        Self {
            id,
            delivery,
            clock: VectorClock::new(),
            values: BTreeMap::new(),
            pending: Vec::new(),
            max_pending,
        }
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// A local write: applied here at once, returned for broadcast.
    pub fn write(&mut self, key: &str, value: &str) -> Update {
        self.clock.tick(self.id);
        let update = Update {
            origin: self.id,
            clock: self.clock.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.apply(&update);
        update
    }

    /// The local value of `key`, if any write to it was applied here.
    pub fn read(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(_, value)| value.as_str())
    }

    /// Writes received but waiting for their dependencies.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A peer's write arrives; returns how many writes it let this replica
    /// apply (itself and buffered ones it unblocked). A write that must
    /// wait while the buffer is full is refused with
    /// [`Error::CausalBufferFull`]: the sender keeps it and retries.
    pub fn receive(&mut self, update: Update) -> Result<usize> {
        if self.delivery == Delivery::OnArrival {
            // Pitfall: this is what a store without dependency tracking
            // does: apply whatever arrives, over whatever is there. A write
            // of y that depends on a write of x can arrive first, and a
            // reader sees the new y with the old x; two writes of x from
            // one client can arrive swapped, and the older one wins.
            self.clock.merge(&update.clock);
            self.values
                .insert(update.key.clone(), (update.stamp(), update.value.clone()));
            return Ok(1);
        }
        if self.seen(&update) {
            return Ok(0);
        }
        if !self.deliverable(&update) {
            if self.pending.len() >= self.max_pending {
                return Err(Error::CausalBufferFull {
                    max: self.max_pending,
                });
            }
            self.pending.push(update);
            return Ok(0);
        }
        self.deliver(&update);
        let mut applied = 1;
        // Each delivery may unblock buffered writes, which may unblock more.
        while let Some(at) = self.pending.iter().position(|u| self.deliverable(u)) {
            let next = self.pending.swap_remove(at);
            self.deliver(&next);
            applied += 1;
        }
        // Copies of writes applied meanwhile can go.
        let clock = &self.clock;
        self.pending
            .retain(|u| u.clock.get(u.origin) > clock.get(u.origin));
        Ok(applied)
    }

    fn seen(&self, update: &Update) -> bool {
        update.clock.get(update.origin) <= self.clock.get(update.origin)
    }

    /// The next write from its origin, and nothing it depends on missing.
    fn deliverable(&self, update: &Update) -> bool {
        update.clock.get(update.origin) == self.clock.get(update.origin) + 1
            && update
                .clock
                .iter()
                .all(|(r, count)| r == update.origin || count <= self.clock.get(r))
    }

    fn deliver(&mut self, update: &Update) {
        self.clock
            .observe(update.origin, update.clock.get(update.origin));
        self.apply(update);
    }

    fn apply(&mut self, update: &Update) {
        let stamp = update.stamp();
        let newer = self
            .values
            .get(&update.key)
            .is_none_or(|(current, _)| stamp > *current);
        if newer {
            self.values
                .insert(update.key.clone(), (stamp, update.value.clone()));
        }
    }
}
