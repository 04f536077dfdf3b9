//! `dslab chaos run`: experiments against real `dslab serve flaky`
//! processes (and the simulation) from a definition file.

use std::process::Output;

use super::chaos_lifecycle::assert_no_replica_left;
use crate::support::{run, stdout};

/// Writes `text` to a temporary file and runs `dslab chaos run` on it.
pub fn run_definition(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("experiment.json");
    std::fs::write(&path, text).expect("writes the definition");
    run(&["chaos", "run", path.to_str().expect("a UTF-8 path")])
}

/// A process-group experiment of 500 ms windows, two of them steady,
/// with `faults` (a JSON array); hypothesis success ≥ 0.95, abort when
/// the error rate passes 0.3.
pub fn processes(duration_ms: u64, faults: &str) -> String {
    format!(
        r#"{{
          "experiment": {{
            "name": "cli",
            "hypothesis": {{"metric": "success_rate", "at_least": 0.95}},
            "abort": {{"metric": "error_rate", "at_most": 0.3}},
            "window_ms": 500, "steady_windows": 2, "duration_ms": {duration_ms},
            "faults": {faults}
          }},
          "processes": {{"replicas": 3, "rate": 40, "failover": true, "attempt_timeout_ms": 300}}
        }}"#
    )
}

/// Episode 12. Setup: three `dslab serve flaky` processes the runner
/// starts, probed through its proxies with failover. Break: SIGKILL n1
/// (restarted on heal), then make n2 fail half its calls. Must hold: the
/// hypothesis holds in every window, so the run passes with exit 0.
#[test]
fn chaos_cli_processes_holding_hypothesis_passes() {
    let output = run_definition(&processes(
        3_000,
        r#"[
          {"at_ms": 1000, "for_ms": 1000, "fault": {"crash": {"host": "n1"}}},
          {"at_ms": 2000, "for_ms": 500, "fault": {"flaky": {"host": "n2", "error_rate": 0.5}}}
        ]"#,
    ));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("PASSED"), "{text}");
    assert!(
        text.contains("crash n1") && text.contains("flaky n2 50%"),
        "{text}"
    );
    assert_no_replica_left(&output);
}

/// Episode 12. Setup: as above. Break: the runner's proxies partition the
/// client from every replica at 1 s, planned for 2 s. Must hold: the run
/// aborts in the window of the injection or the next one (the bound is
/// checked every window), heals, and exits 1.
#[test]
fn chaos_cli_processes_partition_aborts_within_its_bound() {
    let output = run_definition(&processes(
        4_000,
        r#"[
          {"at_ms": 1000, "for_ms": 2000, "fault": {"partition": {"a": "client", "b": "n1"}}},
          {"at_ms": 1000, "for_ms": 2000, "fault": {"partition": {"a": "client", "b": "n2"}}},
          {"at_ms": 1000, "for_ms": 2000, "fault": {"partition": {"a": "client", "b": "n3"}}}
        ]"#,
    ));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ABORTED in window 2 ") || text.contains("ABORTED in window 3 "),
        "{text}"
    );
    // The faults end with the group: the proxies that cut the links and
    // every replica behind them are gone when the runner exits.
    assert_no_replica_left(&output);
}

/// Bad definitions exit 3 before any process starts, naming the field.
#[test]
fn chaos_cli_bad_definitions_name_the_field() {
    let cases = [
        (
            processes(
                2_000,
                r#"[{"at_ms": 1000, "for_ms": 500, "fault": {"partition": {"a": "n1", "b": "n2"}}}]"#,
            ),
            "faults[0].fault",
        ),
        (
            processes(
                2_000,
                r#"[{"at_ms": 1000, "for_ms": 500, "fault": {"crash": {"host": "n9"}}}]"#,
            ),
            "unknown host \"n9\"",
        ),
        (
            processes(
                2_000,
                r#"[{"at_ms": 1000, "for_ms": 500, "fault": {"reboot": {"host": "n1"}}}]"#,
            ),
            "unknown variant `reboot`",
        ),
        (
            processes(2_000, "[]").replace(r#""processes""#, r#""simulation""#),
            "missing field `seed`",
        ),
        (
            processes(
                2_000,
                r#"[{"at_ms": 1000, "for_ms": 500, "fault": {"crash": {"host": "n1"}}}]"#,
            )
            .replace(r#""replicas": 3"#, r#""replicas": 0"#),
            "processes.replicas",
        ),
    ];
    for (definition, expected) in cases {
        let output = run_definition(&definition);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{expected}: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
    }
}

/// The simulated target from the same command: the checked-in example
/// that partitions every replica aborts in the window of the injection.
#[test]
fn chaos_cli_simulation_example_aborts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/chaos/partition-all.json");
    let output = run(&["chaos", "run", path]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("ABORTED in window 3 "), "{text}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/chaos/replica-crash.json");
    let output = run(&["chaos", "run", path]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}
