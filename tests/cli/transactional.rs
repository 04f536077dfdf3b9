//! `dslab check --model list-append|rw-register`: Elle-style isolation
//! checking from the command line (Episode 18).

use super::temp_file;
use crate::support::{run, stdout};

const WRITE_SKEW: &str = concat!(
    r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[]],["r","y",[]],["append","x",1]],"call":0,"return":3}"#,
    "\n",
    r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]],["r","y",[]],["append","y",1]],"call":1,"return":4}"#,
    "\n",
    r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]],["r","y",[1]]],"call":5,"return":6}"#,
    "\n",
);

const STALE_READ: &str = concat!(
    r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1]],"call":0,"return":1}"#,
    "\n",
    r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]]],"call":2,"return":3}"#,
    "\n",
    r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]]],"call":4,"return":5}"#,
    "\n",
);

fn code(args: &[&str]) -> Option<i32> {
    run(args).status.code()
}

/// Write skew violates serializability (exit 1) but not snapshot
/// isolation (exit 0); the JSON names G2-item with the cycle's evidence,
/// and the HTML timeline shows it.
#[test]
fn cli_check_list_append_write_skew() {
    let path = temp_file("skew.jsonl", WRITE_SKEW);
    let file = path.to_str().expect("utf-8 path");
    assert_eq!(code(&["check", file, "--model", "list-append"]), Some(1));
    assert_eq!(
        code(&[
            "check",
            file,
            "--model",
            "list-append",
            "--isolation",
            "snapshot-isolation"
        ]),
        Some(0)
    );
    let page = std::env::temp_dir().join(format!("dslab-cli-{}-skew.html", std::process::id()));
    let output = run(&[
        "check",
        file,
        "--model",
        "list-append",
        "--json",
        "--html",
        page.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["model"], "list-append");
    assert_eq!(report["verdict"], "not_serializable");
    assert!(report["elapsed_ms"].is_number());
    assert_eq!(report["anomalies"], serde_json::json!(["G2-item"]));
    assert_eq!(report["strongest_level"], "snapshot_isolation");
    assert_eq!(report["levels"]["repeatable_read"], false);
    let steps = report["cycles"][0]["steps"].as_array().expect("a cycle");
    assert!(steps.iter().all(|s| s["type"] == "rw"), "{steps:?}");
    assert!(
        steps[0]["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("read"))
    );
    let html = std::fs::read_to_string(&page).expect("timeline written");
    assert!(html.contains("<svg") && html.contains("G2-item") && html.contains("—rw→"));
}

/// A stale read is serializable; strict serializability (real-time
/// edges) catches it.
#[test]
fn cli_check_strict_serializable_needs_realtime() {
    let path = temp_file("stale-txn.jsonl", STALE_READ);
    let file = path.to_str().expect("utf-8 path");
    assert_eq!(code(&["check", file, "--model", "list-append"]), Some(0));
    let output = run(&[
        "check",
        file,
        "--model",
        "list-append",
        "--isolation",
        "strict-serializable",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("G-single-realtime"),
        "{}",
        stdout(&output)
    );
    // Without times there is no real-time order to judge: refused, not
    // "holds".
    let untimed: String = STALE_READ
        .lines()
        .map(|line| {
            format!(
                "{}}}\n",
                &line[..line.find(r#","call""#).expect("timed line")]
            )
        })
        .collect();
    let path = temp_file("stale-untimed.jsonl", &untimed);
    let output = run(&[
        "check",
        path.to_str().expect("utf-8 path"),
        "--model",
        "list-append",
        "--isolation",
        "strict-serializable",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 1: real-time order"));
}

/// rw-register histories, and a zero budget answering unknown (exit 2).
#[test]
fn cli_check_rw_register_and_budget() {
    let lost = concat!(
        r#"{"id":0,"process":0,"type":"ok","value":[["r","x",null],["w","x",1]]}"#,
        "\n",
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",null],["w","x",2]]}"#,
        "\n",
    );
    let path = temp_file("lost.jsonl", lost);
    let file = path.to_str().expect("utf-8 path");
    let output = run(&[
        "check",
        file,
        "--model",
        "rw-register",
        "--isolation",
        "read-committed",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("lost-update"));
    assert_eq!(code(&["check", file, "--model", "rw-register"]), Some(1));
    let skew = temp_file("skew-budget.jsonl", WRITE_SKEW);
    let output = run(&[
        "check",
        skew.to_str().expect("utf-8 path"),
        "--model",
        "list-append",
        "--budget",
        "0ms",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("not a pass"));
}

/// Bad input exits 3 and names the line; so do unknown levels and
/// transactional flags on a non-transactional model.
#[test]
fn cli_check_transactional_bad_input() {
    let broken = temp_file(
        "broken-txn.jsonl",
        &format!(
            "{WRITE_SKEW}{{\"id\":3,\"process\":0,\"type\":\"ok\",\"value\":[[\"cas\",\"x\",1]]}}\n"
        ),
    );
    let file = broken.to_str().expect("utf-8 path");
    let output = run(&["check", file, "--model", "list-append"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("cas"),
        "{stderr}"
    );
    let skew = temp_file("skew-level.jsonl", WRITE_SKEW);
    let file = skew.to_str().expect("utf-8 path");
    assert_eq!(
        code(&[
            "check",
            file,
            "--model",
            "list-append",
            "--isolation",
            "eventual"
        ]),
        Some(3)
    );
    assert_eq!(
        code(&["check", file, "--isolation", "serializable"]),
        Some(3)
    );
}
