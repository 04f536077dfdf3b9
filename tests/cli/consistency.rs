//! `dslab check --consistency`: the same history judged against
//! linearizability and sequential consistency.

use super::support::{run, stdout};
use super::temp_file;

/// Client 2 reads 1 after client 1's write of 2 returned: a stale read.
const STALE_READ: &str = concat!(
    r#"{"id":0,"client":1,"op":"write","key":"x","value":1,"output":"ok","call":0,"return":1}"#,
    "\n",
    r#"{"id":1,"client":1,"op":"write","key":"x","value":2,"output":"ok","call":2,"return":3}"#,
    "\n",
    r#"{"id":2,"client":2,"op":"read","key":"x","output":{"value":1},"call":4,"return":5}"#,
    "\n",
);

/// Client 1 writes 1 and then reads nothing back: its own write is lost.
const MISSED_OWN_WRITE: &str = concat!(
    r#"{"id":0,"client":1,"op":"write","key":"x","value":1,"output":"ok","call":0,"return":1}"#,
    "\n",
    r#"{"id":1,"client":1,"op":"read","key":"x","output":{"value":null},"call":2,"return":3}"#,
    "\n",
);

fn path(file: &std::path::Path) -> &str {
    file.to_str().expect("utf-8 path")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Episode 19. A stale read by another client: exit 1 as linearizability
/// (the default, and when named), exit 0 as sequential consistency, with
/// a witness order in the JSON report; `--html` still draws the timeline.
#[test]
fn cli_check_consistency_sequential_accepts_a_stale_read() {
    let file = temp_file("seq-stale.jsonl", STALE_READ);
    assert_eq!(run(&["check", path(&file)]).status.code(), Some(1));
    let named = run(&["check", path(&file), "--consistency", "linearizable"]);
    assert_eq!(named.status.code(), Some(1), "{}", stdout(&named));
    let page = std::env::temp_dir().join(format!("dslab-cli-{}-seq.html", std::process::id()));
    let output = run(&[
        "check",
        path(&file),
        "--consistency",
        "sequential",
        "--json",
        "--html",
        path(&page),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "sequential");
    assert_eq!(report["model"], "register");
    assert!(report["elapsed_ms"].as_f64().is_some(), "{report}");
    assert_eq!(report["witness"], serde_json::json!([0, 2, 1]));
    let html = std::fs::read_to_string(&page).expect("timeline written");
    assert!(html.contains("<svg") && html.contains("sequentially consistent"));
}

/// A client that misses its own write is not sequential either: exit 1,
/// and the report names the blocked read and why.
#[test]
fn cli_check_consistency_sequential_rejects_a_missed_own_write() {
    let file = temp_file("seq-own.jsonl", MISSED_OWN_WRITE);
    let output = run(&[
        "check",
        path(&file),
        "--consistency",
        "sequential",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "not_sequential");
    assert_eq!(report["violation"]["blocked"][0]["id"], 1);
    assert_eq!(
        report["violation"]["longest_prefix"],
        serde_json::json!([0])
    );
    let text = run(&["check", path(&file), "--consistency", "sequential"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        stdout(&text).contains("not sequentially consistent"),
        "{}",
        stdout(&text)
    );
}

/// Bad input exits 3 with a reason: a malformed line (named), an unknown
/// consistency, overlapping operations of one client (both named).
#[test]
fn cli_check_consistency_bad_input_exits_3() {
    let broken = temp_file(
        "seq-broken.jsonl",
        &format!("{STALE_READ}{{\"client\":1,\"op\":\"read\",\"call\":9\n"),
    );
    let output = run(&["check", path(&broken), "--consistency", "sequential"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("line 4"), "{}", stderr(&output));
    let file = temp_file("seq-name.jsonl", STALE_READ);
    let output = run(&["check", path(&file), "--consistency", "eventual"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("unknown consistency \"eventual\""),
        "{}",
        stderr(&output)
    );
    let overlapping = STALE_READ.replace(r#""call":2,"return":3"#, r#""call":0,"return":3"#);
    let file = temp_file("seq-overlap.jsonl", &overlapping);
    let output = run(&["check", path(&file), "--consistency", "sequential"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("#1 before its operation #0"),
        "{}",
        stderr(&output)
    );
}

/// A search the budget cannot finish exits 2 ("unknown"), never 0 or 1.
#[test]
fn cli_check_consistency_sequential_budget_expiry_exits_2() {
    let mut history = String::new();
    for client in 0..40 {
        history.push_str(&format!(
            r#"{{"client":{client},"op":"write","key":null,"value":{client},"output":"ok","call":0,"return":1000}}"#
        ));
        history.push('\n');
    }
    history.push_str(
        r#"{"client":99,"op":"read","key":null,"output":{"value":999},"call":2000,"return":2001}"#,
    );
    let file = temp_file("seq-budget.jsonl", &history);
    let output = run(&[
        "check",
        path(&file),
        "--consistency",
        "sequential",
        "--budget",
        "100ms",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "unknown");
}

/// Episode 19. `dslab demo consistency-models` records the stale register
/// twice and every claim holds: the writer + reader history is sequential
/// but not linearizable, the read-your-write one is neither.
#[test]
fn cli_demo_consistency_models_holds_its_claims() {
    let output = run(&["demo", "consistency-models"]);
    let text = stdout(&output);
    assert!(output.status.success(), "demo failed:\n{text}");
    assert!(!text.contains('✘'), "a claim failed:\n{text}");
    assert_eq!(text.matches('✔').count(), 3, "three claims:\n{text}");
    assert!(
        text.contains("not_sequential") && text.contains("#1 client 1 get"),
        "{text}"
    );
}

/// A usage error (a bad budget, an unknown flag) is bad input, exit 3 —
/// not clap's 2, which `dslab check` reserves for "unknown".
#[test]
fn cli_check_usage_errors_exit_3() {
    for args in [
        &["check", "history.jsonl", "--budget", "abc"][..],
        &["check", "history.jsonl", "--no-such-flag"][..],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dslab"))
            .args(args)
            .output()
            .expect("dslab runs");
        assert_eq!(output.status.code(), Some(3), "{args:?}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_dslab"))
        .args(["check", "--help"])
        .output()
        .expect("dslab runs");
    assert_eq!(help.status.code(), Some(0));
}
