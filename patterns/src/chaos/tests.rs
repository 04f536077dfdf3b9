use std::time::Duration;

use super::*;
use crate::Error;

const SEEDS: std::ops::Range<u64> = 1..6;

fn system(failover: bool, seed: u64) -> SimulatedSystem {
    SimulatedSystem {
        replicas: 3,
        rate: 200.0,
        failover,
        attempt_timeout_ms: 200,
        seed,
    }
}

/// An experiment with 3 steady windows of 1 s, 12 s in all, and `faults`
/// (a JSON array) — the hypothesis `success_rate ≥ 0.99`, abort when
/// `error_rate > 0.2`.
fn experiment(faults: &str) -> Experiment {
    let text = format!(
        r#"{{
            "name": "test",
            "hypothesis": {{"metric": "success_rate", "at_least": 0.99}},
            "abort": {{"metric": "error_rate", "at_most": 0.2}},
            "window_ms": 1000,
            "steady_windows": 3,
            "duration_ms": 12000,
            "faults": {faults}
        }}"#
    );
    Experiment::from_json(&text).unwrap_or_else(|e| panic!("valid definition: {e}"))
}

/// Episode 12. Setup: three replicas, a client that fails over. Break:
/// crash n1 and partition the client from n2 for 4 s. Must hold: the
/// hypothesis holds in every window (one replica answers), so the
/// experiment passes, on every seed.
#[test]
fn chaos_holding_hypothesis_passes() {
    let faults = r#"[
        {"at_ms": 4000, "for_ms": 4000, "fault": {"crash": {"host": "n1"}}},
        {"at_ms": 4000, "for_ms": 4000, "fault": {"partition": {"a": "client", "b": "n2"}}},
        {"at_ms": 8000, "for_ms": 2000, "fault": {"latency": {"a": "client", "b": "n3", "ms": 50}}},
        {"at_ms": 10000, "for_ms": 2000, "fault": {"flaky": {"host": "n2", "error_rate": 0.5}}}
    ]"#;
    for seed in SEEDS {
        let report = run_simulated(&experiment(faults), &system(true, seed)).expect("runs");
        assert_eq!(
            report.outcome,
            Outcome::Passed,
            "seed {seed}: {}",
            report.verdict()
        );
        assert_eq!(report.rows.len(), 12, "seed {seed}: every window measured");
        let faulted = report.rows.iter().filter(|r| !r.faults.is_empty()).count();
        assert_eq!(faulted, 8, "seed {seed}: faults were really in force");
        // The partition costs an attempt timeout: the p99 shows it.
        assert!(report.rows[5].p99_latency_ms >= 200.0, "seed {seed}");
    }
}

/// Episode 12. Setup: as above. Break: partition the client from every
/// replica at 4 s, planned for 6 s. Must hold: the runner aborts at the
/// end of the first window whose error rate passes the bound — at most
/// two windows after the injection — and heals every fault at once.
#[test]
fn chaos_breaking_hypothesis_aborts_within_its_bound() {
    let faults = r#"[
        {"at_ms": 4000, "for_ms": 6000, "fault": {"partition": {"a": "client", "b": "n1"}}},
        {"at_ms": 4000, "for_ms": 6000, "fault": {"partition": {"a": "client", "b": "n2"}}},
        {"at_ms": 4000, "for_ms": 6000, "fault": {"partition": {"a": "client", "b": "n3"}}}
    ]"#;
    for seed in SEEDS {
        let mut service = SimulatedService::new(&system(true, seed)).expect("valid");
        let report = service.run(&experiment(faults)).expect("runs");
        let Outcome::Aborted { window, at, value } = report.outcome else {
            panic!("seed {seed}: expected an abort, got {}", report.verdict());
        };
        assert!(value > 0.2, "seed {seed}");
        let first_breach = report
            .rows
            .iter()
            .find(|r| r.abort_value > 0.2)
            .map(|r| r.index);
        assert_eq!(
            first_breach,
            Some(window),
            "seed {seed}: aborted at the first breach"
        );
        assert!(
            at <= Duration::from_secs(6),
            "seed {seed}: aborted at {at:?}"
        );
        assert_eq!(
            report.rows.len() as u64,
            window + 1,
            "seed {seed}: nothing ran after"
        );
        assert!(
            service.active_faults().is_empty(),
            "seed {seed}: {:?}",
            service.active_faults()
        );
        // Healed: once the attempts sent into the partition have timed
        // out (the window after the abort), the service is healthy again.
        service.run_window(Duration::from_secs(1));
        let after = service.run_window(Duration::from_secs(1));
        assert!(
            after.value(Metric::SuccessRate, Duration::from_secs(1)) > 0.99,
            "seed {seed}"
        );
    }
}

/// Episode 12, the broken twin. Setup: the client does not fail over.
/// Break: crash n1. Must hold: about a third of requests fail, so the
/// hypothesis breaks while the 0.5 blast radius holds: the experiment
/// runs to the end and reports the weakness in the faulted windows only.
#[test]
fn chaos_no_failover_twin_fails_the_hypothesis() {
    let faults = r#"[{"at_ms": 4000, "for_ms": 4000, "fault": {"crash": {"host": "n1"}}}]"#;
    let mut definition = experiment(faults);
    definition.abort.at_most = Some(0.5);
    for seed in SEEDS {
        let report = run_simulated(&definition, &system(false, seed)).expect("runs");
        assert_eq!(
            report.outcome,
            Outcome::Failed {
                windows: vec![4, 5, 6, 7]
            },
            "seed {seed}: {}",
            report.verdict()
        );
    }
}

/// Episode 12. A hypothesis that does not hold before any fault means
/// there is no steady state to disturb: nothing is injected.
#[test]
fn chaos_unsteady_system_is_not_disturbed() {
    let mut definition =
        experiment(r#"[{"at_ms": 4000, "for_ms": 1000, "fault": {"crash": {"host": "n1"}}}]"#);
    definition.hypothesis.at_least = None;
    definition.hypothesis.metric = Metric::P99LatencyMs;
    definition.hypothesis.at_most = Some(1.0);
    let report = run_simulated(&definition, &system(true, 1)).expect("runs");
    assert!(
        matches!(report.outcome, Outcome::NotSteady { window: 0, .. }),
        "{}",
        report.verdict()
    );
}

fn definition_error(text: &str, hosts: &[&str]) -> (String, String) {
    let hosts = hosts.iter().map(|h| h.to_string()).collect();
    match Experiment::from_json(text).and_then(|e| e.validate(&hosts)) {
        Err(Error::InvalidChaosExperiment { field, reason }) => (field, reason),
        other => panic!("expected a definition error, got {other:?}"),
    }
}

/// Bad definitions are refused before anything runs, naming the field
/// and the reason.
#[test]
fn chaos_bad_definitions_get_clear_errors() {
    let base = r#"{
        "name": "x",
        "hypothesis": {"metric": "success_rate", "at_least": 0.99},
        "abort": {"metric": "error_rate", "at_most": 0.2},
        "window_ms": 1000, "steady_windows": 2, "duration_ms": 10000,
        "faults": [{"at_ms": 3000, "for_ms": 2000, "fault": {"crash": {"host": "n1"}}}]
    }"#;
    let hosts = ["client", "n1", "n2"];
    let cases: [(&str, &str, &str); 10] = [
        (
            "\"window_ms\": 1000",
            "\"window_ms\": 0",
            "must be in 1..=60000",
        ),
        (
            "\"success_rate\"",
            "\"sucess_rate\"",
            "unknown variant `sucess_rate`",
        ),
        (
            "\"at_ms\": 3000",
            "\"at_mss\": 3000",
            "unknown field `at_mss`",
        ),
        (
            "\"at_least\": 0.99",
            "\"at_least\": 1.5",
            "not a possible value",
        ),
        ("\"at_ms\": 3000", "\"at_ms\": 1000", "steady-state"),
        (
            "\"at_ms\": 3000",
            "\"at_ms\": 3500",
            "not a multiple of window_ms",
        ),
        (
            "\"for_ms\": 2000",
            "\"for_ms\": 20000",
            "end by duration_ms",
        ),
        (
            "\"host\": \"n1\"",
            "\"host\": \"n7\"",
            "unknown host \"n7\"",
        ),
        (
            "{\"crash\": {\"host\": \"n1\"}}",
            "{\"loss\": {\"a\": \"client\", \"b\": \"n2\", \"probability\": 2}}",
            "not a probability",
        ),
        (
            "\"at_least\": 0.99",
            "\"at_least\": 0.99, \"at_most\": 1",
            "exactly one",
        ),
    ];
    for (from, to, expected) in cases {
        let text = base.replacen(from, to, 1);
        assert_ne!(text, base, "the case {to} must change the definition");
        let (field, reason) = definition_error(&text, &hosts);
        assert!(reason.contains(expected), "{to}: got {field}: {reason}");
    }
    let (field, _) = definition_error(
        &base.replacen("\"at_ms\": 3000", "\"at_ms\": 3500", 1),
        &hosts,
    );
    assert_eq!(field, "faults[0].at_ms");
    assert!(
        Experiment::from_json(base)
            .and_then(|e| e.validate(&hosts.iter().map(|h| h.to_string()).collect()))
            .is_ok()
    );
    let crash_client =
        experiment(r#"[{"at_ms": 4000, "for_ms": 1000, "fault": {"crash": {"host": "client"}}}]"#);
    assert!(matches!(
        run_simulated(&crash_client, &system(true, 1)),
        Err(Error::InvalidChaosExperiment { .. })
    ));
}

/// The same seed replays the same experiment, window for window.
#[test]
fn chaos_same_seed_same_report() {
    let faults = r#"[{"at_ms": 4000, "for_ms": 2000, "fault": {"loss": {"a": "client", "b": "n1", "probability": 0.5}}}]"#;
    let run = || run_simulated(&experiment(faults), &system(true, 4)).expect("runs");
    assert_eq!(run(), run());
}
