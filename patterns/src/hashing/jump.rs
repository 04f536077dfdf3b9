//! Jump consistent hash (Lamping & Veach, 2014).
//!
//! No ring, no table, no memory: a key's bucket comes from a short loop
//! that simulates the key "jumping" forward as buckets are added one by
//! one. When bucket count grows from n to n+1, each key jumps to the new
//! bucket with probability 1/(n+1) and otherwise stays — exactly the
//! minimal movement, and the buckets end up almost perfectly balanced.
//! The loop runs about ln(n) times.
//!
//! The catch is in the name "buckets": they are numbered 0..n, not named.
//! Adding a node appends a bucket, which moves keys only to it. Removing a
//! node from the middle renumbers every bucket after it, so keys move
//! between nodes that did not change at all. Jump suits storage shards
//! that only grow (or shrink from the end), not a fleet whose members fail
//! at random.
//!
//! Replicas are the following buckets (`b+1`, `b+2`, … mod n).

use super::{Members, Placement, Strategy, key_hash, unweighted};
use crate::{Error, Result};

const TWO_POW_31: f64 = (1u64 << 31) as f64;

/// Jump hash of `key` into `buckets` buckets (`buckets ≥ 1`), as in the
/// paper's reference implementation.
#[inline]
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // `(key >> 33) + 1` fits in 31 bits: converting it as an i64 is one
        // instruction on x86, where a u64-to-f64 conversion takes several.
        let draw = ((key >> 33) + 1) as i64 as f64;
        next = ((bucket + 1) as f64 * (TWO_POW_31 / draw)) as i64;
    }
    bucket.max(0) as u32
}

/// Jump hash over named nodes, numbered in the order they joined.
#[derive(Clone, Debug, Default)]
pub struct Jump {
    members: Members,
}

impl Jump {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Placement for Jump {
    fn strategy(&self) -> Strategy {
        Strategy::Jump
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        unweighted(Strategy::Jump, weight)?;
        self.members.add(node, weight)
    }

    /// Pitfall: every node after `node` is renumbered, so their keys move
    /// too. See the module doc.
    fn remove_node(&mut self, node: &str) -> Result<()> {
        self.members.remove(node).map(drop)
    }

    fn nodes(&self) -> Vec<&str> {
        self.members.names()
    }

    #[inline]
    fn owner(&self, key: &[u8]) -> Result<&str> {
        if self.members.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let bucket = jump_consistent_hash(key_hash(key), self.members.len() as u32);
        Ok(self.members.name(bucket as usize))
    }

    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.members.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let n = self.members.len();
        let first = jump_consistent_hash(key_hash(key), n as u32) as usize;
        Ok((0..count.min(n))
            .map(|i| self.members.name((first + i) % n))
            .collect())
    }

    fn fresh_copy(&self) -> Box<dyn Placement> {
        Box::new(self.clone())
    }

    fn memory_bytes(&self) -> usize {
        self.members.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_keys_only_move_to_the_appended_bucket() {
        for key in 0..20_000u64 {
            let key = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for n in 1..64 {
                let (before, after) = (
                    jump_consistent_hash(key, n),
                    jump_consistent_hash(key, n + 1),
                );
                assert!(
                    after == before || after == n,
                    "key {key} moved {before} -> {after} at n={n}"
                );
            }
        }
    }

    #[test]
    fn jump_single_bucket_takes_everything() {
        assert_eq!(jump_consistent_hash(0, 1), 0);
        assert_eq!(jump_consistent_hash(u64::MAX, 1), 0);
    }
}
