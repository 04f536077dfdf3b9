//! `dslab demo trace-sampling`: the same traffic through the blind 1 %
//! head sampler and through tail sampling, and which traces survive.

use std::collections::{BTreeSet, HashMap};

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SimpleSpanProcessor, SpanData};

use super::naive::{NAIVE_HEAD_RATIO, naive_head_sampler};
use super::traffic::{SLOW_HOP, Traffic};
use super::{TailPolicy, TailSamplingProcessor, TailStats};
use crate::demo::{DemoResult, Narrator};
use crate::telemetry::SpanCapture;

/// What one sampling strategy exported.
#[derive(Debug)]
pub struct Exported {
    /// Spans exported per trace.
    pub traces: HashMap<TraceId, usize>,
    pub spans: usize,
}

impl Exported {
    fn from(spans: &[SpanData]) -> Self {
        let mut traces = HashMap::new();
        for span in spans {
            *traces.entry(span.span_context.trace_id()).or_default() += 1;
        }
        Self {
            traces,
            spans: spans.len(),
        }
    }

    /// Traces exported with fewer spans than a request makes.
    pub fn partial(&self, hops: usize) -> usize {
        self.traces.values().filter(|&&n| n != hops).count()
    }
}

/// The same traffic through both strategies.
#[derive(Debug)]
pub struct HeadVersusTail {
    /// Each request's trace id (the same under both: seeded ids).
    pub traces: Vec<TraceId>,
    pub head: Exported,
    pub tail: Exported,
    pub tail_stats: TailStats,
}

/// Replays `traffic` through the naive 1 % head sampler, then through
/// tail sampling keeping the same 1 % of ordinary traces.
pub fn head_versus_tail(traffic: &Traffic) -> HeadVersusTail {
    let head_export = InMemorySpanExporter::default();
    let head = traffic.provider(
        naive_head_sampler(),
        SimpleSpanProcessor::new(head_export.clone()),
    );
    let traces = traffic.replay(&head);

    let tail_export = InMemorySpanExporter::default();
    let policy = TailPolicy {
        keep_share: NAIVE_HEAD_RATIO,
        ..TailPolicy::default()
    };
    let tail = TailSamplingProcessor::new(policy, SimpleSpanProcessor::new(tail_export.clone()));
    let handle = tail.handle();
    let provider = traffic.provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), tail);
    traffic.replay(&provider);
    HeadVersusTail {
        traces,
        head: Exported::from(&head_export.get_finished_spans().unwrap_or_default()),
        tail: Exported::from(&tail_export.get_finished_spans().unwrap_or_default()),
        tail_stats: handle.stats(),
    }
}

/// Episode 31: 10,000 requests, one failure, one slow call, 1 % kept.
pub async fn trace_sampling(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    const FAILING: usize = 4_321;
    const SLOW: usize = 7_000;
    let traffic = Traffic {
        requests: 10_000,
        hops: 3,
        failing: BTreeSet::from([FAILING]),
        slow: BTreeSet::from([SLOW]),
        seed: 31,
    };
    out.section("Episode 31: which traces survive sampling");
    out.say("10,000 requests cross three services. Request #4,321 fails in the deepest one;");
    out.say(&format!(
        "request #7,000 spends {} ms there. Both strategies keep 1 % of ordinary traffic:",
        SLOW_HOP.as_millis()
    ));
    out.say("head sampling decides at the first span, tail sampling once the trace has ended.");
    let run = head_versus_tail(&traffic);
    let (failing, slow) = (run.traces[FAILING], run.traces[SLOW]);
    let kept = |exported: &Exported, trace: TraceId| match exported.traces.get(&trace) {
        Some(&n) if n == traffic.hops => "kept whole".to_owned(),
        Some(n) => format!("{n} of {} spans", traffic.hops),
        None => "dropped".to_owned(),
    };
    let row = |name: &str, exported: &Exported| {
        vec![
            name.to_owned(),
            exported.traces.len().to_string(),
            exported.spans.to_string(),
            kept(exported, failing),
            kept(exported, slow),
            exported.partial(traffic.hops).to_string(),
        ]
    };
    out.table(
        &[
            "strategy",
            "traces",
            "spans",
            "failing #4,321",
            "slow #7,000",
            "partial",
        ],
        &[
            row("head: parentbased_traceidratio 1 % (naive)", &run.head),
            row("tail: errors + slow + 1 % by trace id", &run.tail),
        ],
    );
    out.check(
        "head sampling at 1 % dropped the failing request's trace (the broken twin)",
        !run.head.traces.contains_key(&failing),
        format!("failing trace {failing}: {}", kept(&run.head, failing)),
    );
    out.check(
        "tail sampling kept the failing and the slow trace, every span of each",
        run.tail.traces.get(&failing) == Some(&traffic.hops)
            && run.tail.traces.get(&slow) == Some(&traffic.hops),
        format!(
            "{} error, {} slow kept",
            run.tail_stats.kept_error, run.tail_stats.kept_slow
        ),
    );
    let ordinary = run
        .tail
        .traces
        .keys()
        .filter(|t| **t != failing && **t != slow)
        .filter(|t| run.head.traces.contains_key(t))
        .count();
    let tail_ordinary = run.tail_stats.kept_share as usize;
    out.check(
        "both kept the same ordinary traces: one trace-id rule, so every process agrees",
        ordinary == tail_ordinary && ordinary == run.head.traces.len(),
        format!(
            "{ordinary} shared, head {} tail {tail_ordinary}",
            run.head.traces.len()
        ),
    );
    out.check(
        "no trace was exported in part by either strategy",
        run.head.partial(traffic.hops) == 0 && run.tail.partial(traffic.hops) == 0,
        format!(
            "tail judged {} traces, dropped {}",
            run.tail_stats.kept() + run.tail_stats.dropped,
            run.tail_stats.dropped
        ),
    );
    Ok(())
}
