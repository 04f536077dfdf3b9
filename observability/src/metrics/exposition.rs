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

use std::borrow::Cow;

use super::{MethodStats, RedMetrics, UNKNOWN_METHOD};
use crate::rpc::routes::RouteKind;

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

/// The status code's name as the grpc-ecosystem interceptors write it in
/// `grpc_code` (Go's spelling: `OK`, `Canceled`, `NotFound`), so existing
/// dashboards match.
pub fn code_name(code: usize) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code).copied().unwrap_or("Unknown")
}

/// `grpc_type` as the grpc-ecosystem interceptors name it.
fn type_name(kind: Option<RouteKind>) -> &'static str {
    match kind {
        Some(RouteKind::Unary) => "unary",
        Some(RouteKind::ClientStreaming) => "client_stream",
        Some(RouteKind::ServerStreaming) => "server_stream",
        Some(RouteKind::Bidirectional) => "bidi_stream",
        None => UNKNOWN_METHOD,
    }
}

/// Escapes a label value for the text format (`\`, `"`, newline), which
/// `prometheus-client` leaves to its callers: a name with a quote in it
/// would otherwise end the value and forge series after it.
pub fn escape_label(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// The labels every RED series of a method carries.
fn method_labels(stats: &MethodStats) -> [(&'static str, &str); 3] {
    [
        ("grpc_type", type_name(stats.kind)),
        ("grpc_service", stats.service.as_str()),
        ("grpc_method", stats.method.as_str()),
    ]
}

impl Collector for RedMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Known methods always; the unknown bucket once something hit it.
        let shown = || {
            self.all().filter(|stats| {
                stats.kind.is_some()
                    || stats.started.load(Ordering::Relaxed) > 0
                    || stats.requests() > 0
            })
        };
        let labels = method_labels;
        let mut started = encoder.encode_descriptor(
            "grpc_server_started",
            "Calls begun on the server, by method.",
            None,
            MetricType::Counter,
        )?;
        for stats in shown() {
            ConstCounter::new(stats.started.load(Ordering::Relaxed))
                .encode(started.encode_family(&labels(stats))?)?;
        }
        let mut handled = encoder.encode_descriptor(
            "grpc_server_handled",
            "Calls completed on the server, by method and final status code.",
            None,
            MetricType::Counter,
        )?;
        for stats in shown() {
            for (code, count) in stats.by_code.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                // OK always, so an idle method rates 0; other codes appear
                // with their first call (absent is zero).
                if count == 0 && code != 0 {
                    continue;
                }
                let [kind, service, method] = labels(stats);
                let labels = [kind, service, method, ("grpc_code", code_name(code))];
                ConstCounter::new(count).encode(handled.encode_family(&labels)?)?;
            }
        }
        let mut durations = encoder.encode_descriptor(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its final status (a stream's lifetime).",
            None,
            MetricType::Histogram,
        )?;
        for stats in shown() {
            stats
                .buckets
                .encode(durations.encode_family(&labels(stats))?)?;
        }
        Ok(())
    }
}
