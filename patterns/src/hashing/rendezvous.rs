//! Rendezvous (highest-random-weight) hashing, weighted.
//!
//! Every node scores every key — a hash of the pair — and the highest
//! score wins (Thaler & Ravishankar, 1996). No ring and no table: remove a
//! node and only its keys move, each to its own second-best node, so the
//! departed node's load spreads evenly over everyone else. Replicas are
//! simply the top-R scores. The price is O(N) per lookup.
//!
//! Weights use the logarithmic method (Schindelhauer & Schomaker): with
//! `u` the pair's hash mapped into (0, 1), the score is `w / -ln(u)`.
//! A node with twice the weight then wins twice as often, and changing
//! one node's weight moves keys only to or from that node.

use xxhash_rust::xxh3::xxh3_64;

use super::{Members, Placement, Strategy, key_hash};
use crate::{Error, Result};

/// A bijective 64-bit mixer (the splitmix64 finalizer): turns a key hash
/// and a node seed into an independent-looking pair hash cheaply.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rendezvous hashing over weighted nodes.
#[derive(Clone, Debug, Default)]
pub struct Rendezvous {
    members: Members,
    /// Per member: a hash of its name, mixed into every score.
    seeds: Vec<u64>,
    /// All weights equal: compare raw hashes, skip the logarithms.
    uniform: bool,
}

impl Rendezvous {
    pub fn new() -> Self {
        Self {
            uniform: true,
            ..Self::default()
        }
    }

    /// The score of member `i` for a key hashing to `key`.
    #[inline]
    fn score(&self, key: u64, i: usize) -> f64 {
        let pair = mix(key ^ self.seeds[i]);
        // u in (0, 1): 53 random bits, shifted off zero by half a step.
        let u = ((pair >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        f64::from(self.members.list[i].weight) / -u.ln()
    }

    /// How member `a` ranks against member `b` for a key: higher wins.
    /// Equal weights compare the raw pair hashes (−1/ln u grows with u, so
    /// the order is the same, without the logarithms). Exact ties go to
    /// the member that joined first.
    #[inline]
    fn rank(&self, key: u64, a: usize, b: usize) -> std::cmp::Ordering {
        let by_score = if self.uniform {
            mix(key ^ self.seeds[a]).cmp(&mix(key ^ self.seeds[b]))
        } else {
            self.score(key, a).total_cmp(&self.score(key, b))
        };
        by_score.then(b.cmp(&a))
    }

    fn winner(&self, key: u64) -> usize {
        (0..self.seeds.len())
            .max_by(|&a, &b| self.rank(key, a, b))
            .unwrap_or(0)
    }

    fn refresh(&mut self) {
        self.seeds = self
            .members
            .list
            .iter()
            .map(|m| xxh3_64(m.name.as_bytes()))
            .collect();
        self.uniform = self
            .members
            .list
            .windows(2)
            .all(|w| w[0].weight == w[1].weight);
    }
}

impl Placement for Rendezvous {
    fn strategy(&self) -> Strategy {
        Strategy::Rendezvous
    }

    fn add_node(&mut self, node: &str, weight: u32) -> Result<()> {
        self.members.add(node, weight)?;
        self.refresh();
        Ok(())
    }

    fn remove_node(&mut self, node: &str) -> Result<()> {
        self.members.remove(node)?;
        self.refresh();
        Ok(())
    }

    fn nodes(&self) -> Vec<&str> {
        self.members.names()
    }

    fn owner(&self, key: &[u8]) -> Result<&str> {
        if self.members.is_empty() {
            return Err(Error::EmptyMembership);
        }
        Ok(self.members.name(self.winner(key_hash(key))))
    }

    fn replicas(&self, key: &[u8], count: usize) -> Result<Vec<&str>> {
        if self.members.is_empty() {
            return Err(Error::EmptyMembership);
        }
        let key = key_hash(key);
        let mut ranked: Vec<usize> = (0..self.seeds.len()).collect();
        ranked.sort_by(|&a, &b| self.rank(key, b, a));
        Ok(ranked
            .into_iter()
            .take(count)
            .map(|i| self.members.name(i))
            .collect())
    }

    fn fresh_copy(&self) -> Box<dyn Placement> {
        Box::new(self.clone())
    }

    fn memory_bytes(&self) -> usize {
        self.seeds.capacity() * 8 + self.members.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_weights_set_the_share_of_keys() {
        let mut placement = Rendezvous::new();
        placement.add_node("light", 1).expect("ok");
        placement.add_node("heavy", 3).expect("ok");
        let keys = 40_000;
        let heavy = (0..keys)
            .filter(|i| placement.owner(format!("k{i}").as_bytes()) == Ok("heavy"))
            .count();
        let share = heavy as f64 / f64::from(keys);
        assert!((share - 0.75).abs() < 0.01, "heavy share {share}");
    }

    #[test]
    fn rendezvous_owner_is_the_first_replica() {
        let mut placement = Rendezvous::new();
        for (name, weight) in [("a", 1), ("b", 2), ("c", 5)] {
            placement.add_node(name, weight).expect("ok");
        }
        for i in 0..1000 {
            let key = format!("k{i}");
            let replicas = placement.replicas(key.as_bytes(), 3).expect("members");
            assert_eq!(Ok(replicas[0]), placement.owner(key.as_bytes()));
        }
    }
}
