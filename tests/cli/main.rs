//! The `dslab` command line, run as a process the way an instructor runs it.

#[path = "../support/mod.rs"]
mod support;

mod balance;
mod causal;
mod chaos;
mod chaos_lifecycle;
mod consistency;
mod coordination;
mod metrics;
mod performance;
mod physics;
mod quorum;
mod raft_kv;
mod telemetry;
mod transactional;
mod transactions;

use support::{OtlpReceiver, Served, run, stdout};

/// The README's episode map is exactly what `dslab list --markdown` prints.
#[test]
fn cli_list_matches_readme_episode_map() {
    let output = run(&["list", "--markdown"]);
    assert!(output.status.success());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md exists");
    let start = readme
        .find("<!-- episode-map:start -->\n")
        .expect("map start marker")
        + "<!-- episode-map:start -->\n".len();
    let end = readme
        .find("<!-- episode-map:end -->")
        .expect("map end marker");
    assert_eq!(
        &readme[start..end],
        stdout(&output),
        "README episode map is stale: paste `cargo run -- list --markdown` between the markers"
    );
}

/// Episodes 31 and 34. `dslab demo trace-propagation` runs three relays,
/// prints the span tree, then finds a slow hop by its critical path; every
/// claim it makes holds.
#[test]
fn cli_demo_trace_propagation_holds_its_claims() {
    let output = run(&["demo", "trace-propagation"]);
    let text = stdout(&output);
    assert!(output.status.success(), "demo failed:\n{text}");
    assert!(!text.contains('✘'), "a claim failed:\n{text}");
    assert_eq!(text.matches('✔').count(), 6, "six claims:\n{text}");
    assert_eq!(
        text.matches("└─ server observability.v1.Relay/Forward")
            .count(),
        3,
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("trace-propagation")
            && l.contains("6/6")
            && l.trim_end().ends_with("ok")),
        "{text}"
    );
}

/// `dslab tour` runs every registered demo and ends with a summary row per
/// demo, all ok.
#[test]
fn cli_tour_runs_every_demo_and_summarizes() {
    let output = run(&["tour"]);
    let text = stdout(&output);
    assert!(output.status.success(), "tour failed:\n{text}");
    let summary = &text[text.find("== Summary").expect("summary section")..];
    for demo in dslab::registry::demos() {
        let row = summary
            .lines()
            .find(|line| line.trim_start().starts_with(demo.name))
            .unwrap_or_else(|| panic!("{} missing from summary", demo.name));
        assert!(row.trim_end().ends_with("ok"), "{row}");
    }
    assert!(text.contains("Every claim held."));
}

/// Bad input: an unknown demo is named in the error and fails the command.
#[test]
fn cli_unknown_demo_is_refused() {
    let output = run(&["demo", "no-such-demo"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such-demo") && stderr.contains("trace-propagation"),
        "{stderr}"
    );
}

/// `dslab serve relay` answers grpc.health.v1, lists its services by
/// reflection, relays to a peer process, and exits cleanly on SIGTERM.
#[tokio::test]
async fn cli_serve_relay_answers_health_reflection_and_forwards() {
    use observability::relay::proto::ForwardRequest;
    use observability::relay::proto::relay_client::RelayClient;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let tail = Served::start("relay", &["--name", "tail"]);
    let head = Served::start(
        "relay",
        &["--name", "head", "--peer", &tail.addr.to_string()],
    );
    let channel = tonic::transport::Endpoint::from_shared(head.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connects");

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "observability.v1.Relay".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let reply = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .expect("reflection answers")
        .into_inner()
        .message()
        .await
        .expect("stream ok")
        .expect("a reply");
    let Some(MessageResponse::ListServicesResponse(listed)) = reply.message_response else {
        panic!("expected a service list");
    };
    assert!(
        listed
            .service
            .iter()
            .any(|s| s.name == "observability.v1.Relay")
    );

    let path: Vec<String> = RelayClient::new(channel)
        .forward(ForwardRequest {
            payload: "hi".into(),
            visited: vec![],
        })
        .await
        .expect("relays across processes")
        .into_inner()
        .path
        .into_iter()
        .map(|hop| hop.name)
        .collect();
    assert_eq!(path, ["head", "tail"]);

    // Waiting for a process blocks; do it off this runtime's only thread so
    // the client's connection can still see the server's GOAWAY and close.
    let exits = tokio::task::spawn_blocking(move || (head.terminate(), tail.terminate()))
        .await
        .expect("waits");
    assert_eq!(exits, (true, true), "both exit cleanly on SIGTERM");
}

/// Interop: Python's grpcio (a different gRPC implementation) checks health,
/// discovers the Relay by reflection alone, and calls it. Needs
/// `pip install grpcio grpcio-health-checking grpcio-reflection`; `.ci/run`
/// installs them.
#[test]
#[ignore = "needs Python grpcio; run by .ci/run"]
fn interop_python_grpc_health_reflection_and_call() {
    let relay = Served::start("relay", &["--name", "py-target"]);
    let text = python_client("grpc_client.py", &[relay.addr]);
    assert!(text.contains("health: SERVING"), "{text}");
    assert!(text.contains("service: observability.v1.Relay"), "{text}");
    assert!(text.contains("path: py-target"), "{text}");
    assert!(relay.terminate());
}

/// Episode 22. `dslab crdt` against a lone `serve crdt-replica`: updates
/// answer the new value, reads print one line per element or sibling,
/// `status` shows the version vector, and a bad type exits 3.
#[test]
fn cli_crdt_updates_reads_and_refuses_an_unknown_type() {
    let replica = Served::start("crdt-replica", &["--id", "1"]);
    let endpoint = replica.addr.to_string();
    let crdt = |args: &[&str]| {
        support::dslab()
            .args(["crdt", "--endpoint", &endpoint])
            .args(args)
            .output()
            .expect("dslab crdt runs")
    };
    assert_eq!(stdout(&crdt(&["increment", "likes", "5"])), "5\n");
    assert_eq!(stdout(&crdt(&["increment", "likes", "3"])), "8\n");
    assert_eq!(stdout(&crdt(&["add", "balance", "--", "-4"])), "-4\n");
    crdt(&["insert", "cart", "milk"]);
    assert_eq!(stdout(&crdt(&["insert", "cart", "eggs"])), "eggs\nmilk\n");
    crdt(&["write", "title", "draft"]);
    assert_eq!(
        stdout(&crdt(&["write", "title", "final", "--resolve"])),
        "final\n"
    );
    assert_eq!(stdout(&crdt(&["read", "set", "cart"])), "eggs\nmilk\n");
    let status = stdout(&crdt(&["status"]));
    assert!(
        status.contains("replica r1") && status.contains("4 objects"),
        "{status}"
    );
    let refused = crdt(&["read", "bogus", "x"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown type"));
    assert!(replica.terminate());
}

/// Runs `tests/interop/<script>` against `addrs`; its stdout and stderr.
fn python_client(script: &str, addrs: &[std::net::SocketAddr]) -> String {
    let script = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("python3")
        .arg(&script)
        .args(addrs.iter().map(ToString::to_string))
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "python client failed:\n{text}");
    text
}

/// Episode 22. A client from another gRPC implementation (Python grpcio,
/// reflection only) updates and reads a CRDT replica's counter, set and
/// register, and is refused an unknown object type.
#[test]
#[ignore = "needs python3 with grpcio and grpcio-reflection; .ci/run installs them"]
fn interop_python_grpc_client_drives_a_crdt_replica() {
    let replica = Served::start("crdt-replica", &["--id", "1"]);
    let text = python_client("crdt_client.py", &[replica.addr]);
    for line in [
        "remove of an absent element changed: False",
        "likes: 8",
        "cart: eggs,milk",
        "title: draft",
        "unknown type: INVALID_ARGUMENT",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(replica.terminate());
}

/// The spans of `trace`, by span id.
fn trace_of<'a>(
    spans: &'a [serde_json::Value],
    trace: &str,
) -> std::collections::BTreeMap<String, &'a serde_json::Value> {
    spans
        .iter()
        .filter(|span| span["trace_id"] == trace)
        .map(|span| {
            (
                span["span_id"].as_str().unwrap_or_default().to_owned(),
                span,
            )
        })
        .collect()
}

/// Walks a trace from `root` down its one-child chain:
/// (service, OTLP kind) per span, in call order.
fn chain(
    trace: &std::collections::BTreeMap<String, &serde_json::Value>,
    root: &str,
) -> Vec<(String, u64)> {
    let mut chain = Vec::new();
    let mut at = root.to_owned();
    while let Some(span) = trace.get(&at) {
        chain.push((
            span["service"].as_str().unwrap_or_default().to_owned(),
            span["kind"].as_u64().unwrap_or_default(),
        ));
        let children: Vec<&String> = trace
            .iter()
            .filter(|(_, s)| s["parent_span_id"] == at.as_str())
            .map(|(id, _)| id)
            .collect();
        match children.as_slice() {
            [only] => at = (*only).clone(),
            _ => break,
        }
    }
    chain
}

const SERVER: u64 = 2;
const CLIENT: u64 = 3;

/// Episode 31, against a real OTLP receiver (Python grpcio +
/// opentelemetry-proto). The in-process demo exports six spans of one
/// trace — client → server → client … — each hop as its own service; then
/// three `dslab serve relay` processes, called with a known trace id,
/// export the server → client → … chain, flushed when they are stopped.
#[test]
#[ignore = "needs python3 with grpcio and opentelemetry-proto (.ci/run installs them)"]
fn interop_otlp_receiver_gets_every_span_of_demo_and_serve() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.endpoint();
    let output = support::dslab()
        .args(["--otlp-endpoint", &endpoint, "demo", "trace-propagation"])
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .expect("dslab runs");
    assert!(output.status.success(), "{}", stdout(&output));
    // Two runs of six spans: the healthy chain, then the slow hop (whose
    // caller the demo names "client").
    let spans = receiver.wait_for(|spans| spans.len() >= 12);
    let forward = |span: &&serde_json::Value| span["name"] == "observability.v1.Relay/Forward";
    let root = spans
        .iter()
        .filter(forward)
        .find(|span| {
            span["parent_span_id"] == "" && span["kind"] == CLIENT && span["service"] == "dslab"
        })
        .unwrap_or_else(|| panic!("a root client span: {spans:#?}"));
    let trace = trace_of(&spans, root["trace_id"].as_str().unwrap_or_default());
    assert_eq!(trace.len(), 6, "{trace:#?}");
    assert!(
        trace.values().all(|span| span["status"] == 1),
        "all OK: {trace:#?}"
    );
    let expected: Vec<(String, u64)> = [
        ("dslab", CLIENT),
        ("relay-hop-1", SERVER),
        ("relay-hop-1", CLIENT),
        ("relay-hop-2", SERVER),
        ("relay-hop-2", CLIENT),
        ("relay-hop-3", SERVER),
    ]
    .iter()
    .map(|(service, kind)| ((*service).to_owned(), *kind))
    .collect();
    assert_eq!(
        chain(&trace, root["span_id"].as_str().unwrap_or_default()),
        expected
    );

    // Three processes, each its own service, exporting to the receiver.
    let serve = |name: &str, peer: Option<&Served>| {
        let mut command = support::dslab();
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env_remove("OTEL_SERVICE_NAME");
        let mut extra = vec!["--name".to_owned(), name.to_owned()];
        if let Some(peer) = peer {
            extra.extend(["--peer".to_owned(), peer.addr.to_string()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Served::start_with(command, "relay", &extra)
    };
    let hop3 = serve("hop-3", None);
    let hop2 = serve("hop-2", Some(&hop3));
    let hop1 = serve("hop-1", Some(&hop2));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let reply = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(hop1.uri())
            .expect("uri")
            .connect()
            .await
            .expect("connects");
        let mut request = tonic::Request::new(observability::relay::proto::ForwardRequest {
            payload: "traced".into(),
            visited: Vec::new(),
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{caller_span}-01")
                .parse()
                .expect("ascii"),
        );
        observability::relay::proto::relay_client::RelayClient::new(channel)
            .forward(request)
            .await
            .expect("forwarded")
            .into_inner()
    });
    assert_eq!(reply.path.len(), 3);
    // SIGTERM flushes each process's spans on the way out.
    for hop in [hop1, hop2, hop3] {
        assert!(hop.terminate(), "stopped cleanly");
    }
    let spans = receiver.wait_for(|spans| trace_of(spans, trace_id).len() >= 5);
    let trace = trace_of(&spans, trace_id);
    assert_eq!(trace.len(), 5, "{trace:#?}");
    let first = trace
        .iter()
        .find(|(_, span)| span["parent_span_id"] == caller_span)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("hop-1's server span continues the caller's: {trace:#?}"));
    let expected: Vec<(String, u64)> = [
        ("relay-hop-1", SERVER),
        ("relay-hop-1", CLIENT),
        ("relay-hop-2", SERVER),
        ("relay-hop-2", CLIENT),
        ("relay-hop-3", SERVER),
    ]
    .iter()
    .map(|(service, kind)| ((*service).to_owned(), *kind))
    .collect();
    assert_eq!(chain(&trace, &first), expected);
}

/// An OTLP endpoint nobody listens on, from the flag or the environment,
/// costs a warning and a bounded delay — never the command.
#[test]
fn cli_unreachable_collector_costs_only_a_warning() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    for via_env in [false, true] {
        let mut command = support::dslab();
        let endpoint = format!("http://127.0.0.1:{port}");
        if via_env {
            command.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        } else {
            command.args(["--otlp-endpoint", &endpoint]);
        }
        let started = std::time::Instant::now();
        let output = command
            .args(["demo", "trace-propagation"])
            .output()
            .expect("dslab runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "bounded: {:?}",
            started.elapsed()
        );
    }
    let garbled = support::dslab()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")
        .args(["demo", "trace-propagation"])
        .output()
        .expect("dslab runs");
    let stderr = String::from_utf8_lossy(&garbled.stderr);
    assert!(garbled.status.success(), "{stderr}");
    assert!(stderr.contains("not exporting spans"), "{stderr}");
}

/// `dslab hash place` streams `key<TAB>node`, and with the course ring it
/// answers exactly what the lecture's Python does.
#[test]
fn cli_hash_place_matches_the_lecture_python() {
    use std::io::Write;
    let nodes: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
    let mut child = support::dslab()
        .args([
            "hash",
            "place",
            "--strategy",
            "course-ring",
            "--nodes",
            &nodes.join(","),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"key-0\nkey-1\nkey-2\n")
        .expect("writes");
    let output = child.wait_with_output().expect("finishes");
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        "key-0\tnode-2\nkey-1\tnode-7\nkey-2\tnode-8\n"
    );
}

/// Bad input: no members, or an unknown strategy, is refused with a message.
#[test]
fn cli_hash_place_refuses_bad_arguments() {
    let no_nodes = run(&["hash", "place", "--strategy", "ring"]);
    assert_eq!(no_nodes.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_nodes.stderr).contains("--nodes"));
    let unknown = run(&["hash", "place", "--strategy", "spiral", "--nodes", "a"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("maglev"),
        "lists the strategies"
    );
}

/// `dslab hash analyze --all` prints one row per strategy.
#[test]
fn cli_hash_analyze_compares_every_strategy() {
    let output = run(&["hash", "analyze", "--all", "--keys", "5000"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    for strategy in [
        "ring",
        "course-ring",
        "jump",
        "rendezvous",
        "maglev",
        "bounded",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{strategy} "))),
            "{strategy} missing:\n{text}"
        );
    }
}

/// `dslab serve shard-router` places keys for clients and takes membership
/// changes over gRPC.
#[tokio::test]
async fn cli_serve_shard_router_routes_and_changes_membership() {
    use patterns::shard_router::proto::shard_router_client::ShardRouterClient;
    use patterns::shard_router::proto::{AddNodeRequest, RouteRequest};

    let router = Served::start(
        "shard-router",
        &["--strategy", "maglev", "--nodes", "a,b,c"],
    );
    let channel = tonic::transport::Endpoint::from_shared(router.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut client = ShardRouterClient::new(channel);
    let reply = client
        .route(RouteRequest {
            key: b"user-1".to_vec(),
            replication_factor: 2,
        })
        .await
        .expect("routes")
        .into_inner();
    assert!(["a", "b", "c"].contains(&reply.owner.as_str()));
    assert_eq!(reply.replicas.len(), 2);
    let membership = client
        .add_node(AddNodeRequest {
            name: "d".into(),
            weight: 1,
        })
        .await
        .expect("adds")
        .into_inner();
    assert_eq!(membership.nodes.len(), 4);
    assert_eq!(membership.strategy, "maglev");
    drop(client);
    let exited = tokio::task::spawn_blocking(move || router.terminate())
        .await
        .expect("waits");
    assert!(exited, "exits cleanly on SIGTERM");
}

/// `dslab serve flaky` runs the scripted backend; its script can be
/// changed over gRPC, and a bad script is refused with InvalidArgument.
#[tokio::test]
async fn cli_serve_flaky_follows_and_changes_its_script() {
    use resilience::flaky::proto::flaky_client::FlakyClient;
    use resilience::flaky::proto::{CallRequest, Script, StatsRequest};

    let flaky = Served::start("flaky", &["--error-rate", "1.0"]);
    let channel = tonic::transport::Endpoint::from_shared(flaky.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut client = FlakyClient::new(channel);
    let failed = client
        .call(CallRequest::default())
        .await
        .expect_err("error rate 1.0");
    assert_eq!(failed.code(), tonic::Code::Unavailable);
    client
        .configure(Script::default())
        .await
        .expect("a healthy script");
    client
        .call(CallRequest::default())
        .await
        .expect("healthy now");
    let bad = client
        .configure(Script {
            error_rate: 2.0,
            ..Script::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let stats = client
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((stats.calls, stats.served, stats.failed), (2, 1, 1));
    drop(client);
    let exited = tokio::task::spawn_blocking(move || flaky.terminate())
        .await
        .expect("waits");
    assert!(exited);
}

/// Writes `text` to a fresh temporary file and returns its path.
fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("dslab-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

const STALE: &str = concat!(
    r#"{"client":1,"op":"write","key":null,"value":1,"output":"ok","call":0,"return":1}"#,
    "\n",
    r#"{"client":1,"op":"write","key":null,"value":2,"output":"ok","call":2,"return":3}"#,
    "\n",
    r#"{"client":2,"op":"read","key":null,"output":{"value":1},"call":4,"return":5}"#,
    "\n",
);

/// Episode 19. `dslab check` exits 0 for linearizable, 1 for not, and
/// explains; `--json` and `--html` report the same verdict.
#[test]
fn cli_check_exit_codes_follow_the_verdict() {
    let conformance = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/replication/conformance/linearizability"
    );
    assert_eq!(
        run(&["check", &format!("{conformance}/kv/c10-ok.jsonl")])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run(&["check", &format!("{conformance}/kv/c10-bad.jsonl")])
            .status
            .code(),
        Some(1)
    );
    let stale = temp_file("stale.jsonl", STALE);
    let page = std::env::temp_dir().join(format!("dslab-cli-{}-stale.html", std::process::id()));
    let output = run(&[
        "check",
        stale.to_str().expect("utf-8 path"),
        "--json",
        "--html",
        page.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "not_linearizable");
    assert_eq!(report["model"], "register");
    assert_eq!(report["violation"]["blocked"][0]["id"], 2);
    let html = std::fs::read_to_string(&page).expect("timeline written");
    assert!(html.contains("<svg") && html.contains("not linearizable"));
}

/// A search the budget cannot finish exits 2 ("unknown"), never 0.
#[test]
fn cli_check_budget_expiry_exits_unknown() {
    let mut history = String::new();
    for client in 0..40 {
        history.push_str(&format!(r#"{{"client":{client},"op":"write","key":null,"value":{client},"output":"ok","call":0,"return":1000}}"#));
        history.push('\n');
    }
    history.push_str(
        r#"{"client":99,"op":"read","key":null,"output":{"value":999},"call":2000,"return":2001}"#,
    );
    let path = temp_file("pathological.jsonl", &history);
    let output = run(&[
        "check",
        path.to_str().expect("utf-8 path"),
        "--budget",
        "200ms",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stdout(&output).contains("not a pass"));
}

/// Bad input: a malformed line is named, with exit code 3; so is an
/// unknown model or a history that does not fit the chosen model.
#[test]
fn cli_check_bad_input_names_the_line() {
    let broken = temp_file(
        "broken.jsonl",
        &format!("{STALE}{{\"client\":1,\"op\":\"write\",\"call\":9\n"),
    );
    let output = run(&["check", broken.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("line 4"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stale = temp_file("model.jsonl", STALE);
    assert_eq!(
        run(&[
            "check",
            stale.to_str().expect("utf-8 path"),
            "--model",
            "graph"
        ])
        .status
        .code(),
        Some(3)
    );
    assert_eq!(
        run(&[
            "check",
            stale.to_str().expect("utf-8 path"),
            "--model",
            "kv"
        ])
        .status
        .code(),
        Some(3)
    );
    assert_eq!(
        run(&["check", "/no/such/history.jsonl"]).status.code(),
        Some(3)
    );
}

/// A service stopped the moment it announces itself drains and exits 0:
/// its SIGTERM handler is in place before the "listening" line.
#[test]
fn cli_serve_sigterm_right_after_the_announcement_exits_cleanly() {
    for service in ["relay", "flaky", "shard-router", "fenced-store"] {
        for _ in 0..5 {
            let served = Served::start(service, &[]);
            assert!(served.terminate(), "{service} did not exit cleanly");
        }
    }
}
