//! `CrdtReplica`: a multi-master store of named CRDT objects whose
//! replicas converge by gossip, through partitions.
//!
//! Episode: 22, "Multi-Master Replication" (also 21)
//! Pattern: replication / delta-state anti-entropy
//! Try it:  cargo run -- demo crdt-partition
//! Test it: cargo test -p replication crdt_replica
//!
//! Every replica accepts every update at once — no leader, no quorum, no
//! waiting for the network — and tells its peers later. Conflicts cannot
//! arise inside an object: its type's merge decides (counters add, the
//! OR-Set lets a concurrent add win, the MV register keeps concurrent
//! writes as siblings for the next writer to resolve). What remains is
//! getting every update everywhere, over a network that drops, repeats
//! and reorders: [`anti_entropy`] ships each peer the deltas it lacks,
//! named by dots and acknowledged by causal contexts (version vectors plus
//! the dots beyond a gap), and falls back to the full state when the
//! deltas it would need are gone. Merges are
//! idempotent, commutative and associative, so any delivery order, and
//! any number of copies, ends in the same state.
//!
//! Bounds: object names of at most [`MAX_NAME_BYTES`], elements and
//! register values of at most [`MAX_ELEMENT_BYTES`]; a replica accepts
//! updates for at most [`MAX_OBJECTS`] objects and [`MAX_REPLICA_BYTES`]
//! of state ([`MAX_OBJECT_BYTES`] per object) — past them, updates that
//! would grow the state are refused with `ResourceExhausted` (removes and
//! reads still work); at most [`MAX_MEMBERS`] members; anti-entropy
//! bounds in [`anti_entropy`]. Peers are members named by `--peer`; a
//! gossip naming anyone else is refused. Each run of a replica makes its
//! updates as a fresh actor ([`actor_of`]), so a restart never reuses a
//! dot or a counter entry.
//!
//! Gossip carries the cluster's [`PeerSecret`] when one is configured
//! (`--peer-secret`); without it, anyone who can reach the port can pose
//! as a member and inject updates.
//!
//! Simplified: state lives in memory only (a restarted replica rejoins
//! empty and is refilled by its peers' full state); the secret travels in
//! the clear (no TLS); membership is fixed at start. Riak and Redis
//! Enterprise's CRDTs persist state, use TLS and change membership online.

pub mod anti_entropy;
mod client;
mod codec;
mod demo;
#[cfg(test)]
mod history_tests;
pub mod object;
mod service;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use observability::rpc::Net;
use observability::rpc::peer_secret::PeerSecret;

pub use client::ReplicaClient;
pub use demo::crdt_partition_demo;
pub use object::{Kind, ObjectKey, Operation};
pub use service::CrdtReplica;

use crate::clock::ReplicaId;
use crate::clock::physical::{PhysicalClock, SystemClock};

/// The longest object name.
pub const MAX_NAME_BYTES: usize = 256;
/// The longest set element or register value.
pub const MAX_ELEMENT_BYTES: usize = 1024;
/// Objects a replica creates through its own updates.
pub const MAX_OBJECTS: usize = 1024;
/// Encoded state a replica grows through its own updates.
pub const MAX_REPLICA_BYTES: usize = 2 * 1024 * 1024;
/// Encoded state of one object grown through this replica's updates.
pub const MAX_OBJECT_BYTES: usize = 256 * 1024;
/// Deltas kept for peers that have not acknowledged them.
pub const MAX_BUFFERED_DELTA_BYTES: usize = 1024 * 1024;
/// What one gossip message carries (plus one delta or object at most).
pub const MAX_GOSSIP_BYTES: usize = 256 * 1024;
/// Deltas in one gossip message. Joining them costs up to their number
/// squared (each joins a group that grows), so the sender stops here and
/// a receiver refuses more.
pub const MAX_DELTAS_PER_MESSAGE: usize = 256;
/// Members of one cluster: with the per-object bound, the largest object
/// any merge can build stays under the RPC stack's 4 MiB message limit.
pub const MAX_MEMBERS: usize = 7;

/// Dots beyond a gap a replica keeps in what it has seen (out-of-order
/// deltas and claims); a message that could pass it is refused.
pub const MAX_SEEN_CLOUD_DOTS: usize = 64 * 1024;

/// Bits of an actor id that hold the incarnation; the member id sits
/// above them, so member ids are below 2^24.
pub const INCARNATION_BITS: u32 = 40;

/// The actor a member's run makes its updates as.
///
/// Pitfall: a replica restarted without its state must not reuse its old
/// dots or counter entries — peers would take its new updates for ones
/// they have seen, or keep the old, larger count and drop the new
/// increments. Each run gets a fresh actor instead; the old one's entries
/// stay, with exactly the updates they counted. (Riak's vnode ids carry an
/// epoch for the same reason.) The cost: version vectors gain one entry
/// per restart of a member.
pub fn actor_of(member: ReplicaId, incarnation: u64) -> ReplicaId {
    ReplicaId(member.0 << INCARNATION_BITS | (incarnation & ((1 << INCARNATION_BITS) - 1)))
}

/// The member an actor belongs to.
pub fn member_of(actor: ReplicaId) -> ReplicaId {
    ReplicaId(actor.0 >> INCARNATION_BITS)
}

/// `r2.17`: member 2, incarnation 17.
pub fn actor_name(actor: ReplicaId) -> String {
    let incarnation = actor.0 & ((1 << INCARNATION_BITS) - 1);
    format!("{}.{incarnation}", member_of(actor))
}

/// How replicas exchange state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AntiEntropy {
    /// Ship the deltas a peer lacks; the full state only when needed.
    #[default]
    Delta,
    /// Ship the full state every round: the baseline deltas are measured
    /// against.
    FullState,
}

/// Faults injected into this replica's outgoing gossip, on top of
/// whatever the network does: drop a message, send it twice, or hold it
/// back and send it after the next round's (reordering).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MessageFaults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

/// Links cut between replicas: a partition at the message layer, which
/// tests and demos on real TCP (where nobody can unplug a cable) share
/// between the replicas they start. Clones share the cuts.
#[derive(Clone, Debug, Default)]
pub struct LinkCuts {
    cut: Arc<Mutex<BTreeSet<(ReplicaId, ReplicaId)>>>,
}

impl LinkCuts {
    /// Cuts every link between `side` and everyone else in `members`.
    pub fn partition(&self, side: &[ReplicaId], members: &[ReplicaId]) {
        let mut cut = self.cut.lock().unwrap_or_else(PoisonError::into_inner);
        for &a in side {
            for &b in members.iter().filter(|b| !side.contains(b)) {
                cut.insert((a, b));
                cut.insert((b, a));
            }
        }
    }

    /// Cuts the link from `from` to `to` only: `from`'s calls to `to` are
    /// lost, `to`'s calls to `from` still go through.
    pub fn cut(&self, from: ReplicaId, to: ReplicaId) {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((from, to));
    }

    pub fn heal(&self) {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn is_cut(&self, from: ReplicaId, to: ReplicaId) -> bool {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(from, to))
    }
}

/// How a replica is set up.
#[derive(Clone)]
pub struct ReplicaConfig {
    pub id: ReplicaId,
    /// The other members and their addresses (`host:port`).
    pub peers: BTreeMap<ReplicaId, String>,
    pub net: Net,
    /// How often this replica gossips.
    pub gossip_interval: Duration,
    /// How many random peers it gossips with each round.
    pub fanout: usize,
    pub mode: AntiEntropy,
    pub faults: MessageFaults,
    pub cuts: LinkCuts,
    /// The secret every member shares; gossip without it is refused
    /// (`Unauthenticated`). Without one, any caller is believed.
    pub peer_secret: Option<PeerSecret>,
    /// Seeds the choice of peers and the faults.
    pub seed: u64,
    /// A remote LWW stamp further ahead of this replica's clock than this
    /// is refused (hybrid logical clock's maximum offset).
    pub max_clock_offset: Duration,
    pub clock: Arc<dyn PhysicalClock>,
    /// Differs between runs of the same replica (only its low
    /// [`INCARNATION_BITS`] count), so a restart that lost the state gets
    /// a fresh [`actor_of`] and peers notice it.
    pub incarnation: u64,
}

impl std::fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("id", &self.id)
            .field("peers", &self.peers)
            .field("gossip_interval", &self.gossip_interval)
            .field("fanout", &self.fanout)
            .field("mode", &self.mode)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl ReplicaConfig {
    /// Replica `id` with these peers, gossiping every 200 ms with two
    /// random peers, delta mode, the system clock, 500 ms maximum offset.
    pub fn new(id: ReplicaId, peers: BTreeMap<ReplicaId, String>, net: Net) -> Self {
        Self {
            id,
            peers,
            net,
            gossip_interval: Duration::from_millis(200),
            fanout: 2,
            mode: AntiEntropy::Delta,
            faults: MessageFaults::default(),
            cuts: LinkCuts::default(),
            peer_secret: None,
            seed: id.0,
            max_clock_offset: Duration::from_millis(500),
            clock: Arc::new(SystemClock),
            // Milliseconds wrap in 40 bits every 34 years; two runs of one
            // replica a millisecond apart are not a concern.
            incarnation: SystemClock.now_ns() / 1_000_000,
        }
    }
}
