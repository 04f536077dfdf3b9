//! `dslab demo percolation`: the giant component appears at ⟨k⟩ = 1, hubs
//! are the weak point of a scale-free graph, and breakers stop cascades.

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::telemetry::SpanCapture;

use super::{
    Breakers, CascadeConfig, Removal, ServiceGraph, erdos_renyi_giant_theory, fragmentation_point,
    mean_cascade_share, removal_curve,
};

const NODES: usize = 2_000;
const GRAPHS: u64 = 10;

/// Episode 10.
pub async fn percolation_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 10: the giant component — when a random service graph holds together");
    out.say(&format!(
        "Erdős–Rényi graphs of {NODES} services, {GRAPHS} per mean degree ⟨k⟩; the largest component's share."
    ));
    let grid: Vec<f64> = (1..=15).map(|i| f64::from(i) * 0.2).collect();
    let mut measured = Vec::new();
    for &k in &grid {
        let mut giant = 0.0;
        for seed in 0..GRAPHS {
            let graph = ServiceGraph::erdos_renyi(NODES, k, seed)?;
            giant += graph.giant_fraction(&[]);
        }
        measured.push((k, giant / GRAPHS as f64));
    }
    let rows: Vec<Vec<String>> = measured
        .iter()
        .filter(|(k, _)| {
            [0.4, 0.8, 1.0, 1.2, 1.6, 2.0, 3.0]
                .iter()
                .any(|x| (x - k).abs() < 1e-9)
        })
        .map(|&(k, giant)| {
            vec![
                format!("{k:.1}"),
                format!("{:.1}%", giant * 100.0),
                format!("{:.1}%", erdos_renyi_giant_theory(k) * 100.0),
            ]
        })
        .collect();
    out.table(&["⟨k⟩", "giant (simulated)", "n → ∞ theory"], &rows);
    let share_at = |k: f64| {
        measured
            .iter()
            .find(|p| (p.0 - k).abs() < 1e-9)
            .map_or(0.0, |p| p.1)
    };
    out.check(
        "the giant component appears at ⟨k⟩ = 1: a sliver at 0.6, most of the graph at 2",
        share_at(0.6) < 0.03 && share_at(2.0) > 0.75,
        format!(
            "{:.1}% at ⟨k⟩ = 0.6, {:.1}% at 1.0, {:.1}% at 2.0",
            share_at(0.6) * 100.0,
            share_at(1.0) * 100.0,
            share_at(2.0) * 100.0
        ),
    );
    let theory: Vec<(f64, f64)> = (0..=60)
        .map(|i| {
            let k = f64::from(i) * 0.05;
            (k, erdos_renyi_giant_theory(k))
        })
        .collect();
    out.figure(
        "percolation-giant-component",
        &LineChart::new(
            "Giant component vs mean degree (Erdős–Rényi, 2,000 services)",
            "mean degree ⟨k⟩",
            "largest component (share of services)",
        )
        .series(Series::line("theory S = 1 − exp(−⟨k⟩S)", theory))
        .series(Series::marked("simulated", measured)),
    );

    out.section("Random failures vs an attack on the hubs");
    let ba = ServiceGraph::barabasi_albert(NODES, 2, 1)?;
    let er = ServiceGraph::erdos_renyi(NODES, ba.mean_degree(), 1)?;
    out.say(&format!(
        "A Barabási–Albert graph (⟨k⟩ = {:.1}, largest hub {} links) and an Erdős–Rényi graph of the same ⟨k⟩.",
        ba.mean_degree(),
        (0..ba.nodes()).map(|n| ba.degree(n)).max().unwrap_or(0)
    ));
    let fractions: Vec<f64> = (0..=20).map(|i| f64::from(i) * 0.05).collect();
    let mut chart = LineChart::new(
        "Largest component as services are removed",
        "share of services removed",
        "largest component (share of services)",
    );
    let mut rows = Vec::new();
    for (name, graph) in [("scale-free", &ba), ("Erdős–Rényi", &er)] {
        for strategy in [Removal::Random, Removal::Targeted] {
            let curve = removal_curve(graph, strategy, &fractions, 1);
            rows.push(vec![
                name.to_string(),
                strategy.name().to_string(),
                format!(
                    "{:.0}%",
                    fragmentation_point(graph, strategy, 0.5, 1) * 100.0
                ),
                format!(
                    "{:.0}%",
                    fragmentation_point(graph, strategy, 0.1, 1) * 100.0
                ),
            ]);
            chart = chart.series(Series::marked(
                format!("{name}, {}", strategy.name()),
                curve,
            ));
        }
    }
    out.table(
        &[
            "graph",
            "removal",
            "removed when giant < 50%",
            "removed when giant < 10%",
        ],
        &rows,
    );
    let random = fragmentation_point(&ba, Removal::Random, 0.1, 1);
    let targeted = fragmentation_point(&ba, Removal::Targeted, 0.1, 1);
    out.check(
        "the scale-free graph survives random removal but falls apart when its hubs go",
        random > 0.5 && targeted * 4.0 <= random,
        format!(
            "giant below 10% after {:.0}% removed at random, {:.0}% hubs first",
            random * 100.0,
            targeted * 100.0
        ),
    );
    out.figure("percolation-removal", &chart);

    out.section(
        "Cascades: a failure spreading over the dependency graph, with and without breakers",
    );
    out.say(&format!(
        "Each failed service takes a neighbour down with probability T. Threshold T_c = ⟨k⟩/(⟨k²⟩ − ⟨k⟩): {:.3} here",
        ba.epidemic_threshold()
    ));
    out.say(&format!(
        "(Erdős–Rényi of the same ⟨k⟩: {:.3}). Breakers that contain 80% of failures cut T fivefold.",
        er.epidemic_threshold()
    ));
    let breakers = Some(Breakers { containment: 0.8 });
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut rows = Vec::new();
    for i in 1..=10 {
        let transmissibility = f64::from(i) * 0.1;
        let open = CascadeConfig {
            transmissibility,
            breakers: None,
        };
        let guarded = CascadeConfig { breakers, ..open };
        let a = mean_cascade_share(&ba, &open, 200, 1)?;
        let b = mean_cascade_share(&ba, &guarded, 200, 1)?;
        rows.push(vec![
            format!("{transmissibility:.1}"),
            format!("{:.1}%", a * 100.0),
            format!("{:.2}%", b * 100.0),
        ]);
        without.push((transmissibility, a));
        with.push((transmissibility, b));
    }
    out.table(&["T", "mean cascade, no breakers", "with breakers"], &rows);
    let at = |curve: &[(f64, f64)]| {
        curve
            .iter()
            .find(|p| (p.0 - 0.4).abs() < 1e-9)
            .map_or(0.0, |p| p.1)
    };
    out.check(
        "at T = 0.4 a failure reaches a large share of the fleet; breakers keep it under 1%",
        at(&without) > 0.3 && at(&with) < 0.01,
        format!(
            "{:.1}% without, {:.2}% with breakers",
            at(&without) * 100.0,
            at(&with) * 100.0
        ),
    );
    out.figure(
        "percolation-cascade",
        &LineChart::new(
            "Cascade size vs transmissibility (scale-free, 2,000 services)",
            "transmissibility T",
            "mean share of services failed",
        )
        .series(Series::marked("no breakers", without))
        .series(Series::marked("breakers (80% contained)", with)),
    );
    Ok(())
}
