//! Service graphs: Erdős–Rényi and Barabási–Albert, and their components.

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{MAX_EDGES, MAX_NODES};
use crate::error::{Error, Result};

/// An undirected graph of services: an edge is a dependency (a call),
/// and a failure can travel it either way (the callee fails its callers;
/// a failed caller's retries overload the callee).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceGraph {
    adjacency: Vec<Vec<u32>>,
    edges: usize,
}

fn invalid(reason: String) -> Error {
    Error::InvalidExperiment { reason }
}

impl ServiceGraph {
    fn empty(nodes: usize) -> Result<Self> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(invalid(format!(
                "{nodes} nodes: must be in 1..={MAX_NODES}"
            )));
        }
        Ok(Self {
            adjacency: vec![Vec::new(); nodes],
            edges: 0,
        })
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.adjacency[a].push(b as u32);
        self.adjacency[b].push(a as u32);
        self.edges += 1;
    }

    /// Erdős–Rényi G(n, M): `nodes` services and `nodes × mean_degree / 2`
    /// dependencies, each between two services drawn uniformly, no loops,
    /// no duplicates. For large n this is G(n, p) with p = ⟨k⟩/(n − 1).
    pub fn erdos_renyi(nodes: usize, mean_degree: f64, seed: u64) -> Result<Self> {
        let mut graph = Self::empty(nodes)?;
        let possible = nodes * (nodes - 1) / 2;
        let wanted = (nodes as f64 * mean_degree / 2.0).round();
        if !(mean_degree >= 0.0 && wanted <= possible as f64 && wanted <= MAX_EDGES as f64) {
            return Err(invalid(format!(
                "mean degree {mean_degree} on {nodes} nodes: needs 0 ≤ edges ≤ min({possible}, {MAX_EDGES})"
            )));
        }
        let wanted = wanted as usize;
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut seen = HashSet::with_capacity(wanted);
        // Rejection sampling is fast while the graph is sparse, which is
        // every graph this module is about (⟨k⟩ of a few on thousands).
        while graph.edges < wanted {
            let (a, b) = (rng.random_range(0..nodes), rng.random_range(0..nodes));
            if a != b && seen.insert((a.min(b), a.max(b))) {
                graph.connect(a, b);
            }
        }
        Ok(graph)
    }

    /// Barabási–Albert: start from `links + 1` fully connected services;
    /// each new service depends on `links` distinct existing ones, chosen
    /// with probability proportional to their degree. The rich get
    /// richer: a few hubs (auth, the config service, the database proxy)
    /// end up with most of the edges, and the degrees follow a power law.
    pub fn barabasi_albert(nodes: usize, links: usize, seed: u64) -> Result<Self> {
        if links == 0 || nodes <= links {
            return Err(invalid(format!(
                "Barabási–Albert needs 1 ≤ links < nodes, got links {links} on {nodes} nodes"
            )));
        }
        if nodes.saturating_mul(links) > MAX_EDGES {
            return Err(invalid(format!(
                "{nodes} × {links} edges exceeds {MAX_EDGES}"
            )));
        }
        let mut graph = Self::empty(nodes)?;
        let mut rng = SmallRng::seed_from_u64(seed);
        // Every edge end, listed once per end: a uniform draw from it is
        // a draw proportional to degree.
        let mut ends: Vec<u32> = Vec::with_capacity(2 * nodes * links);
        for a in 0..=links {
            for b in 0..a {
                graph.connect(a, b);
                ends.extend([a as u32, b as u32]);
            }
        }
        let mut targets = Vec::with_capacity(links);
        for node in links + 1..nodes {
            targets.clear();
            while targets.len() < links {
                let target = ends[rng.random_range(0..ends.len())];
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            for &target in &targets {
                graph.connect(node, target as usize);
                ends.extend([node as u32, target]);
            }
        }
        Ok(graph)
    }

    pub fn nodes(&self) -> usize {
        self.adjacency.len()
    }

    pub fn edges(&self) -> usize {
        self.edges
    }

    pub fn neighbours(&self, node: usize) -> &[u32] {
        &self.adjacency[node]
    }

    pub fn degree(&self, node: usize) -> usize {
        self.adjacency[node].len()
    }

    /// ⟨k⟩.
    pub fn mean_degree(&self) -> f64 {
        2.0 * self.edges as f64 / self.nodes() as f64
    }

    /// ⟨k²⟩ — large for scale-free graphs, which is why they percolate
    /// (and spread failures) at any transmissibility.
    pub fn mean_square_degree(&self) -> f64 {
        let sum: f64 = self
            .adjacency
            .iter()
            .map(|n| (n.len() as f64).powi(2))
            .sum();
        sum / self.nodes() as f64
    }

    /// The transmissibility above which a failure can reach a finite
    /// share of the graph: T_c = ⟨k⟩ / (⟨k²⟩ − ⟨k⟩) (Newman 2002). For
    /// Erdős–Rényi it is 1/⟨k⟩; for a scale-free graph it tends to zero.
    pub fn epidemic_threshold(&self) -> f64 {
        let k = self.mean_degree();
        k / (self.mean_square_degree() - k).max(f64::MIN_POSITIVE)
    }

    /// Component sizes, largest first, counting only nodes not `removed`.
    pub fn component_sizes(&self, removed: &[bool]) -> Vec<usize> {
        let mut seen: Vec<bool> = (0..self.nodes())
            .map(|n| removed.get(n).copied().unwrap_or(false))
            .collect();
        let mut sizes = Vec::new();
        let mut stack = Vec::new();
        for start in 0..self.nodes() {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let mut size = 0;
            while let Some(node) = stack.pop() {
                size += 1;
                for &next in &self.adjacency[node] {
                    if !std::mem::replace(&mut seen[next as usize], true) {
                        stack.push(next as usize);
                    }
                }
            }
            sizes.push(size);
        }
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    /// The largest component's share of *all* nodes (removed ones count
    /// in the denominator: what share of the fleet can still talk).
    pub fn giant_fraction(&self, removed: &[bool]) -> f64 {
        let largest = self.component_sizes(removed).first().copied().unwrap_or(0);
        largest as f64 / self.nodes() as f64
    }
}

/// Which services fail first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Uniformly at random: disks, hosts, bad luck.
    Random,
    /// Highest degree first: an attacker, or a shared dependency.
    Targeted,
}

impl Removal {
    pub fn name(self) -> &'static str {
        match self {
            Removal::Random => "random",
            Removal::Targeted => "targeted (hubs first)",
        }
    }
}

/// The giant component's share after removing each fraction in
/// `fractions` (ascending) of the nodes in `strategy`'s order.
///
/// Simplified: targeted removal ranks by the initial degree. Recomputing
/// degrees after each removal (the adaptive attack) is harsher still.
pub fn removal_curve(
    graph: &ServiceGraph,
    strategy: Removal,
    fractions: &[f64],
    seed: u64,
) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..graph.nodes()).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    if strategy == Removal::Targeted {
        // Stable sort after the shuffle: ties between equal degrees break
        // at random, not by node number.
        order.sort_by_key(|&n| std::cmp::Reverse(graph.degree(n)));
    }
    let mut removed = vec![false; graph.nodes()];
    let mut done = 0;
    fractions
        .iter()
        .map(|&fraction| {
            let upto = ((fraction.clamp(0.0, 1.0) * graph.nodes() as f64).round() as usize)
                .min(graph.nodes());
            while done < upto {
                removed[order[done]] = true;
                done += 1;
            }
            (fraction, graph.giant_fraction(&removed))
        })
        .collect()
}

/// The smallest fraction (on a 1 % grid) whose removal leaves a giant
/// component below `share` of the nodes.
pub fn fragmentation_point(graph: &ServiceGraph, strategy: Removal, share: f64, seed: u64) -> f64 {
    let grid: Vec<f64> = (0..=100).map(|p| f64::from(p) / 100.0).collect();
    removal_curve(graph, strategy, &grid, seed)
        .into_iter()
        .find(|&(_, giant)| giant < share)
        .map_or(1.0, |(fraction, _)| fraction)
}

/// The size S of the Erdős–Rényi giant component as n → ∞: the root of
/// S = 1 − e^{−⟨k⟩S}, zero for ⟨k⟩ ≤ 1.
pub fn erdos_renyi_giant_theory(mean_degree: f64) -> f64 {
    if mean_degree <= 1.0 {
        return 0.0;
    }
    let mut s: f64 = 1.0;
    for _ in 0..200 {
        s = 1.0 - (-mean_degree * s).exp();
    }
    s
}
