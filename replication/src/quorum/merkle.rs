//! Merkle trees over a key range: find what two replicas disagree on by
//! exchanging hashes, not data.
//!
//! Keys fall into 2^[`DEPTH`] leaves by the top bits of their hash; a leaf
//! hashes the (key, state digest) pairs in it, in key order, and an inner
//! node hashes its two children. Two replicas whose roots match hold the
//! same data — one hash compared, nothing else shipped. Where they differ,
//! they descend only into the children whose hashes differ, so d differing
//! keys cost about d · DEPTH · 2 hashes, then the d keys themselves: bytes
//! proportional to the difference, not to the data (Dynamo, Cassandra's
//! repair).
//!
//! Pitfall: hashing a leaf's entries in arrival order would make two
//! replicas holding the same keys disagree. Entries go in key order, and
//! an empty subtree hashes to 0 on every replica.
//!
//! Bounds: a tree holds 2^(DEPTH+1) − 1 hashes (16 KiB); a request names at
//! most [`MAX_INDICES`] nodes or leaves.

use patterns::hashing::key_hash;

/// Levels below the root: 1,024 leaves. Deeper trees find a single
/// difference in fewer keys per leaf, at one more round trip each.
pub const DEPTH: u32 = 10;
/// Nodes or leaves one Merkle request may name (one full level).
pub const MAX_INDICES: usize = 1 << DEPTH;

/// The leaf a key falls in.
pub fn leaf_of(key: &str) -> u32 {
    (key_hash(key.as_bytes()) >> (64 - DEPTH)) as u32
}

/// A complete binary hash tree; `levels[0]` is the root, `levels[DEPTH]`
/// the leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<u64>>,
}

impl MerkleTree {
    /// Builds the tree of `(key, digest)` pairs, which must come in key
    /// order (a `BTreeMap` walk).
    pub fn build<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); 1 << DEPTH];
        for (key, digest) in entries {
            let buffer = &mut buffers[leaf_of(key) as usize];
            buffer.extend_from_slice(&(key.len() as u64).to_le_bytes());
            buffer.extend_from_slice(key.as_bytes());
            buffer.extend_from_slice(&digest.to_le_bytes());
        }
        let leaves: Vec<u64> = buffers
            .iter()
            .map(|buffer| {
                if buffer.is_empty() {
                    0
                } else {
                    key_hash(buffer)
                }
            })
            .collect();
        let mut levels = vec![leaves];
        while levels[0].len() > 1 {
            let below = &levels[0];
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [0, 0] => 0,
                    [left, right] => {
                        let mut bytes = [0u8; 16];
                        bytes[..8].copy_from_slice(&left.to_le_bytes());
                        bytes[8..].copy_from_slice(&right.to_le_bytes());
                        key_hash(&bytes)
                    }
                    [single] => *single,
                    _ => 0,
                })
                .collect();
            levels.insert(0, above);
        }
        Self { levels }
    }

    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// The hash of node `index` at `level`, if both are in range.
    pub fn node(&self, level: u32, index: u32) -> Option<u64> {
        self.levels
            .get(level as usize)
            .and_then(|nodes| nodes.get(index as usize))
            .copied()
    }

    /// The nodes of `level` (given for `indices`) whose hashes differ.
    pub fn differing(&self, level: u32, indices: &[u32], theirs: &[u64]) -> Vec<u32> {
        indices
            .iter()
            .zip(theirs)
            .filter(|&(&index, &hash)| self.node(level, index) != Some(hash))
            .map(|(&index, _)| index)
            .collect()
    }
}
