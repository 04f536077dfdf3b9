//! A Dynamo-style leaderless key-value store: N replicas per key on a
//! consistent-hash ring, R and W chosen per request.
//!
//! Episode: 14, "CAP Theorem - Beyond the Oversimplification" (also 19, 22)
//! Pattern: replication / leaderless quorums, sloppy quorum, anti-entropy
//! Try it:  cargo run -- demo quorum-tradeoffs
//! Test it: cargo test -p replication quorum
//!
//! Every key lives on the first N distinct nodes clockwise from its hash
//! ([`placement`]). Any node takes a request: a write is made by one of
//! those N (the coordinator, which tags it with a fresh dot, see
//! [`version`]) and sent to the others; it succeeds when W have stored it.
//! A read asks the N, waits for R answers and merges them. With
//! R + W > N every read quorum meets every write quorum, so a read sees
//! every acknowledged write; with R + W ≤ N it may not — the price of the
//! lower latency, which `dslab demo quorum-tradeoffs` measures (PACELC:
//! even without a partition, consistency costs latency).
//!
//! Concurrent writes are not ordered by anyone: dotted version vectors
//! ([`crate::clock::dotted`]) keep them as *siblings*, and the client
//! resolves them (writing back with the read's context) or declares a
//! policy ([`Resolution::LastWriterWins`]). Three mechanisms repair the
//! copies: *hinted handoff* (a write meant for a down node is held by a
//! stand-in, [`hints`], and delivered when it returns — the sloppy
//! quorum), *read repair* (a read writes the merged state back to the
//! stale replicas it saw, before replying, so a later read quorum meets
//! it), and *Merkle-tree anti-entropy* ([`merkle`], [`anti_entropy`]):
//! two replicas compare hash trees over the keys they share and ship only
//! the keys that differ — bytes proportional to the difference, not to
//! the data.
//!
//! Pitfall: R + W > N alone is not linearizability. A read that sees a
//! write still in flight and returns it, followed by a read that misses
//! it, is a stale read no quorum arithmetic prevents; the blocking read
//! repair here (ABD's write-back phase) closes that gap when 2R > N too.
//! [`ReadRepair::NaiveAfterReply`] is the broken twin that repairs after
//! replying, as plain Dynamo does; a test shows the checker catching it.
//! A sloppy quorum closes none: the W stand-ins need not meet the R
//! preferred replicas a later read asks.
//!
//! Bounds: keys of at most [`MAX_KEY_BYTES`], values of at most
//! [`MAX_VALUE_BYTES`]; at most [`MAX_SIBLINGS`] siblings per key (a write
//! or merge that would keep more is refused with `FailedPrecondition`:
//! resolve them first — until then two replicas whose merge would pass
//! the bound differ on that key, and anti-entropy keeps finding it); at most [`MAX_CONTEXT_ENTRIES`] version-vector
//! entries and [`MAX_CLOUD_DOTS`] dots beyond a gap per context; at most
//! [`MAX_KEYS`] keys and [`MAX_STORE_BYTES`] bytes per node
//! (`ResourceExhausted` past them); at most [`MAX_HINTS`] hints held for
//! other nodes (a stand-in refuses more, so the coordinator tries the
//! next); at most [`MAX_BATCH_KEYS`] keys per Fetch or Replicate; Merkle
//! requests name at most [`merkle::MAX_INDICES`] nodes or leaves and an
//! exchange lists at most [`anti_entropy::MAX_KEYS_PER_EXCHANGE`] keys a
//! side, whole leaves at a time; a write's context may not claim more of
//! the coordinator's own writes than it made; at
//! most [`MAX_MEMBERS`] members, N at most [`MAX_N`].
//!
//! Simplified: membership is fixed at start; a node's store lives in
//! memory (tests pass it in from outside the simulated host, so it
//! survives a crash like a disk; `dslab serve` restarts empty under a new
//! actor id); a stand-in keeps its copy after handing a hint off (Dynamo
//! deletes it); no TLS; peers authenticate with a shared secret in the
//! clear ([`QuorumConfig::peer_secret`]), and a stand-in needs more
//! members than N (with exactly N, `sloppy` finds none). Riak, Cassandra and
//! Dynamo persist data and hints and change membership online.

pub mod anti_entropy;
mod client;
mod coordinator;
mod demo;
mod handoff;
pub mod hints;
mod local;
pub mod merkle;
mod node;
mod peers;
pub mod placement;
mod read_repair;
mod service;
pub mod store;
pub mod version;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod context_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use observability::rpc::peer_secret::PeerSecret;
use std::sync::Arc;
use std::time::Duration;

use observability::rpc::Net;

pub use client::{QuorumClient, QuorumSession, ReadResult};
pub use demo::quorum_tradeoffs_demo;
pub use local::LocalCluster;
pub use service::QuorumNode;
pub use store::{SharedStore, Store};
pub use version::Resolution;

use crate::clock::ReplicaId;
use crate::clock::physical::{PhysicalClock, SystemClock};
pub use crate::crdt_replica::LinkCuts;

/// The longest key.
pub const MAX_KEY_BYTES: usize = 256;
/// The longest value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Siblings one key may hold.
pub const MAX_SIBLINGS: usize = 32;
/// Version-vector entries in one context (members × their restarts).
pub const MAX_CONTEXT_ENTRIES: usize = 64;
/// Dots beyond a gap in one context.
pub const MAX_CLOUD_DOTS: usize = 64;
/// Keys one node stores.
pub const MAX_KEYS: usize = 100_000;
/// Bytes of keys and values one node stores.
pub const MAX_STORE_BYTES: usize = 256 * 1024 * 1024;
/// Writes a stand-in holds for nodes that are down.
pub const MAX_HINTS: usize = 10_000;
/// Keys in one Fetch or Replicate.
pub const MAX_BATCH_KEYS: usize = 256;
/// Members of one cluster.
pub const MAX_MEMBERS: usize = 16;
/// Replicas per key.
pub const MAX_N: usize = 7;

/// Faults injected into this node's outgoing peer calls, on top of what
/// the network does: a lost request (never sent) or a lost reply (sent,
/// applied, its answer dropped) — each with half of `drop`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MessageFaults {
    pub drop: f64,
}

/// When a read repairs the stale replicas inside its quorum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadRepair {
    /// Before the reply (ABD's write-back): a later read quorum meets the
    /// value this read returned.
    #[default]
    BeforeReply,
    /// The broken twin: after the reply, in the background, as plain
    /// Dynamo does. A read can return a write still in flight and a later
    /// read miss it — R + W > N and still not linearizable; the checker
    /// catches it (`quorum_read_repair_` tests).
    NaiveAfterReply,
}

/// How a node is set up.
#[derive(Clone)]
pub struct QuorumConfig {
    pub id: ReplicaId,
    /// The other members and their addresses (`host:port`).
    pub peers: BTreeMap<ReplicaId, String>,
    pub net: Net,
    /// Replicas per key.
    pub n: usize,
    /// R and W for requests that leave them 0.
    pub default_r: usize,
    pub default_w: usize,
    /// How long a coordinator waits for one peer.
    pub peer_timeout: Duration,
    /// How often hints are offered to the nodes they belong to.
    pub handoff_interval: Duration,
    /// How often this node runs a Merkle exchange with a random peer;
    /// `None` turns anti-entropy off.
    pub anti_entropy_interval: Option<Duration>,
    /// Added before this node answers a peer: a slow replica.
    pub peer_delay: Duration,
    pub faults: MessageFaults,
    pub read_repair: ReadRepair,
    /// Links cut at the message layer (a partition on real TCP); shared
    /// by the nodes of one test or demo.
    pub cuts: LinkCuts,
    /// Seeds the choice of anti-entropy peers and the faults.
    pub seed: u64,
    /// Stamps writes for [`Resolution::LastWriterWins`].
    pub clock: Arc<dyn PhysicalClock>,
    /// Differs between runs that lost the store, so a restarted node
    /// writes under a fresh actor and never reissues a dot.
    pub incarnation: u64,
    /// Sent with every peer call and required on the peer RPCs
    /// (Replicate, Fetch, MerkleNodes, MerkleLeaves): without it, anyone
    /// who reaches the port can overwrite or wipe any key. `None` believes
    /// every caller (a lab default).
    pub peer_secret: Option<PeerSecret>,
}

impl std::fmt::Debug for QuorumConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumConfig")
            .field("id", &self.id)
            .field("peers", &self.peers)
            .field("n", &self.n)
            .field("default_r", &self.default_r)
            .field("default_w", &self.default_w)
            .field("peer_timeout", &self.peer_timeout)
            .field("anti_entropy_interval", &self.anti_entropy_interval)
            .finish_non_exhaustive()
    }
}

impl QuorumConfig {
    /// Node `id` with these peers: N = 3 (or fewer members), R = W = 2
    /// (1 for a lone node), 500 ms per peer call, hints offered every
    /// 200 ms, anti-entropy every second, the system clock.
    pub fn new(id: ReplicaId, peers: BTreeMap<ReplicaId, String>, net: Net) -> Self {
        let members = peers.keys().filter(|&&peer| peer != id).count() + 1;
        let n = members.min(3);
        let majority = n / 2 + 1;
        Self {
            id,
            peers,
            net,
            n,
            default_r: majority,
            default_w: majority,
            peer_timeout: Duration::from_millis(500),
            handoff_interval: Duration::from_millis(200),
            anti_entropy_interval: Some(Duration::from_secs(1)),
            peer_delay: Duration::ZERO,
            faults: MessageFaults::default(),
            read_repair: ReadRepair::default(),
            cuts: LinkCuts::default(),
            seed: id.0,
            clock: Arc::new(SystemClock),
            incarnation: SystemClock.now_ns() / 1_000_000,
            peer_secret: None,
        }
    }
}
