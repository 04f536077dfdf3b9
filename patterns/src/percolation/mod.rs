//! Percolation: when a service graph holds together, and when a failure
//! crosses it.
//!
//! Episode: 10, "Percolation Theory & Network Effects" (also 8, 37)
//! Pattern: network science / giant component, targeted removal, cascades
//! Try it:  cargo run -- demo percolation --svg target/figures
//! Test it: cargo test -p patterns percolation
//!
//! Draw n services and connect random pairs until each has ⟨k⟩ links on
//! average (Erdős–Rényi). Below ⟨k⟩ = 1 the graph is dust: small islands,
//! the largest a sliver of the fleet. Just above 1 a *giant component*
//! appears and grows fast — half the graph at ⟨k⟩ ≈ 1.4, 80 % at 2. That
//! phase transition is percolation, and it cuts both ways: the same
//! connectivity that lets every service reach every other lets a failure
//! reach them too. A cascade that takes each neighbour down with
//! probability T is bond percolation with T: it stays local below the
//! threshold T_c = ⟨k⟩/(⟨k²⟩ − ⟨k⟩) and reaches a finite share of the
//! fleet above it ([`cascade()`]). Circuit breakers lower T; that is their
//! whole effect at this scale, and it is why they work.
//!
//! Real service graphs are not Erdős–Rényi: they grow by preferential
//! attachment (Barabási–Albert) — new services call the popular ones — so
//! a few hubs hold most edges. Such graphs shrug off random failures
//! (most nodes are leaves) and fall apart when the hubs go. The one thing
//! to watch for: "we survive losing 20 % of hosts" says nothing about
//! losing the 5 % that everything depends on.
//!
//! Bounds: graphs have at most [`MAX_NODES`] nodes and [`MAX_EDGES`]
//! edges; every walk is iterative (no recursion depth to exhaust).
//!
//! Simplified: undirected edges (a failure travels caller → callee as
//! retries and callee → caller as errors), one chance per edge, identical
//! services. Real dependency graphs are directed and weighted; the
//! thresholds move, the shape does not.

pub mod cascade;
pub mod graph;

mod demo;

pub use cascade::{Breakers, CascadeConfig, CascadeOutcome, cascade, mean_cascade_share};
pub use demo::percolation_demo;
pub use graph::{
    Removal, ServiceGraph, erdos_renyi_giant_theory, fragmentation_point, removal_curve,
};

/// The most services a graph may have.
pub const MAX_NODES: usize = 100_000;
/// The most dependencies a graph may have.
pub const MAX_EDGES: usize = 1_000_000;

#[cfg(test)]
mod tests;
