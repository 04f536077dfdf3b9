use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use super::endpoint::{MAX_BUFFER_BYTES, MAX_CONNECTIONS, MetricsEndpoint};
use super::*;
use crate::rpc::routes::RouteKind;

fn get_metrics() -> RedMetrics {
    let metrics = RedMetrics::for_routes([
        ("pkg.Svc/Get".to_owned(), RouteKind::Unary),
        ("pkg.Svc/Watch".to_owned(), RouteKind::Bidirectional),
    ]);
    let known = RpcMethod::from_path("/pkg.Svc/Get");
    for _ in 0..3 {
        metrics.start(&known);
    }
    metrics.record(&known, Code::Ok, Duration::from_millis(2));
    metrics.record(&known, Code::Ok, Duration::from_millis(4));
    metrics.record(&known, Code::NotFound, Duration::from_millis(100));
    metrics
}

#[test]
fn red_metrics_count_by_code_and_fold_unknown_methods() {
    let metrics = get_metrics();
    for i in 0..25 {
        for path in [format!("/scan{i}.X/Y"), format!("/pkg.Svc/Made{i}")] {
            metrics.record(
                &RpcMethod::from_path(&path),
                Code::Unimplemented,
                Duration::ZERO,
            );
        }
    }
    let snapshot = metrics.snapshot();
    assert_eq!(
        snapshot.len(),
        2,
        "bogus services and made-up methods of a real one share one label"
    );
    let get = &snapshot[0];
    assert_eq!(get.method, "pkg.Svc/Get");
    assert_eq!((get.requests, get.errors), (3, 1));
    assert_eq!(get.by_code, vec![(Code::Ok, 2), (Code::NotFound, 1)]);
    assert!(get.p50 >= Duration::from_millis(4) && get.p50 < Duration::from_millis(5));
    assert!(get.max >= Duration::from_millis(100));
    assert_eq!(snapshot[1].method, UNKNOWN_METHOD);
    assert_eq!(snapshot[1].requests, 50);
}

#[test]
fn red_metrics_exposition_is_openmetrics_with_bounded_series() {
    let metrics = get_metrics();
    for i in 0..1000 {
        metrics.record(
            &RpcMethod::from_path(&format!("/made.Up{i}/X{i}")),
            Code::Unimplemented,
            Duration::ZERO,
        );
    }
    let text = metrics.prometheus();
    for line in [
        "# TYPE grpc_server_started counter",
        r#"grpc_server_started_total{grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get"} 3"#,
        // An idle method's series exist, at zero.
        r#"grpc_server_started_total{grpc_type="bidi_stream",grpc_service="pkg.Svc",grpc_method="Watch"} 0"#,
        r#"grpc_server_handled_total{grpc_type="bidi_stream",grpc_service="pkg.Svc",grpc_method="Watch",grpc_code="OK"} 0"#,
        "# TYPE grpc_server_handled counter",
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get",grpc_code="OK"} 2"#,
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get",grpc_code="NotFound"} 1"#,
        r#"grpc_server_handled_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"} 1000"#,
        "# TYPE grpc_server_handling_seconds histogram",
        r#"grpc_server_handling_seconds_count{grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get"} 3"#,
        // 2 ms and 4 ms are under 5 ms; 100 ms is not.
        r#"grpc_server_handling_seconds_bucket{le="0.005",grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get"} 2"#,
        r#"grpc_server_handling_seconds_bucket{le="+Inf",grpc_type="unary",grpc_service="pkg.Svc",grpc_method="Get"} 3"#,
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    // Started: 3 methods (Get, Watch, unknown); handled: Get OK and
    // NotFound, Watch OK, unknown OK and Unimplemented; 3 histograms of
    // (16 buckets + +Inf + sum + count).
    assert_eq!(
        series,
        3 + 5 + 3 * 19,
        "a thousand made-up methods added series:\n{text}"
    );
}

#[test]
fn red_metrics_label_values_are_escaped() {
    use super::exposition::escape_label;
    assert_eq!(escape_label("hop-1"), "hop-1");
    assert_eq!(
        escape_label("evil\"} 1\nfake{x=\"y\\"),
        "evil\\\"} 1\\nfake{x=\\\"y\\\\"
    );
}

/// Sends raw bytes, returns everything the endpoint answered before
/// closing (or before `wait` passed).
async fn exchange(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn endpoint() -> MetricsEndpoint {
    let registry = MetricsRegistry::new();
    registry.register_collector(get_metrics());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    MetricsEndpoint::spawn(listener, registry).expect("spawns")
}

#[tokio::test]
async fn red_metrics_endpoint_serves_get_and_refuses_the_rest() {
    let endpoint = endpoint().await;
    let addr = endpoint.local_addr();
    let second = Duration::from_secs(2);
    let get = exchange(
        addr,
        b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n",
        second,
    )
    .await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(
        get.contains("application/openmetrics-text") && get.contains("# EOF"),
        "{get}"
    );
    let text = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        second,
    )
    .await;
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    assert!(
        text.contains("# HELP grpc_server_handled_total Calls")
            && text.contains("# TYPE grpc_server_handled_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    assert!(get.contains(r#"grpc_code="NotFound"} 1"#), "{get}");
    let head = exchange(
        addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        second,
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200") && !head.contains("grpc_server"),
        "{head}"
    );
    let post = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        second,
    )
    .await;
    assert!(
        post.starts_with("HTTP/1.1 405") && post.contains("allow: GET, HEAD"),
        "{post}"
    );
    let other = exchange(
        addr,
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        second,
    )
    .await;
    assert!(
        other.starts_with("HTTP/1.1 404") && !other.contains("passwd"),
        "{other}"
    );
    let garbage = exchange(
        addr,
        b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n",
        second,
    )
    .await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    let huge_header = format!(
        "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_BUFFER_BYTES * 4)
    );
    let refused = exchange(addr, huge_header.as_bytes(), second).await;
    assert!(
        !refused.contains("grpc_server"),
        "an oversized request was served"
    );
}

#[tokio::test]
async fn red_metrics_endpoint_evicts_stalled_connections_for_a_scraper() {
    let endpoint = endpoint().await;
    let addr = endpoint.local_addr();
    // Fill every slot with a connection that never sends a request.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).await.expect("connects"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scrape = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(
        scrape.starts_with("HTTP/1.1 200"),
        "a scraper was locked out: {scrape}"
    );
    // The oldest stalled connection made room: it is closed.
    let mut first = idle.remove(0);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), first.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest connection is still open: {read:?}"
    );
}

#[test]
fn red_metrics_process_series_read_this_process() {
    let Some(sample) = process::ProcessSample::read() else {
        return; // no procfs: the collector exports nothing, by design
    };
    assert!(sample.resident_bytes > 1 << 20, "{sample:?}");
    assert!(sample.threads >= 1 && sample.open_fds >= 3, "{sample:?}");
    let registry = MetricsRegistry::new();
    registry.register_collector(process::ProcessMetrics);
    let text = registry.encode();
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_threads ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
}
