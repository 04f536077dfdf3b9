//! Sampling: which traces are kept, decided at the head or at the tail.
//!
//! Episode: 31, "Distributed Tracing Systems"
//! Pattern: observability / trace sampling
//! Try it:  cargo run -- demo trace-sampling
//! Test it: cargo test -p observability sampling_
//!
//! Tracing every request costs CPU, memory and a collector's bandwidth, so
//! production systems keep a fraction. *Head* sampling decides when a
//! trace starts, before anything has happened: a ratio of trace ids
//! (OpenTelemetry's `traceidratio`) or a rate ([`RateLimitedSampler`]),
//! and every later span follows its parent's decision (`parentbased_…`),
//! carried in the sampled flag of `traceparent` — so a trace is kept or
//! dropped whole, across every process it crosses. Head sampling is cheap
//! (a dropped span is never recorded) and blind: at 1 % it drops 99 % of
//! the failing requests too, and those are the traces an engineer came for
//! ([`naive`] shows it). *Tail* sampling ([`TailSamplingProcessor`])
//! decides once a trace has finished: keep every trace with an error or a
//! slow span, plus a share of the rest — chosen by trace id with the
//! same rule as `traceidratio`, so every process keeps the same ordinary
//! traces. The price is memory: every span waits in a buffer until its
//! trace is judged.
//!
//! Bounds of the tail buffer ([`TailPolicy`], defaults in brackets):
//! - traces waiting: `max_traces` [[`DEFAULT_MAX_TRACES`]], at most
//!   [`MAX_TRACES`]. When a new trace arrives at a full buffer the
//!   *oldest* is judged at once on the spans it has (an error already seen
//!   still keeps it); its spans that end later are judged one by one.
//! - spans per trace: `max_spans_per_trace` [[`DEFAULT_MAX_SPANS_PER_TRACE`]],
//!   at most [`MAX_SPANS_PER_TRACE`]. Further spans are not kept, but
//!   their status and duration still count towards the verdict.
//! - waiting time: `decision_wait` [[`DEFAULT_DECISION_WAIT`]], at most
//!   [`MAX_WAIT_MS`] ms. A trace still open after it is judged on what it
//!   has (checked whenever a span starts or ends, and at flush/shutdown).
//! - memory of kept traces (so late spans follow the verdict): `max_traces`
//!   trace ids.
//!
//! Worst case, the buffer holds `max_traces × max_spans_per_trace` spans
//! (32,768 by default).
//!
//! Simplified: each process tail-samples its own spans. A trace is judged
//! when its last span *in this process* ends, so the error and slow
//! criteria see one process's part: a hop whose own spans are fine may
//! drop its part of a trace another hop kept for an error (the share
//! criterion, by trace id, agrees everywhere). Production systems tail-
//! sample in a collector (the OpenTelemetry Collector's
//! `tail_sampling` processor, behind a load balancer that routes by trace
//! id) where all of a trace's spans meet. In-process demos, whose hops
//! share one process, see whole traces.

pub mod config;
mod demo;
pub mod naive;
pub mod rate_limited;
mod tail;
pub mod tail_core;
#[cfg(test)]
mod tests;
pub mod traffic;

use std::time::Duration;

pub use config::{HeadSampler, SAMPLER_NAMES, SamplingConfig};
pub use demo::{HeadVersusTail, head_versus_tail, trace_sampling};
pub use rate_limited::RateLimitedSampler;
pub use tail::{TailHandle, TailSamplingProcessor};
pub use tail_core::{TailStats, Verdict, keeps_by_trace_id};

/// Default traces waiting for a verdict.
pub const DEFAULT_MAX_TRACES: usize = 512;
/// The most traces the buffer may be configured to hold.
pub const MAX_TRACES: usize = 65_536;
/// Default spans kept per trace: a relay chain of the longest length
/// (`relay::MAX_HOPS` hops, two spans each) fits.
pub const DEFAULT_MAX_SPANS_PER_TRACE: usize = 64;
/// The most spans per trace that may be configured.
pub const MAX_SPANS_PER_TRACE: usize = 4096;
/// Default longest wait for a trace's last span.
pub const DEFAULT_DECISION_WAIT: Duration = Duration::from_secs(10);
/// The longest decision wait that may be configured, in milliseconds.
pub const MAX_WAIT_MS: u64 = 600_000;
/// Default slow threshold: a span this long keeps its trace.
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_millis(500);
/// The highest slow threshold that may be configured, in milliseconds.
pub const MAX_SLOW_MS: u64 = 3_600_000;
/// Default share of ordinary traces kept.
pub const DEFAULT_KEEP_SHARE: f64 = 0.1;

/// What the tail sampler keeps, and how much it may hold while deciding.
#[derive(Clone, Debug, PartialEq)]
pub struct TailPolicy {
    /// Share of ordinary traces kept, by trace id (0 to 1).
    pub keep_share: f64,
    /// A span lasting at least this long keeps its trace.
    pub slow_threshold: Duration,
    pub max_traces: usize,
    pub max_spans_per_trace: usize,
    pub decision_wait: Duration,
}

impl Default for TailPolicy {
    fn default() -> Self {
        Self {
            keep_share: DEFAULT_KEEP_SHARE,
            slow_threshold: DEFAULT_SLOW_THRESHOLD,
            max_traces: DEFAULT_MAX_TRACES,
            max_spans_per_trace: DEFAULT_MAX_SPANS_PER_TRACE,
            decision_wait: DEFAULT_DECISION_WAIT,
        }
    }
}
