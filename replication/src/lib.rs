//! Data consistency and replication: Module 4 of the course (Episodes
//! 19–24: consistency models, logical clocks, CRDTs, multi-master
//! replication, event sourcing, sharding).
//!
//! The crate sits above `patterns` and `resilience`; it holds no modules yet.
