//! One registry per process, encoded on every scrape.
//!
//! Each part of a process that knows something registers a *collector*: the
//! RPC server its [`RedMetrics`], a Raft member its term and indexes, a
//! circuit breaker its state. A collector reads its live state when
//! Prometheus scrapes, so nothing is copied between scrapes and nothing is
//! exported that a scrape would not see.
//!
//! The registry is `prometheus-client`'s, so the text is the OpenMetrics
//! format Prometheus negotiates (`# TYPE`, `# HELP`, `_total`, `# EOF`).

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

use super::RedMetrics;

/// The process's metrics, shared by everything that registers into it and
/// by the scrape endpoint.
#[derive(Clone, Debug, Default)]
pub struct MetricsRegistry {
    registry: Arc<Mutex<Registry>>,
}

impl MetricsRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a collector, read on every scrape. Register each thing once:
    /// collectors are never removed, so a process that registered per
    /// request would grow without bound.
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// Direct access, for metrics kept in `prometheus-client`'s own types
    /// (`Family`, `Counter`, `Gauge`).
    pub fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.lock())
    }

    /// Everything registered, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a collector that fails is a
        // bug in that collector, and the text up to it is still valid
        // enough to show.
        if prometheus_client::encoding::text::encode(&mut text, &self.lock()).is_err() {
            tracing::warn!("a metrics collector failed to encode");
        }
        text
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The gRPC status code's name as the gRPC specification spells it
/// (`OK`, `NOT_FOUND`): what dashboards and `grpc_code` labels use.
pub fn code_name(code: usize) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code).copied().unwrap_or("UNKNOWN")
}

impl Collector for RedMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut requests = encoder.encode_descriptor(
            "rpc_server_requests",
            "Completed gRPC calls by method and final status code.",
            None,
            MetricType::Counter,
        )?;
        for stats in self.all() {
            for (code, count) in stats.by_code.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                // A series appears with its first call; absent is zero.
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("rpc_service", stats.service.as_str()),
                    ("rpc_method", stats.method.as_str()),
                    ("grpc_code", code_name(code)),
                ];
                ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "rpc_server_duration_seconds",
            "Time from a call's arrival to its final status.",
            None,
            MetricType::Histogram,
        )?;
        for stats in self.all().filter(|stats| stats.requests() > 0) {
            let labels = [
                ("rpc_service", stats.service.as_str()),
                ("rpc_method", stats.method.as_str()),
            ];
            stats.buckets.encode(durations.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
