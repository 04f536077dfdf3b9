//! What tracing costs per call (Episode 31), five ways:
//!
//! - `no_tracing`: no subscriber at all; the span macros are disabled;
//! - `sampled_out`: the OpenTelemetry layer with `always_off` — every span
//!   still gets ids and carries context, but is never recorded;
//! - `sampled_in`: `always_on`, recorded, then discarded at the end (no
//!   processor): the cost of recording alone;
//! - `exported`: `always_on` through OpenTelemetry's batch span processor
//!   to a no-op exporter (counts spans, sends nothing): the full in-process
//!   cost without a network;
//! - `tail_then_exported`: the same behind dslab's tail sampler (keep 10 %).
//!
//! Two call paths:
//! - `span_path`: a client span, `traceparent` injected into gRPC headers,
//!   extracted by the "server", a server span continuing it, status
//!   recorded on both — what the RPC stack does per call, without a socket;
//! - `loopback_rpc`: a real unary `Relay/Forward` call through dslab's
//!   client and server stack on 127.0.0.1, one call at a time (client and
//!   server on one current-thread runtime, so one subscriber sees both).
//!
//! cargo bench -p observability --bench tracing_overhead

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::Dispatch;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

use observability::relay::Relay;
use observability::relay::proto::relay_client::RelayClient;
use observability::relay::proto::{FILE_DESCRIPTOR_SET, ForwardRequest};
use observability::rpc::{ClientBuilder, Net, RpcServer, trace_context};
use observability::sampling::{TailPolicy, TailSamplingProcessor};
use observability::telemetry::span_filter;

/// An exporter that counts what reaches it and sends nothing.
#[derive(Debug)]
struct Counting(Arc<AtomicU64>);

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

const MODES: [&str; 5] = [
    "no_tracing",
    "sampled_out",
    "sampled_in",
    "exported",
    "tail_then_exported",
];

/// The subscriber for `mode`, its provider (to flush) and its export count.
fn setup(mode: &str) -> (Dispatch, Option<SdkTracerProvider>, Arc<AtomicU64>) {
    let exported = Arc::new(AtomicU64::new(0));
    let builder = SdkTracerProvider::builder();
    let batch = || BatchSpanProcessor::builder(Counting(exported.clone())).build();
    let provider = match mode {
        "no_tracing" => return (Dispatch::none(), None, exported),
        "sampled_out" => builder.with_sampler(Sampler::AlwaysOff).build(),
        "sampled_in" => builder.with_sampler(Sampler::AlwaysOn).build(),
        "exported" => builder
            .with_sampler(Sampler::AlwaysOn)
            .with_span_processor(batch())
            .build(),
        _ => builder
            .with_sampler(Sampler::AlwaysOn)
            .with_span_processor(TailSamplingProcessor::new(TailPolicy::default(), batch()))
            .build(),
    };
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bench"))
        .with_filter(span_filter());
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    (dispatch, Some(provider), exported)
}

/// One call's worth of spans and propagation, as the RPC stack does it.
fn span_path(headers: &mut http::HeaderMap) {
    let client = tracing::info_span!(
        "rpc.client",
        otel.name = "observability.v1.Relay/Forward",
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.grpc.status_code = Empty,
    );
    trace_context::inject(&client.context(), headers);
    let server = tracing::info_span!(
        parent: None,
        "rpc.server",
        otel.name = "observability.v1.Relay/Forward",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.grpc.status_code = Empty,
    );
    let _ = server.set_parent(trace_context::extract(headers));
    server.in_scope(|| std::hint::black_box(&server).record("rpc.grpc.status_code", 0));
    client.record("rpc.grpc.status_code", 0);
}

fn report(mode: &str, provider: Option<SdkTracerProvider>, exported: &AtomicU64) {
    if let Some(provider) = provider {
        let _ = provider.shutdown();
    }
    eprintln!(
        "  {mode}: {} spans reached the exporter",
        exported.load(Ordering::Relaxed)
    );
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing_overhead/span_path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for mode in MODES {
        let (dispatch, provider, exported) = setup(mode);
        let mut headers = http::HeaderMap::new();
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(mode, |b| b.iter(|| span_path(&mut headers)));
        });
        report(mode, provider, &exported);
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async {
        RpcServer::new()
            .add_service(
                Relay::new("bench", None).into_service(),
                FILE_DESCRIPTOR_SET,
            )
            .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("loopback binds")
            .spawn()
    });
    let mut client = runtime.block_on(async {
        RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()))
    });
    let mut group = c.benchmark_group("tracing_overhead/loopback_rpc");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for mode in MODES {
        let (dispatch, provider, exported) = setup(mode);
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(mode, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let request = ForwardRequest {
                                payload: "bench".into(),
                                visited: Vec::new(),
                            };
                            client.forward(request).await.expect("healthy relay");
                        }
                        started.elapsed()
                    })
                })
            });
        });
        report(mode, provider, &exported);
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
