//! RED metrics per gRPC method: Rate, Errors, Duration.
//!
//! Episode: 32, "Metrics & Monitoring" (also 31)
//! Pattern: observability / RED method
//! Try it:  cargo run -- demo trace-propagation
//! Test it: cargo test -p observability red_metrics
//!
//! Three numbers per endpoint answer most "is it healthy?" questions: how
//! many requests arrive, how many fail (by status code, because `NotFound`
//! and `Unavailable` mean different things), and how long they take. Every
//! server built with [`crate::rpc::RpcServer`] records them; nothing in a
//! service has to remember to.
//!
//! Durations go into an HDR histogram (3 significant digits, 1 µs to 1 h),
//! so p99 and max are exact to 0.1 % instead of averaged away.
//!
//! Pitfall: labelling metrics with whatever path a client sends lets one
//! scanner create millions of series (each an HDR histogram of ~190 KB
//! here). Labels come from the server's own route table instead — one
//! per hosted method — and every other path is folded into `unknown`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use tonic::Code;

use crate::rpc::RpcMethod;

/// Label used for every path the server does not host.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Shared, cloneable RED metrics of one server.
#[derive(Clone, Debug, Default)]
pub struct RedMetrics {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    known_methods: HashSet<String>,
    methods: BTreeMap<String, MethodStats>,
}

#[derive(Debug)]
struct MethodStats {
    by_code: BTreeMap<i32, u64>,
    micros: Histogram<u64>,
}

impl MethodStats {
    fn new() -> Self {
        Self {
            by_code: BTreeMap::new(),
            micros: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("bounds 1..1h with 3 digits are valid"),
        }
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
    /// Metrics that label only these methods (`package.Service/Method`)
    /// by name.
    pub fn for_routes<I: IntoIterator<Item = String>>(methods: I) -> Self {
        let metrics = Self::default();
        metrics.lock().known_methods = methods.into_iter().collect();
        metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the counters torn in
        // a way that matters, so keep counting rather than propagate it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one finished request.
    pub fn record(&self, method: &RpcMethod, code: Code, elapsed: Duration) {
        let mut registry = self.lock();
        let name = method.to_string();
        let label = if registry.known_methods.contains(&name) {
            name
        } else {
            UNKNOWN_METHOD.to_owned()
        };
        let stats = registry
            .methods
            .entry(label)
            .or_insert_with(MethodStats::new);
        *stats.by_code.entry(code as i32).or_default() += 1;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats.micros.saturating_record(micros.max(1));
    }

    /// Every method seen so far, sorted by name.
    pub fn snapshot(&self) -> Vec<MethodSnapshot> {
        self.lock()
            .methods
            .iter()
            .map(|(method, stats)| {
                let requests: u64 = stats.by_code.values().sum();
                let ok = stats.by_code.get(&(Code::Ok as i32)).copied().unwrap_or(0);
                MethodSnapshot {
                    method: method.clone(),
                    requests,
                    errors: requests - ok,
                    by_code: stats
                        .by_code
                        .iter()
                        .map(|(&code, &n)| (Code::from_i32(code), n))
                        .collect(),
                    p50: Duration::from_micros(stats.micros.value_at_quantile(0.5)),
                    p99: Duration::from_micros(stats.micros.value_at_quantile(0.99)),
                    max: Duration::from_micros(stats.micros.max()),
                }
            })
            .collect()
    }

    /// Prometheus text exposition: a request counter by method and code,
    /// and a latency summary by method.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let snapshot = self.snapshot();
        out.push_str("# TYPE dslab_rpc_requests_total counter\n");
        for m in &snapshot {
            for (code, count) in &m.by_code {
                let _ = writeln!(
                    out,
                    "dslab_rpc_requests_total{{method=\"{}\",code=\"{code:?}\"}} {count}",
                    m.method
                );
            }
        }
        out.push_str("# TYPE dslab_rpc_duration_seconds summary\n");
        for m in &snapshot {
            for (quantile, value) in [("0.5", m.p50), ("0.99", m.p99), ("1", m.max)] {
                let _ = writeln!(
                    out,
                    "dslab_rpc_duration_seconds{{method=\"{}\",quantile=\"{quantile}\"}} {}",
                    m.method,
                    value.as_secs_f64()
                );
            }
            let _ = writeln!(
                out,
                "dslab_rpc_duration_seconds_count{{method=\"{}\"}} {}",
                m.method, m.requests
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_metrics_count_by_code_and_fold_unknown_methods() {
        let metrics = RedMetrics::for_routes(["pkg.Svc/Get".to_owned()]);
        let known = RpcMethod::from_path("/pkg.Svc/Get");
        metrics.record(&known, Code::Ok, Duration::from_millis(2));
        metrics.record(&known, Code::Ok, Duration::from_millis(4));
        metrics.record(&known, Code::NotFound, Duration::from_millis(100));
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
        let get = snapshot
            .iter()
            .find(|m| m.method == "pkg.Svc/Get")
            .expect("recorded");
        assert_eq!((get.requests, get.errors), (3, 1));
        assert_eq!(get.by_code, vec![(Code::Ok, 2), (Code::NotFound, 1)]);
        assert!(get.p50 >= Duration::from_millis(4) && get.p50 < Duration::from_millis(5));
        assert!(get.max >= Duration::from_millis(100));
        let text = metrics.prometheus();
        assert!(text.contains("dslab_rpc_requests_total{method=\"pkg.Svc/Get\",code=\"Ok\"} 2"));
        assert!(
            text.contains("dslab_rpc_requests_total{method=\"unknown\",code=\"Unimplemented\"} 50")
        );
    }
}
