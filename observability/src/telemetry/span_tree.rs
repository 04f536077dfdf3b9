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

/// A span kind as a trace viewer writes it: `client`, `server`, …
pub fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
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
    let kind = kind_name(&span.span_kind);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::capture_for_test;

    /// Episode 31. Spans become one tree per trace, children under their
    /// parent in start order, with kind, name, peer and status shown.
    #[test]
    fn telemetry_span_tree_renders_one_tree_per_trace() {
        let (capture, _guard) = capture_for_test();
        {
            let root = tracing::info_span!(
                "call",
                otel.name = "pkg.Svc/Get",
                otel.kind = "client",
                server.address = "n2:9000",
                rpc.grpc.status_code = 0
            );
            let _entered = root.enter();
            tracing::info_span!(
                "serve",
                otel.name = "pkg.Svc/Get",
                otel.kind = "server",
                rpc.grpc.status_code = 5
            )
            .in_scope(|| {});
        }
        tracing::info_span!("other", otel.name = "pkg.Svc/Put", otel.kind = "client")
            .in_scope(|| {});
        let spans = capture.spans();
        assert_eq!(spans.len(), 3);
        assert_eq!(trace_ids(&spans).len(), 2, "two roots, two traces");
        let tree = render(&spans);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines.iter().filter(|l| l.starts_with("trace ")).count(), 2);
        let client = lines
            .iter()
            .position(|l| l.contains("client pkg.Svc/Get → n2:9000"))
            .expect("client span shown");
        assert!(
            lines[client + 1]
                .trim_start()
                .starts_with("└─ server pkg.Svc/Get"),
            "{tree}"
        );
        assert!(
            lines[client + 1].ends_with("NotFound"),
            "status shown: {tree}"
        );
        let child = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .expect("server span");
        assert_eq!(
            parent_of(&spans, child).map(|p| p.name.as_ref()),
            Some("pkg.Svc/Get")
        );
    }

    /// Spans outside any test capture go nowhere (and do not panic).
    #[test]
    fn telemetry_capture_sees_only_its_own_thread() {
        let (capture, _guard) = capture_for_test();
        std::thread::spawn(|| tracing::info_span!("elsewhere").in_scope(|| {}))
            .join()
            .expect("thread");
        assert!(capture.spans().is_empty());
    }
}
