//! Data consistency and replication: Module 4 of the course.
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 20 Vector Clocks & Logical Time, 3 Time Synchronization | [`clock`] | Lamport, vector and hybrid logical clocks, version vectors, dotted siblings, NTP's estimate, TrueTime with commit-wait |
//! | 21 CRDTs, 22 Multi-Master Replication | [`crdt`] | G-/PN-Counter, G-Set, 2P-Set, LWW and MV registers, OR-Sets (optimized and with tombstones), a map of CRDTs — all delta-state — and the sum-merged counter twin |
//! | 21, 22 | [`crdt_replica`] | the `CrdtReplica` gRPC service: named CRDT objects, delta and full-state anti-entropy between replicas |
//! | 18 Distributed Transactions, 23 Event Sourcing | [`log`] | a durable append-only log (framed, CRC-checked, fsynced; torn tails cut, corruption refused) for every coordinator, saga and event store |
//! | 19 Consistency Models, 4 Jepsen | [`consistency`] | histories, a linearizability checker (per-key, memoized, budgeted), a causal-consistency checker (bad patterns, CC/CCv/CM), session-guarantee checkers, a recorder, HTML timelines |
//! | 30 Database Performance Patterns | [`read_split`] | read/write splitting: writes to the primary, reads to replicas, read-your-writes kept by session position tokens; the token-less twin reads stale |
//! | 19 | [`causal_store`] | a causal store (vector-clock delivery, bounded buffer) and its twin that delivers out of causal order, with a seeded simulation that records histories |
//! | 23 Event Sourcing | [`event_sourcing`] | an event store (per-stream optimistic concurrency, global order, snapshots, upcasting) on the durable log, its public backend suite, projections with durable positions, CQRS read models rebuilt by replay, and the double-counting projection twin |
//! | 14 CAP, 19, 22 | [`quorum`] | a Dynamo-style leaderless KV: N replicas on the hash ring, R and W per request, siblings, sloppy quorum with hinted handoff, read repair (and its after-the-reply twin), Merkle anti-entropy |
//! | 19 | [`register`] | a key-value register service to record histories from, and its stale-reading twin |

pub mod causal_store;
pub mod clock;
pub mod consistency;
pub mod crdt;
pub mod crdt_replica;
pub mod error;
pub mod event_sourcing;
pub mod isolation;
pub mod log;
pub mod quorum;
pub mod read_split;
pub mod register;

pub use error::{Error, Result};

/// Generated protobuf types and gRPC stubs for `replication.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("replication.v1");

    /// Encoded `FileDescriptorSet` of the protos, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}
