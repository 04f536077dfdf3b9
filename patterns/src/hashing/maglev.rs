//! Maglev hashing (Eisenbud et al., Google, NSDI 2016).
//!
//! Google's network load balancer needed a lookup that is one memory read
//! and a spread that is nearly perfect. Maglev fills a lookup table of M
//! slots (M prime, much larger than the node count): each node has its
//! own permutation of the slots (from an `offset` and a `skip`, both
//! hashes of its name), and the nodes take turns claiming the next free
//! slot in their permutation until the table is full. Every node ends up
//! with M/N slots, give or take one, and a key's node is
//! `table[hash(key) mod M]`.
//!
//! Weighted nodes take more turns per round, so a weight-2 node claims two
//! slots for every one of a weight-1 node.
//!
//! Near-minimal disruption: when a node leaves, its slots are refilled by
//! the others — but because the turn order shifts, a few slots that
//! belonged to surviving nodes change hands too. The paper measures that
//! cost as small; `cargo test -p patterns hashing_movement` measures it
//! here. Maglev trades exact minimality for balance and O(1) lookups.
//!
//! Lookups reduce the hash into the table with a multiply and a shift
//! (Lemire's fast range reduction) instead of `%`: a 64-bit division costs
//! more than the whole rest of the lookup.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Members, Placement, Strategy, distinct_clockwise, key_hash};
use crate::{Error, Result};

/// The table size the Maglev paper uses.
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;
/// The largest table accepted (a prime; 20 MiB of slots).
pub const MAX_TABLE_SIZE: u64 = 10_000_019;
/// The most members a table can name (slots hold a `u16`). The paper
/// sizes tables at ≥ 100 × the members, so this is never the binding limit.
pub const MAX_MAGLEV_NODES: usize = u16::MAX as usize;
/// Marks a slot not yet claimed while the table fills.
const EMPTY: u16 = u16::MAX;

/// A Maglev lookup table over weighted nodes.
#[derive(Clone, Debug)]
pub struct Maglev {
    table_size: u64,
    members: Members,
    /// Member index per slot. Two bytes, not four: the table is the one
    /// memory touched per lookup, and half the bytes is half the cache
    /// lines and TLB pages a random key can miss.
    table: Vec<u16>,
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Maps a 64-bit hash uniformly onto `0..n` without division.
#[inline]
fn reduce(hash: u64, n: u64) -> usize {
    ((u128::from(hash) * u128::from(n)) >> 64) as usize
}

impl Maglev {
    /// An empty table of `table_size` slots; the size must be a prime
    /// (so every `skip` visits every slot) between 7 and [`MAX_TABLE_SIZE`].
    pub fn new(table_size: u64) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTableSize {
            size: table_size,
            reason: reason.into(),
        };
        if !(7..=MAX_TABLE_SIZE).contains(&table_size) {
            return Err(invalid("must be between 7 and 10000019"));
        }
        if !is_prime(table_size) {
            return Err(invalid(
                "must be prime, so every permutation visits every slot",
            ));
        }
        Ok(Self {
            table_size,
            members: Members::default(),
            table: Vec::new(),
        })
    }

    fn populate(&mut self) {
        let m = self.table_size;
        self.table = Vec::new();
        if self.members.is_empty() {
            return;
        }
        // Turn order by name, so the table depends on the membership, not
        // on the order nodes joined.
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_by(|&a, &b| self.members.name(a).cmp(self.members.name(b)));
        let permutation: Vec<(u64, u64)> = order
            .iter()
            .map(|&i| {
                let name = self.members.name(i).as_bytes();
                let offset = xxh3_64_with_seed(name, 0xA5A5) % m;
                let skip = xxh3_64_with_seed(name, 0x5A5A) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; order.len()];
        let mut table = vec![EMPTY; m as usize];
        let mut filled = 0u64;
        'rounds: loop {
            for (turn, &member) in order.iter().enumerate() {
                for _ in 0..self.members.list[member].weight {
                    let (offset, skip) = permutation[turn];
                    let mut slot = (offset + next[turn] * skip) % m;
                    while table[slot as usize] != EMPTY {
                        next[turn] += 1;
                        slot = (offset + next[turn] * skip) % m;
                    }
                    table[slot as usize] = member as u16;
                    next[turn] += 1;
                    filled += 1;
                    if filled == m {
                        break 'rounds;
                    }
                }
            }
        }
        self.table = table;
    }
}

impl Placement for Maglev {
    fn strategy(&self) -> Strategy {
        Strategy::Maglev
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        // Each node must be able to claim at least one slot.
        let weight_after: u64 = self
            .members
            .list
            .iter()
            .map(|m| u64::from(m.weight))
            .sum::<u64>()
            + u64::from(weight);
        if weight_after > self.table_size {
            return Err(Error::CapacityExceeded {
                what: "maglev total weight (one slot per unit)",
                limit: self.table_size,
            });
        }
        if self.members.len() >= MAX_MAGLEV_NODES {
            return Err(Error::CapacityExceeded {
                what: "maglev members",
                limit: MAX_MAGLEV_NODES as u64,
            });
        }
        self.members.add(node, weight)?;
        self.populate();
        Ok(())
    }

    fn remove_node(&mut self, node: &str) -> Result<()> {
        self.members.remove(node)?;
        self.populate();
        Ok(())
    }

    fn nodes(&self) -> Vec<&str> {
        self.members.names()
    }

    #[inline]
    fn owner(&self, key: &[u8]) -> Result<&str> {
        if self.table.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let slot = reduce(key_hash(key), self.table_size);
        Ok(self.members.name(self.table[slot] as usize))
    }

    /// Replicas: the owners of the following slots, skipping repeats.
    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.table.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let start = reduce(key_hash(key), self.table_size);
        Ok(
            distinct_clockwise(self.table.len(), start, self.members.len(), |slot| {
                usize::from(self.table[slot])
            })
            .take(count)
            .map(|owner| self.members.name(owner))
            .collect(),
        )
    }

    fn fresh_copy(&self) -> Box<dyn Placement> {
        Box::new(self.clone())
    }

    fn memory_bytes(&self) -> usize {
        self.table.capacity() * 2 + self.members.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maglev_slots_split_evenly() {
        let mut maglev = Maglev::new(DEFAULT_TABLE_SIZE).expect("prime");
        for i in 0..10 {
            maglev.add_node(&format!("node-{i}"), 1).expect("fresh");
        }
        let mut counts = [0u64; 10];
        for &slot in &maglev.table {
            counts[slot as usize] += 1;
        }
        let (min, max) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        assert!(max - min <= 1, "slots per node {counts:?}");
    }

    #[test]
    fn maglev_weights_claim_proportional_slots() {
        let mut maglev = Maglev::new(DEFAULT_TABLE_SIZE).expect("prime");
        maglev.add_node("one", 1).expect("ok");
        maglev.add_node("two", 2).expect("ok");
        let two = maglev
            .table
            .iter()
            .filter(|&&s| maglev.members.name(s as usize) == "two")
            .count();
        let share = two as f64 / DEFAULT_TABLE_SIZE as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.001, "share {share}");
    }

    #[test]
    fn maglev_table_size_must_be_a_sane_prime() {
        for bad in [0, 1, 4, 65_536, MAX_TABLE_SIZE + 2, u64::MAX] {
            assert!(
                matches!(Maglev::new(bad), Err(Error::InvalidTableSize { .. })),
                "{bad}"
            );
        }
        let mut tiny = Maglev::new(7).expect("prime");
        for i in 0..7 {
            tiny.add_node(&format!("n{i}"), 1).expect("one slot each");
        }
        assert!(matches!(
            tiny.add_node("n7", 1),
            Err(Error::CapacityExceeded { .. })
        ));
    }
}
