//! Tail sampling as an OpenTelemetry span processor: the shell around
//! [`TailBuffer`].
//!
//! It sits between the tracer provider and the processor that exports
//! (batch or simple): every sampled span is buffered with its trace, and
//! only the traces the buffer keeps reach the exporter.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::Span as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tokio::time::Instant;

use super::TailPolicy;
use super::tail_core::{TailBuffer, TailStats};

/// Buffers whole traces and passes on those worth keeping to `next`.
#[derive(Debug)]
pub struct TailSamplingProcessor<P> {
    buffer: Arc<Mutex<TailBuffer>>,
    next: P,
}

/// A handle on a processor's buffer once the provider owns the processor.
#[derive(Clone, Debug)]
pub struct TailHandle(Arc<Mutex<TailBuffer>>);

impl TailHandle {
    /// What the buffer has decided so far.
    pub fn stats(&self) -> TailStats {
        lock(&self.0).stats()
    }

    /// Traces waiting for their verdict.
    pub fn pending(&self) -> usize {
        lock(&self.0).pending()
    }
}

/// The buffer holds plain data, so a panic elsewhere while it was locked
/// leaves nothing half-updated that matters more than losing telemetry.
fn lock(buffer: &Mutex<TailBuffer>) -> std::sync::MutexGuard<'_, TailBuffer> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<P: SpanProcessor> TailSamplingProcessor<P> {
    /// Tail sampling by `policy` in front of `next`.
    pub fn new(policy: TailPolicy, next: P) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(TailBuffer::new(policy))),
            next,
        }
    }

    pub fn handle(&self) -> TailHandle {
        TailHandle(self.buffer.clone())
    }

    /// Hands kept spans on. Called after the buffer's lock is released:
    /// a simple processor exports inline, and must not hold up (or,
    /// through a span of its own, re-enter) the buffer.
    fn pass_on(&self, spans: Vec<SpanData>) {
        for span in spans {
            self.next.on_end(span);
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for TailSamplingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.next.on_start(span, cx);
        let context = span.span_context();
        // A span the head sampler recorded but did not sample is never
        // exported by `next`; it need not wait here either.
        if context.is_sampled() {
            let trace = context.trace_id();
            let judged = lock(&self.buffer).start(trace, Instant::now());
            self.pass_on(judged);
        }
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            self.next.on_end(span);
            return;
        }
        let judged = lock(&self.buffer).end(span, Instant::now());
        self.pass_on(judged);
    }

    /// Judges every waiting trace on what it has, then flushes `next`.
    fn force_flush(&self) -> OTelSdkResult {
        let judged = lock(&self.buffer).flush();
        self.pass_on(judged);
        self.next.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let judged = lock(&self.buffer).flush();
        self.pass_on(judged);
        self.next.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}
