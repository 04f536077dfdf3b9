//! How every dslab call is carried and seen (Module 6, Episodes 31–36).
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 31 Distributed Tracing | [`rpc`] | the one RPC stack: W3C trace context in gRPC metadata, client and server spans, deadlines, size limits, health, reflection |
//! | 31 Distributed Tracing | [`relay`] | `Relay`, a hop that forwards down a chain: the service the trace demo runs on |
//! | 31 Distributed Tracing | [`telemetry`] | tracing + OpenTelemetry setup, OTLP export, span capture and span trees |
//! | 31 Distributed Tracing | [`sampling`] | head sampling (ratio, parent-based, rate-limited) and tail sampling that keeps every error and slow trace; the blind 1 % twin |
//! | 33 Log Aggregation | [`telemetry::json_logs`] | `--log-format json`: one JSON object per event, carrying its `trace_id` and `span_id` |
//! | 34 Debugging Distributed Systems | [`critical_path`] | the chain of spans that sets a trace's latency, and the hop that dominates it |
//! | 32 Metrics & Monitoring | [`metrics`] | RED metrics (rate, errors, duration) per gRPC method, Prometheus text |
//! | 32 Metrics & Monitoring, 36 Incident Response | [`slo`] | SLOs and error budgets; multi-window, multi-burn-rate alerts (the SRE workbook's) and the single-threshold twin |
//! | 32 Metrics & Monitoring | [`plot`] | line charts as SVG, for the demos that draw (`--svg DIR`) |
//! | 11 Gray Failures, 36 Incident Response | [`gray_failure`] | differential observability: callers' outcomes against the health check; the health-check-only twin |
//! | 35 Performance Profiling | [`profiling`] | a sampling profiler drawing flame graphs (`dslab demo … --flamegraph FILE.svg`) |
//! | 13 FLP & Practical Consensus (also 4, 11) | [`failure_detector`] | heartbeats over gRPC; a fixed timeout and phi accrual, and their trade-off between detection time and false suspicions |
//! | 4 Network Partitions | `sim` | the turmoil harness: named hosts, partitions, crashes, seeds (feature `sim`) |
//! | 34 Debugging Distributed Systems | `fuzz` | a hostile client for every service: malformed, empty, oversized and extreme messages (feature `fuzz`) |
//!
//! [`demo`] is how every crate's live demos talk to a terminal audience;
//! [`offload`] runs CPU-heavy work off the async workers.

pub mod critical_path;
pub mod demo;
pub mod error;
pub mod failure_detector;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod gray_failure;
pub mod metrics;
pub mod offload;
pub mod plot;
pub mod profiling;
pub mod relay;
pub mod rpc;
pub mod sampling;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod slo;
pub mod telemetry;

pub use error::{Error, Result};

/// Generated protobuf types and gRPC stubs for `observability.v1`: the
/// relay and the heartbeat monitor.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("observability.v1");

    /// Encoded `FileDescriptorSet` of the protos, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}
