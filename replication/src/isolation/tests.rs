//! Each store against the checker: the correct one always passes, each
//! twin is caught with the anomaly its level allows and no other.

use super::*;
use crate::consistency::transactional::{Anomaly, CheckOptions, Level, Strongest, check};

const SEEDS: u64 = 40;

fn workload(seed: u64) -> WorkloadConfig {
    WorkloadConfig {
        transactions: 120,
        processes: 4,
        active_keys: 3,
        seed,
        ..WorkloadConfig::default()
    }
}

fn options() -> CheckOptions {
    CheckOptions {
        realtime: true,
        ..CheckOptions::default()
    }
}

#[test]
fn isolation_serializable_store_is_always_strict_serializable() {
    for seed in 0..SEEDS {
        let history = run_workload(&mut SerializableStore::new(), &workload(seed));
        let report = check(&history, &options());
        assert_eq!(
            report.strongest_level(),
            Strongest::Level(Level::StrictSerializable),
            "seed {seed}:\n{}",
            report.explain(&history, Level::StrictSerializable)
        );
        // Not vacuous: transactions conflicted and some were aborted.
        assert!(
            history
                .txns
                .iter()
                .any(|t| t.outcome == crate::consistency::transactional::Outcome::Fail)
        );
    }
}

#[test]
fn isolation_snapshot_store_shows_write_skew_and_nothing_worse() {
    let mut skewed = 0;
    for seed in 0..SEEDS {
        let history = run_workload(&mut SnapshotStore::new(), &workload(seed));
        let report = check(&history, &CheckOptions::default());
        let explain = || report.explain(&history, Level::SnapshotIsolation);
        for forbidden in [
            Anomaly::G0,
            Anomaly::G1a,
            Anomaly::G1b,
            Anomaly::G1c,
            Anomaly::GSingle,
            Anomaly::LostUpdate,
            Anomaly::Internal,
        ] {
            assert!(
                !report.anomalies.contains_key(&forbidden),
                "seed {seed}: {forbidden}\n{}",
                explain()
            );
        }
        assert!(
            matches!(
                report.strongest_level(),
                Strongest::Level(Level::SnapshotIsolation | Level::Serializable)
            ),
            "seed {seed}\n{}",
            explain()
        );
        if report.anomalies.contains_key(&Anomaly::G2Item) {
            if skewed == 0 {
                // What the checker says about the first skewed run.
                println!("seed {seed}:\n{}", explain());
            }
            skewed += 1;
            assert_eq!(
                report.strongest_level(),
                Strongest::Level(Level::SnapshotIsolation),
                "seed {seed}"
            );
        }
    }
    assert!(skewed > 0, "no seed of {SEEDS} showed write skew");
}

#[test]
fn isolation_naive_read_committed_store_loses_updates() {
    let mut lost = 0;
    for seed in 0..SEEDS {
        let history = run_workload(&mut NaiveReadCommittedStore::new(), &workload(seed));
        let report = check(&history, &CheckOptions::default());
        for forbidden in [
            Anomaly::G0,
            Anomaly::G1a,
            Anomaly::G1b,
            Anomaly::G1c,
            Anomaly::Internal,
        ] {
            assert!(
                !report.anomalies.contains_key(&forbidden),
                "seed {seed}: {forbidden}"
            );
        }
        if report.anomalies.contains_key(&Anomaly::LostUpdate) {
            lost += 1;
            assert!(
                report.anomalies.contains_key(&Anomaly::GSingle),
                "seed {seed}"
            );
            assert_eq!(
                report.strongest_level(),
                Strongest::Level(Level::ReadCommitted),
                "seed {seed}"
            );
        }
    }
    assert!(
        lost > SEEDS / 2,
        "only {lost} of {SEEDS} seeds lost an update"
    );
}

#[test]
fn isolation_workload_replays_from_its_seed() {
    let a = run_workload(&mut SnapshotStore::new(), &workload(7));
    let b = run_workload(&mut SnapshotStore::new(), &workload(7));
    assert_eq!(a, b);
    let c = run_workload(&mut SnapshotStore::new(), &workload(8));
    assert_ne!(a, c);
}
