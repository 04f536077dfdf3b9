//! Placement and scale: Modules 1, 2 and 5 of the course.
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 28 Load Balancing (consistent hashing deep dive) | [`hashing`] | ring with virtual nodes, the course's md5 ring, jump, rendezvous, Maglev, bounded loads; balance and movement analysis |
//! | 24 Database Sharding | [`sharding`] | hash, range and consistent sharding; resharding plans |
//! | 1 The Correlation Catastrophe | [`sharding::shuffle`], [`sharding::cells`] | shuffle sharding and its blast radius; cell routing |
//! | 1 The Correlation Catastrophe | [`correlation`] | φ, Pearson and Spearman on failure series; a detector that names the hidden shared dependency; P(all down) independent vs common cause; staged rollouts and the version-skew twin |
//! | 2 Speed of Light Constraints | [`physics`] | great-circle distance, round-trip floors at c/1.47 for real cities, latency matrices for the simulation, majority commit latency by leader site |
//! | 28 Load Balancing Algorithms | [`balance`] | round robin, smooth weighted round robin, least outstanding, p2c, peak-EWMA as tower balancers |
//! | 29 Caching at Scale | [`cache`] | cache-aside with TTL, single-flight loads, XFetch early expiration, lease-guarded fills, a consistent-hashed cache tier; the stampede and invalidation-race twins |
//! | 24, 28 | [`shard_router`] | `ShardRouter`, the gRPC service that places keys |
//! | 25 Queue Theory, 26, 7 | [`queueing`] | M/M/1, M/M/c (Erlang C), G/G/1 (Kingman), Little's law, validated by a simulator on `resilience::des`; queue disciplines under overload: unbounded FIFO (the twin), bounded FIFO, CoDel, adaptive LIFO |
//! | 26 Little's Law, 30 Database Performance | [`pool`] | a bounded connection pool sized by Little's law, acquire with a timeout |
//! | 5 Bandwidth vs Latency | [`batching`] | a batcher (max batch, linger, bounded queue) and the `BatchStore` service it is measured on |
//! | 9 Emergent Behavior | [`metastable`] | metastable failure: a short spike switches on a retry loop that outlives it (the naive twin); retry budget, load shedding, adaptive LIFO and capacity each break it |
//! | 10 Percolation Theory | [`percolation`] | Erdős–Rényi and Barabási–Albert service graphs, the giant component at ⟨k⟩ = 1, random vs targeted removal, SIR cascades with and without circuit breakers |
//! | 12 Chaos Engineering | [`chaos`] | an experiment runner: steady-state hypothesis, fault injection, verification, abort on the blast radius; a simulated replicated service to run it on |
//! | 27 Universal Scalability Law | [`scalability`] | the USL and Amdahl, fitting σ and κ, the peak N*; `Contended`, a service with tunable contention and coherency costs |

pub mod balance;
pub mod batching;
pub mod cache;
pub mod chaos;
pub mod correlation;
pub mod error;
pub mod hashing;
pub mod metastable;
pub mod percolation;
pub mod physics;
pub mod pool;
pub mod queueing;
pub mod scalability;
pub mod shard_router;
pub mod sharding;

#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
