//! The tail sampler's decisions, with no clock and no locks: spans in,
//! spans to export out.
//!
//! A trace is buffered while any of its spans is open in this process.
//! When the last one ends, the whole trace is judged at once: kept if a
//! span failed, if a span was slower than the threshold, or if its trace
//! id falls in the configured share; otherwise dropped, every span of it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample, SpanData};
use tokio::time::Instant;

use super::TailPolicy;

/// Why a trace was kept, or that it was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A span ended with status `Error`.
    Error,
    /// A span lasted at least the slow threshold.
    Slow,
    /// Nothing special, but its trace id falls in the kept share.
    Share,
    Dropped,
}

/// What the buffer has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    pub kept_error: u64,
    pub kept_slow: u64,
    pub kept_share: u64,
    pub dropped: u64,
    /// Traces judged before their last span ended because the buffer was
    /// full and a new trace arrived (the oldest goes first).
    pub decided_early: u64,
    /// Traces judged because they waited longer than the decision wait.
    pub decided_late: u64,
    /// Spans not kept because their trace already held the most a trace
    /// may hold (their status and duration still counted).
    pub spans_over_limit: u64,
}

impl TailStats {
    pub fn kept(&self) -> u64 {
        self.kept_error + self.kept_slow + self.kept_share
    }
}

/// One trace waiting for its last span.
#[derive(Debug)]
struct Pending {
    /// Tells this entry apart from an older one of the same trace in the
    /// arrival queue.
    generation: u64,
    first_seen: Instant,
    open: usize,
    spans: Vec<SpanData>,
    error: bool,
    slowest: Duration,
}

/// The bounded buffer behind [`super::TailSamplingProcessor`].
#[derive(Debug)]
pub struct TailBuffer {
    policy: TailPolicy,
    share: Sampler,
    pending: HashMap<TraceId, Pending>,
    /// Pending traces in arrival order (entries whose generation no
    /// longer matches are stale and skipped).
    arrival: VecDeque<(TraceId, u64)>,
    /// Traces kept recently: spans that end after the verdict follow it
    /// (at most `max_traces` remembered, oldest forgotten first).
    kept: HashSet<TraceId>,
    kept_order: VecDeque<TraceId>,
    generation: u64,
    stats: TailStats,
}

impl TailBuffer {
    pub fn new(policy: TailPolicy) -> Self {
        Self {
            share: Sampler::TraceIdRatioBased(policy.keep_share),
            policy,
            pending: HashMap::new(),
            arrival: VecDeque::new(),
            kept: HashSet::new(),
            kept_order: VecDeque::new(),
            generation: 0,
            stats: TailStats::default(),
        }
    }

    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// How many traces are waiting for a verdict.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A span of `trace` started at `now`. Returns the spans of traces
    /// this judged on the way (expired, or evicted to make room).
    pub fn start(&mut self, trace: TraceId, now: Instant) -> Vec<SpanData> {
        let mut out = self.expire(now);
        if let Some(pending) = self.pending.get_mut(&trace) {
            pending.open += 1;
            return out;
        }
        if self.kept.contains(&trace) {
            return out;
        }
        if self.pending.len() >= self.policy.max_traces {
            // Pitfall: dropping the oldest trace unread would lose exactly
            // the long-running, failing traces tail sampling exists for.
            // Judging it now on what it has keeps an error already seen.
            if let Some(oldest) = self.oldest() {
                self.stats.decided_early += 1;
                out.extend(self.decide(oldest));
            }
        }
        self.generation += 1;
        self.pending.insert(
            trace,
            Pending {
                generation: self.generation,
                first_seen: now,
                open: 1,
                spans: Vec::new(),
                error: false,
                slowest: Duration::ZERO,
            },
        );
        self.arrival.push_back((trace, self.generation));
        out
    }

    /// `span` ended at `now`. Returns the spans to export now.
    pub fn end(&mut self, span: SpanData, now: Instant) -> Vec<SpanData> {
        let mut out = self.expire(now);
        let trace = span.span_context.trace_id();
        let error = matches!(span.status, Status::Error { .. });
        let took = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let Some(pending) = self.pending.get_mut(&trace) else {
            if self.kept.contains(&trace) {
                out.push(span);
            } else if self.judge(trace, error, took) != Verdict::Dropped {
                // Its trace was judged (and dropped) while this span was
                // still open, or its start was never seen. A failure or a
                // slow span is still worth keeping on its own.
                self.remember(trace);
                out.push(span);
            }
            return out;
        };
        pending.error |= error;
        pending.slowest = pending.slowest.max(took);
        if pending.spans.len() < self.policy.max_spans_per_trace {
            pending.spans.push(span);
        } else {
            self.stats.spans_over_limit += 1;
        }
        pending.open = pending.open.saturating_sub(1);
        if pending.open == 0 {
            out.extend(self.decide(trace));
        }
        out
    }

    /// Judges every waiting trace now (flush and shutdown).
    pub fn flush(&mut self) -> Vec<SpanData> {
        let traces: Vec<TraceId> = self.arrival.drain(..).map(|(trace, _)| trace).collect();
        traces
            .into_iter()
            .flat_map(|trace| self.decide(trace))
            .collect()
    }

    /// Judges the traces that have waited longer than the decision wait.
    fn expire(&mut self, now: Instant) -> Vec<SpanData> {
        let mut out = Vec::new();
        while let Some(&(trace, generation)) = self.arrival.front() {
            match self.pending.get(&trace) {
                Some(p) if p.generation == generation => {
                    if now.saturating_duration_since(p.first_seen) < self.policy.decision_wait {
                        break;
                    }
                    self.arrival.pop_front();
                    self.stats.decided_late += 1;
                    out.extend(self.decide(trace));
                }
                _ => {
                    self.arrival.pop_front();
                }
            }
        }
        out
    }

    /// The oldest trace still waiting.
    fn oldest(&mut self) -> Option<TraceId> {
        while let Some((trace, generation)) = self.arrival.pop_front() {
            if self
                .pending
                .get(&trace)
                .is_some_and(|p| p.generation == generation)
            {
                return Some(trace);
            }
        }
        None
    }

    fn decide(&mut self, trace: TraceId) -> Vec<SpanData> {
        let Some(pending) = self.pending.remove(&trace) else {
            return Vec::new();
        };
        match self.judge(trace, pending.error, pending.slowest) {
            Verdict::Dropped => Vec::new(),
            _ => {
                self.remember(trace);
                pending.spans
            }
        }
    }

    fn judge(&mut self, trace: TraceId, error: bool, slowest: Duration) -> Verdict {
        let verdict = if error {
            Verdict::Error
        } else if slowest >= self.policy.slow_threshold {
            Verdict::Slow
        } else if keeps(&self.share, trace) {
            Verdict::Share
        } else {
            Verdict::Dropped
        };
        let counter = match verdict {
            Verdict::Error => &mut self.stats.kept_error,
            Verdict::Slow => &mut self.stats.kept_slow,
            Verdict::Share => &mut self.stats.kept_share,
            Verdict::Dropped => &mut self.stats.dropped,
        };
        *counter += 1;
        verdict
    }

    fn remember(&mut self, trace: TraceId) {
        if self.kept.insert(trace) {
            self.kept_order.push_back(trace);
            if self.kept_order.len() > self.policy.max_traces
                && let Some(forgotten) = self.kept_order.pop_front()
            {
                self.kept.remove(&forgotten);
            }
        }
    }
}

/// Whether OpenTelemetry's trace-id ratio sampler (`traceidratio`) keeps
/// `trace`: the decision every process reaches alike, because it reads
/// nothing but the trace id.
fn keeps(share: &Sampler, trace: TraceId) -> bool {
    share
        .should_sample(None, trace, "", &SpanKind::Internal, &[], &[])
        .decision
        == SamplingDecision::RecordAndSample
}

/// Whether a `traceidratio` sampler at `ratio` keeps `trace` — the share
/// rule the tail sampler applies, so that head and tail sampling at the
/// same ratio keep the same ordinary traces.
pub fn keeps_by_trace_id(trace: TraceId, ratio: f64) -> bool {
    keeps(&Sampler::TraceIdRatioBased(ratio), trace)
}
