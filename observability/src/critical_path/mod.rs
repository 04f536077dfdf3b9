//! Critical path: the chain of spans that sets a trace's end-to-end
//! latency, and the hop that dominates it.
//!
//! Episode: 34, "Debugging Distributed Systems" (also 31)
//! Pattern: observability / trace analysis
//! Try it:  cargo run -- demo trace-propagation
//! Test it: cargo test -p observability critical_path
//!
//! "Why was this request slow?" A trace answers it only after one more
//! step: most of its spans did not make the request slower. A span that
//! ran in parallel with a longer sibling could have taken twice as long
//! and nobody would have waited. The critical path is the sequence of
//! time segments — each belonging to exactly one span — that the request
//! actually waited on, from the root's start to its end. Shortening
//! anything off the path changes nothing; the span with the most time on
//! the path (its *self time* there: time not spent waiting on a child) is
//! where to look first.
//!
//! The walk is Jaeger's: start at the root's end and go back in time. At
//! each moment (the cursor) the span being examined was waiting on the
//! child that finished last before the cursor; the time after that
//! child's end is the span's own, and the walk continues inside the
//! child, then resumes in the parent from the child's start. A child
//! still running when the cursor reaches it did not hold the parent up (a
//! later step had already started), so only children that ended by the
//! cursor qualify.
//!
//! Pitfall: spans from different processes are timed by different clocks.
//! A child that seems to start before its parent, or end after it, is
//! clipped to its parent's interval, so that skew can neither stretch the
//! path beyond the root nor make segments overlap.
//!
//! Bounds: the walk is iterative (no recursion, whatever the depth) and
//! takes O(n log n) for n spans.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::SpanData;

use crate::telemetry::service::SERVICE_ATTRIBUTE;
use crate::telemetry::span_tree::{attribute, kind_name};

/// A stretch of time the request waited on one span's own work.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub span: &'a SpanData,
    /// Offsets from the root's start.
    pub from: Duration,
    pub to: Duration,
}

impl Segment<'_> {
    pub fn duration(&self) -> Duration {
        self.to.saturating_sub(self.from)
    }
}

/// The critical path of one trace, segments in time order.
#[derive(Clone, Debug)]
pub struct CriticalPath<'a> {
    pub root: &'a SpanData,
    pub segments: Vec<Segment<'a>>,
}

/// Where a span's time is counted: its service (the `dslab.service`
/// attribute the RPC stack sets), or its name when it has none.
pub fn hop_of(span: &SpanData) -> String {
    attribute(span, SERVICE_ATTRIBUTE).unwrap_or_else(|| span.name.to_string())
}

impl<'a> CriticalPath<'a> {
    /// The root's duration: what the segments add up to.
    pub fn total(&self) -> Duration {
        self.segments.iter().map(Segment::duration).sum()
    }

    /// Each span on the path with its self time there, in the order the
    /// path first reaches it.
    pub fn self_times(&self) -> Vec<(&'a SpanData, Duration)> {
        let mut order: Vec<(&'a SpanData, Duration)> = Vec::new();
        for segment in &self.segments {
            match order
                .iter_mut()
                .find(|(span, _)| std::ptr::eq(*span, segment.span))
            {
                Some((_, total)) => *total += segment.duration(),
                None => order.push((segment.span, segment.duration())),
            }
        }
        order
    }

    /// Time on the path per hop ([`hop_of`]).
    pub fn by_hop(&self) -> BTreeMap<String, Duration> {
        let mut hops = BTreeMap::new();
        for segment in &self.segments {
            *hops.entry(hop_of(segment.span)).or_default() += segment.duration();
        }
        hops
    }

    /// The span with the most self time on the path (the first, on a tie).
    pub fn dominant_span(&self) -> Option<(&'a SpanData, Duration)> {
        self.self_times()
            .into_iter()
            .fold(None, |best, (span, took)| match best {
                Some((_, most)) if most >= took => best,
                _ => Some((span, took)),
            })
    }

    /// The hop with the most time on the path (on a tie, the first by name).
    pub fn dominant_hop(&self) -> Option<(String, Duration)> {
        self.by_hop()
            .into_iter()
            .fold(None, |best, (hop, took)| match best {
                Some((_, most)) if most >= took => best,
                _ => Some((hop, took)),
            })
    }

    /// One line per segment: offset, length, hop and span.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            let _ = writeln!(
                out,
                "{:>9.3} ms  +{:>8.3} ms  {}  {} {}",
                segment.from.as_secs_f64() * 1e3,
                segment.duration().as_secs_f64() * 1e3,
                hop_of(segment.span),
                kind_name(&segment.span.span_kind),
                segment.span.name,
            );
        }
        out
    }
}

/// A span's interval in nanoseconds from the earliest start, clipped to
/// its parent's.
#[derive(Clone, Copy, Debug)]
struct Interval {
    start: u128,
    end: u128,
}

/// The critical path of trace `trace` among `spans`: `None` if it has no
/// spans there. The root is the span whose parent was not captured; if
/// several are (an incomplete trace), the longest.
pub fn critical_path(spans: &[SpanData], trace: TraceId) -> Option<CriticalPath<'_>> {
    let members: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let origin = members.iter().map(|s| s.start_time).min()?;
    let nanos = |t: SystemTime| t.duration_since(origin).unwrap_or_default().as_nanos();
    let index: HashMap<SpanId, usize> = members
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_context.span_id(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    let mut roots = Vec::new();
    for (i, span) in members.iter().enumerate() {
        match index.get(&span.parent_span_id) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let raw = |i: usize| {
        let start = nanos(members[i].start_time);
        Interval {
            start,
            end: nanos(members[i].end_time).max(start),
        }
    };
    let root = roots
        .iter()
        .copied()
        .max_by_key(|&i| (raw(i).end - raw(i).start, std::cmp::Reverse(i)))?;

    // Clip top-down, so a grandchild is clipped to its clipped parent.
    let mut interval: Vec<Option<Interval>> = vec![None; members.len()];
    interval[root] = Some(raw(root));
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        let Some(bounds) = interval[parent] else {
            continue;
        };
        for &child in &children[parent] {
            let own = raw(child);
            let start = own.start.clamp(bounds.start, bounds.end);
            interval[child] = Some(Interval {
                start,
                end: own.end.clamp(start, bounds.end),
            });
            stack.push(child);
        }
    }

    let mut segments = Vec::new();
    let to_duration = |n: u128| {
        let root_start = interval[root].map_or(0, |r| r.start);
        Duration::from_nanos(u64::try_from(n - root_start).unwrap_or(u64::MAX))
    };
    // (span, cursor): the span being walked and the moment the walk has
    // reached inside it. Parents wait on the stack with the cursor they
    // resume at (their child's start).
    let mut resume: Vec<(usize, u128)> = Vec::new();
    let mut current = root;
    let mut cursor = interval[root].map_or(0, |r| r.end);
    // Every span reached from the root has its interval set above.
    while let Some(own) = interval[current] {
        let last_child = children[current]
            .iter()
            .filter_map(|&c| interval[c].map(|iv| (c, iv)))
            .filter(|(_, iv)| iv.end <= cursor && iv.start < cursor)
            .max_by_key(|&(c, iv)| (iv.end, iv.end - iv.start, std::cmp::Reverse(c)));
        match last_child {
            Some((child, child_interval)) => {
                if child_interval.end < cursor {
                    segments.push((current, child_interval.end, cursor));
                }
                resume.push((current, child_interval.start));
                current = child;
                cursor = child_interval.end;
            }
            None => {
                if own.start < cursor {
                    segments.push((current, own.start, cursor));
                }
                match resume.pop() {
                    Some((parent, at)) => {
                        current = parent;
                        cursor = at;
                    }
                    None => break,
                }
            }
        }
    }
    segments.reverse();
    Some(CriticalPath {
        root: members[root],
        segments: segments
            .into_iter()
            .map(|(i, from, to)| Segment {
                span: members[i],
                from: to_duration(from),
                to: to_duration(to),
            })
            .collect(),
    })
}
