//! Episode 32: every `dslab serve` process exposes `/metrics`, and a real
//! Prometheus scraping two of them computes the rate and error ratio the
//! load generator produced.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use resilience::flaky::proto::CallRequest;
use resilience::flaky::proto::flaky_client::FlakyClient;

use super::support::{self, Served};

/// `GET path` over HTTP/1.0; the status code and body, or why not.
fn try_http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: dslab\r\n\r\n")?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|error| panic!("GET {addr}{path}: {error}"))
}

/// The value of the sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn flaky_client(served: &Served) -> FlakyClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(served.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    FlakyClient::new(channel)
}

const CALL_OK: &str = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="resilience.v1.Flaky",grpc_method="Call",grpc_code="OK"}"#;
const CALL_UNAVAILABLE: &str = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="resilience.v1.Flaky",grpc_method="Call",grpc_code="Unavailable"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_exposes_red_metrics_per_method_and_code() {
    let (flaky, metrics) = Served::start_metered("flaky", &["--error-rate", "1.0"]);
    let mut client = flaky_client(&flaky).await;
    for _ in 0..7 {
        let failed = client.call(CallRequest::default()).await;
        assert_eq!(
            failed.map_err(|s| s.code()).err(),
            Some(tonic::Code::Unavailable)
        );
    }
    // A scanner's made-up methods share one `unknown` series.
    let channel = tonic::transport::Endpoint::from_shared(flaky.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    for i in 0..50 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::try_from(format!("/scan{i}.S/M{i}")).expect("path");
        let _ = grpc
            .unary::<(), (), _>(
                tonic::Request::new(()),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await;
    }
    let (status, text) = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics"))
        .await
        .expect("scraped");
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, CALL_UNAVAILABLE), Some(7.0), "{text}");
    assert_eq!(
        sample(&text, CALL_OK),
        Some(0.0),
        "no call succeeded; the series exists anyway"
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"}"#
        ),
        Some(50.0),
        "{text}"
    );
    assert!(!text.contains("scan"), "a client's path became a label");
    // What the service itself knows: the script failed all seven.
    let name = flaky.addr.to_string();
    assert_eq!(
        sample(
            &text,
            &format!(r#"flaky_calls_total{{backend="{name}",outcome="failed"}}"#)
        ),
        Some(7.0),
        "{text}"
    );
    assert!(
        tokio::task::spawn_blocking(move || flaky.terminate())
            .await
            .expect("waits")
    );
}

#[test]
fn cli_serve_metrics_follow_opentelemetry_variables_and_refuse_bad_ones() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let mut command = support::dslab();
    command
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", port.to_string());
    let relay = Served::start_with(command, "relay", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, text) = loop {
        match try_http_get(([127, 0, 0, 1], port).into(), "/metrics") {
            Ok(answer) => break answer,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => panic!("no metrics endpoint on the port the variables named"),
        }
    };
    assert_eq!(status, 200);
    assert!(
        // No Accept header: the classic text format.
        text.contains("# TYPE grpc_server_handled_total counter"),
        "{text}"
    );
    drop(relay);

    let refused = support::dslab()
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "ninety")
        .args(["serve", "relay", "--listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_PROMETHEUS_PORT"), "{stderr}");
}

/// A Prometheus server on 127.0.0.1, scraping `targets` every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on a free port. The port is free when chosen but
    /// may be taken before Prometheus binds it (tests run side by side), so
    /// a Prometheus that exits early is started again on another port.
    fn start(targets: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: dslab\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config written");
        let log_path = dir.path().join("prometheus.log");
        let mut attempts = 0;
        let (child, addr) = loop {
            attempts += 1;
            let free = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
            let addr = free.local_addr().expect("addr");
            drop(free);
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join(format!("data-{attempts}")).display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("prometheus runs (Debian package `prometheus`)");
            let deadline = Instant::now() + Duration::from_secs(60);
            let exited = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if try_http_get(addr, "/-/ready").is_ok_and(|(status, _)| status == 200) {
                    break None;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("prometheus never became ready on {addr}; its log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            match exited {
                None => break (child, addr),
                Some(status) if attempts < 3 => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    eprintln!("prometheus exited ({status}) on {addr}; starting it again:\n{log}");
                }
                Some(status) => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("prometheus exited ({status}) {attempts} times; its log:\n{log}");
                }
            }
        };
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Waits until `count` targets have been scraped and are up.
    fn wait_for_targets(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.query(r#"sum(up{job="dslab"})"#) != Some(count as f64) {
            assert!(
                Instant::now() < deadline,
                "Prometheus never scraped {count} targets"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant PromQL query's single value.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls made and calls failed, as the load generator saw them.
#[derive(Default)]
struct Seen {
    calls: u64,
    failed: u64,
}

/// Episode 32, against a real Prometheus (Debian's `prometheus` 2.42): two
/// Flaky backends, one failing 30 % of calls, take 40 calls a second each;
/// PromQL over Prometheus's HTTP API must find the rate and the error
/// ratio the generator produced, and the exact totals once it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus (.ci/run installs it)"]
async fn interop_prometheus_scrapes_request_rate_and_error_ratio() {
    let (healthy, healthy_metrics) = Served::start_metered("flaky", &[]);
    let (failing, failing_metrics) = Served::start_metered("flaky", &["--error-rate", "0.3"]);
    let prometheus =
        tokio::task::spawn_blocking(move || Prometheus::start(&[healthy_metrics, failing_metrics]))
            .await
            .expect("started");
    // Prometheus picks up its targets a few seconds after it is ready; a
    // load started before the first scrape would leave the rate window
    // half empty.
    tokio::task::block_in_place(|| prometheus.wait_for_targets(2));
    let mut clients = [flaky_client(&healthy).await, flaky_client(&failing).await];
    const PER_SECOND: u64 = 40;
    const LOAD: Duration = Duration::from_secs(14);
    let mut seen = Seen::default();
    let mut during = None;
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    while started.elapsed() < LOAD {
        tick.tick().await;
        for client in &mut clients {
            seen.calls += 1;
            if client.call(CallRequest::default()).await.is_err() {
                seen.failed += 1;
            }
        }
        // Well into the load, with a full window of scrapes behind it.
        if during.is_none() && started.elapsed() >= Duration::from_secs(11) {
            let observed = seen.failed as f64 / seen.calls as f64;
            let (rate, ratio) = tokio::task::block_in_place(|| {
                (
                    prometheus.query(r#"sum(rate(grpc_server_handled_total{grpc_method="Call"}[8s]))"#),
                    prometheus.query(
                        r#"sum(rate(grpc_server_handled_total{grpc_method="Call",grpc_code!="OK"}[8s])) / sum(rate(grpc_server_handled_total{grpc_method="Call"}[8s]))"#,
                    ),
                )
            });
            during = Some((rate, ratio, observed));
        }
    }
    let (rate, ratio, observed) = during.expect("queried during the load");
    let rate = rate.expect("a request rate");
    let ratio = ratio.expect("an error ratio");
    let offered = (2 * PER_SECOND) as f64;
    assert!(
        (rate - offered).abs() < offered * 0.25,
        "Prometheus saw {rate:.1} calls/s; the generator offered {offered}"
    );
    assert!(
        (ratio - observed).abs() < 0.06 && (ratio - 0.15).abs() < 0.08,
        "Prometheus's error ratio {ratio:.3}; the generator saw {observed:.3}"
    );
    // Two more scrapes, then the totals are exact.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (total, failed, up) = tokio::task::block_in_place(|| {
        (
            prometheus.query(r#"sum(grpc_server_handled_total{grpc_method="Call"})"#),
            prometheus.query(
                r#"sum(grpc_server_handled_total{grpc_method="Call",grpc_code="Unavailable"})"#,
            ),
            prometheus.query(r#"sum(up{job="dslab"})"#),
        )
    });
    assert_eq!(up, Some(2.0), "both targets are up");
    // Prometheus's own linter accepts the page as served.
    let page = http_get(healthy_metrics, "/metrics").1;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool comes with Debian's prometheus");
    promtool
        .stdin
        .take()
        .expect("piped")
        .write_all(page.as_bytes())
        .expect("written");
    let linted = promtool.wait_with_output().expect("promtool runs");
    assert!(
        linted.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );
    assert_eq!(total, Some(seen.calls as f64), "every call counted once");
    assert_eq!(
        failed,
        Some(seen.failed as f64),
        "every failure counted once"
    );
}

/// Admission control on any served service: the bulkhead and the rate
/// limit refuse with RESOURCE_EXHAUSTED, and `/metrics` counts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_admission_refuses_over_its_limits_and_counts_it() {
    let (flaky, metrics) =
        Served::start_metered("flaky", &["--latency-ms", "400", "--max-concurrent", "2"]);
    let client = flaky_client(&flaky).await;
    let calls = (0..5).map(|_| {
        let mut client = client.clone();
        async move {
            client
                .call(CallRequest::default())
                .await
                .map(drop)
                .map_err(|s| s.code())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let refused = results
        .iter()
        .filter(|r| **r == Err(tonic::Code::ResourceExhausted))
        .count();
    assert_eq!((results.len() - refused, refused), (2, 3), "{results:?}");
    let (_, text) = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics"))
        .await
        .expect("scraped");
    assert_eq!(
        sample(&text, r#"bulkhead_refused_total{bulkhead="admission"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"bulkhead_capacity{bulkhead="admission"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_type="unary",grpc_service="resilience.v1.Flaky",grpc_method="Call",grpc_code="ResourceExhausted"}"#
        ),
        Some(3.0),
        "local refusals are still calls the server answered"
    );
    drop(flaky);

    let (limited, metrics) = Served::start_metered("flaky", &["--rate-limit", "2"]);
    let mut client = flaky_client(&limited).await;
    let mut refused = 0;
    for _ in 0..5 {
        if let Err(status) = client.call(CallRequest::default()).await {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted);
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "a burst of two, then refusals");
    let (_, text) = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics"))
        .await
        .expect("scraped");
    assert_eq!(
        sample(&text, r#"rate_limiter_refused_total{limiter="admission"}"#),
        Some(3.0),
        "{text}"
    );

    let raft = support::run(&[
        "serve",
        "raft-kv",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--max-concurrent",
        "4",
    ]);
    assert!(!raft.status.success());
    assert!(String::from_utf8_lossy(&raft.stderr).contains("not for raft-kv"));
    let zero = support::run(&[
        "serve",
        "flaky",
        "--listen",
        "127.0.0.1:0",
        "--max-concurrent",
        "0",
    ]);
    assert!(
        !zero.status.success(),
        "a bulkhead of zero slots is refused"
    );
}
