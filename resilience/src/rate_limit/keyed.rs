//! One GCRA per key, so tenants cannot spend each other's allowance.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Limiter, Quota};

const SHARDS: usize = 16;

/// Per-key GCRA state in sharded maps.
///
/// A key whose TAT is already in the past is indistinguishable from a key
/// never seen, so idle keys are dropped when a shard fills up: memory
/// stays bounded by the keys that are actually sending.
#[derive(Debug)]
pub struct KeyedGcra {
    emission_nanos: u64,
    tolerance_nanos: u64,
    max_keys_per_shard: usize,
    shards: Vec<Mutex<HashMap<String, u64>>>,
    origin: Instant,
}

impl KeyedGcra {
    /// Each key gets `quota`; at most `max_keys` keys are tracked at once.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let emission_nanos = quota.period.as_nanos().max(1) as u64;
        Self {
            emission_nanos,
            tolerance_nanos: emission_nanos * u64::from(quota.burst - 1),
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            origin: Instant::now(),
        }
    }

    pub fn check_key_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let now = now.saturating_duration_since(self.origin).as_nanos() as u64;
        // Sharding only; the fixed-key SipHash is deterministic.
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[hasher.finish() as usize % SHARDS];
        let mut states = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if !states.contains_key(key) && states.len() >= self.max_keys_per_shard {
            states.retain(|_, tat| *tat > now);
            if states.len() >= self.max_keys_per_shard {
                // Every tracked key is active: refusing the newcomer keeps
                // memory bounded without resetting anyone's allowance.
                return Err(Duration::from_nanos(self.emission_nanos));
            }
        }
        let tat = states.entry(key.to_owned()).or_insert(0);
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
