//! The search's memory: search states already explored, and the table
//! of distinct model states they refer to by number.
//!
//! A search state is a fixed-width row of `u32` words (each client's
//! progress, the unknown-outcome operations applied, each key's state
//! number). Rows live back to back in one arena, found through an
//! open-addressing table of row numbers, so millions of them are a few
//! large allocations — freeing them is quick enough to honour a time
//! budget.

use std::collections::HashMap;

use super::ENTRY_OVERHEAD_BYTES;
use crate::consistency::history::Datum;

/// splitmix64 of (slot, value): the Zobrist value of one row word. A
/// row's hash is the XOR over its words, so changing one word costs two
/// mixes.
pub(super) fn mix(slot: usize, value: u32) -> u64 {
    let mut z = ((slot as u64) << 32 | u64::from(value)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const END: u32 = u32::MAX;

pub(super) struct Memo {
    width: usize,
    max_bytes: usize,
    used_bytes: usize,
    /// Open addressing: row numbers (or `END`), at most half full.
    table: Vec<u32>,
    /// Each row's hash, to probe and to grow the table without rehashing.
    hashes: Vec<u64>,
    rows: Vec<u32>,
    /// Distinct model states, numbered in order of first sight.
    states: Vec<Datum>,
    numbers: HashMap<Datum, u32>,
}

impl Memo {
    pub(super) fn new(width: usize, max_bytes: usize) -> Self {
        Self {
            width,
            max_bytes,
            used_bytes: 0,
            table: vec![END; 64],
            hashes: Vec::new(),
            rows: Vec::new(),
            states: Vec::new(),
            numbers: HashMap::new(),
        }
    }

    /// How many rows the memo holds.
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The state's number, adding it if new; `None` once the memory
    /// bound (or the numbering) runs out.
    pub(super) fn number(&mut self, state: &Datum) -> Option<u32> {
        if let Some(&n) = self.numbers.get(state) {
            return Some(n);
        }
        let n = u32::try_from(self.states.len())
            .ok()
            .filter(|&n| n != END)?;
        // The state is stored twice (list and map), plus the map's slot.
        let bytes = 2 * (std::mem::size_of::<Datum>() + datum_heap_bytes(state)) + 16;
        self.charge(bytes)?;
        self.states.push(state.clone());
        self.numbers.insert(state.clone(), n);
        Some(n)
    }

    pub(super) fn state(&self, number: u32) -> &Datum {
        &self.states[number as usize]
    }

    /// Records `row` (whose hash is `hash`): `Some(true)` if it is new,
    /// `Some(false)` if it was seen before, `None` if the memo is full.
    ///
    /// Past its bound the memo refuses instead of evicting: the search
    /// then stops with `Unknown`, so the bound is a promise, not a hope.
    pub(super) fn insert(&mut self, hash: u64, row: &[u32]) -> Option<bool> {
        let mask = self.table.len() - 1;
        let mut slot = hash as usize & mask;
        while let Some(&at) = self.table.get(slot).filter(|&&at| at != END) {
            let offset = at as usize * self.width;
            if self.hashes[at as usize] == hash && self.rows[offset..offset + self.width] == *row {
                return Some(false);
            }
            slot = (slot + 1) & mask;
        }
        let index = u32::try_from(self.hashes.len())
            .ok()
            .filter(|&i| i != END)?;
        // Per row: its words, its hash (8 bytes) and 2 to 4 table slots.
        self.charge(4 * self.width + ENTRY_OVERHEAD_BYTES)?;
        self.rows.extend_from_slice(row);
        self.hashes.push(hash);
        self.table[slot] = index;
        if 2 * self.hashes.len() > self.table.len() {
            self.grow();
        }
        Some(true)
    }

    fn grow(&mut self) {
        let mask = 2 * self.table.len() - 1;
        self.table = vec![END; mask + 1];
        for (index, &hash) in self.hashes.iter().enumerate() {
            let mut slot = hash as usize & mask;
            while self.table[slot] != END {
                slot = (slot + 1) & mask;
            }
            self.table[slot] = index as u32;
        }
    }

    fn charge(&mut self, bytes: usize) -> Option<()> {
        let used = self.used_bytes.checked_add(bytes)?;
        (used <= self.max_bytes).then(|| self.used_bytes = used)
    }
}

fn datum_heap_bytes(state: &Datum) -> usize {
    match state {
        Datum::Str(s) => s.len(),
        Datum::Absent | Datum::Int(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are told apart by content, not hash; a full memo refuses.
    #[test]
    fn sequential_memo_compares_rows_and_refuses_past_its_bound() {
        let mut memo = Memo::new(2, 3 * (8 + ENTRY_OVERHEAD_BYTES));
        assert_eq!(memo.insert(7, &[1, 2]), Some(true));
        assert_eq!(memo.insert(7, &[2, 1]), Some(true), "same hash, other row");
        assert_eq!(memo.insert(7, &[1, 2]), Some(false));
        assert_eq!(memo.insert(9, &[5, 5]), Some(true));
        assert_eq!(memo.insert(11, &[6, 6]), None, "full");
        assert_eq!(memo.len(), 3);
    }
}
