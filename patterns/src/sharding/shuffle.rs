//! Shuffle sharding: give each tenant its own random few workers.
//!
//! Episode: 1, "The Correlation Catastrophe" (shuffle sharding mathematics)
//! Pattern: isolation / shuffle sharding
//! Try it:  cargo run -- demo consistent-hashing
//! Test it: cargo test -p patterns shuffle
//!
//! With plain sharding, one poisonous tenant takes down its whole shard and
//! everyone on it. Shuffle sharding (AWS Route 53's name for it) assigns
//! each tenant `k` of `n` workers, chosen by a hash of the tenant. Two
//! tenants share *all* their workers only with probability 1/C(n, k): with
//! 100 workers and 5 per tenant that is one in 75 million. When one tenant
//! breaks its workers, everyone else keeps at least one healthy worker
//! unless their shard is identical.
//!
//! The overlap between a tenant's shard and a random other one follows the
//! hypergeometric distribution: P(overlap = j) = C(k, j)·C(n−k, k−j) / C(n, k).
//! [`ShuffleSharding::overlap_distribution`] computes it exactly and
//! [`ShuffleSharding::simulate_overlaps`] checks it by counting.
//!
//! Workers are chosen by rendezvous hashing on (tenant, worker): the top k
//! scores. So a tenant's shard is stable, and when a worker is added or
//! removed only the tenants that ranked it in their top k change.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::hashing::validate_name;
use crate::{Error, Result};

/// `C(n, k)` as a float (exact below 2^53, then close).
pub fn binomial(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// `n` workers, `k` per tenant.
#[derive(Clone, Debug)]
pub struct ShuffleSharding {
    workers: Vec<String>,
    seeds: Vec<u64>,
    shard_size: usize,
}

impl ShuffleSharding {
    pub fn new(workers: Vec<String>, shard_size: usize) -> Result<Self> {
        if workers.is_empty() {
            return Err(Error::EmptyMembership);
        }
        if shard_size == 0 || shard_size > workers.len() {
            return Err(Error::InvalidShardSize {
                shard_size,
                workers: workers.len(),
            });
        }
        workers.iter().try_for_each(|w| validate_name(w))?;
        let mut sorted = workers.clone();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|p| p[0] == p[1]) {
            return Err(Error::NodeExists {
                node: pair[0].clone(),
            });
        }
        let seeds = workers.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        Ok(Self {
            workers,
            seeds,
            shard_size,
        })
    }

    /// `worker-0` … `worker-{n-1}`.
    pub fn numbered(workers: usize, shard_size: usize) -> Result<Self> {
        Self::new(
            (0..workers).map(|i| format!("worker-{i}")).collect(),
            shard_size,
        )
    }

    fn shard_indices(&self, tenant: &str) -> Vec<usize> {
        let mut ranked: Vec<(u64, usize)> = self
            .seeds
            .iter()
            .enumerate()
            .map(|(i, &seed)| (xxh3_64_with_seed(tenant.as_bytes(), seed), i))
            .collect();
        let k = self.shard_size;
        ranked.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
        let mut chosen: Vec<usize> = ranked[..k].iter().map(|&(_, i)| i).collect();
        chosen.sort_unstable();
        chosen
    }

    /// The tenant's workers, in worker order.
    pub fn shard_for(&self, tenant: &str) -> Vec<&str> {
        self.shard_indices(tenant)
            .into_iter()
            .map(|i| self.workers[i].as_str())
            .collect()
    }

    /// How many distinct shards exist: C(n, k).
    pub fn distinct_shards(&self) -> f64 {
        binomial(self.workers.len() as u64, self.shard_size as u64)
    }

    /// `P(overlap = j)` for `j = 0..=k`: the chance a random other tenant
    /// shares exactly `j` of this tenant's workers.
    pub fn overlap_distribution(&self) -> Vec<f64> {
        let (n, k) = (self.workers.len() as u64, self.shard_size as u64);
        (0..=k)
            .map(|j| binomial(k, j) * binomial(n - k, k - j) / binomial(n, k))
            .collect()
    }

    /// If one tenant's workers all fail, the share of other tenants that
    /// lose *every* worker (their shard is identical): 1 / C(n, k).
    pub fn full_outage_share(&self) -> f64 {
        1.0 / self.distinct_shards()
    }

    /// …and the share that lose at least one worker: 1 − P(overlap = 0).
    pub fn partial_outage_share(&self) -> f64 {
        1.0 - self.overlap_distribution()[0]
    }

    /// Counts, over `tenants` other tenants, how often each overlap size
    /// with `tenant-0`'s shard occurs; returns the frequencies.
    pub fn simulate_overlaps(&self, tenants: usize) -> Vec<f64> {
        let base = self.shard_indices("tenant-0");
        let mut counts = vec![0u64; self.shard_size + 1];
        for t in 1..=tenants {
            let other = self.shard_indices(&format!("tenant-{t}"));
            counts[other
                .iter()
                .filter(|i| base.binary_search(i).is_ok())
                .count()] += 1;
        }
        counts
            .iter()
            .map(|&c| c as f64 / tenants.max(1) as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_binomials_are_exact() {
        assert_eq!(binomial(8, 2), 28.0);
        assert_eq!(binomial(100, 5), 75_287_520.0);
        assert_eq!(binomial(5, 0), 1.0);
        assert_eq!(binomial(3, 4), 0.0);
    }

    /// Episode 1. Simulated overlaps between tenants' shards match the
    /// hypergeometric formula, for small and larger fleets.
    #[test]
    fn shuffle_simulated_overlaps_match_the_exact_formula() {
        for (n, k) in [(8, 2), (16, 4), (50, 5)] {
            let sharding = ShuffleSharding::numbered(n, k).expect("valid");
            let exact = sharding.overlap_distribution();
            assert!((exact.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let simulated = sharding.simulate_overlaps(100_000);
            for (j, (e, s)) in exact.iter().zip(&simulated).enumerate() {
                assert!(
                    (e - s).abs() < 0.006,
                    "n={n} k={k} overlap {j}: exact {e:.4}, simulated {s:.4}"
                );
            }
        }
    }

    #[test]
    fn shuffle_shards_are_stable_distinct_and_sized() {
        let sharding = ShuffleSharding::numbered(20, 4).expect("valid");
        let shard = sharding.shard_for("acme");
        assert_eq!(shard.len(), 4);
        assert_eq!(shard, sharding.shard_for("acme"), "deterministic");
        let mut unique = shard.clone();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        assert!((sharding.full_outage_share() - 1.0 / 4845.0).abs() < 1e-12);
    }

    #[test]
    fn shuffle_rejects_impossible_shapes() {
        assert!(matches!(
            ShuffleSharding::numbered(4, 0),
            Err(Error::InvalidShardSize { .. })
        ));
        assert!(matches!(
            ShuffleSharding::numbered(4, 5),
            Err(Error::InvalidShardSize { .. })
        ));
        assert_eq!(
            ShuffleSharding::numbered(0, 1).err(),
            Some(Error::EmptyMembership)
        );
        assert!(matches!(
            ShuffleSharding::new(vec!["a".into(), "a".into()], 1),
            Err(Error::NodeExists { .. })
        ));
    }
}
