//! Finished spans arranged as the trees a trace viewer would draw.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;

/// How long a span lasted.
pub fn duration(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
}

/// A span attribute rendered as a string, if present.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The distinct trace ids among `spans`, as hex.
pub fn trace_ids(spans: &[SpanData]) -> BTreeSet<String> {
    spans
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect()
}

/// A span's position as an ordered map key: (trace id, span id).
type Key = ([u8; 16], [u8; 8]);

fn key(trace: TraceId, span: SpanId) -> Key {
    (trace.to_bytes(), span.to_bytes())
}

/// The span in `spans` that is `span`'s parent, if it was captured.
pub fn parent_of<'a>(spans: &'a [SpanData], span: &SpanData) -> Option<&'a SpanData> {
    if span.parent_span_id == SpanId::INVALID {
        return None;
    }
    spans.iter().find(|candidate| {
        candidate.span_context.span_id() == span.parent_span_id
            && candidate.span_context.trace_id() == span.span_context.trace_id()
    })
}

/// Renders every trace as an indented tree, children in start order:
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
/// └─ client observability.v1.Relay/Forward → 127.0.0.1:40001   3.120 ms  OK
///    └─ server observability.v1.Relay/Forward @ 127.0.0.1:40001   2.870 ms  OK
/// ```
pub fn render(spans: &[SpanData]) -> String {
    let mut children: BTreeMap<Key, Vec<&SpanData>> = BTreeMap::new();
    let mut roots: BTreeMap<[u8; 16], Vec<&SpanData>> = BTreeMap::new();
    for span in spans {
        let trace = span.span_context.trace_id();
        if parent_of(spans, span).is_some() {
            children
                .entry(key(trace, span.parent_span_id))
                .or_default()
                .push(span);
        } else {
            roots.entry(trace.to_bytes()).or_default().push(span);
        }
    }
    let by_start = |list: &mut Vec<&SpanData>| list.sort_by_key(|s| s.start_time);
    children.values_mut().for_each(by_start);
    roots.values_mut().for_each(by_start);

    let mut out = String::new();
    for (trace, trace_roots) in &roots {
        let _ = writeln!(out, "trace {}", TraceId::from_bytes(*trace));
        for (i, root) in trace_roots.iter().enumerate() {
            draw(&mut out, root, &children, "", i + 1 == trace_roots.len());
        }
    }
    out
}

fn draw(
    out: &mut String,
    span: &SpanData,
    children: &BTreeMap<Key, Vec<&SpanData>>,
    indent: &str,
    last: bool,
) {
    let kind = match span.span_kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    let peer = match (span.span_kind.clone(), attribute(span, "server.address")) {
        (SpanKind::Client, Some(addr)) => format!(" → {addr}"),
        (SpanKind::Server, Some(addr)) if !addr.is_empty() => format!(" @ {addr}"),
        _ => String::new(),
    };
    let status = match (&span.status, attribute(span, "rpc.grpc.status_code")) {
        (Status::Error { description }, _) => format!("ERROR {description}"),
        (_, Some(code)) => match code.parse::<i32>() {
            Ok(code) => format!("{:?}", tonic::Code::from_i32(code)),
            Err(_) => code,
        },
        (Status::Ok, None) => "OK".to_owned(),
        (Status::Unset, None) => String::new(),
    };
    let branch = if last { "└─ " } else { "├─ " };
    let _ = writeln!(
        out,
        "{indent}{branch}{kind} {}{peer}  {:.3} ms  {status}",
        span.name,
        duration(span).as_secs_f64() * 1e3
    );
    if let Some(kids) = children.get(&key(
        span.span_context.trace_id(),
        span.span_context.span_id(),
    )) {
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        for (i, child) in kids.iter().enumerate() {
            draw(out, child, children, &deeper, i + 1 == kids.len());
        }
    }
}
