//! Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2018).
//!
//! Plain consistent hashing balances *keys* only on average: a hot arc or
//! an unlucky ring leaves one node with far more than its share. Bounded
//! loads caps it. Every node may hold at most `⌈c · K / N⌉` keys (K keys
//! placed so far, N nodes, capacity factor c > 1); a key walks clockwise
//! from its hash past full nodes to the first node with room. With
//! c = 1.25 no node ever carries more than 25 % above the mean, and a key
//! still lands near its hash, so caches stay mostly warm.
//!
//! The answer now depends on what was placed before: the same key can
//! land elsewhere if it arrives after a burst of others. That makes it a
//! fit for *assigning work* (requests, sessions, in-flight connections —
//! Vimeo's and HAProxy's use), with [`BoundedLoad::release`] when work
//! ends; for data placement a router must remember assignments (the
//! `ShardRouter` service does).
//!
//! Weighted nodes get capacity in proportion: `⌈c · K · w / W⌉`.
//!
//! Simplified: single-probe ring walk; the paper's analysis also covers
//! multi-probe variants.

use super::ring::Ring;
use super::{Placement, Strategy, key_hash};
use crate::{Error, Result};

/// The capacity factor Google's paper and HAProxy default to.
pub const DEFAULT_CAPACITY_FACTOR: f64 = 1.25;
/// The largest capacity factor accepted (beyond it, nothing is bounded).
pub const MAX_CAPACITY_FACTOR: f64 = 100.0;

/// A ring whose nodes never exceed `⌈c · mean⌉` assigned keys.
#[derive(Clone, Debug)]
pub struct BoundedLoad {
    ring: Ring,
    capacity_factor: f64,
    /// Keys assigned to each member, by member index.
    loads: Vec<u64>,
    assigned: u64,
    /// Sum of member weights, kept so a capacity check is O(1).
    total_weight: u64,
}

impl BoundedLoad {
    pub fn new(vnodes: u32, capacity_factor: f64) -> Result<Self> {
        if !(1.0..=MAX_CAPACITY_FACTOR).contains(&capacity_factor) {
            return Err(Error::InvalidCapacityFactor {
                factor: capacity_factor,
                max: MAX_CAPACITY_FACTOR,
            });
        }
        Ok(Self {
            ring: Ring::new(vnodes)?,
            capacity_factor,
            loads: Vec::new(),
            assigned: 0,
            total_weight: 0,
        })
    }

    /// The most keys member `i` may hold once `total` keys are placed.
    fn capacity(&self, i: usize, total: u64) -> u64 {
        let weight = self.ring.members().list[i].weight;
        let share =
            self.capacity_factor * total as f64 * f64::from(weight) / self.total_weight as f64;
        // The tiny slack keeps float error from rounding an exact integer up.
        (share - 1e-9).ceil().max(1.0) as u64
    }

    /// Where a key hashing to `hash` goes if placed now.
    fn choose(&self, hash: u64) -> Result<usize> {
        if self.loads.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let total = self.assigned + 1;
        // Walking points (members repeat) rather than distinct members
        // avoids a per-lookup allocation; a full node is simply skipped
        // again. Capacities sum to at least `total` when c ≥ 1, so some
        // node has room; the fallback only guards against float rounding.
        self.ring
            .walk(hash)
            .find(|&i| self.loads[i] < self.capacity(i, total))
            .map_or_else(
                || self.ring.walk(hash).next().ok_or(Error::EmptyMembership),
                Ok,
            )
    }

    /// Keys currently assigned per node, in membership order.
    pub fn loads(&self) -> Vec<(&str, u64)> {
        self.ring
            .nodes()
            .into_iter()
            .zip(self.loads.iter().copied())
            .collect()
    }

    /// Keys assigned in total.
    pub fn assigned(&self) -> u64 {
        self.assigned
    }

    /// Forgets every assignment.
    pub fn reset(&mut self) {
        self.loads.iter_mut().for_each(|load| *load = 0);
        self.assigned = 0;
    }
}

impl Placement for BoundedLoad {
    fn strategy(&self) -> Strategy {
        Strategy::Bounded
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        self.ring.add_node(node, weight)?;
        self.loads.push(0);
        self.total_weight += u64::from(weight);
        Ok(())
    }

    /// The node's keys are forgotten; the caller re-assigns them.
    fn remove_node(&mut self, node: &str) -> Result<()> {
        let i = self.ring.members().index_of(node)?;
        self.total_weight -= u64::from(self.ring.members().list[i].weight);
        self.ring.remove_node(node)?;
        self.assigned -= self.loads.remove(i);
        Ok(())
    }

    fn nodes(&self) -> Vec<&str> {
        self.ring.nodes()
    }

    /// Where `key` would be assigned now (nothing is counted).
    fn owner(&self, key: &[u8]) -> Result<&str> {
        let i = self.choose(key_hash(key))?;
        Ok(self.ring.members().name(i))
    }

    /// Nodes with room first, in ring order, then full ones.
    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.loads.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let total = self.assigned + 1;
        let (room, full): (Vec<usize>, Vec<usize>) = self
            .ring
            .walk_distinct(key_hash(key))
            .partition(|&i| self.loads[i] < self.capacity(i, total));
        Ok(room
            .into_iter()
            .chain(full)
            .take(count)
            .map(|i| self.ring.members().name(i))
            .collect())
    }

    fn assign(&mut self, key: &[u8]) -> Result<&str> {
        let i = self.choose(key_hash(key))?;
        self.loads[i] += 1;
        self.assigned += 1;
        Ok(self.ring.members().name(i))
    }

    fn release(&mut self, node: &str) -> Result<()> {
        let i = self.ring.members().index_of(node)?;
        if self.loads[i] > 0 {
            self.loads[i] -= 1;
            self.assigned -= 1;
        }
        Ok(())
    }

    fn fresh_copy(&self) -> Box<dyn Placement> {
        let mut copy = self.clone();
        copy.reset();
        Box::new(copy)
    }

    fn memory_bytes(&self) -> usize {
        self.ring.memory_bytes() + self.loads.capacity() * 8
    }
}
