//! Finished spans kept in memory, for demos and tests that inspect a trace.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::Layer as _;

/// A shared buffer of finished spans (OpenTelemetry's in-memory exporter).
#[derive(Clone, Debug, Default)]
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
}

impl SpanCapture {
    pub fn new() -> Self {
        Self::default()
    }

    /// The exporter to attach to a tracer provider.
    pub fn exporter(&self) -> InMemorySpanExporter {
        self.exporter.clone()
    }

    /// Every span finished since the last [`clear`](Self::clear), in the
    /// order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        // The in-memory exporter only fails once shut down, and nothing
        // here shuts it down; an empty list is the honest answer then.
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    pub fn clear(&self) {
        self.exporter.reset();
    }

    /// A tracing layer exporting this process's spans to this capture.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(self.exporter())
            .build();
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("dslab"))
            .with_filter(super::span_filter())
    }
}
