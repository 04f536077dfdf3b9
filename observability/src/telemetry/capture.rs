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

#[cfg(any(test, feature = "sim"))]
pub use for_tests::{CaptureGuard, capture_for_test};

#[cfg(any(test, feature = "sim"))]
mod for_tests {
    use std::cell::RefCell;
    use std::sync::Once;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    use super::SpanCapture;

    thread_local! {
        static CURRENT: RefCell<Option<SpanCapture>> = const { RefCell::new(None) };
    }

    /// Hands each finished span to the capture of the thread that ended it.
    #[derive(Debug)]
    struct ThreadRouter;

    impl SpanExporter for ThreadRouter {
        fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            let target =
                CURRENT.with(|current| current.borrow().as_ref().map(SpanCapture::exporter));
            async move {
                match target {
                    Some(exporter) => exporter.export(batch).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Captures the spans this thread finishes until the guard drops. Logs
    /// go to the test output (`RUST_LOG`, default `warn`), stamped with
    /// simulated time under turmoil.
    ///
    /// Why one process-wide subscriber rather than one per test: tests run
    /// in parallel, and tracing caches per call site whether anybody is
    /// interested. With a subscriber per thread that cache races, and a
    /// test can silently miss its own spans. Instead every span goes to one
    /// subscriber, and the exporter routes it by thread — a turmoil
    /// simulation or a current-thread tokio test runs entirely on the
    /// test's thread, so each test sees exactly its own spans.
    pub fn capture_for_test() -> (SpanCapture, CaptureGuard) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(ThreadRouter)
                .build();
            let spans = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("dslab"))
                .with_filter(crate::telemetry::span_filter());
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
            let logs = tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_timer(SimTime)
                .with_filter(filter);
            // Another harness may have installed a subscriber first; then
            // spans go there and these tests find none, failing loudly.
            let _ = tracing_subscriber::registry()
                .with(logs)
                .with(spans)
                .try_init();
        });
        let capture = SpanCapture::new();
        CURRENT.with(|current| *current.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard(()))
    }

    /// Stops routing this thread's spans to its capture when dropped.
    #[derive(Debug)]
    pub struct CaptureGuard(());

    impl Drop for CaptureGuard {
        fn drop(&mut self) {
            CURRENT.with(|current| current.borrow_mut().take());
        }
    }

    /// Timestamps log lines with simulated time inside a turmoil
    /// simulation, so a log reads in the order the simulation saw events.
    #[derive(Clone, Copy, Debug)]
    struct SimTime;

    impl tracing_subscriber::fmt::time::FormatTime for SimTime {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            match turmoil::sim_elapsed() {
                Some(elapsed) => write!(w, "sim+{:.3}s", elapsed.as_secs_f64()),
                None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
            }
        }
    }
}
