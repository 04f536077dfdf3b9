//! Consensus and coordination: Module 3 of the course (Episodes 13–18).
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 13 FLP Impossibility & Practical Consensus, 17 Leader Election Algorithms, 19 Consistency Models Hierarchy | [`raft`] | a durable, linearizable Raft KV on raft-rs: the Ready loop, raft-engine storage, snapshots, ReadIndex reads, membership changes, leader transfer, peer transport |
//! | 13 FLP Impossibility & Practical Consensus (etcd internals) | [`mvcc`] | its state machine: etcd's multi-version store — revisions, ranges, transactions, compaction |
//! | 13, 14 CAP Theorem | [`etcd`] | the etcd v3 API it serves (KV, Watch, Lease, Cluster, Maintenance, Lock, Election), wire compatible with `etcdctl` |
//! | 2 Speed of Light Constraints (also 13) | [`geo`] | Raft commit latency for placements across regions, measured in simulation and on emulated wide-area links against the speed-of-light floor |
//! | 23 Event Sourcing Architecture (also 13) | [`event_store`] | `replication`'s event store on etcd's v3 API (append = a Txn comparing versions, subscribe = a Watch): the same service replicated by the Raft KV or by etcd |
//! | 16 Distributed Locking (also 17, 4) | [`lease`] | leases: TTLs and attached keys replicated through the log, expiry decided by the leader's clock |
//! | 16 Distributed Locking (also 17, 4) | [`lock`] | etcd's lock and election recipes, fencing tokens, a fenced store and its unfenced twin |
//! | 17 Leader Election Algorithms (also 4 Network Partitions) | [`election`] | the bully and ring algorithms as small gRPC services, for comparison with Raft's election: messages counted, time to elect measured, and the split brain both allow under a partition |
//! | 18 Distributed Transactions (also 14, 23, 40) | [`transaction`] | two- and three-phase commit, sagas and TCC across small gRPC services (Accounts, Inventory, Shipping, an orchestrator, a coordinator), each on its own durable log |
//!
//! The crate sits above `replication` and below the `dslab` binary.

pub mod bank;
pub mod election;
pub mod error;
pub mod etcd;
pub mod event_store;
mod fnv;
pub mod geo;
pub mod lease;
pub mod lock;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod transaction;

pub use error::{Error, Result};
