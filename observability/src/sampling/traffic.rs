//! Synthetic traffic for sampling experiments: requests through a chain
//! of services, recorded through the OpenTelemetry API with reproducible
//! trace ids and timestamps, so that which traces a sampler keeps is the
//! same on every run.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, Sampler, SdkTracerProvider, SpanProcessor};

use crate::telemetry::service::SERVICE_ATTRIBUTE;

/// Trace and span ids from a seeded SplitMix64 sequence.
#[derive(Debug)]
pub struct SeededIds {
    state: AtomicU64,
}

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl IdGenerator for SeededIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from((u128::from(self.next()) << 64) | u128::from(self.next()))
    }

    fn new_span_id(&self) -> SpanId {
        SpanId::from(self.next())
    }
}

/// Requests through `hops` services, each hop a span inside the previous.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub requests: usize,
    pub hops: usize,
    /// Requests (by index) whose deepest hop fails.
    pub failing: BTreeSet<usize>,
    /// Requests whose deepest hop takes [`SLOW_HOP`].
    pub slow: BTreeSet<usize>,
    pub seed: u64,
}

/// How long the deepest hop of a slow request takes.
pub const SLOW_HOP: Duration = Duration::from_millis(800);
/// How long the deepest hop of any other request takes.
pub const FAST_HOP: Duration = Duration::from_millis(2);

impl Traffic {
    /// A provider sampling with `sampler` into `processor`, with this
    /// traffic's seeded ids.
    pub fn provider(
        &self,
        sampler: Sampler,
        processor: impl SpanProcessor + 'static,
    ) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_id_generator(SeededIds::new(self.seed))
            .with_span_processor(processor)
            .build()
    }

    /// Sends the traffic through `provider`; returns each request's trace id.
    pub fn replay(&self, provider: &SdkTracerProvider) -> Vec<TraceId> {
        let tracer = provider.tracer("traffic");
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ms = |n: usize| Duration::from_millis(n as u64);
        let mut traces = Vec::with_capacity(self.requests);
        for request in 0..self.requests {
            let start = epoch + ms(request * 10);
            let mut hops: Vec<Context> = Vec::with_capacity(self.hops);
            for hop in 0..self.hops {
                let parent = hops.last().cloned().unwrap_or_default();
                let name = format!("hop-{}", hop + 1);
                let span = tracer
                    .span_builder(name.clone())
                    .with_kind(SpanKind::Server)
                    .with_start_time(start + ms(hop))
                    .with_attributes([KeyValue::new(SERVICE_ATTRIBUTE, name)])
                    .start_with_context(&tracer, &parent);
                hops.push(parent.with_span(span));
            }
            traces.push(
                hops.first()
                    .map(|cx| cx.span().span_context().trace_id())
                    .unwrap_or(TraceId::INVALID),
            );
            let deepest = if self.slow.contains(&request) {
                SLOW_HOP
            } else {
                FAST_HOP
            };
            // Children end before their parents, as calls return.
            for (hop, cx) in hops.iter().enumerate().rev() {
                let span = cx.span();
                if hop + 1 == self.hops && self.failing.contains(&request) {
                    span.set_status(Status::error("payment declined"));
                }
                let returns = ms(2 * (self.hops - 1 - hop));
                span.end_with_timestamp(start + ms(hop) + deepest + returns);
            }
        }
        traces
    }
}
