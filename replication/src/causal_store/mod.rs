//! A causally consistent store, and its broken twin that delivers writes
//! out of causal order.
//!
//! Episode: 19, "Consistency Models Hierarchy" (also 20)
//! Pattern: replication / causal broadcast
//! Try it:  cargo test -p replication causal_store -- --nocapture
//! Test it: cargo test -p replication causal_store
//!
//! Every replica accepts writes locally and broadcasts them; a client
//! reads its own replica. What makes the store causal is *when* a replica
//! applies a peer's write: only once it has applied everything the writer
//! had seen, which the write's vector clock names (one entry per replica:
//! "I had applied 3 writes from r1 and 5 from r2"). A write that arrives
//! early waits in a buffer. [`NaiveCausalStore`] applies writes as they
//! arrive, over whatever is there: a reader can then see Bob's reply
//! before Alice's post, or a client's older write after its newer one; the
//! causal checker (`consistency::causal`) names it WriteCOInitRead or
//! WriteCORead. Concurrent writes to one key are ordered last-writer-wins
//! by (sum of the clock, origin), so the replicas also converge (the
//! checker's CCv variant).
//!
//! Bounds: each replica buffers at most `max_pending` early writes; one
//! more is refused with [`crate::Error::CausalBufferFull`] and stays
//! with its sender, which retries (the simulation counts those refusals).
//! A vector clock holds one entry per replica.
//!
//! Simplified: in-process replicas and a simulated network ([`sim`]);
//! values are never deleted. COPS and Eiger track dependencies per key
//! rather than per replica, so that a write waits only for what it read.

mod core;
pub mod sim;
#[cfg(test)]
mod tests;

pub use self::core::{Delivery, Replica, Update};

use crate::Result;
use crate::clock::ReplicaId;

/// Early writes a replica buffers by default.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Replicas that take writes, serve reads and receive each other's writes.
pub trait Store {
    fn replicas(&self) -> usize;
    /// A write at `replica`; the update to broadcast to the others.
    fn write(&mut self, replica: usize, key: &str, value: &str) -> Update;
    fn read(&self, replica: usize, key: &str) -> Option<String>;
    /// A peer's write arrives at `replica`.
    fn receive(&mut self, replica: usize, update: Update) -> Result<()>;
}

/// `n` replicas with one delivery rule.
#[derive(Clone, Debug)]
struct Cluster {
    replicas: Vec<Replica>,
}

impl Cluster {
    fn new(n: usize, delivery: Delivery, max_pending: usize) -> Self {
        Self {
            replicas: (1..=n as u64)
                .map(|id| Replica::new(ReplicaId(id), delivery, max_pending))
                .collect(),
        }
    }
}

macro_rules! store_over_cluster {
    ($store:ident) => {
        impl Store for $store {
            fn replicas(&self) -> usize {
                self.0.replicas.len()
            }
            fn write(&mut self, replica: usize, key: &str, value: &str) -> Update {
                self.0.replicas[replica].write(key, value)
            }
            fn read(&self, replica: usize, key: &str) -> Option<String> {
                self.0.replicas[replica].read(key).map(str::to_owned)
            }
            fn receive(&mut self, replica: usize, update: Update) -> Result<()> {
                self.0.replicas[replica].receive(update).map(|_| ())
            }
        }
    };
}

/// Delivers each write only after the writes it depends on.
#[derive(Clone, Debug)]
pub struct CausalStore(Cluster);

impl CausalStore {
    pub fn new(replicas: usize, max_pending: usize) -> Self {
        Self(Cluster::new(replicas, Delivery::Causal, max_pending))
    }

    /// Early writes waiting at each replica.
    pub fn pending(&self) -> Vec<usize> {
        self.0.replicas.iter().map(Replica::pending).collect()
    }
}

/// The broken twin: applies each write the moment it arrives.
#[derive(Clone, Debug)]
pub struct NaiveCausalStore(Cluster);

impl NaiveCausalStore {
    pub fn new(replicas: usize) -> Self {
        Self(Cluster::new(replicas, Delivery::OnArrival, 0))
    }
}

store_over_cluster!(CausalStore);
store_over_cluster!(NaiveCausalStore);
