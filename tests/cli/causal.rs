//! `dslab check --consistency causal`: exit codes, JSON, bad input.

use crate::support::{run, stdout};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("dslab-cli-causal-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

/// One line of a register history; each client's operations in order.
fn line(id: usize, client: u64, op: &str, key: &str, value: i64) -> String {
    let t = 2 * id;
    match op {
        "write" => format!(
            r#"{{"id":{id},"client":{client},"op":"write","key":"{key}","value":{value},"output":"ok","call":{t},"return":{}}}"#,
            t + 1
        ),
        _ => format!(
            r#"{{"id":{id},"client":{client},"op":"read","key":"{key}","output":{{"value":{value}}},"call":{t},"return":{}}}"#,
            t + 1
        ),
    }
}

fn history(steps: &[(u64, &str, &str, i64)]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(id, &(client, op, key, value))| line(id, client, op, key, value) + "\n")
        .collect()
}

fn check(path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "check",
        path.to_str().expect("utf-8 path"),
        "--consistency",
        "causal",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Episode 19. Two clients see concurrent writes in different orders:
/// not linearizable, but causal (exit 0).
#[test]
fn cli_check_causal_accepts_a_causal_history() {
    let path = temp_file(
        "causal.jsonl",
        &history(&[
            (1, "write", "x", 1),
            (2, "write", "x", 2),
            (3, "read", "x", 1),
            (3, "read", "x", 2),
            (4, "read", "x", 2),
            (4, "read", "x", 1),
        ]),
    );
    let output = check(&path, &["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["verdict"], "causal");
    assert_eq!(report["model"], "register");
    assert!(report["elapsed_ms"].is_number());
    assert_eq!(report["patterns"], serde_json::json!([]));
    // The same history under causal convergence: the two readers'
    // opposite orders admit no single order of the writes.
    let output = run(&[
        "check",
        path.to_str().expect("utf-8 path"),
        "--consistency",
        "causal-convergence",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("CyclicCF"), "{}", stdout(&output));
}

/// A read that returns x=1 although the overwriting x=2 is causally
/// before it: exit 1, the pattern named in the JSON with its chain.
#[test]
fn cli_check_causal_names_write_co_read() {
    let path = temp_file(
        "write-co-read.jsonl",
        &history(&[
            (1, "write", "x", 1),
            (1, "write", "x", 2),
            (1, "write", "y", 3),
            (2, "read", "y", 3),
            (2, "read", "x", 1),
        ]),
    );
    let output = check(&path, &["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["verdict"], "not_causal");
    assert_eq!(report["patterns"], serde_json::json!(["WriteCORead"]));
    assert_eq!(
        report["findings"][0]["chain"],
        "w(x,1)#0 →po w(x,2)#1 →po w(y,3)#2 →rf r(y)=3#3 →po r(x)=1#4"
    );
    let text = check(&path, &[]);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        stdout(&text).contains("not causal (CC): WriteCORead ×1"),
        "{}",
        stdout(&text)
    );
}

/// Bad input exits 3 and says what is wrong: a value written twice (the
/// checker needs a differentiated history), a malformed line, an
/// unknown consistency.
#[test]
fn cli_check_causal_bad_input_exits_3() {
    let stderr =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let twice = temp_file(
        "twice.jsonl",
        &history(&[(1, "write", "x", 1), (2, "write", "x", 1)]),
    );
    let output = check(&twice, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("#0 and #1 both write 1"),
        "{}",
        stderr(&output)
    );
    let broken = temp_file(
        "broken.jsonl",
        &format!(
            "{}{{\"client\":1,\"op\":\"read\"\n",
            history(&[(1, "write", "x", 1)])
        ),
    );
    let output = check(&broken, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("line 2"), "{}", stderr(&output));
    let output = run(&[
        "check",
        twice.to_str().expect("utf-8 path"),
        "--consistency",
        "eventual",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("unknown consistency"),
        "{}",
        stderr(&output)
    );
}

/// A zero budget is Unknown (exit 2), never a pass.
#[test]
fn cli_check_causal_zero_budget_exits_unknown() {
    let path = temp_file(
        "budget.jsonl",
        &history(&[(1, "write", "x", 1), (2, "read", "x", 1)]),
    );
    let output = check(&path, &["--budget", "0ms"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("not a pass"),
        "{}",
        stdout(&output)
    );
}
