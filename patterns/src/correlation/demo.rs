//! `dslab demo correlated-failure`: three replicas that are really one,
//! found from failure samples alone; a release that is a shared dependency
//! too, contained by cells and a staged rollout.

use observability::demo::{DemoResult, Narrator};
use observability::plot::{Legend, LineChart, Series};
use observability::telemetry::SpanCapture;

use super::detector::{DetectorConfig, detect};
use super::fleet::{
    Dependency, FleetConfig, down_probability, p_all_down_common_cause, p_all_down_independent,
    simulate,
};
use super::rollout::{Decoding, RolloutConfig, Strategy, rollout};
use super::stats::{Contingency, pearson, spearman};

/// Hosts of the example fleet: four racks of four.
const HOSTS: usize = 16;
const STEPS: usize = 20_000;
const OUTAGE_STEPS: usize = 5;
const HOST_FAILURE: f64 = 0.002;
const RESOLVER_FAILURE: f64 = 0.004;
/// The hosts behind the hidden resolver: one per rack, both power feeds.
pub(crate) const PLANTED: [usize; 4] = [1, 6, 11, 12];
pub(crate) const PLANTED_NAME: &str = "dns-east";
const SEED: u64 = 1;

/// What the CMDB says the fleet depends on: racks, power feeds and the
/// resolver. Only the resolver (when `planted`) ever fails.
pub(crate) fn inventory(with_resolver: bool) -> Vec<Dependency> {
    let mut inventory: Vec<Dependency> = (0..4)
        .map(|rack| {
            Dependency::new(
                format!("rack-{}", rack + 1),
                (rack * 4..rack * 4 + 4).collect(),
                0.0,
            )
        })
        .collect();
    inventory.push(Dependency::new(
        "power-a",
        (0..HOSTS).step_by(2).collect(),
        0.0,
    ));
    inventory.push(Dependency::new(
        "power-b",
        (1..HOSTS).step_by(2).collect(),
        0.0,
    ));
    if with_resolver {
        inventory.push(Dependency::new(PLANTED_NAME, PLANTED.to_vec(), 0.0));
    }
    inventory
}

/// The example fleet; with `planted`, the resolver fails for real.
pub(crate) fn example_fleet(seed: u64, planted: bool) -> FleetConfig {
    let mut dependencies = inventory(false);
    if planted {
        dependencies.push(Dependency::new(
            PLANTED_NAME,
            PLANTED.to_vec(),
            RESOLVER_FAILURE,
        ));
    }
    FleetConfig {
        hosts: HOSTS,
        steps: STEPS,
        host_failure: HOST_FAILURE,
        outage_steps: OUTAGE_STEPS,
        dependencies,
        seed,
    }
}

fn arithmetic(out: &mut Narrator) {
    out.section("The arithmetic: P(every replica down)");
    let p_own = down_probability(HOST_FAILURE, OUTAGE_STEPS);
    let shared = down_probability(RESOLVER_FAILURE, OUTAGE_STEPS);
    let rows: Vec<Vec<String>> = [1u32, 2, 3, 5]
        .iter()
        .map(|&n| {
            vec![
                n.to_string(),
                format!("{:.1e}", p_all_down_independent(p_own, n)),
                format!("{:.1e}", p_all_down_common_cause(p_own, shared, n)),
            ]
        })
        .collect();
    out.say(&format!(
        "each host down {:.2}% of the time on its own; the shared resolver {:.2}%",
        p_own * 100.0,
        shared * 100.0
    ));
    out.table(
        &[
            "replicas",
            "independent pⁿ",
            "behind one resolver q+(1−q)pⁿ",
        ],
        &rows,
    );
}

fn figures(out: &mut Narrator) {
    let p_own = down_probability(HOST_FAILURE, OUTAGE_STEPS);
    let shared = down_probability(RESOLVER_FAILURE, OUTAGE_STEPS);
    // The table's range: past five replicas the independent curve only
    // runs further off the bottom of the page.
    let replicas = 1..=5u32;
    let replicas_axis = replicas.clone();
    let chart = LineChart::new(
        "P(all replicas down): independent vs one shared dependency",
        "replicas",
        "P(all down)",
    )
    .series(Series::marked(
        "independent",
        replicas
            .clone()
            .map(|n| (f64::from(n), p_all_down_independent(p_own, n)))
            .collect(),
    ))
    .series(Series::marked(
        "behind one resolver",
        replicas
            .map(|n| (f64::from(n), p_all_down_common_cause(p_own, shared, n)))
            .collect(),
    ))
    .log_y()
    .x_categories(replicas_axis.map(|n| n.to_string()))
    // The shared-dependency curve runs flat along the top and the
    // independent one falls to the right: the lower left stays empty.
    .legend(Legend::LowerLeft);
    out.figure("correlated-failure-p-all-down", &chart);
}

/// The demo.
pub async fn correlated_failure_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    arithmetic(out);
    figures(out);

    out.section("A fleet of 16 hosts, 20,000 samples; 4 of them share a resolver nobody drew");
    let series = simulate(&example_fleet(SEED, true))?;
    let (a, b, independent) = (PLANTED[0], PLANTED[1], 2);
    let shared_phi = Contingency::of(&series.down[a], &series.down[b])?.phi()?;
    let rack_phi = Contingency::of(&series.down[a], &series.down[independent])?.phi()?;
    let window = |h| series.downtime_per_window(h, 200);
    let (wa, wb, wi) = (window(a), window(b), window(independent));
    out.table(
        &[
            "pair",
            "relation",
            "φ",
            "Pearson (per 200)",
            "Spearman (per 200)",
        ],
        &[
            vec![
                format!("n{}–n{}", a + 1, b + 1),
                "same resolver".into(),
                format!("{shared_phi:.2}"),
                format!("{:.2}", pearson(&wa, &wb)?),
                format!("{:.2}", spearman(&wa, &wb)?),
            ],
            vec![
                format!("n{}–n{}", a + 1, independent + 1),
                "same rack".into(),
                format!("{rack_phi:.2}"),
                format!("{:.2}", pearson(&wa, &wi)?),
                format!("{:.2}", spearman(&wa, &wi)?),
            ],
        ],
    );
    let timeline = LineChart::new("Downtime per 200 samples", "window", "fraction down")
        .series(Series::line(format!("n{} (resolver)", a + 1), points(&wa)))
        .series(Series::line(format!("n{} (resolver)", b + 1), points(&wb)))
        .series(Series::line(
            format!("n{} (independent)", independent + 1),
            points(&wi),
        ));
    out.figure("correlated-failure-timeline", &timeline);

    let suspects = detect(&series, &inventory(true), DetectorConfig::default())?;
    for suspect in &suspects {
        let hosts: Vec<String> = suspect
            .hosts
            .iter()
            .map(|h| format!("n{}", h + 1))
            .collect();
        let name = suspect
            .named
            .as_ref()
            .map_or("nothing in the inventory".into(), |(n, j)| {
                format!("{n} (Jaccard {j:.2})")
            });
        out.say(&format!(
            "detector: {} fail together (mean φ {:.2}) → {name}",
            hosts.join(", "),
            suspect.mean_phi
        ));
    }
    let found = matches!(suspects.as_slice(), [only] if only.hosts == PLANTED
        && only.named.as_ref().is_some_and(|(n, _)| n == PLANTED_NAME));
    out.check(
        "the detector finds the hidden resolver, and nothing else",
        found,
        format!("{} group(s) found", suspects.len()),
    );
    let quiet = detect(
        &simulate(&example_fleet(SEED, false))?,
        &inventory(true),
        DetectorConfig::default(),
    )?;
    out.check(
        "on the same fleet without the shared failure it reports nothing",
        quiet.is_empty(),
        format!("{} group(s)", quiet.len()),
    );
    let three = &PLANTED[..3];
    let measured = series.fraction_all_down(three);
    let p_own = down_probability(HOST_FAILURE, OUTAGE_STEPS);
    let predicted =
        p_all_down_common_cause(p_own, down_probability(RESOLVER_FAILURE, OUTAGE_STEPS), 3);
    out.check(
        "3 replicas behind the resolver are all down ≥ 1000× more often than pⁿ promises",
        measured > 1_000.0 * p_all_down_independent(p_own, 3),
        format!(
            "measured {measured:.4}, common-cause model {predicted:.4}, independent {:.1e}",
            p_all_down_independent(p_own, 3)
        ),
    );

    rollouts(out)
}

fn points(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, v))
        .collect()
}

fn rollouts(out: &mut Narrator) -> DemoResult {
    out.section("A release is a shared dependency too: 8 cells of 10 hosts");
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for decoding in [Decoding::NaiveAssumesSameVersion, Decoding::Negotiated] {
        for strategy in [Strategy::AllAtOnce, Strategy::Staged] {
            let report = rollout(&RolloutConfig {
                cells: 8,
                hosts_per_cell: 10,
                bake_steps: 20,
                deploy_failure: 0.1,
                decoding,
                strategy,
                seed: SEED,
            })?;
            rows.push(vec![
                format!("{decoding:?}"),
                format!("{strategy:?}"),
                report.misreads.to_string(),
                format!("{}/{}", report.hosts_hit, report.hosts),
                match report.halted_at {
                    Some(stage) => format!("halted at stage {}, rolled back", stage + 1),
                    None => "completed".into(),
                },
            ]);
            results.push((decoding, strategy, report));
        }
    }
    out.table(
        &[
            "V2 code",
            "rollout",
            "misread orders",
            "hosts hit",
            "outcome",
        ],
        &rows,
    );
    let find = |d, s| {
        results
            .iter()
            .find(|r| r.0 == d && r.1 == s)
            .map(|r| r.2.clone())
    };
    let naive = Decoding::NaiveAssumesSameVersion;
    if let (Some(all), Some(staged)) = (
        find(naive, Strategy::AllAtOnce),
        find(naive, Strategy::Staged),
    ) {
        out.check(
            "with the version-skew bug, all-at-once hits most of the fleet",
            all.hosts_hit * 2 > all.hosts,
            format!("{}/{} hosts", all.hosts_hit, all.hosts),
        );
        out.check(
            "a staged rollout's gate stops it in the first cell",
            staged.halted_at == Some(0) && staged.hosts_hit <= 10,
            format!("{}/{} hosts", staged.hosts_hit, staged.hosts),
        );
    }
    if let Some(fixed) = find(Decoding::Negotiated, Strategy::Staged) {
        out.check(
            "version-negotiating code survives the skew: no misread order, rollout completes",
            fixed.completed && fixed.misreads == 0,
            format!("{} misreads", fixed.misreads),
        );
    }
    Ok(())
}
