//! `dslab`: the runnable companion to a 96-episode course on distributed
//! systems. This crate is the command line; the mechanisms live in the
//! workspace crates, each module tied to its episode:
//!
//! - `observability` — Module 6 (Episodes 31–36): the RPC stack, tracing,
//!   metrics, the simulation harness;
//! - `resilience` — Module 7 (Episodes 37–42) and Episode 8;
//! - `patterns` — Modules 1, 2 and 5 (placement and scale);
//! - `replication` — Module 4 (Episodes 19–24);
//! - `consensus` — Module 3 (Episodes 13–18).
//!
//! [`registry`] is the episode map; [`tour`] runs the demos; [`serve`]
//! runs one service on real TCP; [`chaos`] runs chaos experiments against
//! a process group it starts; [`check`] judges recorded histories;
//! [`hash`] compares placement strategies; [`kv`] is a client for the Raft
//! KV (or etcd) and [`bench`](mod@bench) its load generator.

pub mod bench;
pub mod bench_balance;
pub mod bench_batching;
pub mod bench_coordination;
pub mod bench_event_store;
pub mod bench_ladder;
pub mod bench_quorum;
pub mod bench_transactions;
pub mod bench_usl;
pub mod chaos;
pub mod check;
pub mod check_causal;
pub mod check_sequential;
pub mod check_transactional;
pub mod crdt;
pub mod hash;
pub mod kv;
pub mod registry;
pub mod serve;
pub mod tour;
