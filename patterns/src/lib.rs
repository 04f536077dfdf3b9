//! Placement and scale: Modules 1, 2 and 5 of the course.
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 28 Load Balancing (consistent hashing deep dive) | [`hashing`] | ring with virtual nodes, the course's md5 ring, jump, rendezvous, Maglev, bounded loads; balance and movement analysis |
//! | 24 Database Sharding | [`sharding`] | hash, range and consistent sharding; resharding plans |
//! | 1 The Correlation Catastrophe | [`sharding::shuffle`], [`sharding::cells`] | shuffle sharding and its blast radius; cell routing |
//! | 24, 28 | [`shard_router`] | `ShardRouter`, the gRPC service that places keys |
//! | 5 Bandwidth vs Latency | [`batching`] | a batcher (max batch, linger, bounded queue) and the `BatchStore` service it is measured on |
//! | 27 Universal Scalability Law | [`scalability`] | the USL and Amdahl, fitting σ and κ, the peak N*; `Contended`, a service with tunable contention and coherency costs |

pub mod batching;
pub mod error;
pub mod hashing;
pub mod scalability;
pub mod shard_router;
pub mod sharding;

#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
