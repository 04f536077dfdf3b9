//! The pure part: a bounded map with TTL and CLOCK eviction, and the
//! XFetch decision. No locks, no clocks: time is passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a lookup found: the value, when it stops being served, and how
/// long it took to compute (XFetch's δ).
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<V> {
    pub value: V,
    pub expires_at: Instant,
    pub delta: Duration,
}

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    value: V,
    expires_at: Instant,
    delta: Duration,
    /// CLOCK's second-chance bit. Atomic so that a hit, which holds only
    /// a read lock, can still mark the entry as used.
    referenced: AtomicBool,
}

/// A map of at most `capacity` entries, each served until its TTL ends.
///
/// Eviction is CLOCK (second chance), the LRU approximation most page
/// caches use: a hand sweeps the slots; a slot used since the hand last
/// passed loses its mark and stays, an unmarked or expired one is
/// replaced. A hit only sets a bit — no list to relink, so hits share a
/// read lock — where exact LRU would move the entry on every hit.
///
/// Pitfall: expired entries are not served, but they keep their slot
/// until the hand reaches them or the key is written again. The bound is
/// on slots, so memory stays bounded either way.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    hand: usize,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            index: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            hand: 0,
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, expired ones included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The live entry for `key` at `now`, marked as used.
    pub fn get(&self, key: &K, now: Instant) -> Option<Hit<V>> {
        let slot = &self.slots[*self.index.get(key)?];
        if now >= slot.expires_at {
            return None;
        }
        // Relaxed: the bit is a hint for the eviction sweep, not a
        // synchronisation point.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(Hit {
            value: slot.value.clone(),
            expires_at: slot.expires_at,
            delta: slot.delta,
        })
    }

    /// Stores `value` for `ttl` from `now`; returns the key it evicted,
    /// if a live entry had to go to make room.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        now: Instant,
        ttl: Duration,
        delta: Duration,
    ) -> Option<K> {
        let slot = Slot {
            key: key.clone(),
            value,
            expires_at: now + ttl,
            delta,
            referenced: AtomicBool::new(false),
        };
        if let Some(&at) = self.index.get(&key) {
            self.slots[at] = slot;
            return None;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(slot);
            return None;
        }
        let victim = self.sweep(now);
        let old = std::mem::replace(&mut self.slots[victim], slot);
        self.index.remove(&old.key);
        self.index.insert(key, victim);
        (now < old.expires_at).then_some(old.key)
    }

    /// Advances the hand to a slot that may be replaced: expired, or not
    /// used since the last sweep. Terminates within two turns, because
    /// the first turn clears every mark it passes.
    fn sweep(&mut self, now: Instant) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &self.slots[at];
            if now >= slot.expires_at || !slot.referenced.swap(false, Ordering::Relaxed) {
                return at;
            }
        }
    }

    /// Forgets `key`; returns whether it was held.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(at) = self.index.remove(key) else {
            return false;
        };
        // Keep the slots dense: the last one moves into the hole.
        self.slots.swap_remove(at);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(moved.key.clone(), at);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        true
    }
}

/// XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic
/// Cache Stampede Prevention", VLDB 2015): recompute now, before expiry,
/// when `now − δ·β·ln(r) ≥ expiry`, with `r` uniform in (0, 1].
///
/// `−ln(r)` is exponentially distributed, so the chance of an early
/// recompute is `exp(−(expiry − now)/(δ·β))`: negligible while the
/// expiry is many recompute-times away, rising to 1 at the expiry. Among
/// the many readers of a hot key, one is very likely to volunteer shortly
/// before the expiry — and the key never goes missing. A slow recompute
/// (large δ) starts earlier; β > 1 favours earlier, β < 1 later.
pub fn xfetch_recompute(
    now: Instant,
    expires_at: Instant,
    delta: Duration,
    beta: f64,
    r: f64,
) -> bool {
    if now >= expires_at {
        return true;
    }
    let gap = (expires_at - now).as_secs_f64();
    let scale = delta.as_secs_f64() * beta;
    // r is in (0, 1], so −ln(r) is finite and ≥ 0.
    scale > 0.0 && -r.ln() * scale >= gap
}

/// The gap, in units of δ·β, past which [`xfetch_recompute`] is
/// practically never true (probability e^−40 ≈ 4·10^−18): the caller may
/// skip drawing a random number there, which keeps the hit path free of
/// shared writes while the expiry is far.
pub const XFETCH_SKIP_GAP: f64 = 40.0;

/// Whether the draw can be skipped: the expiry is more than
/// [`XFETCH_SKIP_GAP`] recompute-times away.
pub fn xfetch_far(now: Instant, expires_at: Instant, delta: Duration, beta: f64) -> bool {
    let scale = delta.as_secs_f64() * beta;
    now < expires_at && (scale <= 0.0 || (expires_at - now).as_secs_f64() > XFETCH_SKIP_GAP * scale)
}

/// SplitMix64: a counter in, a well-mixed 64-bit number out. A shared
/// atomic counter through it gives every caller its own draw without a
/// lock, and a seed replays the sequence.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in (0, 1] from 53 random bits (never 0, so ln is finite).
pub fn unit_interval(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XFetch's rule, drawn many times: the early-recompute rate at a gap of
    /// g recompute-times is e^−g (within 2%), never before the clock allows
    /// with r = 1, always at and after the expiry.
    #[test]
    fn cache_xfetch_early_probability_is_exponential_in_the_gap() {
        let now = Instant::now();
        let delta = Duration::from_millis(100);
        let expiry = now + Duration::from_millis(150); // g = 1.5
        let draws = 200_000u64;
        let early = (0..draws)
            .filter(|&i| xfetch_recompute(now, expiry, delta, 1.0, unit_interval(splitmix64(i))))
            .count() as f64
            / draws as f64;
        let expected = (-1.5f64).exp();
        assert!(
            (early - expected).abs() < 0.02 * expected.max(0.1),
            "{early} vs {expected}"
        );
        assert!(!xfetch_recompute(now, expiry, delta, 1.0, 1.0));
        assert!(xfetch_recompute(expiry, expiry, delta, 1.0, 1.0));
        // β = 2 doubles the reach: g = 1.5 behaves as 0.75.
        let early_beta2 = (0..draws)
            .filter(|&i| xfetch_recompute(now, expiry, delta, 2.0, unit_interval(splitmix64(i))))
            .count() as f64
            / draws as f64;
        assert!(
            (early_beta2 - (-0.75f64).exp()).abs() < 0.01,
            "{early_beta2}"
        );
    }

    /// The core's bound: never more than `capacity` entries; CLOCK keeps a
    /// recently used entry over an unused one; expired entries are not served.
    #[test]
    fn cache_core_evicts_at_capacity_and_keeps_used_entries() {
        let now = Instant::now();
        let (ttl, delta) = (Duration::from_secs(10), Duration::ZERO);
        let mut cache = TtlCache::new(3);
        for k in 0..3 {
            assert_eq!(cache.insert(k, k * 10, now, ttl, delta), None);
        }
        assert!(cache.get(&0, now).is_some(), "0 is used");
        // The hand passes 0 (second chance), evicts 1.
        assert_eq!(cache.insert(3, 30, now, ttl, delta), Some(1));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&0, now).is_some() && cache.get(&1, now).is_none());
        for k in 4..100 {
            cache.insert(k, k, now, ttl, delta);
            assert!(cache.len() <= 3);
        }
        let later = now + ttl;
        assert!(cache.get(&99, later).is_none(), "expired at its TTL");
        // An expired entry is replaced without counting as an eviction.
        assert_eq!(cache.insert(100, 0, later, ttl, delta), None);
        assert!(cache.remove(&100) && !cache.remove(&100));
        assert_eq!(cache.len(), 2);
    }
}
