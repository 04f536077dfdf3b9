//! Head sampling against tail sampling, the tail buffer's bounds, and
//! whole traces across relay hops.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{
    Span as _, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, Sampler, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tokio::time::Instant;

use super::demo::head_versus_tail;
use super::tail_core::TailBuffer;
use super::traffic::Traffic;
use super::*;
use crate::relay::proto::ForwardRequest;
use crate::relay::proto::relay_client::RelayClient;
use crate::relay::tests::tcp_relay;
use crate::rpc::{ClientBuilder, Net};
use crate::telemetry::{capture_sampled_for_test, finished_span};

/// Spans per trace id.
fn by_trace(spans: &[SpanData]) -> HashMap<TraceId, usize> {
    let mut traces = HashMap::new();
    for span in spans {
        *traces.entry(span.span_context.trace_id()).or_default() += 1;
    }
    traces
}

/// Episode 31, the broken twin. A thousand requests through three hops;
/// one fails, one is slow. Head sampling at 1 % decides before either
/// happened and drops both; tail sampling keeping 1 % keeps the failing
/// and the slow trace whole, plus exactly the ordinary traces the head
/// sampler kept (the same trace-id rule).
#[test]
fn sampling_naive_head_drops_the_error_trace_tail_keeps_it() {
    let traffic = Traffic {
        requests: 1000,
        hops: 3,
        failing: BTreeSet::from([500]),
        slow: BTreeSet::from([700]),
        seed: 31,
    };
    let run = head_versus_tail(&traffic);
    let (failing, slow) = (run.traces[500], run.traces[700]);
    assert!(
        !run.head.traces.contains_key(&failing),
        "the 1 % head sampler dropped the failing request's trace"
    );
    assert!(!run.head.traces.contains_key(&slow));
    assert_eq!(
        run.tail.traces.get(&failing),
        Some(&3),
        "failing trace, whole"
    );
    assert_eq!(run.tail.traces.get(&slow), Some(&3), "slow trace, whole");
    assert_eq!(
        run.tail.partial(3) + run.head.partial(3),
        0,
        "no partial traces"
    );
    let ordinary: HashSet<TraceId> = run
        .tail
        .traces
        .keys()
        .copied()
        .filter(|t| *t != failing && *t != slow)
        .collect();
    assert_eq!(ordinary, run.head.traces.keys().copied().collect());
    assert!(
        (3..=25).contains(&ordinary.len()),
        "about 1 %: {}",
        ordinary.len()
    );
    let stats = run.tail_stats;
    assert_eq!((stats.kept_error, stats.kept_slow), (1, 1));
    assert_eq!(stats.kept() + stats.dropped, 1000);
}

fn policy(max_traces: usize, max_spans_per_trace: usize) -> TailPolicy {
    TailPolicy {
        keep_share: 0.0,
        slow_threshold: Duration::from_secs(1),
        max_traces,
        max_spans_per_trace,
        decision_wait: Duration::from_secs(10),
    }
}

fn failed(mut span: SpanData) -> SpanData {
    span.status = Status::error("boom");
    span
}

/// Overflow: a new trace arriving at a full buffer makes the oldest be
/// judged at once on what it has. An error already seen still keeps it,
/// and its spans that end later follow the verdict; an ordinary evicted
/// trace is dropped, late spans included.
#[test]
fn sampling_tail_full_buffer_judges_the_oldest_early() {
    let now = Instant::now();
    let mut buffer = TailBuffer::new(policy(2, 64));
    let (t1, t2, t3, t4) = (
        TraceId::from(1),
        TraceId::from(2),
        TraceId::from(3),
        TraceId::from(4),
    );
    // t1: root open, a child failed.
    assert!(buffer.start(t1, now).is_empty());
    assert!(buffer.start(t1, now).is_empty());
    assert!(
        buffer
            .end(failed(finished_span(t1, 2, 1, "db", 1, 5)), now)
            .is_empty()
    );
    assert!(buffer.start(t2, now).is_empty());
    // Full: t3 pushes t1 out, judged on its failed child.
    let released = buffer.start(t3, now);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].span_context.trace_id(), t1);
    assert_eq!(buffer.stats().decided_early, 1);
    assert_eq!(buffer.pending(), 2);
    // t1's root ends later: it follows the verdict.
    let late = buffer.end(finished_span(t1, 1, 0, "api", 0, 10), now);
    assert_eq!(late.len(), 1);
    // t4 pushes t2 (nothing wrong with it) out: dropped, late span too.
    assert!(buffer.start(t4, now).is_empty());
    assert!(
        buffer
            .end(finished_span(t2, 1, 0, "api", 0, 10), now)
            .is_empty()
    );
    let stats = buffer.stats();
    assert_eq!((stats.decided_early, stats.kept_error), (2, 1));
    assert_eq!(buffer.pending(), 2, "never more than max_traces");
}

/// Overflow inside a trace: spans past the per-trace limit are not kept,
/// but a failure among them still keeps the trace.
#[test]
fn sampling_tail_spans_over_the_limit_are_counted_not_kept() {
    let now = Instant::now();
    let mut buffer = TailBuffer::new(policy(8, 3));
    let trace = TraceId::from(9);
    for _ in 0..5 {
        buffer.start(trace, now);
    }
    for id in (2..=5).rev() {
        let span = finished_span(trace, id, 1, "svc", 1, 2);
        let span = if id == 2 { failed(span) } else { span };
        assert!(buffer.end(span, now).is_empty());
    }
    let kept = buffer.end(finished_span(trace, 1, 0, "svc", 0, 3), now);
    assert_eq!(kept.len(), 3);
    let stats = buffer.stats();
    assert_eq!((stats.kept_error, stats.spans_over_limit), (1, 2));
}

/// A trace whose last span never ends is judged after the decision wait,
/// on the spans it has; flushing judges everything still waiting.
#[test]
fn sampling_tail_waits_at_most_the_decision_wait() {
    let start = Instant::now();
    let mut buffer = TailBuffer::new(policy(8, 64));
    let (stuck, open) = (TraceId::from(5), TraceId::from(6));
    buffer.start(stuck, start);
    buffer.start(stuck, start);
    let slow = finished_span(stuck, 2, 1, "svc", 0, 1_500);
    assert!(buffer.end(slow, start + Duration::from_secs(2)).is_empty());
    buffer.start(open, start + Duration::from_secs(9));
    let released = buffer.start(TraceId::from(7), start + Duration::from_secs(10));
    assert_eq!(released.len(), 1, "the slow span, judged late");
    assert_eq!(buffer.stats().decided_late, 1);
    assert_eq!(buffer.pending(), 2);
    assert!(buffer.flush().is_empty(), "nothing kept among the others");
    assert_eq!(buffer.pending(), 0);
}

/// A flush (and shutdown, which flushes) judges the traces still open
/// rather than losing them; their spans that end afterwards follow.
#[test]
fn sampling_tail_processor_flush_judges_open_traces() {
    let export = InMemorySpanExporter::default();
    let tail = TailSamplingProcessor::new(policy(8, 64), SimpleSpanProcessor::new(export.clone()));
    let handle = tail.handle();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(tail)
        .build();
    let tracer = provider.tracer("test");
    let root = Context::new().with_span(tracer.start("root"));
    let mut child = tracer.start_with_context("child", &root);
    child.set_status(Status::error("boom"));
    child.end();
    let ordinary = tracer.start("ordinary, still open");
    let exported = || export.get_finished_spans().unwrap_or_default().len();
    assert_eq!(exported(), 0, "waiting for the root");
    assert_eq!(handle.pending(), 2);
    assert!(provider.force_flush().is_ok());
    assert_eq!(exported(), 1, "the failed child, judged on flush");
    assert_eq!(handle.pending(), 0);
    root.span().end();
    drop(ordinary);
    assert_eq!(exported(), 2, "the root follows its trace's verdict");
    assert_eq!(handle.stats().kept_error, 1);
}

/// Episode 31. Parent-based sampling across three relay hops: whatever
/// the root decides travels in `traceparent`'s sampled flag, so each
/// trace is kept whole (all six spans) or not at all — for a ratio and
/// for a rate limit. Every hop reports the same trace id either way.
#[tokio::test]
async fn sampling_parent_based_keeps_or_drops_whole_traces_across_hops() {
    for (name, sampler) in [
        (
            "ratio 0.3",
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.3))),
        ),
        (
            "rate 20/s",
            Sampler::ParentBased(Box::new(RateLimitedSampler::new(20.0).expect("valid"))),
        ),
    ] {
        let (spans, _guard) = capture_sampled_for_test(sampler);
        let hop3 = tcp_relay("hop-3", None).await;
        let hop2 = tcp_relay("hop-2", Some(&hop3)).await;
        let hop1 = tcp_relay("hop-1", Some(&hop2)).await;
        let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop1.uri()));
        let began = Instant::now();
        let mut sent = BTreeSet::new();
        for i in 0..150 {
            let reply = client
                .forward(ForwardRequest {
                    payload: format!("call {i}"),
                    visited: Vec::new(),
                })
                .await
                .expect("healthy chain")
                .into_inner();
            let ids: BTreeSet<&str> = reply.path.iter().map(|h| h.trace_id.as_str()).collect();
            assert_eq!(ids.len(), 1, "{name}: one trace id at every hop");
            sent.extend(ids.into_iter().map(str::to_owned));
        }
        let elapsed = began.elapsed();
        for hop in [hop1, hop2, hop3] {
            hop.shutdown().await.expect("graceful shutdown");
        }
        let kept = by_trace(&spans.spans());
        assert_eq!(sent.len(), 150, "{name}: a trace per call");
        assert!(
            kept.values().all(|&n| n == 6),
            "{name}: whole traces only: {kept:?}"
        );
        assert!(kept.keys().all(|t| sent.contains(&t.to_string())));
        match name {
            "ratio 0.3" => {
                assert!((20..=70).contains(&kept.len()), "{name}: {}", kept.len());
                assert!(kept.keys().all(|t| keeps_by_trace_id(*t, 0.3)));
            }
            _ => {
                let ceiling = 20 + (20.0 * elapsed.as_secs_f64()).ceil() as usize;
                assert!(
                    (20..=ceiling).contains(&kept.len()),
                    "{name}: {} kept, at most {ceiling}",
                    kept.len()
                );
            }
        }
    }
}
