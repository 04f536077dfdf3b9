//! `dslab bench usl`, `bench ladder` and `bench batching`, in their short
//! hidden `--quick` form: the commands run and their JSON has its shape.
//! The numbers themselves are measurements, not assertions.

use crate::support::{run, stdout};

/// Stdout, which with `--json` must be exactly one line, parsed as JSON.
fn json_line(args: &[&str]) -> serde_json::Value {
    let output = run(args);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints one line on stdout:\n{text}");
    let last = lines[0];
    serde_json::from_str(last).unwrap_or_else(|err| panic!("{err}: {last}"))
}

/// Episode 27. `bench usl --json` ends with one line carrying σ, κ, the
/// predicted and measured peak, and one point per level; `--svg` draws it.
#[test]
fn cli_bench_usl_prints_the_fit_as_one_json_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("figures");
    let value = json_line(&[
        "bench",
        "usl",
        "--quick",
        "--json",
        "--svg",
        svg.to_str().expect("utf-8 path"),
    ]);
    let object = value.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["kappa", "measured_peak_n", "peak_n", "points", "sigma"]
    );
    let points = value["points"].as_array().expect("points");
    assert_eq!(points.len(), 5, "the quick sweep's five levels");
    for point in points {
        assert!(point["n"].as_u64().is_some_and(|n| n >= 1), "{point}");
        assert!(
            point["throughput"].as_f64().is_some_and(|x| x > 0.0),
            "{point}"
        );
    }
    assert!(value["sigma"].as_f64().is_some_and(|s| s >= 0.0), "{value}");
    assert!(value["kappa"].as_f64().is_some_and(|k| k >= 0.0), "{value}");
    let levels: Vec<u64> = points.iter().filter_map(|p| p["n"].as_u64()).collect();
    assert!(levels.contains(&value["measured_peak_n"].as_u64().expect("a level")));
    let drawn = std::fs::read_to_string(svg.join("usl.svg")).expect("usl.svg written");
    assert!(drawn.starts_with("<svg") && drawn.contains("measured"));
}

/// Bad input: a sweep the fit cannot use is refused before it runs.
#[test]
fn cli_bench_usl_refuses_too_few_levels() {
    let output = run(&["bench", "usl", "--levels", "1,2"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--levels"));
}

/// Episode 6. `bench ladder --json` ends with one line: an array of
/// `{"name","ns"}`, one per rung, every time positive.
#[test]
fn cli_bench_ladder_prints_every_rung_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let value = json_line(&[
        "bench",
        "ladder",
        "--quick",
        "--json",
        "--fsync-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let rungs = value.as_array().expect("an array");
    let names: Vec<&str> = rungs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "l1_cache_hit",
            "l2_cache_hit",
            "main_memory",
            "mutex_lock_unlock",
            "syscall_getppid",
            "fsync_4k_write",
            "tcp_loopback_round_trip",
            "grpc_loopback_unary",
        ]
    );
    for rung in rungs {
        assert_eq!(rung.as_object().map(|o| o.len()), Some(2), "{rung}");
        assert!(rung["ns"].as_f64().is_some_and(|ns| ns > 0.0), "{rung}");
    }
}

/// Episode 5. `bench batching --json` measures every setting, with and
/// without compression, and every item it sent was stored.
#[test]
fn cli_bench_batching_measures_every_setting() {
    let value = json_line(&["bench", "batching", "--quick", "--clients", "16", "--json"]);
    let rows = value.as_array().expect("an array");
    assert_eq!(rows.len(), 14);
    for codec in ["none", "gzip", "zstd"] {
        assert!(rows.iter().any(|r| r["compression"] == codec), "{codec}");
    }
    for row in rows {
        assert_eq!(row["errors"], 0, "{row}");
        assert!(
            row["items_per_s"].as_f64().is_some_and(|x| x > 0.0),
            "{row}"
        );
        let batch = row["mean_batch"].as_f64().expect("mean batch");
        let max = row["max_batch"].as_f64().unwrap_or(1.0);
        assert!(batch >= 1.0 && batch <= max, "{row}");
    }
}

/// Episode 23. `bench event-store --json` measures the embedded store and
/// an in-process Raft KV in one run: one row each, every figure positive.
#[test]
fn cli_bench_event_store_measures_both_backends_in_one_run() {
    let value = json_line(&[
        "bench",
        "event-store",
        "--in-memory",
        "--events",
        "60",
        "--json",
    ]);
    let rows = value.as_array().expect("an array");
    let backends: Vec<&str> = rows.iter().filter_map(|r| r["backend"].as_str()).collect();
    assert_eq!(backends, ["embedded", "raft-kv (3 members)"]);
    for row in rows {
        for figure in ["appends_per_second", "catch_up_events_per_second"] {
            assert!(row[figure].as_f64().is_some_and(|f| f > 0.0), "{row}");
        }
    }
}

/// `serve ledger` names the event stores it knows when given another.
#[test]
fn cli_serve_ledger_refuses_an_unknown_event_store() {
    let output = run(&[
        "serve",
        "ledger",
        "--listen",
        "127.0.0.1:0",
        "--event-store",
        "postgres",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("use embedded or etcd=HOST:PORT"),
        "{stderr}"
    );
}
