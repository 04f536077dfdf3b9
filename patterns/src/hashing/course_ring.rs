//! The course's Python `ConsistentHash`, reproduced placement for placement.
//!
//! The outline's consistent-hashing deep dive builds a ring from the md5
//! hex digest of `"{node}:{i}"` for 150 virtual nodes per node, and finds a
//! key's node with `bisect_right` over the sorted digests, wrapping to the
//! first. This module does exactly that, so a viewer can run the lecture's
//! code and ours on the same keys and compare line by line
//! (`patterns/benches/course_ring.py` is that code).
//!
//! Two details make it exact. Hex digests of equal length compare like
//! the 128-bit numbers they spell, so digests are kept as `u128`. And
//! `bisect_right` finds the first point *greater than* the key's hash —
//! a key hashing exactly onto a point goes to the next one, unlike
//! [`super::ring`], which uses the first point at or after it.
//!
//! Bounded: at most [`MAX_COURSE_RING_POINTS`] points (members × virtual
//! nodes, 20 bytes each). A member's md5 digests are computed once, when
//! it joins, and merged into the sorted ring; a departure filters its
//! points out. Either costs one pass over the ring, never re-hashing it.
//!
//! Simplified: no weights (the lecture's code has none).

use md5::{Digest, Md5};

use super::{Members, Placement, Strategy, distinct_clockwise, unweighted, validate_vnodes};
use crate::{Error, Result};

/// The most points a course ring holds: 1 Mi points, 20 MiB (the
/// course's 150 virtual nodes allow about 7,000 members).
pub const MAX_COURSE_RING_POINTS: usize = 1 << 20;

/// The course ring: md5 points, `bisect_right` lookups.
#[derive(Clone, Debug)]
pub struct CourseRing {
    vnodes: u32,
    members: Members,
    points: Vec<u128>,
    owners: Vec<u32>,
}

/// md5 of `bytes`, read as the big-endian number its hex digest spells.
fn md5_value(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(bytes).into())
}

impl CourseRing {
    /// An empty ring with `vnodes` virtual nodes per node (the course uses 150).
    pub fn new(vnodes: u32) -> Result<Self> {
        validate_vnodes(vnodes)?;
        Ok(Self {
            vnodes,
            members: Members::default(),
            points: Vec::new(),
            owners: Vec::new(),
        })
    }

    /// Merges `owner`'s sorted `digests` into the sorted ring. Equal
    /// digests keep the earlier member first, as a stable sort would.
    fn merge(&mut self, digests: &[u128], owner: u32) {
        let total = self.points.len() + digests.len();
        let mut points = Vec::with_capacity(total);
        let mut owners = Vec::with_capacity(total);
        let (mut i, mut j) = (0, 0);
        while i < self.points.len() || j < digests.len() {
            let take_old =
                j == digests.len() || (i < self.points.len() && self.points[i] <= digests[j]);
            if take_old {
                points.push(self.points[i]);
                owners.push(self.owners[i]);
                i += 1;
            } else {
                points.push(digests[j]);
                owners.push(owner);
                j += 1;
            }
        }
        self.points = points;
        self.owners = owners;
    }

    /// `bisect.bisect_right(sorted_keys, hash)`, wrapping at the end.
    fn bisect_right(&self, hash: u128) -> usize {
        let index = self.points.partition_point(|&p| p <= hash);
        if index == self.points.len() { 0 } else { index }
    }
}

impl Placement for CourseRing {
    fn strategy(&self) -> Strategy {
        Strategy::CourseRing
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        unweighted(Strategy::CourseRing, weight)?;
        if self.points.len() + self.vnodes as usize > MAX_COURSE_RING_POINTS {
            return Err(Error::CapacityExceeded {
                what: "ring points",
                limit: MAX_COURSE_RING_POINTS as u64,
            });
        }
        self.members.add(node, weight)?;
        let mut digests: Vec<u128> = (0..self.vnodes)
            .map(|i| md5_value(format!("{node}:{i}").as_bytes()))
            .collect();
        digests.sort_unstable();
        self.merge(&digests, (self.members.len() - 1) as u32);
        Ok(())
    }

    fn remove_node(&mut self, node: &str) -> Result<()> {
        let gone = self.members.remove(node)? as u32;
        let mut kept = 0;
        for at in 0..self.points.len() {
            let owner = self.owners[at];
            if owner != gone {
                self.points[kept] = self.points[at];
                // Members after the departed one moved down a place.
                self.owners[kept] = if owner > gone { owner - 1 } else { owner };
                kept += 1;
            }
        }
        self.points.truncate(kept);
        self.owners.truncate(kept);
        Ok(())
    }

    fn nodes(&self) -> Vec<&str> {
        self.members.names()
    }

    fn owner(&self, key: &[u8]) -> Result<&str> {
        if self.points.is_empty() {
            return Err(Error::EmptyMembership);
        }
        Ok(self
            .members
            .name(self.owners[self.bisect_right(md5_value(key))] as usize))
    }

    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.points.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let start = self.bisect_right(md5_value(key));
        Ok(
            distinct_clockwise(self.points.len(), start, self.members.len(), |slot| {
                self.owners[slot] as usize
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
        self.points.capacity() * 16 + self.owners.capacity() * 4 + self.members.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn course_ring(nodes: &[&str], vnodes: u32) -> CourseRing {
        let mut ring = CourseRing::new(vnodes).expect("valid");
        for node in nodes {
            ring.add_node(node, 1).expect("fresh");
        }
        ring
    }

    fn ten_nodes() -> CourseRing {
        let names: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
        course_ring(&names.iter().map(String::as_str).collect::<Vec<_>>(), 150)
    }

    /// Placements printed by the lecture's Python code
    /// (`python3 patterns/benches/course_ring.py`).
    #[test]
    fn course_ring_matches_the_lecture_python() {
        let ring = ten_nodes();
        for (key, node) in [
            ("key-0", "node-2"),
            ("key-1", "node-7"),
            ("key-2", "node-8"),
            ("key-3", "node-8"),
            ("key-4", "node-2"),
            ("", "node-0"),
            ("a", "node-4"),
            ("user:42", "node-8"),
            ("ключ", "node-6"),
            ("key-99999", "node-3"),
        ] {
            assert_eq!(ring.owner(key.as_bytes()), Ok(node), "key {key:?}");
        }
        let small = course_ring(&["a", "b", "c"], 5);
        for (key, node) in [
            ("k0", "c"),
            ("k1", "a"),
            ("k2", "b"),
            ("k3", "c"),
            ("k4", "c"),
            ("k5", "a"),
        ] {
            assert_eq!(small.owner(key.as_bytes()), Ok(node), "key {key:?}");
        }
    }

    /// The lecture's `remove_node("node-3")` then `add_node("node-10")`.
    #[test]
    fn course_ring_matches_the_lecture_after_membership_changes() {
        let mut ring = ten_nodes();
        ring.remove_node("node-3").expect("member");
        ring.add_node("node-10", 1).expect("fresh");
        for (key, node) in [
            ("key-0", "node-2"),
            ("key-1", "node-7"),
            ("key-2", "node-8"),
            ("key-3", "node-8"),
            ("key-4", "node-2"),
        ] {
            assert_eq!(ring.owner(key.as_bytes()), Ok(node), "key {key:?}");
        }
    }

    proptest! {
        /// Our binary search finds what the Python's `bisect_right` (a
        /// linear scan for the first digest greater than the key's) finds.
        #[test]
        fn course_ring_bisect_agrees_with_linear_scan(key in ".*", nodes in 1usize..8) {
            let names: Vec<String> = (0..nodes).map(|i| format!("node-{i}")).collect();
            let ring = course_ring(&names.iter().map(String::as_str).collect::<Vec<_>>(), 20);
            let hash = md5_value(key.as_bytes());
            let scanned = ring.points.iter().position(|&p| p > hash).unwrap_or(0);
            prop_assert_eq!(ring.bisect_right(hash), scanned);
        }
    }

    /// The ring stops growing at its point limit with a typed error,
    /// instead of taking memory from whoever calls AddNode.
    #[test]
    fn course_ring_refuses_points_beyond_its_limit() {
        let mut ring = course_ring(&["a"], 150);
        // Stand-ins for a full ring's points (cheaper than a million md5s).
        let room = MAX_COURSE_RING_POINTS - ring.points.len();
        ring.points
            .extend((0..room - 100).map(|i| u128::MAX - i as u128));
        ring.owners.resize(ring.points.len(), 0);
        assert!(matches!(
            ring.add_node("b", 1),
            Err(Error::CapacityExceeded { .. })
        ));
        assert_eq!(ring.nodes(), ["a"], "nothing changed");
    }

    #[test]
    fn course_ring_refuses_weights() {
        let mut ring = CourseRing::new(150).expect("valid");
        assert!(matches!(
            ring.add_node("n", 2),
            Err(Error::WeightsUnsupported { .. })
        ));
    }
}
