//! Telemetry: logs for humans, spans for machines.
//!
//! Episode: 31, "Distributed Tracing Systems" (also 33)
//! Pattern: observability / tracing pipeline
//! Try it:  cargo run -- --otlp-endpoint http://127.0.0.1:4317 demo trace-propagation
//! Test it: cargo test -p observability telemetry_
//!
//! Code instruments itself once, with `tracing`. Where the events go is
//! decided here: log lines on stderr filtered by `RUST_LOG` — human-readable,
//! or one JSON object per line joined to its trace ([`json_logs`]) — and
//! spans through OpenTelemetry to an OTLP collector (Jaeger, Tempo, the
//! OpenTelemetry Collector) when an endpoint is configured, or into memory
//! for demos and tests that want to look at the trace they just made.
//! Which spans are recorded and exported is the sampler's call
//! ([`crate::sampling`]): a head sampler on the tracer provider, and
//! optionally tail sampling in front of the OTLP exporter.
//!
//! The standard variables are honoured: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (the CLI's `--otlp-endpoint`), `OTEL_SERVICE_NAME` (overrides the
//! command's own service name), `OTEL_RESOURCE_ATTRIBUTES` (added to the
//! resource), `OTEL_EXPORTER_OTLP_TIMEOUT` (per export),
//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (read by the CLI into
//! [`TelemetryConfig::sampling`]). When one process hosts several services,
//! each span is exported as its own service's ([`service`]).
//!
//! Pitfall: filtering everything with `RUST_LOG` would also throw away the
//! spans a trace needs; the filter applies to the log lines only.
//!
//! Pitfall: OpenTelemetry's OTLP exporter opens a tonic channel, which
//! needs a tokio runtime; [`init`] must run inside one, and
//! [`Telemetry::shutdown`] must run before that runtime stops.

mod capture;
pub mod export;
pub mod json_logs;
pub mod service;
pub mod span_tree;
#[cfg(any(test, feature = "sim"))]
mod testing;

pub use capture::SpanCapture;
pub use json_logs::{JsonLogLayer, LogFormat};
#[cfg(any(test, feature = "sim"))]
pub use testing::{
    CaptureGuard, LogCapture, LogGuard, capture_for_test, capture_json_logs_for_test,
    capture_sampled_for_test, finished_span,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::sampling::{SamplingConfig, TailHandle, TailSamplingProcessor};
use crate::{Error, Result};

/// Where telemetry goes.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans, unless `OTEL_SERVICE_NAME` says
    /// otherwise.
    pub service_name: String,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<String>,
    /// Log filter used when `RUST_LOG` is unset, e.g. `warn` or `info`.
    pub default_log_filter: String,
    /// Keep finished spans in memory (for demos that show their trace).
    pub capture_spans: bool,
    /// Which traces are recorded and exported ([`crate::sampling`]).
    pub sampling: SamplingConfig,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
}

/// Installed telemetry; flushes exporters when shut down.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    capture: Option<SpanCapture>,
    service_name: String,
    tail: Option<TailHandle>,
}

impl Telemetry {
    /// The in-memory span capture, when configured.
    pub fn capture(&self) -> Option<&SpanCapture> {
        self.capture.as_ref()
    }

    /// This process's `service.name`, as exported.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The tail sampler in front of the OTLP exporter, when configured.
    pub fn tail_sampler(&self) -> Option<&TailHandle> {
        self.tail.as_ref()
    }

    /// Exports what is still buffered, waiting at most
    /// [`export::FLUSH_TIMEOUT`]. Call before the runtime stops.
    pub fn shutdown(self) -> Result<()> {
        self.provider
            .shutdown_with_timeout(export::FLUSH_TIMEOUT)
            .map_err(|err| Error::Telemetry(err.to_string()))
    }
}

/// The service name from this process's environment (see
/// [`resolve_service_name`]).
fn service_name(default: &str) -> String {
    resolve_service_name(
        default,
        std::env::var("OTEL_SERVICE_NAME").ok().as_deref(),
        std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().as_deref(),
    )
}

/// The service name, in the order OpenTelemetry's specification gives:
/// `OTEL_SERVICE_NAME`, then `service.name` in `OTEL_RESOURCE_ATTRIBUTES`,
/// then the command's own (`default`). Blank values count as unset.
pub fn resolve_service_name(
    default: &str,
    otel_service_name: Option<&str>,
    resource_attributes: Option<&str>,
) -> String {
    let set = |name: &str| Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    let from_attributes = || {
        resource_attributes.and_then(|attributes| {
            attributes.split(',').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key.trim() == "service.name").then(|| set(value)).flatten()
            })
        })
    };
    otel_service_name
        .and_then(set)
        .or_else(from_attributes)
        .unwrap_or_else(|| default.to_owned())
}

/// `http://host:port` from what users write: the OTLP spec asks for a
/// URL, and `localhost:4317` is what many type.
fn endpoint_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim();
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// Which spans become OpenTelemetry spans: dslab's own at `info` and
/// above. The libraries underneath (h2, hyper, tower, the simulator) trace
/// their internals in spans too; exported, they would bury the RPC spans
/// and — worse — become their parents.
pub fn span_filter() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets(
            ["h2", "hyper", "hyper_util", "tower", "tonic", "turmoil"]
                .map(|t| (t, LevelFilter::OFF)),
        )
}

/// Installs the process-wide subscriber. Call once, from `main`, inside a
/// tokio runtime. An OTLP endpoint that cannot be used costs a warning,
/// never the command.
pub fn init(config: TelemetryConfig) -> Result<Telemetry> {
    let service_name = service_name(&config.service_name);
    // `Resource::builder` reads `OTEL_RESOURCE_ATTRIBUTES`.
    let resource = Resource::builder()
        .with_service_name(service_name.clone())
        .build();
    let mut provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(config.sampling.head_sampler());
    // The capture is the demo's own view of what it just did: it sees
    // every span the head sampler recorded. Tail sampling decides what
    // leaves the process, so it sits in front of the exporter only.
    let capture = config.capture_spans.then(SpanCapture::new);
    if let Some(capture) = &capture {
        provider = provider.with_simple_exporter(capture.exporter());
    }
    let mut unusable = None;
    let mut tail = None;
    if let Some(endpoint) = config
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        let endpoint = endpoint_url(endpoint);
        match export::PerServiceExporter::new(&endpoint, resource, service_name.clone()) {
            Ok(exporter) => {
                let batch = BatchSpanProcessor::builder(exporter).build();
                match &config.sampling.tail {
                    Some(policy) => {
                        let sampler = TailSamplingProcessor::new(policy.clone(), batch);
                        tail = Some(sampler.handle());
                        provider = provider.with_span_processor(sampler);
                    }
                    None => provider = provider.with_span_processor(batch),
                }
            }
            Err(err) => unusable = Some(err),
        }
    }
    let provider = provider.build();
    let log_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.default_log_filter));
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => JsonLogLayer::new(service_name.clone(), std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("dslab"))
        .with_filter(span_filter());
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|err| Error::Telemetry(err.to_string()))?;
    if let Some(err) = unusable {
        tracing::warn!("not exporting spans: {err}");
    }
    Ok(Telemetry {
        provider,
        capture,
        service_name,
        tail,
    })
}

#[cfg(test)]
mod tests {
    use super::resolve_service_name;

    /// Episode 31. `OTEL_SERVICE_NAME` wins, then `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, then the command's own name; blank
    /// values count as unset.
    #[test]
    fn telemetry_service_name_follows_the_specification_order() {
        let attributes = Some("deployment.environment=lab, service.name = checkout ");
        assert_eq!(
            resolve_service_name("relay-hop-1", Some("payments"), attributes),
            "payments"
        );
        assert_eq!(
            resolve_service_name("relay-hop-1", Some("  "), attributes),
            "checkout"
        );
        assert_eq!(
            resolve_service_name("relay-hop-1", None, Some("service.name=")),
            "relay-hop-1"
        );
        assert_eq!(
            resolve_service_name("relay-hop-1", None, Some("garbage")),
            "relay-hop-1"
        );
        assert_eq!(resolve_service_name("dslab", None, None), "dslab");
    }
}
