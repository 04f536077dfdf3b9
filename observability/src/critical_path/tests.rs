//! Critical paths of hand-built traces: chains, parallel children,
//! overlaps, clock skew, and random trees.

use std::time::Duration;

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::SpanData;
use proptest::prelude::*;

use super::*;
use crate::telemetry::finished_span;

const TRACE: TraceId = TraceId::from_bytes([7; 16]);

fn span(id: u64, parent: u64, service: &str, start_ms: u64, end_ms: u64) -> SpanData {
    finished_span(TRACE, id, parent, service, start_ms, end_ms)
}

/// A trace from (id, parent, service, start ms, end ms) rows.
fn trace(rows: &[(u64, u64, &str, u64, u64)]) -> Vec<SpanData> {
    rows.iter()
        .map(|&(id, parent, service, start, end)| span(id, parent, service, start, end))
        .collect()
}

/// The critical path of `rows` as (span id, from ms, to ms) segments, and
/// the hop it names.
fn walk(rows: &[(u64, u64, &str, u64, u64)]) -> (Vec<(u64, u64, u64)>, Option<String>) {
    let spans = trace(rows);
    let path = critical_path(&spans, TRACE).expect("a path");
    let total: Duration = path.segments.iter().map(Segment::duration).sum();
    assert_eq!(total, duration_of(path.root), "segments add up to the root");
    (shape(&path), path.dominant_hop().map(|(hop, _)| hop))
}

fn duration_of(span: &SpanData) -> Duration {
    crate::telemetry::span_tree::duration(span)
}

/// (span id, from ms, to ms) for each segment.
fn shape(path: &CriticalPath<'_>) -> Vec<(u64, u64, u64)> {
    path.segments
        .iter()
        .map(|s| {
            (
                u64::from_be_bytes(s.span.span_context.span_id().to_bytes()),
                s.from.as_millis() as u64,
                s.to.as_millis() as u64,
            )
        })
        .collect()
}

/// Episode 34. A chain a → b → c: the path runs through all three, each
/// contributing the time it did not wait on the next, and the slow hop
/// is named.
#[test]
fn critical_path_of_a_chain_names_the_slow_hop() {
    let spans = vec![
        span(1, 0, "gateway", 0, 100),
        span(2, 1, "orders", 5, 95),
        span(3, 2, "inventory", 10, 20),
    ];
    let path = critical_path(&spans, TRACE).expect("a path");
    assert_eq!(
        shape(&path),
        [
            (1, 0, 5),
            (2, 5, 10),
            (3, 10, 20),
            (2, 20, 95),
            (1, 95, 100)
        ]
    );
    assert_eq!(path.total(), Duration::from_millis(100));
    assert_eq!(
        path.dominant_hop(),
        Some(("orders".to_owned(), Duration::from_millis(80)))
    );
    let (dominant, took) = path.dominant_span().expect("a span");
    assert_eq!(dominant.name, "span-2");
    assert_eq!(took, Duration::from_millis(80));
}

/// Parallel children: the parent waits on the one that finishes last; a
/// shorter sibling hidden inside it is not on the path at all.
#[test]
fn critical_path_follows_the_last_finishing_parallel_child() {
    let (segments, dominant) = walk(&[
        (1, 0, "api", 0, 100),
        (2, 1, "search", 10, 90),
        (3, 1, "ads", 20, 60),
        (4, 1, "profile", 12, 40),
    ]);
    assert_eq!(segments, [(1, 0, 10), (2, 10, 90), (1, 90, 100)]);
    assert_eq!(dominant.as_deref(), Some("search"));
}

/// Fan-out then fan-in: the path goes through the slow grandchild of the
/// child that ended last, and back to the parent for the work between.
#[test]
fn critical_path_descends_into_the_slowest_branch() {
    let (segments, dominant) = walk(&[
        (1, 0, "api", 0, 200),
        (2, 1, "cart", 10, 50),
        (3, 1, "pricing", 10, 180),
        (4, 3, "tax", 20, 60),
        (5, 3, "fx-rates", 20, 170),
        (6, 1, "audit", 185, 195),
    ]);
    let expected = [(1, 0, 10), (3, 10, 20), (5, 20, 170), (3, 170, 180)];
    assert_eq!(segments[..4], expected);
    assert_eq!(segments[4..], [(1, 180, 185), (6, 185, 195), (1, 195, 200)]);
    assert_eq!(dominant.as_deref(), Some("fx-rates"));
}

/// Overlapping children: one still running when the next finished did
/// not hold the parent up; the time before the later one's start is the
/// parent's own.
#[test]
fn critical_path_skips_a_child_still_running_at_the_cursor() {
    let (segments, dominant) = walk(&[
        (1, 0, "api", 0, 100),
        (2, 1, "a", 10, 60),
        (3, 1, "b", 50, 90),
    ]);
    assert_eq!(segments, [(1, 0, 50), (3, 50, 90), (1, 90, 100)]);
    assert_eq!(dominant.as_deref(), Some("api"), "60 ms of its own");
}

/// Clock skew: a child reported as starting before and ending after its
/// parent is clipped to the parent; the path still adds up to the root.
#[test]
fn critical_path_clips_skewed_children_to_their_parent() {
    let (segments, dominant) = walk(&[
        (1, 0, "client", 100, 200),
        (2, 1, "server", 90, 230),
        (3, 2, "db", 150, 300),
    ]);
    assert_eq!(segments, [(2, 0, 50), (3, 50, 100)]);
    assert_eq!(
        dominant.as_deref(),
        Some("db"),
        "a tie goes to the first by name"
    );
}

/// Other traces' spans are ignored; an unknown trace has no path; an
/// orphan (parent not captured) cannot displace a longer root.
#[test]
fn critical_path_reads_one_trace_and_picks_the_longest_root() {
    let other = TraceId::from_bytes([9; 16]);
    let spans = vec![
        span(1, 0, "api", 0, 100),
        span(2, 77, "orphan", 10, 20),
        finished_span(other, 3, 1, "elsewhere", 0, 1_000),
    ];
    let path = critical_path(&spans, TRACE).expect("a path");
    assert_eq!(shape(&path), [(1, 0, 100)]);
    assert!(critical_path(&spans, TraceId::from_bytes([1; 16])).is_none());
    assert!(critical_path(&[], TRACE).is_none());
}

/// A random tree: each span's children nest in the span's interval.
fn tree() -> impl Strategy<Value = Vec<SpanData>> {
    prop::collection::vec(
        (any::<prop::sample::Index>(), 0..1000u64, 0..1000u64),
        0..40,
    )
    .prop_map(|nodes| {
        let mut spans = vec![span(1, 0, "root", 0, 1000)];
        let mut bounds = vec![(0u64, 1000u64)];
        for (parent, a, b) in nodes {
            let p = parent.index(spans.len());
            let (lo, hi) = bounds[p];
            let width = hi - lo;
            let (x, y) = (lo + a % (width + 1), lo + b % (width + 1));
            let (start, end) = (x.min(y), x.max(y));
            let id = spans.len() as u64 + 1;
            spans.push(span(id, p as u64 + 1, &format!("s{id}"), start, end));
            bounds.push((start, end));
        }
        spans
    })
}

proptest! {
    /// Whatever the tree: the segments tile the root's interval exactly,
    /// in order, without overlap, each inside its own span.
    #[test]
    fn critical_path_segments_tile_the_root(spans in tree()) {
        let path = critical_path(&spans, TRACE).expect("a root");
        let mut at = Duration::ZERO;
        for segment in &path.segments {
            prop_assert_eq!(segment.from, at);
            prop_assert!(segment.to > segment.from);
            let origin = spans[0].start_time;
            let start = segment.span.start_time.duration_since(origin).unwrap_or_default();
            let end = segment.span.end_time.duration_since(origin).unwrap_or_default();
            prop_assert!(start <= segment.from && segment.to <= end);
            at = segment.to;
        }
        prop_assert_eq!(at, Duration::from_millis(1000));
        prop_assert_eq!(path.total(), Duration::from_millis(1000));
    }
}
