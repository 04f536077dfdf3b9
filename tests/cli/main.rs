//! The `dslab` command line, run as a process the way an instructor runs it.

#[path = "../support/mod.rs"]
mod support;

use support::{Served, run, stdout};

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

/// Episode 31. `dslab demo trace-propagation` runs three relays, prints the
/// span tree, and every claim it makes holds.
#[test]
fn cli_demo_trace_propagation_holds_its_claims() {
    let output = run(&["demo", "trace-propagation"]);
    let text = stdout(&output);
    assert!(output.status.success(), "demo failed:\n{text}");
    assert!(!text.contains('✘'), "a claim failed:\n{text}");
    assert_eq!(text.matches('✔').count(), 4, "four claims:\n{text}");
    assert_eq!(
        text.matches("└─ server observability.v1.Relay/Forward")
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("trace-propagation  31       4/4"), "{text}");
}

/// `dslab tour` runs every registered demo and ends with a summary row per
/// demo, all ok.
#[test]
fn cli_tour_runs_every_demo_and_summarizes() {
    let output = run(&["tour"]);
    let text = stdout(&output);
    assert!(output.status.success(), "tour failed:\n{text}");
    let summary = &text[text.find("== Summary").expect("summary section")..];
    for demo in dslab::registry::topics().iter().filter_map(|t| t.demo) {
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/grpc_client.py");
    let output = std::process::Command::new("python3")
        .args([script, &relay.addr.to_string()])
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "python client failed:\n{text}");
    assert!(text.contains("health: SERVING"), "{text}");
    assert!(text.contains("service: observability.v1.Relay"), "{text}");
    assert!(text.contains("path: py-target"), "{text}");
    assert!(relay.terminate());
}
