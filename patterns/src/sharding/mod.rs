//! Sharding: splitting one dataset over many nodes, and changing the split.
//!
//! Episode: 24, "Database Sharding Strategies" (also 1)
//! Pattern: placement / sharding
//! Try it:  cargo run -- demo consistent-hashing
//! Test it: cargo test -p patterns sharding
//!
//! Three ways to decide which shard holds a key, each with its own bill:
//!
//! - [`HashSharding`] — `hash(key) mod N`. Perfectly even, no metadata,
//!   and a resize moves almost every key (N/(N+1) of them going to N+1):
//!   the broken twin of consistent hashing. Range queries touch every shard.
//! - [`RangeSharding`] — sorted split points, each range on one node. Range
//!   queries touch only the shards that overlap them, and a hot range can
//!   be split and moved alone; sequential keys (timestamps, auto-increment
//!   ids) all land on the last shard.
//! - consistent sharding — any [`crate::hashing::Placement`], with
//!   [`reshard::ring_plan`] listing exactly which hash ranges move where.
//!
//! [`shuffle`] and [`cells`] apply the same ideas to isolation: which
//! workers a tenant may use, and which cell serves it.

pub mod cells;
pub mod reshard;
pub mod shuffle;

use crate::hashing::{key_hash, validate_name};
use crate::{Error, Result};

/// `hash(key) mod shards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSharding {
    shards: u32,
}

impl HashSharding {
    pub fn new(shards: u32) -> Result<Self> {
        if shards == 0 {
            return Err(Error::EmptyMembership);
        }
        Ok(Self { shards })
    }

    /// The shard, `0..shards`, holding `key`.
    pub fn shard(&self, key: &[u8]) -> u32 {
        (key_hash(key) % u64::from(self.shards)) as u32
    }

    /// Pitfall: a range scan cannot know where its keys hashed to, so it
    /// must ask every shard (scatter-gather).
    pub fn shards_for_range(&self) -> Vec<u32> {
        (0..self.shards).collect()
    }
}

/// A key range `[start, end)`; `None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Option<Vec<u8>>,
    pub end: Option<Vec<u8>>,
}

/// A range that changes owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeMove {
    pub range: KeyRange,
    pub from: String,
    pub to: String,
}

/// Ordered split points; the range below the first split, between each
/// pair, and above the last each belong to one owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSharding {
    /// Strictly ascending.
    splits: Vec<Vec<u8>>,
    /// `owners[i]` holds `[splits[i-1], splits[i])`; one more than splits.
    owners: Vec<String>,
}

impl RangeSharding {
    /// One range covering every key, on `owner`.
    pub fn new(owner: &str) -> Result<Self> {
        validate_name(owner)?;
        Ok(Self {
            splits: Vec::new(),
            owners: vec![owner.to_owned()],
        })
    }

    /// Ranges from explicit split points (strictly ascending) and owners
    /// (one more than splits).
    pub fn from_splits(splits: Vec<Vec<u8>>, owners: Vec<String>) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidRanges {
            reason: reason.into(),
        };
        if owners.len() != splits.len() + 1 {
            return Err(invalid("there must be one more owner than split points"));
        }
        if splits.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("split points must be strictly ascending"));
        }
        owners.iter().try_for_each(|o| validate_name(o))?;
        Ok(Self { splits, owners })
    }

    fn index_of(&self, key: &[u8]) -> usize {
        self.splits.partition_point(|split| split.as_slice() <= key)
    }

    /// The owner of `key`.
    pub fn owner(&self, key: &[u8]) -> &str {
        &self.owners[self.index_of(key)]
    }

    fn range(&self, i: usize) -> KeyRange {
        KeyRange {
            start: i.checked_sub(1).map(|j| self.splits[j].clone()),
            end: self.splits.get(i).cloned(),
        }
    }

    /// Every range and its owner, in key order.
    pub fn ranges(&self) -> Vec<(KeyRange, &str)> {
        (0..self.owners.len())
            .map(|i| (self.range(i), self.owners[i].as_str()))
            .collect()
    }

    /// The owners a scan of `[start, end)` must visit, in key order:
    /// only those whose ranges overlap it.
    pub fn shards_for_range(&self, start: &[u8], end: &[u8]) -> Vec<&str> {
        if start >= end {
            return Vec::new();
        }
        let first = self.index_of(start);
        // The last range that holds a key below `end`.
        let last = self.splits.partition_point(|split| split.as_slice() < end);
        let mut owners: Vec<&str> = (first..=last).map(|i| self.owners[i].as_str()).collect();
        owners.dedup();
        owners
    }

    /// A node joins by taking the upper part of the range holding `at`,
    /// from `at` up: the way a hot range is split. Returns what moves.
    pub fn split(&mut self, at: &[u8], new_owner: &str) -> Result<RangeMove> {
        validate_name(new_owner)?;
        let i = self.index_of(at);
        if self.range(i).start.as_deref() == Some(at) {
            return Err(Error::InvalidRanges {
                reason: "a range already starts at that key".into(),
            });
        }
        let from = self.owners[i].clone();
        self.splits.insert(i, at.to_vec());
        self.owners.insert(i + 1, new_owner.to_owned());
        Ok(RangeMove {
            range: self.range(i + 1),
            from,
            to: new_owner.to_owned(),
        })
    }

    /// A node leaves: each of its ranges goes to the range below it (the
    /// first range, to the one above), and neighbours that now share an
    /// owner merge. Returns what moves.
    pub fn remove_owner(&mut self, owner: &str) -> Result<Vec<RangeMove>> {
        if !self.owners.iter().any(|o| o == owner) {
            return Err(Error::UnknownNode {
                node: owner.to_owned(),
            });
        }
        let Some(first_other) = self.owners.iter().position(|o| o != owner) else {
            return Err(Error::EmptyMembership);
        };
        let mut moves = Vec::new();
        for i in 0..self.owners.len() {
            if self.owners[i] == owner {
                // Left to right, so the range below was already handed on.
                let heir = if i == 0 {
                    self.owners[first_other].clone()
                } else {
                    self.owners[i - 1].clone()
                };
                moves.push(RangeMove {
                    range: self.range(i),
                    from: owner.to_owned(),
                    to: heir.clone(),
                });
                self.owners[i] = heir;
            }
        }
        let (mut splits, mut owners) = (Vec::new(), vec![self.owners[0].clone()]);
        for (split, next) in self.splits.iter().zip(&self.owners[1..]) {
            if owners.last() != Some(next) {
                splits.push(split.clone());
                owners.push(next.clone());
            }
        }
        (self.splits, self.owners) = (splits, owners);
        Ok(moves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::analysis::sample_keys;

    /// Episode 24. Going from 10 to 11 shards with `mod N` moves about
    /// 10/11 of the keys — the reason consistent hashing exists.
    #[test]
    fn sharding_modulo_resize_moves_almost_every_key() {
        let (ten, eleven) = (
            HashSharding::new(10).expect("ok"),
            HashSharding::new(11).expect("ok"),
        );
        let keys: Vec<String> = sample_keys(100_000).collect();
        let moved = keys
            .iter()
            .filter(|k| ten.shard(k.as_bytes()) != eleven.shard(k.as_bytes()))
            .count();
        let fraction = moved as f64 / keys.len() as f64;
        assert!((fraction - 10.0 / 11.0).abs() < 0.01, "moved {fraction}");
        assert_eq!(HashSharding::new(0), Err(Error::EmptyMembership));
    }

    fn three_ranges() -> RangeSharding {
        RangeSharding::from_splits(
            vec![b"g".to_vec(), b"p".to_vec()],
            vec!["a".into(), "b".into(), "c".into()],
        )
        .expect("valid")
    }

    #[test]
    fn sharding_range_owner_and_scans_touch_only_overlapping_shards() {
        let ranges = three_ranges();
        assert_eq!(
            [
                ranges.owner(b""),
                ranges.owner(b"g"),
                ranges.owner(b"oz"),
                ranges.owner(b"zzz")
            ],
            ["a", "b", "b", "c"]
        );
        assert_eq!(ranges.shards_for_range(b"h", b"k"), ["b"]);
        assert_eq!(
            ranges.shards_for_range(b"a", b"g"),
            ["a"],
            "end is exclusive"
        );
        assert_eq!(ranges.shards_for_range(b"a", b"q"), ["a", "b", "c"]);
        assert!(ranges.shards_for_range(b"q", b"a").is_empty());
        assert_eq!(
            HashSharding::new(4).expect("ok").shards_for_range().len(),
            4,
            "hash sharding scatters"
        );
    }

    #[test]
    fn sharding_range_split_and_leave_produce_the_moves() {
        let mut ranges = three_ranges();
        let moved = ranges.split(b"k", "d").expect("split");
        assert_eq!(
            moved,
            RangeMove {
                range: KeyRange {
                    start: Some(b"k".to_vec()),
                    end: Some(b"p".to_vec())
                },
                from: "b".into(),
                to: "d".into(),
            }
        );
        assert_eq!(ranges.owner(b"m"), "d");
        assert!(
            ranges.split(b"k", "e").is_err(),
            "a range already starts there"
        );

        let moves = ranges.remove_owner("b").expect("member");
        assert_eq!(moves.len(), 1);
        assert_eq!((moves[0].from.as_str(), moves[0].to.as_str()), ("b", "a"));
        assert_eq!(ranges.owner(b"h"), "a");
        assert_eq!(
            ranges.ranges().len(),
            3,
            "a merged with b's old range: {:?}",
            ranges.ranges()
        );
        assert_eq!(
            ranges.remove_owner("zz"),
            Err(Error::UnknownNode { node: "zz".into() })
        );
        let mut single = RangeSharding::new("only").expect("valid");
        assert_eq!(single.remove_owner("only"), Err(Error::EmptyMembership));
    }

    #[test]
    fn sharding_range_rejects_malformed_splits() {
        let bad_order = RangeSharding::from_splits(
            vec![b"p".to_vec(), b"g".to_vec()],
            vec!["a".into(), "b".into(), "c".into()],
        );
        assert!(matches!(bad_order, Err(Error::InvalidRanges { .. })));
        let bad_count = RangeSharding::from_splits(vec![b"g".to_vec()], vec!["a".into()]);
        assert!(matches!(bad_count, Err(Error::InvalidRanges { .. })));
    }
}
