//! [`Cache`]: cache-aside with single-flight loads, XFetch early
//! recomputation, and lease-guarded fills.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::core::{TtlCache, splitmix64, unit_interval, xfetch_far, xfetch_recompute};
use super::flight::{Flight, FlightGuard, Flights, Outcome, Role, lock_flights, wait};
use super::{CacheConfig, Clock, TokioClock};
use crate::Result;

#[derive(Debug)]
struct Shard<K, V, E> {
    entries: RwLock<TtlCache<K, V>>,
    flights: Mutex<Flights<K, V, E>>,
}

impl<K, V, E> Shard<K, V, E> {
    fn flights(&self) -> MutexGuard<'_, Flights<K, V, E>> {
        lock_flights(&self.flights)
    }
}

/// Counters of the slow paths. Hits are not counted: a shared counter
/// on the hit path would cost more than the lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls to a loader (what the backend saw).
    pub loads: u64,
    /// Misses that waited for another caller's load instead.
    pub coalesced: u64,
    /// Loads started early by XFetch, before the entry expired.
    pub early_recomputes: u64,
    /// Loads whose lease an invalidation revoked: answered, not cached.
    pub revoked_fills: u64,
    /// Misses that found the flight table full and loaded on their own.
    pub uncoalesced: u64,
}

#[derive(Debug, Default)]
struct Counters {
    loads: AtomicU64,
    coalesced: AtomicU64,
    early_recomputes: AtomicU64,
    revoked_fills: AtomicU64,
    uncoalesced: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Inner<K, V, E> {
    shards: Box<[Shard<K, V, E>]>,
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    draws: AtomicU64,
    next_flight: AtomicU64,
    counters: Counters,
}

/// A cache-aside cache: `get_or_load` answers from memory, or loads once
/// for all concurrent callers and keeps the result for the TTL.
///
/// `E` is the loader's error type, shared among the callers of one load.
#[derive(Debug)]
pub struct Cache<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for Cache<K, V, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, E> Cache<K, V, E>
where
    K: Eq + Hash + Clone + Send + Sync,
    V: Clone + Send + Sync,
    E: Send + Sync,
{
    /// A cache on tokio's clock.
    pub fn new(config: CacheConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(TokioClock))
    }

    /// A cache reading the time from `clock`.
    pub fn with_clock(config: CacheConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let per_shard = config.capacity.div_ceil(config.shards);
        let shards = (0..config.shards)
            .map(|_| Shard {
                entries: RwLock::new(TtlCache::new(per_shard)),
                flights: Mutex::new(HashMap::new()),
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                shards,
                config,
                clock,
                hasher: RandomState::new(),
                draws: AtomicU64::new(0),
                next_flight: AtomicU64::new(1),
                counters: Counters::default(),
            }),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            loads: read(&c.loads),
            coalesced: read(&c.coalesced),
            early_recomputes: read(&c.early_recomputes),
            revoked_fills: read(&c.revoked_fills),
            uncoalesced: read(&c.uncoalesced),
        }
    }

    fn shard(&self, key: &K) -> &Shard<K, V, E> {
        let shards = &self.inner.shards;
        &shards[(self.inner.hasher.hash_one(key) % shards.len() as u64) as usize]
    }

    /// The hit path alone: the live value, or `None` (no load, no XFetch).
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self
            .shard(key)
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key, self.inner.clock.now())
            .map(|hit| hit.value)
    }

    /// Entries held, expired ones included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                s.entries
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops `key` and revokes the lease of any load in flight for it:
    /// that load still answers its callers, but cannot fill the cache
    /// with what it read before the change. Call it *after* the write to
    /// the database has committed.
    ///
    /// Pitfall: deleting first and writing second leaves a window in
    /// which a reader refills the old value before the write lands; the
    /// lease cannot help there, because the reader's load began after
    /// the invalidation.
    pub fn invalidate(&self, key: &K) -> bool {
        let shard = self.shard(key);
        // Under the flight lock, so a leader's fill (which checks its
        // lease under the same lock) lands wholly before or not at all.
        let mut flights = shard.flights();
        let revoked = flights.remove(key).is_some();
        let removed = shard
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        drop(flights);
        revoked || removed
    }

    /// The value for `key`: from the cache when live, else from `load` —
    /// called once for all concurrent misses of the key.
    pub async fn get_or_load<F, Fut>(&self, key: K, load: F) -> Outcome<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
    {
        let shard = self.shard(&key);
        let (id, fallback) = loop {
            match self.decide(shard, &key) {
                Ok(value) => return Ok(value),
                Err(Role::Lead { id, fallback }) => break (id, fallback),
                Err(Role::Follow(outcome)) => {
                    if let Some(outcome) = wait(outcome).await {
                        return outcome;
                    }
                    // The leader vanished without an outcome: try again.
                }
                Err(Role::Alone) => {
                    bump(&self.inner.counters.uncoalesced);
                    bump(&self.inner.counters.loads);
                    return load().await.map_err(Arc::new);
                }
            }
        };
        let mut guard = FlightGuard {
            flights: &shard.flights,
            key: Some(key),
            id,
        };
        bump(&self.inner.counters.loads);
        let started = self.inner.clock.now();
        let loaded = load().await;
        let delta = self.inner.clock.now().saturating_duration_since(started);
        let key = guard.key.take().expect("taken only here, after the load");
        let outcome = self.finish(shard, key, id, loaded, delta);
        match (outcome, fallback) {
            // An early recompute that failed still has a live value.
            (Err(_), Some(value)) => Ok(value),
            (outcome, _) => outcome,
        }
    }

    /// A live value to answer with, or the role this caller plays.
    fn decide(&self, shard: &Shard<K, V, E>, key: &K) -> std::result::Result<V, Role<V, E>> {
        let now = self.inner.clock.now();
        let hit = shard
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key, now);
        let mut fallback = None;
        if let Some(hit) = hit {
            let Some(beta) = self.inner.config.early_expiration else {
                return Ok(hit.value);
            };
            if xfetch_far(now, hit.expires_at, hit.delta, beta)
                || !xfetch_recompute(now, hit.expires_at, hit.delta, beta, self.draw())
            {
                return Ok(hit.value);
            }
            fallback = Some(hit.value);
        }
        let mut flights = shard.flights();
        if let Some(flight) = flights.get(key) {
            // Someone is already loading. An early volunteer keeps
            // serving the live value rather than waiting.
            return match fallback {
                Some(value) => Ok(value),
                None => {
                    bump(&self.inner.counters.coalesced);
                    Err(Role::Follow(flight.outcome.subscribe()))
                }
            };
        }
        if flights.len() >= self.inner.config.max_flights {
            return match fallback {
                Some(value) => Ok(value),
                None => Err(Role::Alone),
            };
        }
        let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
        let (outcome, _) = watch::channel(None);
        flights.insert(key.clone(), Flight { id, outcome });
        if fallback.is_some() {
            bump(&self.inner.counters.early_recomputes);
        }
        Err(Role::Lead { id, fallback })
    }

    /// Fills the cache if the lease still holds, and hands the outcome to
    /// the waiters.
    fn finish(
        &self,
        shard: &Shard<K, V, E>,
        key: K,
        id: u64,
        loaded: std::result::Result<V, E>,
        delta: Duration,
    ) -> Outcome<V, E> {
        let outcome = loaded.map_err(Arc::new);
        let mut flights = shard.flights();
        // Revoked: an invalidation dropped the flight, and its waiters
        // (who saw the channel close) retry against the new state.
        let Some(flight) = flights.remove(&key) else {
            bump(&self.inner.counters.revoked_fills);
            return outcome;
        };
        if flight.id != id {
            // Revoked, and a newer load took the key's place: leave it.
            flights.insert(key, flight);
            bump(&self.inner.counters.revoked_fills);
            return outcome;
        }
        if let Ok(value) = &outcome {
            let now = self.inner.clock.now();
            shard
                .entries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, value.clone(), now, self.inner.config.ttl, delta);
        }
        drop(flights);
        flight.outcome.send_replace(Some(outcome.clone()));
        outcome
    }

    /// A uniform draw in (0, 1], from the seeded sequence.
    fn draw(&self) -> f64 {
        let n = self.inner.draws.fetch_add(1, Ordering::Relaxed);
        unit_interval(splitmix64(
            self.inner.config.seed ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93),
        ))
    }
}
