//! One GCRA per key, so tenants cannot spend each other's allowance.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::{Limiter, Quota};

const SHARDS: usize = 16;

/// Bytes one tracked key costs: its 8-byte hash and 8-byte TAT, the LRU
/// list's two links and the hash table's slot and control byte, rounded.
pub const BYTES_PER_KEY: usize = 64;

/// Per-key GCRA state in bounded, least-recently-used maps.
///
/// Keys come from clients (a tenant header), so the table must survive a
/// client that invents a new key for every call. Three choices make it:
///
/// - A key is stored as a 64-bit hash under a per-process random seed:
///   every entry costs the same [`BYTES_PER_KEY`] however long the key,
///   and nobody outside the process can aim a collision at a tenant.
/// - The table holds at most `max_keys`; a newcomer evicts the key used
///   least recently, in O(1) (no scan under the lock).
/// - An evicted key loses only its history: if it comes back it starts
///   with a full burst, exactly like a key never seen. So eviction never
///   refuses anyone — it can only grant a returning tenant a fresh burst,
///   and an honest tenant that keeps calling stays at the front.
///
/// Pitfall: a keyed limit cannot stop a client that rotates keys — each
/// new key gets a burst. Put a global limit (a plain [`super::Gcra`])
/// behind the keyed one to cap the total.
#[derive(Debug)]
pub struct KeyedGcra {
    emission_nanos: u64,
    tolerance_nanos: u64,
    seed: RandomState,
    shards: Vec<Mutex<LruCache<u64, u64, BuildHasherDefault<PreHashed>>>>,
    origin: Instant,
}

/// The keys are hashes already: use them as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl KeyedGcra {
    /// Each key gets `quota`; at most `max_keys` keys (at least one per
    /// shard) are tracked at once: about `max_keys × BYTES_PER_KEY` bytes.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let emission_nanos = quota.emission_nanos();
        let per_shard = NonZeroUsize::new(max_keys.div_ceil(SHARDS)).unwrap_or(NonZeroUsize::MIN);
        Self {
            emission_nanos,
            tolerance_nanos: quota.tolerance_nanos(),
            seed: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(LruCache::with_hasher(
                        per_shard,
                        BuildHasherDefault::default(),
                    ))
                })
                .collect(),
            origin: Instant::now(),
        }
    }

    /// Keys tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    pub fn check_key_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let now = now.saturating_duration_since(self.origin).as_nanos() as u64;
        let hash = self.seed.hash_one(key);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        // Every step under the lock is O(1): a lookup, or an insert that
        // drops the least recently used key.
        let mut states = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = states.get_or_insert_mut(hash, || 0);
        let due = (*tat).max(now);
        if due - now > self.tolerance_nanos {
            return Err(Duration::from_nanos(due - now - self.tolerance_nanos));
        }
        *tat = due + self.emission_nanos;
        Ok(())
    }
}

impl Limiter for KeyedGcra {
    /// Calls without a key share the empty key's allowance.
    fn check(&self, key: Option<&str>) -> Result<(), Duration> {
        self.check_key_at(key.unwrap_or(""), Instant::now())
    }
}
