//! The search's memory: which (linearized set, state) pairs it has seen.
//!
//! Lowe's insight: two search paths that have linearized the same *set*
//! of operations and reached the same state have the same future, so the
//! second can stop. The set is a bitset, hashed Zobrist-style — each
//! operation has a fixed random 64-bit value and the set's hash is the
//! XOR of its members', so adding or removing one costs one XOR.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's): one multiply per word. States are hashed on every
/// step of the search, where SipHash's DoS resistance buys nothing.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A hasher for keys that are already random (Zobrist hashes).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// splitmix64: deterministic, well-spread per-operation Zobrist values.
pub(super) fn zobrist(index: usize) -> u64 {
    let mut z = (index as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The memo of (linearized set, state) pairs already explored.
///
/// Millions of entries are normal on hard histories, so they are packed:
/// bitsets live in one arena, each distinct state is stored once and
/// referred to by number, and entries chain by index. Freeing the memo is
/// then a handful of large deallocations, not millions of small ones — the
/// difference between honouring a time budget and overrunning it.
pub(super) struct Memo {
    words: usize,
    /// The most bitset words the arena may hold: offsets must fit a `u32`.
    max_arena_words: usize,
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    /// (offset of the bitset in `bits`, state number, next entry or u32::MAX)
    entries: Vec<(u32, u32, u32)>,
    bits: Vec<u64>,
}

impl Memo {
    /// A memo for bitsets of `words` words whose arena stops growing at
    /// `max_arena_words` (at most `u32::MAX`, what an offset can address).
    pub(super) fn new(words: usize, max_arena_words: usize) -> Self {
        Self {
            words,
            max_arena_words: max_arena_words.min(u32::MAX as usize),
            heads: HashMap::default(),
            entries: Vec::new(),
            bits: Vec::new(),
        }
    }

    /// Roughly how much memory the memo holds, in 64-bit words: the
    /// arena plus ~24 bytes per entry (its triple and its hash-table slot).
    pub(super) fn words(&self) -> usize {
        self.bits.len() + self.entries.len() * 3
    }

    /// Records (bits, state); `Some(false)` if it was already there.
    ///
    /// Pitfall: offsets and links are `u32` to keep entries small. A
    /// truncated offset would compare the wrong bitset and could prune a
    /// path that was never explored — a wrong verdict. `None` says the
    /// memo is full, and the search answers Unknown instead.
    pub(super) fn insert(&mut self, bits_hash: u64, bits: &[u64], state: u32) -> Option<bool> {
        let hash = bits_hash ^ zobrist(state as usize).rotate_left(17);
        let head = self.heads.get(&hash).copied().unwrap_or(u32::MAX);
        let mut at = head;
        while at != u32::MAX {
            let (offset, entry_state, next) = self.entries[at as usize];
            let offset = offset as usize;
            if entry_state == state && self.bits[offset..offset + self.words] == *bits {
                return Some(false);
            }
            at = next;
        }
        if self.bits.len() + self.words > self.max_arena_words {
            return None;
        }
        let offset = u32::try_from(self.bits.len()).ok()?;
        // `u32::MAX` marks the end of a chain, so it cannot name an entry.
        let entry = u32::try_from(self.entries.len())
            .ok()
            .filter(|&e| e != u32::MAX)?;
        self.bits.extend_from_slice(bits);
        self.entries.push((offset, state, head));
        self.heads.insert(hash, entry);
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full arena refuses further entries instead of wrapping an offset
    /// around and comparing against the wrong bitset.
    #[test]
    fn memo_refuses_entries_past_its_arena() {
        let mut memo = Memo::new(2, 6);
        let state = 0;
        for i in 0..3u64 {
            assert_eq!(memo.insert(zobrist(i as usize), &[i, 0], state), Some(true));
        }
        assert_eq!(memo.insert(zobrist(0), &[0, 0], state), Some(false), "seen");
        assert_eq!(memo.insert(zobrist(9), &[9, 0], state), None, "full");
    }
}
