use super::*;

const NODES: usize = 2_000;
const GRAPHS: u64 = 20;

/// Mean giant-component share and mean second-largest component size
/// over `GRAPHS` Erdős–Rényi graphs with mean degree `k`.
fn sweep_point(k: f64) -> (f64, f64) {
    let (mut giant, mut second) = (0.0, 0.0);
    for seed in 0..GRAPHS {
        let graph = ServiceGraph::erdos_renyi(NODES, k, seed).expect("valid graph");
        let sizes = graph.component_sizes(&[]);
        giant += sizes[0] as f64 / NODES as f64;
        second += sizes.get(1).copied().unwrap_or(0) as f64;
    }
    (giant / GRAPHS as f64, second / GRAPHS as f64)
}

/// Episode 10. Setup: Erdős–Rényi graphs of 2,000 services, 20 per mean
/// degree from 0.2 to 3.0. Must hold: the giant component is a sliver
/// below ⟨k⟩ = 1 and follows S = 1 − e^{−⟨k⟩S} above it; the critical
/// point — where the second-largest component peaks — is within 0.2 of 1.
#[test]
fn percolation_giant_component_emerges_near_mean_degree_one() {
    let grid: Vec<f64> = (1..=15).map(|i| f64::from(i) * 0.2).collect();
    let points: Vec<(f64, f64, f64)> = grid
        .iter()
        .map(|&k| {
            let (giant, second) = sweep_point(k);
            (k, giant, second)
        })
        .collect();
    for &(k, giant, _) in &points {
        if k <= 0.6 + 1e-9 {
            assert!(giant < 0.03, "⟨k⟩ = {k}: giant {giant} should be a sliver");
        }
        if k >= 1.6 - 1e-9 {
            let theory = erdos_renyi_giant_theory(k);
            assert!(
                (giant - theory).abs() < 0.03,
                "⟨k⟩ = {k}: giant {giant}, theory {theory}"
            );
        }
    }
    let critical = points
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|p| p.0)
        .expect("non-empty grid");
    assert!(
        (critical - 1.0).abs() <= 0.2 + 1e-9,
        "second-largest component peaks at ⟨k⟩ = {critical}"
    );
}

/// Episode 10. Setup: Barabási–Albert graphs of 2,000 services, 2 links
/// per newcomer (⟨k⟩ ≈ 4), 10 seeds. Break: remove services at random, or
/// hubs first. Must hold: the hubs-first attack shrinks the giant
/// component below 10 % after removing at most a quarter of what random
/// removal needs — and random removal needs more than half the fleet.
#[test]
fn percolation_targeted_removal_fragments_scale_free_far_faster() {
    for seed in 0..10 {
        let graph = ServiceGraph::barabasi_albert(NODES, 2, seed).expect("valid graph");
        let random = fragmentation_point(&graph, Removal::Random, 0.1, seed);
        let targeted = fragmentation_point(&graph, Removal::Targeted, 0.1, seed);
        assert!(
            random > 0.5,
            "seed {seed}: random removal fragments at {random}"
        );
        assert!(
            targeted * 4.0 <= random,
            "seed {seed}: targeted {targeted} vs random {random}"
        );
    }
}

/// Episode 10. A scale-free graph's hubs make ⟨k²⟩ large: its epidemic
/// threshold is far below an Erdős–Rényi graph's of the same ⟨k⟩.
#[test]
fn percolation_scale_free_threshold_is_far_lower() {
    let ba = ServiceGraph::barabasi_albert(NODES, 2, 1).expect("valid");
    let er = ServiceGraph::erdos_renyi(NODES, ba.mean_degree(), 1).expect("valid");
    assert!((er.epidemic_threshold() - 1.0 / er.mean_degree()).abs() < 0.05);
    assert!(ba.epidemic_threshold() < 0.5 * er.epidemic_threshold());
}

/// Episode 10 (and 37). Setup: a Barabási–Albert graph, a failure that
/// takes each neighbour down with probability 0.4, 300 cascades from
/// random origins. Break: no breakers. Must hold: without breakers the
/// average cascade takes a large share of the fleet; breakers that
/// contain 80 % of failures push it below the threshold and keep the
/// average cascade under 1 % of the fleet.
#[test]
fn percolation_cascade_is_contained_by_circuit_breakers() {
    for seed in 0..5 {
        let graph = ServiceGraph::barabasi_albert(NODES, 2, seed).expect("valid");
        let open = CascadeConfig {
            transmissibility: 0.4,
            breakers: None,
        };
        let guarded = CascadeConfig {
            breakers: Some(Breakers { containment: 0.8 }),
            ..open
        };
        let without = mean_cascade_share(&graph, &open, 300, seed).expect("valid");
        let with = mean_cascade_share(&graph, &guarded, 300, seed).expect("valid");
        assert!(without > 0.3, "seed {seed}: without breakers {without}");
        assert!(with < 0.01, "seed {seed}: with breakers {with}");
    }
}

/// Bad graphs and cascades are named, not built.
#[test]
fn percolation_rejects_bad_parameters() {
    assert!(ServiceGraph::erdos_renyi(0, 1.0, 1).is_err());
    assert!(ServiceGraph::erdos_renyi(10, 20.0, 1).is_err());
    assert!(ServiceGraph::erdos_renyi(10, f64::NAN, 1).is_err());
    assert!(ServiceGraph::barabasi_albert(3, 3, 1).is_err());
    assert!(ServiceGraph::barabasi_albert(MAX_NODES + 1, 1, 1).is_err());
    let graph = ServiceGraph::erdos_renyi(10, 2.0, 1).expect("valid");
    let config = CascadeConfig {
        transmissibility: 1.5,
        breakers: None,
    };
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
    assert!(cascade(&graph, 0, &config, &mut rng).is_err());
    let config = CascadeConfig {
        transmissibility: 0.5,
        breakers: None,
    };
    assert!(cascade(&graph, 10, &config, &mut rng).is_err());
}

/// The generators build what they promise: exact edge counts, no loops,
/// no duplicate edges.
#[test]
fn percolation_graphs_have_the_promised_shape() {
    let er = ServiceGraph::erdos_renyi(500, 3.0, 9).expect("valid");
    assert_eq!(er.edges(), 750);
    let ba = ServiceGraph::barabasi_albert(500, 3, 9).expect("valid");
    assert_eq!(ba.edges(), 6 + 3 * (500 - 4));
    for graph in [&er, &ba] {
        for node in 0..graph.nodes() {
            let mut seen = graph.neighbours(node).to_vec();
            assert!(!seen.contains(&(node as u32)), "self-loop at {node}");
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), graph.degree(node), "duplicate edge at {node}");
        }
    }
    let hub = (0..ba.nodes()).map(|n| ba.degree(n)).max().unwrap_or(0);
    assert!(
        hub > 10 * 6,
        "preferential attachment grows hubs, largest degree {hub}"
    );
}
