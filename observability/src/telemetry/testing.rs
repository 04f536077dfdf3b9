//! Spans, sampling and JSON logs captured per test thread.
//!
//! Why one process-wide subscriber rather than one per test: tests run in
//! parallel, and tracing caches per call site whether anybody is
//! interested. With a subscriber per thread that cache races, and a test
//! can silently miss its own spans. Instead every span and event goes to
//! one subscriber, and what it produces is routed by thread — a turmoil
//! simulation or a current-thread tokio test runs entirely on the test's
//! thread, so each test sees exactly its own spans and lines, sampled by
//! its own sampler.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, PoisonError};

use opentelemetry::trace::{Link, SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingResult, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::SpanCapture;
use super::json_logs::JsonLogLayer;

thread_local! {
    static CURRENT: RefCell<Option<SpanCapture>> = const { RefCell::new(None) };
    static SAMPLER: RefCell<Option<Box<dyn ShouldSample>>> = const { RefCell::new(None) };
    static LOGS: RefCell<Option<LogCapture>> = const { RefCell::new(None) };
}

/// Hands each finished span to the capture of the thread that ended it.
#[derive(Debug)]
struct ThreadRouter;

impl SpanExporter for ThreadRouter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let target = CURRENT.with(|current| current.borrow().as_ref().map(SpanCapture::exporter));
        async move {
            match target {
                Some(exporter) => exporter.export(batch).await,
                None => Ok(()),
            }
        }
    }
}

/// Samples with the sampler of the thread starting the span; without one,
/// OpenTelemetry's default (`parentbased_always_on`).
#[derive(Clone, Debug)]
struct ThreadSampler;

impl ShouldSample for ThreadSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let sample = |sampler: &dyn ShouldSample| {
            sampler.should_sample(parent_context, trace_id, name, span_kind, attributes, links)
        };
        SAMPLER.with(|current| match current.borrow().as_deref() {
            Some(sampler) => sample(sampler),
            None => sample(&Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
        })
    }
}

/// JSON log lines written on one test thread.
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Writes to the log capture of the current thread, if it has one.
#[derive(Clone, Copy, Debug)]
struct ThreadLogs;

impl Write for ThreadLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.with(|logs| {
            if let Some(logs) = logs.borrow().as_ref() {
                logs.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for ThreadLogs {
    type Writer = Self;

    fn make_writer(&self) -> Self {
        *self
    }
}

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let provider = SdkTracerProvider::builder()
            .with_sampler(ThreadSampler)
            .with_simple_exporter(ThreadRouter)
            .build();
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("dslab"))
            .with_filter(super::span_filter());
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let logs = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_timer(SimTime)
            .with_filter(filter);
        // JSON lines at `info` and above, formatted only on threads that
        // asked for them.
        let json = JsonLogLayer::new("test", ThreadLogs).with_filter(
            tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_event()
                    && *meta.level() <= tracing::Level::INFO
                    && LOGS.with(|logs| logs.borrow().is_some())
            }),
        );
        // Another harness may have installed a subscriber first; then
        // spans go there and these tests find none, failing loudly.
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(json)
            .with(spans)
            .try_init();
    });
}

/// Captures the spans this thread finishes until the guard drops. Logs
/// go to the test output (`RUST_LOG`, default `warn`), stamped with
/// simulated time under turmoil.
pub fn capture_for_test() -> (SpanCapture, CaptureGuard) {
    install();
    let capture = SpanCapture::new();
    CURRENT.with(|current| *current.borrow_mut() = Some(capture.clone()));
    (capture, CaptureGuard(()))
}

/// Like [`capture_for_test`], with spans this thread starts sampled by
/// `sampler` instead of `parentbased_always_on`.
pub fn capture_sampled_for_test(
    sampler: impl ShouldSample + 'static,
) -> (SpanCapture, CaptureGuard) {
    let captured = capture_for_test();
    SAMPLER.with(|current| *current.borrow_mut() = Some(Box::new(sampler)));
    captured
}

/// Captures the JSON log lines (`--log-format json`, `info` and above)
/// of events on this thread until the guard drops.
pub fn capture_json_logs_for_test() -> (LogCapture, LogGuard) {
    install();
    let capture = LogCapture::default();
    LOGS.with(|logs| *logs.borrow_mut() = Some(capture.clone()));
    (capture, LogGuard(()))
}

/// Stops routing this thread's spans to its capture (and drops its
/// sampler) when dropped.
#[derive(Debug)]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
        SAMPLER.with(|current| current.borrow_mut().take());
    }
}

/// Stops capturing this thread's JSON log lines when dropped.
#[derive(Debug)]
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        LOGS.with(|logs| logs.borrow_mut().take());
    }
}

/// Timestamps log lines with simulated time inside a turmoil simulation,
/// so a log reads in the order the simulation saw events.
#[derive(Clone, Copy, Debug)]
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(elapsed) => write!(w, "sim+{:.3}s", elapsed.as_secs_f64()),
            None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// A finished span for hand-built traces: span `id` of `trace`, child of
/// span `parent` (0: a root), over `[start_ms, end_ms]` after a fixed
/// epoch, belonging to `service`.
pub fn finished_span(
    trace: TraceId,
    id: u64,
    parent: u64,
    service: &str,
    start_ms: u64,
    end_ms: u64,
) -> SpanData {
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceState};
    use std::time::{Duration, SystemTime};

    let at = |ms: u64| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(ms)
    };
    SpanData {
        span_context: SpanContext::new(
            trace,
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: if parent == 0 {
            SpanId::INVALID
        } else {
            SpanId::from(parent)
        },
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: format!("span-{id}").into(),
        start_time: at(start_ms),
        end_time: at(end_ms),
        attributes: vec![KeyValue::new(
            super::service::SERVICE_ATTRIBUTE,
            service.to_owned(),
        )],
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}
