//! A failure spreading over the dependency graph, SIR-style, with and
//! without circuit breakers on the callers.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::graph::ServiceGraph;
use crate::error::{Error, Result};

/// How a failure travels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CascadeConfig {
    /// The chance that a failed service takes a neighbour down with it
    /// (its calls hang, its threads fill, its retries pile on).
    pub transmissibility: f64,
    /// Circuit breakers on every caller, or none.
    pub breakers: Option<Breakers>,
}

/// Circuit breakers: when a dependency fails, the caller's breaker opens
/// and the caller answers from a fallback (a cached value, a default, a
/// degraded page) instead of failing too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breakers {
    /// The chance that the breaker opens before the failure takes the
    /// caller down. Not 1: a breaker needs a few failed calls to trip,
    /// and some callers have no useful fallback.
    pub containment: f64,
}

impl CascadeConfig {
    /// The chance that one failed neighbour takes a service down.
    /// A cascade over a graph is bond percolation with this probability
    /// (Newman 2002): it reaches a finite share of the graph only above
    /// [`ServiceGraph::epidemic_threshold`].
    pub fn effective_transmissibility(&self) -> f64 {
        let contained = self.breakers.map_or(0.0, |b| b.containment);
        self.transmissibility * (1.0 - contained)
    }

    fn validate(&self) -> Result<()> {
        let probability = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(Error::InvalidExperiment {
                    reason: format!("{name} must be a probability in [0, 1], got {p}"),
                })
            }
        };
        probability("transmissibility", self.transmissibility)?;
        if let Some(breakers) = self.breakers {
            probability("breaker containment", breakers.containment)?;
        }
        Ok(())
    }
}

/// What one cascade did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CascadeOutcome {
    /// Services that failed, the origin included.
    pub failed: usize,
    /// Calls on which a breaker opened and kept the caller up.
    pub contained: usize,
    /// Rounds of spreading until it stopped.
    pub generations: usize,
}

/// One cascade from `origin`: susceptible → failed → recovered. Each
/// failed service gets one chance to take down each neighbour that is
/// still up; then it recovers (restarts) and cannot fail again in this
/// cascade.
///
/// Simplified: one chance per edge, no timing; real cascades also depend
/// on timeouts, retries and how long the failure lasts.
pub fn cascade(
    graph: &ServiceGraph,
    origin: usize,
    config: &CascadeConfig,
    rng: &mut impl Rng,
) -> Result<CascadeOutcome> {
    config.validate()?;
    if origin >= graph.nodes() {
        return Err(Error::InvalidExperiment {
            reason: format!(
                "origin {origin} is not one of the {} services",
                graph.nodes()
            ),
        });
    }
    let mut failed = vec![false; graph.nodes()];
    failed[origin] = true;
    let mut frontier = VecDeque::from([(origin, 0usize)]);
    let mut outcome = CascadeOutcome {
        failed: 1,
        contained: 0,
        generations: 0,
    };
    while let Some((node, generation)) = frontier.pop_front() {
        outcome.generations = outcome.generations.max(generation);
        for &next in graph.neighbours(node) {
            let next = next as usize;
            if failed[next] || !rng.random_bool(config.transmissibility) {
                continue;
            }
            if let Some(breakers) = config.breakers
                && rng.random_bool(breakers.containment)
            {
                outcome.contained += 1;
                continue;
            }
            failed[next] = true;
            outcome.failed += 1;
            frontier.push_back((next, generation + 1));
        }
    }
    Ok(outcome)
}

/// The mean share of services a cascade takes down, over `trials`
/// cascades from origins drawn uniformly.
pub fn mean_cascade_share(
    graph: &ServiceGraph,
    config: &CascadeConfig,
    trials: usize,
    seed: u64,
) -> Result<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut total = 0usize;
    for _ in 0..trials.max(1) {
        let origin = rng.random_range(0..graph.nodes());
        total += cascade(graph, origin, config, &mut rng)?.failed;
    }
    Ok(total as f64 / (trials.max(1) * graph.nodes()) as f64)
}
