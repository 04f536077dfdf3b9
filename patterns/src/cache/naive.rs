//! The broken twin: cache-aside as it is usually first written.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::core::TtlCache;
use super::{CacheConfig, Clock, TokioClock};
use crate::Result;

/// Cache-aside with neither coalescing nor leases: on a miss every
/// caller loads, and every load fills the cache with whatever it read.
///
/// Two bugs, both classics. A hot key's expiry sends every concurrent
/// reader to the database (the stampede). And a load that read the old
/// row before a write, but fills after the write's invalidation, puts the
/// old value back — served until the TTL ends, forever without one.
#[derive(Debug)]
pub struct NaiveCacheAside<K, V> {
    entries: Mutex<TtlCache<K, V>>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    loads: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> NaiveCacheAside<K, V> {
    /// Holds `config.capacity` entries for `config.ttl`; the other
    /// settings are what this twin lacks.
    pub fn new(config: CacheConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(TokioClock))
    }

    pub fn with_clock(config: CacheConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            entries: Mutex::new(TtlCache::new(config.capacity)),
            ttl: config.ttl,
            clock,
            loads: AtomicU64::new(0),
        })
    }

    /// Calls made to loaders: what the backend saw.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let now = self.clock.now();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key, now).map(|hit| hit.value)
    }

    pub fn invalidate(&self, key: &K) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key)
    }

    /// Pitfall: check, load, fill — three steps with nothing tying them
    /// together. Every concurrent miss loads, and the fill trusts a read
    /// that may be older than the last invalidation.
    pub async fn get_or_load<F, Fut, E>(&self, key: K, load: F) -> std::result::Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        let started = self.clock.now();
        let value = load().await?;
        let now = self.clock.now();
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                value.clone(),
                now,
                self.ttl,
                now.saturating_duration_since(started),
            );
        Ok(value)
    }
}
