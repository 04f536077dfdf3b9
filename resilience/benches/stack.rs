//! What the resilience stack adds to a real unary tonic call on loopback.
//!
//! Three clients call the same healthy `Flaky` on 127.0.0.1, one call at
//! a time (latency, not throughput):
//! - `tonic_channel`: a plain tonic `Channel`;
//! - `rpc_channel`: dslab's client stack (span, trace context, deadline);
//! - `full_stack`: retry + circuit breaker + timeout + bulkhead on top.
//!
//! `full_stack / rpc_channel` is the resilience overhead.
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
    let mut group = c.benchmark_group("stack");
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

criterion_group!(benches, stack);
criterion_main!(benches);
