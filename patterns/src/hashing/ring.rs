//! A hash ring with virtual nodes, built for speed.
//!
//! Every node is hashed onto a 64-bit circle at `vnodes × weight` points;
//! a key belongs to the first point at or after its own hash, wrapping at
//! the top. One point per node would leave arcs of wildly different
//! lengths (the largest is about ln N times the mean); with V points per
//! node the arcs average out and the load's standard deviation falls like
//! 1/√V — the virtual-node table in `dslab demo consistent-hashing`.
//!
//! Lookup is a binary search in principle. Here a prefix index narrows it
//! first: `index[b]` is the first point whose top bits are at least `b`,
//! so a key's top bits pick a bucket of one or two points and the search
//! is over that bucket only — one cache miss instead of seventeen on a ring
//! of 150,000 points.
//! Try: build with `INDEX_BITS_MAX = 0` and rerun `cargo bench -p patterns`.
//!
//! Membership changes rebuild the ring: they are rare, lookups are not.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Members, Placement, Strategy, distinct_clockwise, key_hash, validate_vnodes};
use crate::{Error, Result};

/// The most points a ring may hold (`vnodes × total weight`): 4 Mi points,
/// 48 MiB of lookup structures.
pub const MAX_RING_POINTS: usize = 1 << 22;

/// The prefix index never uses more than 2^20 buckets (4 MiB).
const INDEX_BITS_MAX: u32 = 20;

/// A consistent-hash ring with weighted virtual nodes.
#[derive(Clone, Debug)]
pub struct Ring {
    vnodes: u32,
    members: Members,
    /// Point positions, ascending.
    points: Vec<u64>,
    /// `owners[i]` is the member index owning `points[i]`.
    owners: Vec<u32>,
    /// `index[b]`: first point with `point >> shift >= b`; one extra entry.
    index: Vec<u32>,
    shift: u32,
}

impl Ring {
    /// An empty ring with `vnodes` points per unit of weight.
    pub fn new(vnodes: u32) -> Result<Self> {
        validate_vnodes(vnodes)?;
        Ok(Self {
            vnodes,
            members: Members::default(),
            points: Vec::new(),
            owners: Vec::new(),
            index: Vec::new(),
            shift: 63,
        })
    }

    /// Where virtual node `i` of `node` sits on the circle.
    #[inline]
    pub fn point(node: &str, i: u32) -> u64 {
        xxh3_64_with_seed(node.as_bytes(), u64::from(i))
    }

    /// Refuses a node whose points would overfill the ring.
    pub(crate) fn check_room_for(&self, weight: u32) -> Result<()> {
        let after = self.points.len() + (self.vnodes as usize) * (weight as usize);
        if after > MAX_RING_POINTS {
            return Err(Error::CapacityExceeded {
                what: "ring points",
                limit: MAX_RING_POINTS as u64,
            });
        }
        Ok(())
    }

    fn rebuild(&mut self) {
        let total: usize = self
            .members
            .list
            .iter()
            .map(|m| (self.vnodes * m.weight) as usize)
            .sum();
        let mut placed: Vec<(u64, u32)> = Vec::with_capacity(total);
        for (owner, member) in self.members.list.iter().enumerate() {
            for i in 0..self.vnodes * member.weight {
                placed.push((Self::point(&member.name, i), owner as u32));
            }
        }
        // Equal points (a 2^-64 event) are ordered by owner *name*, so the
        // ring does not depend on the order nodes joined.
        let members = &self.members;
        placed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| members.name(a.1 as usize).cmp(members.name(b.1 as usize)))
        });
        self.points = placed.iter().map(|p| p.0).collect();
        self.owners = placed.iter().map(|p| p.1).collect();

        let bits = (usize::BITS - self.points.len().leading_zeros())
            .saturating_sub(1)
            .clamp(1, INDEX_BITS_MAX);
        self.shift = 64 - bits;
        let buckets = 1usize << bits;
        self.index = Vec::with_capacity(buckets + 1);
        let mut next = 0usize;
        for bucket in 0..buckets as u64 {
            while next < self.points.len() && self.points[next] >> self.shift < bucket {
                next += 1;
            }
            self.index.push(next as u32);
        }
        self.index.push(self.points.len() as u32);
    }

    /// Index of the first point at or after `hash`, wrapping to 0.
    #[inline]
    fn successor(&self, hash: u64) -> usize {
        let bucket = (hash >> self.shift) as usize;
        let lo = self.index[bucket] as usize;
        let hi = self.index[bucket + 1] as usize;
        let found = lo + self.points[lo..hi].partition_point(|&p| p < hash);
        if found == self.points.len() { 0 } else { found }
    }

    /// The node owning position `hash` on the circle.
    pub fn owner_of_hash(&self, hash: u64) -> Result<&str> {
        if self.points.is_empty() {
            return Err(Error::EmptyMembership);
        }
        Ok(self
            .members
            .name(self.owners[self.successor(hash)] as usize))
    }

    /// Every point and its owner, in circle order.
    pub fn points(&self) -> impl Iterator<Item = (u64, &str)> {
        self.points
            .iter()
            .zip(&self.owners)
            .map(|(&p, &o)| (p, self.members.name(o as usize)))
    }

    /// Member indices clockwise from `hash`, once per point (members
    /// repeat), around the circle exactly once.
    pub(crate) fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = if self.points.is_empty() {
            0
        } else {
            self.successor(hash)
        };
        (0..self.points.len())
            .map(move |step| self.owners[(start + step) % self.points.len()] as usize)
    }

    /// Member indices clockwise from `hash`, each once.
    pub(crate) fn walk_distinct(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = if self.points.is_empty() {
            0
        } else {
            self.successor(hash)
        };
        distinct_clockwise(self.points.len(), start, self.members.len(), |slot| {
            self.owners[slot] as usize
        })
    }

    pub(crate) fn members(&self) -> &Members {
        &self.members
    }
}

impl Placement for Ring {
    fn strategy(&self) -> Strategy {
        Strategy::Ring
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        self.members.add(node, weight)?;
        if let Err(err) = self.check_room_for(weight) {
            self.members.list.pop();
            return Err(err);
        }
        self.rebuild();
        Ok(())
    }

    fn remove_node(&mut self, node: &str) -> Result<()> {
        self.members.remove(node)?;
        self.rebuild();
        Ok(())
    }

    fn nodes(&self) -> Vec<&str> {
        self.members.names()
    }

    #[inline]
    fn owner(&self, key: &[u8]) -> Result<&str> {
        self.owner_of_hash(key_hash(key))
    }

    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.points.is_empty() {
            return Err(Error::EmptyMembership);
        }
        Ok(self
            .walk_distinct(key_hash(key))
            .take(count)
            .map(|i| self.members.name(i))
            .collect())
    }

    fn fresh_copy(&self) -> Box<dyn Placement> {
        Box::new(self.clone())
    }

    fn memory_bytes(&self) -> usize {
        self.points.capacity() * 8
            + self.owners.capacity() * 4
            + self.index.capacity() * 4
            + self.members.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(nodes: usize, vnodes: u32) -> Ring {
        let mut ring = Ring::new(vnodes).expect("valid vnodes");
        for i in 0..nodes {
            ring.add_node(&format!("node-{i}"), 1).expect("fresh name");
        }
        ring
    }

    /// The answer a plain scan of the circle gives: first point ≥ hash.
    fn scan(ring: &Ring, hash: u64) -> usize {
        ring.points.iter().position(|&p| p >= hash).unwrap_or(0)
    }

    proptest! {
        #[test]
        fn ring_index_agrees_with_linear_scan(hash: u64, nodes in 1usize..20, vnodes in 1u32..64) {
            let ring = ring(nodes, vnodes);
            prop_assert_eq!(ring.successor(hash), scan(&ring, hash));
        }
    }

    #[test]
    fn ring_index_handles_the_circle_edges() {
        let ring = ring(3, 10);
        for hash in [
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            ring.points[0],
            ring.points[0] - 1,
            ring.points[29],
            ring.points[29] + 1,
        ] {
            assert_eq!(ring.successor(hash), scan(&ring, hash), "hash {hash:#x}");
        }
    }

    #[test]
    fn ring_weights_scale_points() {
        let mut ring = Ring::new(100).expect("valid");
        ring.add_node("small", 1).expect("ok");
        ring.add_node("big", 3).expect("ok");
        let big = ring.points().filter(|(_, owner)| *owner == "big").count();
        assert_eq!((ring.points.len(), big), (400, 300));
    }

    #[test]
    fn ring_refuses_more_points_than_it_can_hold() {
        let mut ring = Ring::new(MAX_VIRTUAL_NODES).expect("valid");
        ring.add_node("small", 1).expect("fits");
        let before = ring.points.len();
        let err = ring
            .add_node("one-too-many", MAX_WEIGHT)
            .expect_err("over the limit");
        assert!(matches!(err, Error::CapacityExceeded { .. }));
        assert_eq!(
            ring.points.len(),
            before,
            "a refused add leaves the ring as it was"
        );
        assert!(ring.members.position("one-too-many").is_none());
    }

    use crate::hashing::{MAX_VIRTUAL_NODES, MAX_WEIGHT};
}
