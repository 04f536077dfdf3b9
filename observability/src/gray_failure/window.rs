//! Calls and failures per key (an observer, a method) over a sliding
//! window of time buckets, with a bounded number of keys.

use std::collections::BTreeMap;
use std::time::Duration;

/// Buckets per window: the window slides in steps of a tenth.
pub const BUCKETS: usize = 10;
/// The key every report lands on once a table is full.
pub const OVERFLOW_KEY: &str = "(other)";

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    calls: u64,
    failures: u64,
}

/// Calls and failures seen in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub failures: u64,
}

/// One table of keys, each with its own ring of buckets.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    bucket: Duration,
    max_keys: usize,
    keys: BTreeMap<String, [Bucket; BUCKETS]>,
    /// Reports older than the window when they arrived.
    pub(crate) stale: u64,
}

impl Tally {
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            bucket: (window / BUCKETS as u32).max(Duration::from_nanos(1)),
            max_keys,
            keys: BTreeMap::new(),
            stale: 0,
        }
    }

    fn epoch(&self, at: Duration) -> u64 {
        u64::try_from(at.as_nanos() / self.bucket.as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Counts one call for `key` at `at`.
    pub(crate) fn add(&mut self, at: Duration, key: &str, failed: bool) {
        let epoch = self.epoch(at);
        if !self.keys.contains_key(key) && self.keys.len() >= self.max_keys {
            self.evict_idle(at);
        }
        // Pitfall: a key per caller is a key per whatever a caller says it
        // is. Past the bound, newcomers share one key: still counted in
        // the totals, never a new entry.
        let key = if self.keys.contains_key(key) || self.keys.len() < self.max_keys {
            key
        } else {
            OVERFLOW_KEY
        };
        let ring = self
            .keys
            .entry(key.to_owned())
            .or_insert_with(|| [Bucket::default(); BUCKETS]);
        let slot = &mut ring[(epoch % BUCKETS as u64) as usize];
        if slot.epoch > epoch {
            // The slot already holds a newer bucket: this report arrived
            // more than a window late, and its bucket is gone.
            self.stale += 1;
            return;
        }
        if slot.epoch != epoch {
            *slot = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        slot.calls += 1;
        slot.failures += u64::from(failed);
    }

    /// Each key's counts over the window ending at `at`, by key.
    pub(crate) fn counts(&self, at: Duration) -> impl Iterator<Item = (&str, Counts)> + '_ {
        let now = self.epoch(at);
        self.keys.iter().map(move |(key, ring)| {
            let counts = ring
                .iter()
                .filter(|b| b.epoch <= now && b.epoch + (BUCKETS as u64) > now)
                .fold(Counts::default(), |sum, b| Counts {
                    calls: sum.calls + b.calls,
                    failures: sum.failures + b.failures,
                });
            (key.as_str(), counts)
        })
    }

    /// Forgets keys with no call in the window ending at `at`.
    pub(crate) fn evict_idle(&mut self, at: Duration) {
        let idle: Vec<String> = self
            .counts(at)
            .filter(|(_, c)| c.calls == 0)
            .map(|(k, _)| k.to_owned())
            .collect();
        for key in idle {
            self.keys.remove(&key);
        }
    }
}
