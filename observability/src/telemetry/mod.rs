//! Telemetry: logs for humans, spans for machines.
//!
//! Episode: 31, "Distributed Tracing Systems" (also 33)
//! Pattern: observability / tracing pipeline
//! Try it:  cargo run -- --otlp-endpoint http://127.0.0.1:4317 demo trace-propagation
//! Test it: cargo test -p observability telemetry_
//!
//! Code instruments itself once, with `tracing`. Where the events go is
//! decided here: human-readable lines on stderr filtered by `RUST_LOG`, and
//! spans through OpenTelemetry to an OTLP collector (Jaeger, Tempo, the
//! OpenTelemetry Collector) when an endpoint is configured, or into memory
//! for demos and tests that want to look at the trace they just made.
//!
//! Pitfall: filtering everything with `RUST_LOG` would also throw away the
//! spans a trace needs; the filter applies to the log lines only.

mod capture;
pub mod span_tree;

pub use capture::SpanCapture;
#[cfg(any(test, feature = "sim"))]
pub use capture::{CaptureGuard, capture_for_test};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::{Error, Result};

/// Where telemetry goes.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans.
    pub service_name: String,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<String>,
    /// Log filter used when `RUST_LOG` is unset, e.g. `warn` or `info`.
    pub default_log_filter: String,
    /// Keep finished spans in memory (for demos that show their trace).
    pub capture_spans: bool,
}

/// Installed telemetry; flushes exporters when shut down.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    capture: Option<SpanCapture>,
}

impl Telemetry {
    /// The in-memory span capture, when configured.
    pub fn capture(&self) -> Option<&SpanCapture> {
        self.capture.as_ref()
    }

    /// Exports what is still buffered. Call before the process exits.
    pub fn shutdown(self) -> Result<()> {
        self.provider
            .shutdown()
            .map_err(|err| Error::Telemetry(err.to_string()))
    }
}

/// Which spans become OpenTelemetry spans: dslab's own at `info` and
/// above. The libraries underneath (h2, hyper, tower, the simulator) trace
/// their internals in spans too; exported, they would bury the RPC spans
/// and — worse — become their parents.
pub(crate) fn span_filter() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets(
            ["h2", "hyper", "hyper_util", "tower", "tonic", "turmoil"]
                .map(|t| (t, LevelFilter::OFF)),
        )
}

/// Installs the process-wide subscriber. Call once, from `main`.
pub fn init(config: TelemetryConfig) -> Result<Telemetry> {
    let mut provider = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(config.service_name.clone())
            .build(),
    );
    let capture = config.capture_spans.then(SpanCapture::new);
    if let Some(capture) = &capture {
        provider = provider.with_simple_exporter(capture.exporter());
    }
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|err| Error::Telemetry(format!("OTLP exporter for {endpoint}: {err}")))?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let log_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.default_log_filter));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("dslab"))
        .with_filter(span_filter());
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|err| Error::Telemetry(err.to_string()))?;
    Ok(Telemetry { provider, capture })
}
