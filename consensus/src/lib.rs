//! Consensus and coordination: Module 3 of the course (Episodes 13–18:
//! FLP and practical consensus, CAP, Byzantine fault tolerance, locking,
//! leader election, distributed transactions).
//!
//! The crate sits above `replication` and below the `dslab` binary; it
//! holds no modules yet.
