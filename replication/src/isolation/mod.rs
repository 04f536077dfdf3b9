//! Isolation levels you can run: three in-process multi-key transactional
//! stores, one correct and two weaker twins, driven by a seeded workload
//! that records list-append histories for the Elle-style checker.
//!
//! Episode: 18, "Distributed Transactions" (also 19)
//! Pattern: transactions / optimistic concurrency control vs snapshot isolation vs read committed
//! Try it:  cargo test -p replication isolation_snapshot -- --nocapture
//! Test it: cargo test -p replication isolation
//!
//! [`SerializableStore`] validates every read at commit (optimistic
//! concurrency control, backward validation): a transaction commits only
//! if nothing it read changed since, so its reads and writes all hold at
//! one instant, its commit, and the history is (strictly) serializable.
//! [`SnapshotStore`] reads from a snapshot taken at begin and aborts on
//! write-write conflicts only (first committer wins): lost updates are
//! impossible, but two transactions that each read what the other writes
//! both commit — write skew, G2-item. [`NaiveReadCommittedStore`] reads
//! the latest committed value on every read and never checks anything at
//! commit: two read-modify-writes of one key both commit, each based on
//! the same read — lost update, G-single.
//!
//! The [`workload`] steps the micro-ops of several transactions in a
//! seeded order (no OS threads), so every interleaving, and every
//! anomaly, replays exactly from its seed.
//!
//! Bounds: committed data is one list per key (elements with their commit
//! timestamp); pending transactions hold their read set and buffered
//! appends. The workload rotates keys after `max_appends_per_key`
//! appends, so reads stay short however long the run.
//!
//! Simplified: one process, no durability, no distribution; a real
//! store keeps versions per replica and validates across shards (2PC).

mod core;
pub mod read_committed;
pub mod serializable;
pub mod snapshot;
#[cfg(test)]
mod tests;
pub mod workload;

pub use self::core::{Abort, Key, TransactionalStore, TxnHandle};
pub use read_committed::NaiveReadCommittedStore;
pub use serializable::SerializableStore;
pub use snapshot::SnapshotStore;
pub use workload::{WorkloadConfig, run_workload};
