//! Caching at scale: cache-aside with a TTL, request coalescing, stampede
//! protection, and a consistent-hashed cache tier — with the two classic
//! ways a cache goes wrong, as broken twins.
//!
//! Episode: 29, "Caching at Scale"
//! Pattern: performance / cache-aside, single-flight, probabilistic early expiration
//! Try it:  cargo run -- demo caching
//! Test it: cargo test -p patterns cache
//!
//! Cache-aside: the application asks the cache, and on a miss loads from
//! the database and fills the cache for the next reader. Two things go
//! wrong at scale. **The stampede**: a hot key expires and every reader
//! that arrives before the refill misses and hits the database at once —
//! the load spike lands exactly when the database is busiest
//! ([`NaiveCacheAside`] shows it). [`Cache`] answers with *single-flight*
//! (concurrent misses for one key share one load) and *XFetch* (a reader
//! volunteers to recompute shortly before the expiry, with a probability
//! that rises as the expiry nears, so the key never goes missing).
//! **The invalidation race**: a reader misses and reads the old row; a
//! writer updates the row and deletes the cache entry; then the reader
//! fills the cache with what it read — stale until the TTL ends (forever
//! without one). [`Cache`] guards every fill with a lease, as Facebook's
//! memcache does (Nishtala et al., NSDI 2013): the in-flight load is
//! registered, an invalidation revokes it, and a revoked load may answer
//! its own caller but never fill the cache.
//!
//! [`CacheTier`] spreads keys over cache nodes with the
//! [`ShardRouter`](crate::shard_router::ShardRouter)'s ring: a node that
//! leaves takes only its own keys with it.
//!
//! Bounds: at most `capacity` entries per cache (split evenly over its
//! shards, each holding ⌈capacity / shards⌉; capacity at most
//! [`MAX_CAPACITY`], shards at most [`MAX_SHARDS`]), evicted by CLOCK
//! (second chance: an approximation of least-recently-used) or as they
//! expire; at most `max_flights` coalesced loads in flight per shard —
//! a miss beyond that loads on its own and does not fill the cache, since
//! only a registered load can be revoked by an invalidation.
//!
//! Simplified: values are cloned out (wrap large ones in `Arc`); the
//! tier's nodes live in one process. Real systems: memcached or Redis
//! nodes behind a client-side ring (mcrouter, twemproxy), with leases
//! or versioned sets on the server.

mod aside;
pub mod core;
mod demo;
mod flight;
mod naive;
mod stampede;
#[cfg(test)]
mod tests;
mod tier;

pub use aside::{Cache, CacheStats};
pub use demo::caching_demo;
pub use naive::NaiveCacheAside;
pub use tier::{CacheTier, TierError};

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::{Error, Result};

/// The most entries one cache may be configured to hold.
pub const MAX_CAPACITY: usize = 1 << 26;
/// The most shards (independently locked parts) one cache may have.
pub const MAX_SHARDS: usize = 1024;

/// How a [`Cache`] behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheConfig {
    /// Entries held at most, over all shards.
    pub capacity: usize,
    /// How long a filled entry is served.
    pub ttl: Duration,
    /// Independently locked parts; more shards, less contention.
    pub shards: usize,
    /// Coalesced loads in flight per shard, at most.
    pub max_flights: usize,
    /// XFetch's β, or `None` for no early recomputation.
    pub early_expiration: Option<f64>,
    /// Seeds XFetch's draws, so a run replays.
    pub seed: u64,
}

impl CacheConfig {
    /// `capacity` entries for `ttl` each; 8 shards, XFetch with β = 1.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            shards: 8,
            max_flights: 1024,
            early_expiration: Some(1.0),
            seed: 0,
        }
    }

    /// Refuses settings that cannot work, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::InvalidCacheConfig { reason });
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return fail(format!(
                "capacity {} is outside 1..={MAX_CAPACITY}",
                self.capacity
            ));
        }
        if self.ttl.is_zero() {
            return fail("ttl must be positive".into());
        }
        if self.shards == 0 || self.shards > MAX_SHARDS || self.shards > self.capacity {
            return fail(format!(
                "shards {} is outside 1..={} (and at most the capacity)",
                self.shards,
                MAX_SHARDS.min(self.capacity)
            ));
        }
        if self.max_flights == 0 {
            return fail("max_flights must be at least 1".into());
        }
        if let Some(beta) = self.early_expiration
            && !(beta.is_finite() && beta > 0.0)
        {
            return fail(format!("XFetch beta {beta} must be finite and positive"));
        }
        Ok(())
    }
}

/// Where a cache reads the time. Tokio's by default (so paused and
/// simulated time drive it); the demo steps a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
}

/// `tokio::time::Instant::now()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    pub fn new(start: Instant) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn advance(&self, by: Duration) {
        // A poisoned lock still holds a valid instant.
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
