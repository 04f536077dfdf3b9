//! What dslab's RPC stack and the resilience layers add to a real unary
//! tonic call on loopback, against a zero-latency backend (a healthy
//! `Flaky`, which answers without sleeping), one call at a time (latency,
//! not throughput):
//!
//! `stack_client` — the same dslab server, three clients:
//! - `tonic_channel`: a plain tonic `Channel`;
//! - `rpc_channel`: dslab's client stack (span, trace context, deadline);
//! - `full_stack`: retry + circuit breaker + timeout + bulkhead on top.
//!
//! `stack_server` — a plain tonic client, two servers hosting the same
//! service: a plain tonic `Server` and dslab's `RpcServer` (span, metrics,
//! limits, health, reflection).
//!
//! `metrics_exposition` — dslab's server with RED metrics off, on, and on
//! while `/metrics` is scraped ten times a second.
//!
//! cargo bench -p resilience --bench stack

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use resilience::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use resilience::circuit_breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer};
use resilience::flaky::proto::flaky_client::FlakyClient;
use resilience::flaky::proto::{CallRequest, FILE_DESCRIPTOR_SET};
use resilience::flaky::{Behaviour, Flaky};
use resilience::retry::{Idempotency, RetryLayer, RetryPolicy};
use resilience::timeout::TimeoutLayer;
use tower::ServiceBuilder;

fn stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async {
        RpcServer::new()
            .add_service(
                Flaky::new("bench", Behaviour::healthy()).into_service(),
                FILE_DESCRIPTOR_SET,
            )
            .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("loopback binds")
            .spawn()
    });
    let uri = server.uri();
    let mut group = c.benchmark_group("stack_client");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let tonic_channel = runtime
        .block_on(tonic::transport::Endpoint::from(uri.clone()).connect())
        .expect("connects");
    let mut plain = FlakyClient::new(tonic_channel);
    group.bench_function("tonic_channel", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    plain.call(CallRequest::default()).await.expect("healthy");
                }
                started.elapsed()
            })
        })
    });

    let rpc_channel =
        runtime.block_on(async { ClientBuilder::new(Net::Tcp).connect_lazy(uri.clone()) });
    let mut traced = FlakyClient::new(rpc_channel.clone());
    group.bench_function("rpc_channel", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    traced.call(CallRequest::default()).await.expect("healthy");
                }
                started.elapsed()
            })
        })
    });

    let full = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new(Idempotency::AllMethods)).expect("valid"))
        .layer(CircuitBreakerLayer::new(
            CircuitBreaker::new(BreakerConfig::new("bench")).expect("valid"),
        ))
        .layer(TimeoutLayer::new(Duration::from_secs(1)).expect("valid"))
        .layer(BulkheadLayer::new(
            Bulkhead::new(BulkheadConfig {
                name: "bench".into(),
                max_concurrent: 64,
                max_wait: Duration::ZERO,
            })
            .expect("valid"),
        ))
        .service(rpc_channel);
    let mut guarded = FlakyClient::new(full);
    group.bench_function("full_stack", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    guarded.call(CallRequest::default()).await.expect("healthy");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    drop(server);
}

/// Times sequential calls from a plain tonic client to the server at `uri`.
fn plain_calls(
    runtime: &tokio::runtime::Runtime,
    uri: http::Uri,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
) {
    let channel = runtime
        .block_on(tonic::transport::Endpoint::from(uri).connect())
        .expect("connects");
    let mut client = FlakyClient::new(channel);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    client.call(CallRequest::default()).await.expect("healthy");
                }
                started.elapsed()
            })
        })
    });
}

fn server_stacks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let flaky = || Flaky::new("bench", Behaviour::healthy()).into_service();
    let (plain_addr, _plain) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("bound");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(flaky())
                .serve_with_incoming(incoming),
        );
        (addr, task)
    });
    let dslab = runtime.block_on(async {
        RpcServer::new()
            .add_service(flaky(), FILE_DESCRIPTOR_SET)
            .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("loopback binds")
            .spawn()
    });
    let mut group = c.benchmark_group("stack_server");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let plain_uri: http::Uri = format!("http://{plain_addr}").parse().expect("uri");
    plain_calls(&runtime, plain_uri, &mut group, "tonic_server");
    plain_calls(&runtime, dslab.uri(), &mut group, "rpc_server");
    group.finish();
    drop(dslab);
}

/// Episode 32's overhead question: dslab's server with RED metrics off, on,
/// and on while a scraper reads `/metrics` ten times a second (Prometheus
/// scrapes every 15 s by default).
fn metrics_exposition(c: &mut Criterion) {
    use observability::metrics::MetricsRegistry;
    use observability::metrics::endpoint::MetricsEndpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = |record: bool| {
        runtime.block_on(async {
            RpcServer::new()
                .add_service(
                    Flaky::new("bench", Behaviour::healthy()).into_service(),
                    FILE_DESCRIPTOR_SET,
                )
                .record_metrics(record)
                .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .expect("loopback binds")
                .spawn()
        })
    };
    let off = server(false);
    let on = server(true);
    let scraped = server(true);
    let (_endpoint, _scraper) = runtime.block_on(async {
        let registry = MetricsRegistry::new();
        registry.register_collector(scraped.metrics());
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
        let endpoint = MetricsEndpoint::spawn(listener, registry).expect("serves");
        let addr = endpoint.local_addr();
        let scraper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let _ = stream
                    .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
                    .await;
                let mut page = Vec::new();
                let _ = stream.read_to_end(&mut page).await;
            }
        });
        (endpoint, scraper)
    });
    let mut group = c.benchmark_group("metrics_exposition");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    plain_calls(&runtime, off.uri(), &mut group, "metrics_off");
    plain_calls(&runtime, on.uri(), &mut group, "metrics_on");
    plain_calls(
        &runtime,
        scraped.uri(),
        &mut group,
        "metrics_on_scraped_10hz",
    );
    group.finish();
    // Off really is off: that server recorded nothing.
    assert!(off.metrics().snapshot().is_empty(), "metrics were off");
}

/// The work metrics add to each call, alone: counting its start and its
/// end (a counter per code, a bucket histogram, an HDR histogram) on a
/// server with 16 methods. A loopback call costs thousands of times more,
/// so this bounds the share metrics can take of it far more tightly than
/// timing whole calls on a noisy machine can.
fn metrics_record(c: &mut Criterion) {
    use observability::metrics::RedMetrics;
    use observability::rpc::RpcMethod;
    use observability::rpc::routes::RouteKind;

    let metrics = RedMetrics::for_routes(
        (0..16).map(|i| (format!("bench.v1.Service/Method{i}"), RouteKind::Unary)),
    );
    let method = RpcMethod::from_path("/bench.v1.Service/Method7");
    let mut group = c.benchmark_group("metrics_record");
    group.bench_function("start_and_record", |b| {
        b.iter(|| {
            metrics.start(std::hint::black_box(&method));
            metrics.record(&method, tonic::Code::Ok, Duration::from_micros(250));
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    stack,
    server_stacks,
    metrics_exposition,
    metrics_record
);
criterion_main!(benches);
