//! RED metrics per gRPC method (Rate, Errors, Duration), exposed to
//! Prometheus.
//!
//! Episode: 32, "Metrics & Monitoring" (also 31, 36)
//! Pattern: observability / RED method, pull-based metrics
//! Try it:  cargo run -- serve relay --listen 127.0.0.1:50051 --metrics-listen 127.0.0.1:9464
//!          curl -s 127.0.0.1:9464/metrics
//! Test it: cargo test -p observability red_metrics
//!
//! Three numbers per endpoint answer most "is it healthy?" questions: how
//! many requests arrive, how many fail (by status code, because `NotFound`
//! and `Unavailable` mean different things), and how long they take. Every
//! server built with [`crate::rpc::RpcServer`] records them; nothing in a
//! service has to remember to.
//!
//! Metrics are *pulled*: the process keeps cumulative counters and a
//! Prometheus server scrapes them ([`endpoint`]) and computes rates itself
//! (`rate(grpc_server_handled_total[1m])`). Counters never reset while the
//! process lives, so a missed scrape loses resolution, never data.
//!
//! What is exported ([`exposition`], through the `prometheus-client`
//! crate), under the names the grpc-ecosystem interceptors (Go, Java,
//! Python) use, so existing gRPC dashboards and alerts work unchanged:
//! - `grpc_server_started_total{grpc_type, grpc_service, grpc_method}` —
//!   calls begun; minus the handled ones, the calls in flight (a long
//!   stream shows here long before it ends);
//! - `grpc_server_handled_total{grpc_type, grpc_service, grpc_method,
//!   grpc_code}` — calls completed, by status (`OK`, `NotFound`, …);
//! - `grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}` —
//!   a histogram with buckets from 100 µs to 10 s ([`DURATION_BUCKETS`]),
//!   which Prometheus can aggregate across processes (summaries'
//!   quantiles cannot be averaged).
//!
//! `grpc_type` (`unary`, `client_stream`, `server_stream`, `bidi_stream`)
//! matters: a stream's "duration" is its lifetime and a stream the client
//! ends normally finishes `Canceled`, so latency and error-ratio queries
//! select `grpc_type="unary"`. Every hosted method's series exist from the
//! start, at zero, so `rate()` says 0 for an idle method rather than
//! nothing.
//!
//! Every served process also exports the usual `process_*` series
//! ([`process`]): CPU seconds, resident memory, open descriptors, threads.
//!
//! In-process readers (demos, tests, the SLO alerts) use [`RedMetrics::
//! snapshot`], whose p50 and p99 come from an HDR histogram (3 significant
//! digits, 1 µs to 1 h) rather than from the coarse buckets.
//!
//! Bound: labels come from the server's own route table — one set per
//! hosted method, times the 17 gRPC codes — and every other path is folded
//! into `unknown`. Pitfall: labelling with whatever path a client sends
//! lets one scanner create millions of series.

pub mod endpoint;
pub mod exposition;
pub mod process;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram as HdrHistogram;
use prometheus_client::metrics::histogram::Histogram;
use tonic::Code;

pub use exposition::MetricsRegistry;

use crate::rpc::RpcMethod;
use crate::rpc::routes::RouteKind;

/// Label used for every path the server does not host.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Upper bounds (seconds) of the duration histogram's buckets: the 1–2.5–5
/// series from 100 µs (a loopback call) to 10 s (a stuck one).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// gRPC has 17 status codes, 0 (`OK`) to 16 (`UNAUTHENTICATED`).
const CODES: usize = 17;

/// Shared, cloneable RED metrics of one server.
#[derive(Clone, Debug, Default)]
pub struct RedMetrics {
    inner: Arc<Methods>,
}

/// One entry per hosted method, fixed when the server starts, so that
/// recording a call takes no lock on the map and allocates nothing.
#[derive(Debug, Default)]
struct Methods {
    /// service → method → its metrics.
    known: HashMap<String, HashMap<String, MethodStats>>,
    unknown: MethodStats,
}

#[derive(Debug)]
struct MethodStats {
    service: String,
    method: String,
    /// `grpc_type`; `None` for the unknown bucket.
    kind: Option<RouteKind>,
    started: AtomicU64,
    by_code: [AtomicU64; CODES],
    buckets: Histogram,
    hdr: Mutex<HdrHistogram<u64>>,
}

impl MethodStats {
    fn new(service: &str, method: &str, kind: Option<RouteKind>) -> Self {
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            kind,
            started: AtomicU64::new(0),
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Histogram::new(DURATION_BUCKETS),
            hdr: Mutex::new(
                HdrHistogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("bounds 1..1h with 3 digits are valid"),
            ),
        }
    }

    fn requests(&self) -> u64 {
        self.by_code.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for MethodStats {
    fn default() -> Self {
        Self::new(UNKNOWN_METHOD, UNKNOWN_METHOD, None)
    }
}

/// A point-in-time view of one method's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSnapshot {
    /// `package.Service/Method`, or [`UNKNOWN_METHOD`].
    pub method: String,
    pub requests: u64,
    /// Requests that did not end `OK`.
    pub errors: u64,
    /// Request counts by final gRPC status code, in code order.
    pub by_code: Vec<(Code, u64)>,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl RedMetrics {
    /// Metrics that label only these methods (`package.Service/Method`,
    /// and how each moves messages) by name.
    pub fn for_routes<I: IntoIterator<Item = (String, RouteKind)>>(methods: I) -> Self {
        let mut known: HashMap<String, HashMap<String, MethodStats>> = HashMap::new();
        for (name, kind) in methods {
            let parsed = RpcMethod::from_path(&name);
            let stats = MethodStats::new(&parsed.service, &parsed.method, Some(kind));
            known
                .entry(parsed.service)
                .or_default()
                .insert(parsed.method, stats);
        }
        Self {
            inner: Arc::new(Methods {
                known,
                unknown: MethodStats::default(),
            }),
        }
    }

    fn stats(&self, method: &RpcMethod) -> &MethodStats {
        self.inner
            .known
            .get(&method.service)
            .and_then(|methods| methods.get(&method.method))
            .unwrap_or(&self.inner.unknown)
    }

    /// Counts one request as begun.
    pub fn start(&self, method: &RpcMethod) {
        self.stats(method).started.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one finished request.
    pub fn record(&self, method: &RpcMethod, code: Code, elapsed: Duration) {
        let stats = self.stats(method);
        let index = usize::try_from(code as i32).unwrap_or(Code::Unknown as usize);
        if let Some(counter) = stats.by_code.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        stats.buckets.observe(elapsed.as_secs_f64());
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats
            .hdr
            .lock()
            // A panic while holding the lock cannot tear a histogram in a
            // way that matters, so keep counting rather than propagate it.
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros.max(1));
    }

    /// Every method with at least one request, sorted by name.
    pub fn snapshot(&self) -> Vec<MethodSnapshot> {
        let mut out: Vec<MethodSnapshot> = self
            .all()
            .filter(|stats| stats.requests() > 0)
            .map(|stats| {
                let by_code: Vec<(Code, u64)> = stats
                    .by_code
                    .iter()
                    .enumerate()
                    .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
                    .filter(|&(_, n)| n > 0)
                    .map(|(code, n)| (Code::from_i32(code as i32), n))
                    .collect();
                let requests: u64 = by_code.iter().map(|(_, n)| n).sum();
                let ok = stats.by_code[Code::Ok as usize].load(Ordering::Relaxed);
                let hdr = stats.hdr.lock().unwrap_or_else(PoisonError::into_inner);
                MethodSnapshot {
                    method: label_name(stats),
                    requests,
                    errors: requests.saturating_sub(ok),
                    by_code,
                    p50: Duration::from_micros(hdr.value_at_quantile(0.5)),
                    p99: Duration::from_micros(hdr.value_at_quantile(0.99)),
                    max: Duration::from_micros(hdr.max()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.method.cmp(&b.method));
        out
    }

    /// Every method's stats, the unknown bucket last.
    fn all(&self) -> impl Iterator<Item = &MethodStats> {
        self.inner
            .known
            .values()
            .flat_map(HashMap::values)
            .chain(std::iter::once(&self.inner.unknown))
    }

    /// This server's metrics alone, in the OpenMetrics text format.
    pub fn prometheus(&self) -> String {
        let registry = MetricsRegistry::new();
        registry.register_collector(self.clone());
        registry.encode()
    }
}

fn label_name(stats: &MethodStats) -> String {
    if stats.service == UNKNOWN_METHOD {
        UNKNOWN_METHOD.to_owned()
    } else {
        format!("{}/{}", stats.service, stats.method)
    }
}
