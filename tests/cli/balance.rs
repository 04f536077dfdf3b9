//! `dslab bench balance`: every balancer over Flaky backends on loopback.

use crate::support::{run, stdout};

/// Episode 28. A short run over real gRPC: all six balancers (ours and
/// tower's peer) report, round robin spreads the calls evenly across the
/// five backends, and the figure is written. Only counts are asserted:
/// latencies on a shared machine belong to the benchmark, not a test.
#[test]
fn cli_bench_balance_runs_every_balancer_and_draws() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let svg = dir.path().join("figures");
    let svg = svg.to_str().expect("a UTF-8 path");
    let output = run(&[
        "bench",
        "balance",
        "--rates",
        "200",
        "--requests",
        "50",
        "--deadline-ms",
        "500",
        "--json",
        "--svg",
        svg,
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "--json prints one line:\n{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let results = json["results"].as_array().expect("results");
    let names: Vec<&str> = results
        .iter()
        .filter_map(|r| r["balancer"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "round-robin",
            "weighted-round-robin",
            "least-outstanding",
            "p2c",
            "peak-ewma",
            "tower p2c+peak-ewma"
        ]
    );
    for result in results {
        let calls: Vec<u64> = result["calls"]
            .as_array()
            .expect("calls per backend")
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        assert_eq!(calls.iter().sum::<u64>(), 50, "{result}");
    }
    assert_eq!(results[0]["calls"], serde_json::json!([10, 10, 10, 10, 10]));
    let figure =
        std::fs::read_to_string(dir.path().join("figures/balance-p99.svg")).expect("drawn");
    assert!(figure.contains("tower p2c+peak-ewma"));
}

/// Bad input is refused with a reason, not run.
#[test]
fn cli_bench_balance_refuses_bad_scenarios() {
    for args in [
        &["bench", "balance", "--rates", "0"][..],
        &["bench", "balance", "--backends", "1"],
        &["bench", "balance", "--requests", "0"],
        &["bench", "balance", "--capacity", "0"],
    ] {
        let output = run(args);
        assert!(!output.status.success(), "{args:?} ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid experiment"), "{args:?}: {stderr}");
    }
}
