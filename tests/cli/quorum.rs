//! `dslab serve quorum-kv` and `dslab bench quorum-kv`, as an instructor
//! runs them.

use observability::rpc::{ClientBuilder, Net};
use replication::quorum::{QuorumClient, Resolution};

use crate::support::{Served, dslab, run, stdout};

/// Episode 14. A lone `serve quorum-kv` (N = 1): a put is acknowledged, a
/// read returns it with a context, a write with that context replaces it
/// (no sibling left), R above N is refused with INVALID_ARGUMENT; SIGTERM
/// stops it cleanly.
#[test]
fn cli_serve_quorum_kv_puts_reads_and_resolves() {
    let node = Served::start("quorum-kv", &["--id", "1"]);
    // The runtime (and its connection) ends before SIGTERM: an open
    // connection would hold the server's drain until its timeout.
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(calls(&node));
    assert!(node.terminate());
}

async fn calls(node: &Served) {
    let channel = ClientBuilder::new(Net::Tcp)
        .dial(&node.addr.to_string())
        .expect("a valid address");
    let mut client = QuorumClient::new(channel);
    client
        .put("cart", b"milk", Vec::new(), 1, false)
        .await
        .expect("put");
    let read = client
        .get("cart", 1, false, Resolution::Siblings)
        .await
        .expect("get");
    assert_eq!(read.values, [b"milk".to_vec()]);
    client
        .put("cart", b"milk,eggs", read.context, 1, false)
        .await
        .expect("put with the read's context");
    let read = client
        .get("cart", 1, false, Resolution::Siblings)
        .await
        .expect("get");
    assert_eq!(
        read.values,
        [b"milk,eggs".to_vec()],
        "the write replaced the value it read"
    );
    let refused = client
        .get("cart", 2, false, Resolution::Siblings)
        .await
        .expect_err("R = 2 > N = 1");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

/// Episode 14. `bench quorum-kv --json` ends with one line: one row per
/// (N, R, W) setting with put and get percentiles, no call failed.
#[test]
fn cli_bench_quorum_kv_prints_three_settings_as_json() {
    let output = run(&[
        "bench",
        "quorum-kv",
        "--requests",
        "40",
        "--clients",
        "2",
        "--json",
    ]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    let rows = value.as_array().expect("an array");
    let settings: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_u64().unwrap_or(u64::MAX);
            (field("n"), field("r"), field("w"))
        })
        .collect();
    assert_eq!(settings, [(3, 1, 1), (3, 2, 2), (3, 3, 1)]);
    for row in rows {
        assert_eq!(row["failed"], 0, "{row}");
        assert_eq!(row["put_ok"], 40, "{row}");
        assert!(
            row["put_p50_us"].as_u64() <= row["put_p99_us"].as_u64(),
            "{row}"
        );
    }
}

/// `serve quorum-kv` refuses, at start and with exit 3, a member id named
/// twice and another member at its own --listen address — both would
/// only fail later, on the first call that needs them.
#[test]
fn cli_serve_quorum_kv_refuses_a_duplicate_or_self_peer() {
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string();
    for (peers, expected) in [
        (
            vec!["--peer", "2=127.0.0.1:1", "--peer", "2=127.0.0.1:2"],
            "named twice",
        ),
        (
            vec!["--peer", "1=127.0.0.1:3", "--peer", "1=127.0.0.1:4"],
            "named twice",
        ),
        (vec!["--peer", "2=LISTEN"], "own --listen address"),
    ] {
        let mut args = vec!["serve", "quorum-kv", "--id", "1", "--listen", &listen];
        let peers: Vec<String> = peers.iter().map(|p| p.replace("LISTEN", &listen)).collect();
        args.extend(peers.iter().map(String::as_str));
        let output = run_refused(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Runs `dslab args…`, which should refuse at once; a server that starts
/// instead is killed (a safety net so a regression fails, not hangs).
fn run_refused(args: &[&str]) -> std::process::Output {
    let mut child = dslab()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the dslab binary runs");
    for _ in 0..600 {
        if child.try_wait().expect("polls").is_some() {
            return child.wait_with_output().expect("its output");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("its output");
    panic!(
        "{args:?} started instead of refusing: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
