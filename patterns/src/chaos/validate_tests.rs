//! The rules every target shares: definitions that would measure
//! nothing, or mislead, are refused before anything runs.

use super::*;
use crate::Error;

/// Runs a simulation definition (`faults` a JSON array) and returns the
/// error's field and reason.
fn refused(
    hypothesis: &str,
    abort: &str,
    faults: &str,
    rate: f64,
    window_ms: u64,
) -> (String, String) {
    let text = format!(
        r#"{{
            "name": "x",
            "hypothesis": {hypothesis},
            "abort": {abort},
            "window_ms": {window_ms}, "steady_windows": 2, "duration_ms": {},
            "faults": {faults}
        }}"#,
        window_ms * 10
    );
    let system = SimulatedSystem {
        replicas: 3,
        rate,
        failover: false,
        attempt_timeout_ms: 200,
        seed: 1,
    };
    match Experiment::from_json(&text).and_then(|e| run_simulated(&e, &system)) {
        Err(Error::InvalidChaosExperiment { field, reason }) => (field, reason),
        other => panic!("expected a definition error, got {other:?}"),
    }
}

const HYPOTHESIS: &str = r#"{"metric": "success_rate", "at_least": 0.99}"#;
const ABORT: &str = r#"{"metric": "error_rate", "at_most": 0.9}"#;

fn fault_refused(faults: &str) -> (String, String) {
    refused(HYPOTHESIS, ABORT, faults, 200.0, 1000)
}

/// Two faults on one replica at once would share one switch: the
/// inner partition's heal ended the outer one, and the report listed a
/// partition in windows whose success was 1.000. Refused; the same two
/// faults one after the other, or on two replicas, are fine.
#[test]
fn chaos_overlapping_faults_on_one_replica_are_refused() {
    let (field, reason) = fault_refused(
        r#"[{"at_ms": 2000, "for_ms": 6000, "fault": {"partition": {"a": "client", "b": "n1"}}},
            {"at_ms": 3000, "for_ms": 1000, "fault": {"partition": {"a": "n1", "b": "client"}}}]"#,
    );
    assert_eq!(field, "faults[1].fault");
    assert!(
        reason.contains("overlaps faults[0]") && reason.contains("on n1"),
        "{reason}"
    );
    let (field, _) = fault_refused(
        r#"[{"at_ms": 2000, "for_ms": 4000, "fault": {"crash": {"host": "n1"}}},
            {"at_ms": 3000, "for_ms": 1000, "fault": {"flaky": {"host": "n1", "error_rate": 1.0}}}]"#,
    );
    assert_eq!(field, "faults[1].fault");
    let system = SimulatedSystem {
        replicas: 3,
        rate: 200.0,
        failover: false,
        attempt_timeout_ms: 200,
        seed: 1,
    };
    let sequential = Experiment::from_json(
        r#"{"name": "x", "hypothesis": {"metric": "success_rate", "at_least": 0.5},
            "abort": {"metric": "error_rate", "at_most": 0.9},
            "window_ms": 1000, "steady_windows": 2, "duration_ms": 8000,
            "faults": [
              {"at_ms": 2000, "for_ms": 2000, "fault": {"partition": {"a": "client", "b": "n1"}}},
              {"at_ms": 4000, "for_ms": 2000, "fault": {"crash": {"host": "n1"}}},
              {"at_ms": 2000, "for_ms": 2000, "fault": {"crash": {"host": "n2"}}}]}"#,
    )
    .expect("parses");
    let report = run_simulated(&sequential, &system).expect("one fault per replica at a time");
    // Without failover a third of the calls go to n1: while it is cut
    // off or down they fail, and every window shows what was active.
    for row in &report.rows[2..6] {
        assert!(row.success_rate < 0.8, "{row:?}");
        assert!(row.faults.iter().any(|f| f.contains("n1")), "{row:?}");
    }
    assert!(report.rows[6].faults.is_empty() && report.rows[6].success_rate > 0.99);
}

/// A fault that cannot change anything (replicas never call each
/// other; the client is the observer) is refused by the simulation as
/// by the process group, instead of "passing".
#[test]
fn chaos_faults_that_change_nothing_are_refused() {
    for (fault, expected) in [
        (
            r#"{"partition": {"a": "n1", "b": "n2"}}"#,
            "replicas do not call each other",
        ),
        (
            r#"{"loss": {"a": "n2", "b": "n3", "probability": 1.0}}"#,
            "replicas do not call each other",
        ),
        (
            r#"{"latency": {"a": "n2", "b": "n3", "ms": 100}}"#,
            "replicas do not call each other",
        ),
        (
            r#"{"flaky": {"host": "client", "error_rate": 1.0}}"#,
            "the client is the experiment's observer",
        ),
        (
            r#"{"crash": {"host": "client"}}"#,
            "the client is the experiment's observer",
        ),
    ] {
        let (field, reason) = fault_refused(&format!(
            r#"[{{"at_ms": 2000, "for_ms": 6000, "fault": {fault}}}]"#
        ));
        assert_eq!(field, "faults[0].fault", "{fault}");
        assert!(reason.contains(expected), "{fault}: {reason}");
    }
}

const CRASH: &str = r#"[{"at_ms": 3000, "for_ms": 1000, "fault": {"crash": {"host": "n1"}}}]"#;

/// A bound pointing the wrong way holds in an outage; an abort bound
/// tighter than the hypothesis stops a healthy run (it used to abort in
/// window 0, before any fault, and claim "all faults healed").
#[test]
fn chaos_bounds_must_point_the_healthy_way() {
    let cases = [
        (
            r#"{"metric": "success_rate", "at_most": 0.9}"#,
            ABORT,
            "hypothesis",
            "needs at_least",
        ),
        (
            HYPOTHESIS,
            r#"{"metric": "success_rate", "at_most": 0.5}"#,
            "abort",
            "needs at_least",
        ),
        (
            HYPOTHESIS,
            r#"{"metric": "p99_latency_ms", "at_least": 5}"#,
            "abort",
            "needs at_most",
        ),
        (
            HYPOTHESIS,
            r#"{"metric": "error_rate", "at_least": 0.5}"#,
            "abort",
            "needs at_most",
        ),
        (
            r#"{"metric": "throughput", "at_most": 100}"#,
            ABORT,
            "hypothesis",
            "needs at_least",
        ),
        (
            HYPOTHESIS,
            r#"{"metric": "error_rate", "at_most": 0.001}"#,
            "abort",
            "must be looser",
        ),
        (
            HYPOTHESIS,
            r#"{"metric": "success_rate", "at_least": 0.995}"#,
            "abort",
            "must be looser",
        ),
        (
            r#"{"metric": "p99_latency_ms", "at_most": 100}"#,
            r#"{"metric": "p99_latency_ms", "at_most": 50}"#,
            "abort",
            "must be looser",
        ),
    ];
    for (hypothesis, abort, want_field, want) in cases {
        let (field, reason) = refused(hypothesis, abort, CRASH, 200.0, 1000);
        assert_eq!(field, want_field, "{hypothesis} / {abort}: {reason}");
        assert!(reason.contains(want), "{hypothesis} / {abort}: {reason}");
    }
}

/// The report holds a row per window: an hour of 1 ms windows (3.6
/// million rows) is refused; 3600 windows are accepted.
#[test]
fn chaos_window_count_is_bounded() {
    let text = |window_ms: u64, duration_ms: u64| {
        format!(
            r#"{{"name": "x", "hypothesis": {HYPOTHESIS}, "abort": {ABORT},
                "window_ms": {window_ms}, "steady_windows": 2, "duration_ms": {duration_ms},
                "faults": [{{"at_ms": {window_ms}0, "for_ms": {window_ms}, "fault": {{"crash": {{"host": "n1"}}}}}}]}}"#
        )
    };
    let hosts = ["client", "n1"].iter().map(|h| h.to_string()).collect();
    let too_many = Experiment::from_json(&text(1, 3_600_000)).and_then(|e| e.validate(&hosts));
    assert!(
        matches!(&too_many, Err(Error::InvalidChaosExperiment { field, reason })
            if field == "duration_ms" && reason.contains("3600000 windows")),
        "{too_many:?}"
    );
    assert!(
        Experiment::from_json(&text(1000, 3_600_000))
            .and_then(|e| e.validate(&hosts))
            .is_ok()
    );
}

/// At one request a second in 1 s windows, a window with no request
/// counted as a total outage ("NOT STEADY, window 1: 0.000"). Windows
/// must expect at least 20 requests; the table shows how many finished.
#[test]
fn chaos_sparse_windows_are_refused_and_requests_are_shown() {
    let (field, reason) = refused(HYPOTHESIS, ABORT, CRASH, 1.0, 1000);
    assert_eq!(field, "simulation.rate");
    assert!(
        reason.contains("expects 1.0 requests per 1000 ms window"),
        "{reason}"
    );
    let (field, _) = refused(HYPOTHESIS, ABORT, CRASH, 19.9, 1000);
    assert_eq!(field, "simulation.rate");
    let experiment = Experiment::from_json(&format!(
        r#"{{"name": "x", "hypothesis": {HYPOTHESIS}, "abort": {ABORT},
            "window_ms": 1000, "steady_windows": 2, "duration_ms": 5000, "faults": {CRASH}}}"#
    ))
    .expect("parses");
    let system = SimulatedSystem {
        replicas: 3,
        rate: 20.0,
        failover: true,
        attempt_timeout_ms: 200,
        seed: 3,
    };
    let report = run_simulated(&experiment, &system).expect("20 per window is enough");
    let (header, rows) = report.table();
    let column = header
        .iter()
        .position(|h| *h == "requests")
        .expect("a requests column");
    for (row, cells) in report.rows.iter().zip(&rows) {
        assert_eq!(cells[column], row.requests.to_string());
        // Poisson at 20/s: far from empty, far from 40.
        assert!((5..=40).contains(&row.requests), "{row:?}");
    }
}
