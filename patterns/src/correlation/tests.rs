use super::demo::{PLANTED, PLANTED_NAME, example_fleet, inventory};
use super::fleet::down_probability;
use super::rollout::{Decoding, RolloutConfig, Strategy, rollout};
use super::*;
use crate::Error;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Episode 1. φ from a 2×2 table computed by hand: 10 samples both down,
/// 5 only a, 5 only b, 80 both up → φ = (10·80 − 5·5) / √(15·85·15·85)
/// = 775 / 1275 = 0.6078…; and φ is Pearson's r on the 0/1 samples.
#[test]
fn correlation_phi_matches_the_hand_computed_table() -> crate::Result<()> {
    let mut a = vec![true; 15];
    a.extend(vec![false; 85]);
    let mut b = vec![true; 10];
    b.extend(vec![false; 5]);
    b.extend(vec![true; 5]);
    b.extend(vec![false; 80]);
    let table = Contingency::of(&a, &b)?;
    assert_eq!(
        table,
        Contingency {
            both: 10,
            only_a: 5,
            only_b: 5,
            neither: 80
        }
    );
    assert!(close(phi(&a, &b)?, 775.0 / 1275.0));
    assert!(close(
        table.chi_square()?,
        100.0 * (775.0f64 / 1275.0).powi(2)
    ));
    let as_numbers = |s: &[bool]| {
        s.iter()
            .map(|&d| f64::from(u8::from(d)))
            .collect::<Vec<_>>()
    };
    assert!(close(
        pearson(&as_numbers(&a), &as_numbers(&b))?,
        775.0 / 1275.0
    ));
    // Perfectly together, perfectly apart.
    assert!(close(phi(&a, &a)?, 1.0));
    let opposite: Vec<bool> = a.iter().map(|d| !d).collect();
    assert!(close(phi(&a, &opposite)?, -1.0));
    Ok(())
}

/// Episode 1. Pearson by hand: x = 1..5, y = 2,4,5,4,5 → Σdxdy = 6,
/// Σdx² = 10, Σdy² = 6, r = 6/√60 = 0.7746…; Spearman sees a monotone
/// curve as perfect where Pearson does not, and shares tied ranks.
#[test]
fn correlation_pearson_and_spearman_match_hand_computed_values() -> crate::Result<()> {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    let y = [2.0, 4.0, 5.0, 4.0, 5.0];
    assert!(close(pearson(&x, &y)?, 6.0 / 60f64.sqrt()));
    assert_eq!(stats::ranks(&y), vec![1.0, 2.5, 4.5, 2.5, 4.5]);
    // Ranks of y: 1, 2.5, 4.5, 2.5, 4.5 (mean 3): Σdxdy = 7, Σdy² = 9
    // → ρ = 7 / √90.
    assert!(close(spearman(&x, &y)?, 7.0 / 90f64.sqrt()));
    let cubic: Vec<f64> = (1..=10).map(|v| f64::from(v).powi(5)).collect();
    let linear: Vec<f64> = (1..=10).map(f64::from).collect();
    assert!(close(spearman(&linear, &cubic)?, 1.0));
    assert!(pearson(&linear, &cubic)? < 0.95);
    Ok(())
}

/// Episode 1. Series that cannot be correlated get a reason, not NaN.
#[test]
fn correlation_bad_series_are_refused() -> crate::Result<()> {
    let invalid = |r: Result<f64, Error>| matches!(r, Err(Error::InvalidSeries { .. }));
    assert!(invalid(phi(&[true, false], &[true])));
    assert!(invalid(phi(&[true], &[true])));
    // A host that never failed has no φ: "never seen together" is not 0.
    assert!(invalid(phi(&[false, false, false], &[true, false, true])));
    assert!(invalid(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0])));
    assert!(invalid(spearman(&[1.0, f64::NAN], &[1.0, 2.0])));
    Ok(())
}

/// Episode 1. A constant that binary cannot hold exactly (0.1) is still
/// constant: its deviations from the computed mean are ~1e-17, not 0, and
/// must not come out as a "correlation" of rounding noise — in either
/// position, for Pearson and Spearman alike.
#[test]
fn correlation_constant_series_are_refused_even_when_inexact() {
    let invalid = |r: Result<f64, Error>| matches!(r, Err(Error::InvalidSeries { .. }));
    let varying = [0.1, 0.2, 0.4, 0.3, 0.7];
    for constant in [0.1, 0.3, 1.0 / 3.0, 1e-300, -7.77] {
        let flat = [constant; 5];
        assert!(invalid(pearson(&flat, &varying)), "{constant}");
        assert!(invalid(pearson(&varying, &flat)), "{constant}");
        assert!(invalid(spearman(&flat, &varying)), "{constant}");
        assert!(invalid(spearman(&varying, &flat)), "{constant}");
    }
    assert!(invalid(pearson(&[0.1, 0.1, 0.1], &[0.1, 0.2, 0.4])));
    // A series that varies, however little, is still correlated; and
    // rounding never carries r past ±1.
    let r = pearson(&[0.1, 0.1, 0.1 + 1e-12], &[0.1, 0.2, 0.4]).unwrap_or(f64::NAN);
    assert!(r > 0.8 && r <= 1.0, "{r}");
    let same = [0.1, 0.7, 0.3, 0.9, 0.2];
    let r = pearson(&same, &same).unwrap_or(f64::NAN);
    assert!((-1.0..=1.0).contains(&r) && close(r, 1.0), "{r}");
}

/// Episode 1. Over many seeds, the detector finds exactly the planted
/// resolver's hosts and names it from the inventory; on the same fleet
/// without the shared failure it finds nothing — no spurious group from
/// chance overlaps of independent outages.
#[test]
fn correlation_detector_finds_the_planted_dependency_and_nothing_spurious() -> crate::Result<()> {
    for seed in 1..=30 {
        let series = simulate(&example_fleet(seed, true))?;
        let suspects = detect(&series, &inventory(true), DetectorConfig::default())?;
        assert_eq!(suspects.len(), 1, "seed {seed}: {suspects:?}");
        assert_eq!(suspects[0].hosts, PLANTED, "seed {seed}");
        let (name, jaccard) = suspects[0].named.clone().expect("named");
        assert_eq!((name.as_str(), jaccard), (PLANTED_NAME, 1.0), "seed {seed}");
        assert!(suspects[0].mean_phi > 0.4, "seed {seed}: {suspects:?}");

        let quiet = simulate(&example_fleet(seed, false))?;
        let none = detect(&quiet, &inventory(true), DetectorConfig::default())?;
        assert!(none.is_empty(), "seed {seed}: spurious {none:?}");
    }
    Ok(())
}

/// Episode 1. The detector's fast pair tables (intersections of the
/// steps each host was down) equal the 2×2 tables of the full series.
#[test]
fn correlation_pair_tables_equal_the_full_contingency_tables() -> crate::Result<()> {
    let series = simulate(&example_fleet(5, true))?;
    let tables = detector::pair_tables(&series)?;
    assert_eq!(tables.len(), 16 * 15 / 2);
    for (a, b, table) in tables {
        assert_eq!(table, Contingency::of(&series.down[a], &series.down[b])?);
    }
    Ok(())
}

/// Episode 1. A dependency nobody wrote down is found but left unnamed:
/// no rack or power feed gets the blame.
#[test]
fn correlation_detector_leaves_an_undocumented_dependency_unnamed() -> crate::Result<()> {
    let series = simulate(&example_fleet(7, true))?;
    let suspects = detect(&series, &inventory(false), DetectorConfig::default())?;
    assert_eq!(suspects.len(), 1);
    assert_eq!(suspects[0].hosts, PLANTED);
    assert_eq!(suspects[0].named, None);
    Ok(())
}

/// Episode 1. Three replicas behind one dependency: the simulated
/// fraction of time all are down matches q + (1 − q)p³ within 15%, and is
/// thousands of times the independent p³.
#[test]
fn correlation_p_all_down_matches_the_common_cause_model() -> crate::Result<()> {
    let (start_own, start_shared, outage) = (0.002, 0.004, 5);
    let config = FleetConfig {
        hosts: 3,
        steps: 400_000,
        host_failure: start_own,
        outage_steps: outage,
        dependencies: vec![Dependency::new("feed", vec![0, 1, 2], start_shared)],
        seed: 3,
    };
    let series = simulate(&config)?;
    let (p, q) = (
        down_probability(start_own, outage),
        down_probability(start_shared, outage),
    );
    // One host alone: down its own fraction plus the feed's.
    let marginal = q + (1.0 - q) * p;
    assert!((series.fraction_down(0) - marginal).abs() / marginal < 0.1);
    let measured = series.fraction_all_down(&[0, 1, 2]);
    let model = p_all_down_common_cause(p, q, 3);
    assert!(
        (measured - model).abs() / model < 0.15,
        "measured {measured}, model {model}"
    );
    assert!(measured > 1_000.0 * p_all_down_independent(p, 3));
    // Without the feed, all three down is a once-in-a-long-while event.
    let independent = simulate(&FleetConfig {
        dependencies: Vec::new(),
        ..config
    })?;
    assert!(independent.fraction_all_down(&[0, 1, 2]) < 1e-4);
    Ok(())
}

/// Episode 1. Bad fleets are refused with the reason.
#[test]
fn correlation_bad_fleets_are_refused() -> crate::Result<()> {
    let good = example_fleet(1, true);
    let bad = [
        FleetConfig {
            hosts: 1,
            ..good.clone()
        },
        FleetConfig {
            steps: 0,
            ..good.clone()
        },
        FleetConfig {
            outage_steps: 0,
            ..good.clone()
        },
        FleetConfig {
            host_failure: 1.5,
            ..good.clone()
        },
        FleetConfig {
            dependencies: vec![Dependency::new("x", vec![99], 0.1)],
            ..good.clone()
        },
        FleetConfig {
            host_failure: f64::NAN,
            ..good.clone()
        },
        FleetConfig {
            dependencies: vec![Dependency::new("x", vec![0], f64::NAN)],
            ..good.clone()
        },
        FleetConfig {
            dependencies: vec![Dependency::new("x", vec![0], 0.1); fleet::MAX_DEPENDENCIES + 1],
            ..good.clone()
        },
        FleetConfig {
            dependencies: vec![Dependency::new("x", vec![0; good.hosts + 1], 0.1)],
            ..good.clone()
        },
    ];
    for config in bad {
        assert!(
            matches!(simulate(&config), Err(Error::InvalidFleet { .. })),
            "{config:?}"
        );
    }
    Ok(())
}

fn fleet(decoding: Decoding, strategy: Strategy, seed: u64) -> RolloutConfig {
    RolloutConfig {
        cells: 8,
        hosts_per_cell: 10,
        bake_steps: 20,
        deploy_failure: 0.1,
        decoding,
        strategy,
        seed,
    }
}

/// Episode 1 (Knight Capital). The version-skew twin — V2 code that
/// assumes every peer speaks V2 — misreads orders while the fleet is
/// mixed, and the staged rollout's gate catches it in the first cell and
/// rolls back; pushed to every cell at once, it hits most of the fleet.
#[test]
fn correlation_rollout_version_skew_twin_is_caught_by_the_staged_gate() -> crate::Result<()> {
    for seed in 1..=20 {
        let staged = rollout(&fleet(
            Decoding::NaiveAssumesSameVersion,
            Strategy::Staged,
            seed,
        ))?;
        assert!(staged.misreads > 0, "seed {seed}: the twin went unnoticed");
        assert_eq!(staged.halted_at, Some(0), "seed {seed}");
        assert!(!staged.completed);
        assert!(staged.hosts_hit <= 10, "seed {seed}: {staged:?}");

        let all = rollout(&fleet(
            Decoding::NaiveAssumesSameVersion,
            Strategy::AllAtOnce,
            seed,
        ))?;
        assert!(all.hosts_hit > 60, "seed {seed}: {all:?}");
    }
    Ok(())
}

/// Episode 1. Version-negotiating code misreads nothing through the
/// whole skew — including hosts whose deploy failed and stay on V1 — and
/// the staged rollout completes.
#[test]
fn correlation_rollout_negotiated_versions_survive_the_skew() -> crate::Result<()> {
    for seed in 1..=20 {
        for strategy in [Strategy::Staged, Strategy::AllAtOnce] {
            let report = rollout(&fleet(Decoding::Negotiated, strategy, seed))?;
            assert_eq!(report.misreads, 0, "seed {seed} {strategy:?}");
            assert!(report.completed);
        }
    }
    let mut bad = fleet(Decoding::Negotiated, Strategy::Staged, 1);
    bad.hosts_per_cell = 1;
    assert!(matches!(rollout(&bad), Err(Error::InvalidFleet { .. })));
    Ok(())
}

/// Episode 1. A rollout config that would overflow, loop for ever or
/// draw from a non-probability is refused with a reason before any work —
/// and the largest accepted configs stay within the stated bounds.
#[test]
fn correlation_rollout_bad_configs_are_refused_before_any_work() {
    let good = fleet(Decoding::Negotiated, Strategy::Staged, 1);
    let bad = [
        RolloutConfig {
            bake_steps: usize::MAX,
            ..good
        },
        RolloutConfig {
            bake_steps: super::rollout::MAX_BAKE_STEPS + 1,
            ..good
        },
        RolloutConfig {
            bake_steps: 0,
            ..good
        },
        RolloutConfig { cells: 0, ..good },
        RolloutConfig {
            cells: usize::MAX,
            ..good
        },
        RolloutConfig {
            hosts_per_cell: usize::MAX,
            ..good
        },
        RolloutConfig {
            deploy_failure: f64::NAN,
            ..good
        },
        RolloutConfig {
            deploy_failure: -0.1,
            ..good
        },
        RolloutConfig {
            deploy_failure: f64::INFINITY,
            ..good
        },
        // Every bound met one by one, but together: 5,000 stages of
        // 100,002 steps over 10,000 hosts.
        RolloutConfig {
            cells: 5_000,
            hosts_per_cell: 2,
            bake_steps: super::rollout::MAX_BAKE_STEPS,
            ..good
        },
    ];
    for config in bad {
        let refused = rollout(&config);
        assert!(
            matches!(refused, Err(Error::InvalidFleet { .. })),
            "{config:?}: {refused:?}"
        );
    }
    let longest = RolloutConfig {
        cells: 1,
        hosts_per_cell: 2,
        bake_steps: super::rollout::MAX_BAKE_STEPS,
        ..good
    };
    assert!(matches!(rollout(&longest), Ok(report) if report.completed));
}
