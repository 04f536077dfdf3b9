//! `--log-format json`: one JSON object per log event, joined to its trace.
//!
//! A log line says what happened; a trace says where and how long. Each
//! is half an answer until they can be joined, and the join key is the
//! trace id: a line carrying the `trace_id` and `span_id` of the
//! OpenTelemetry span it was written in leads straight to that span in
//! the trace viewer, and from a span, a search for its trace id finds
//! every line any service wrote for that request. Log pipelines (Loki,
//! Elasticsearch, CloudWatch) read one JSON object per line natively:
//!
//! ```text
//! {"timestamp":"2026-12-01T10:00:00.123456Z","level":"INFO","service":"relay-hop-2",
//!  "target":"observability::rpc::outcome","message":"call failed",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "fields":{"grpc.message":"relay chain loops: hop-1","rpc.grpc.status_code":3,
//!  "rpc.method":"observability.v1.Relay/Forward"}}
//! ```
//!
//! (one line in reality). The ids are those of the OpenTelemetry context
//! current when the event fired — the span entered around it. They are
//! written even when the trace was sampled out: the ids exist either way,
//! and a tail sampler may still keep the trace.
//!
//! Simplified: `service` is the process's `service.name`; in-process demos
//! hosting several services write the process's name on every line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, Layer};

/// How log events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// A tracing layer writing each event as one JSON line to `W`.
#[derive(Debug)]
pub struct JsonLogLayer<W> {
    make_writer: W,
    service: Arc<str>,
}

impl<W> JsonLogLayer<W> {
    /// Lines for `service`, written to `make_writer` (e.g. `std::io::stderr`).
    pub fn new(service: impl Into<Arc<str>>, make_writer: W) -> Self {
        Self {
            make_writer,
            service: service.into(),
        }
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_line(event, &self.service);
        // One write per line, so lines from threads never interleave
        // mid-object; a log that cannot be written is not worth a panic.
        let _ = self
            .make_writer
            .make_writer_for(event.metadata())
            .write_all(line.as_bytes());
    }
}

/// The JSON line for `event`, ending in a newline.
fn format_line(event: &Event<'_>, service: &str) -> String {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let context = opentelemetry::Context::map_current(|cx| cx.span().span_context().clone());

    let mut timestamp = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(
        &mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp),
    );
    let metadata = event.metadata();
    let mut pairs: Vec<(&str, Value)> = vec![
        ("timestamp", Value::String(timestamp)),
        ("level", Value::String(metadata.level().to_string())),
        ("service", Value::String(service.to_owned())),
        ("target", Value::String(metadata.target().to_owned())),
        ("message", Value::String(fields.message)),
    ];
    if context.is_valid() {
        pairs.push(("trace_id", Value::String(context.trace_id().to_string())));
        pairs.push(("span_id", Value::String(context.span_id().to_string())));
    }
    if !fields.other.is_empty() {
        pairs.push(("fields", Value::Object(fields.other)));
    }
    // Written by hand rather than as one map, to keep this key order:
    // serde_json's map would sort the keys.
    let mut line = String::with_capacity(256);
    line.push('{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(line, "{}:{value}", Value::String((*key).to_owned()));
    }
    line.push_str("}\n");
    line
}

/// An event's fields: `message` apart, the others as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    other: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
        } else {
            self.other.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanKind;

    use super::*;
    use crate::relay::proto::ForwardRequest;
    use crate::relay::proto::relay_client::RelayClient;
    use crate::relay::tests::tcp_relay;
    use crate::rpc::{ClientBuilder, Net};
    use crate::telemetry::span_tree::attribute;
    use crate::telemetry::{capture_for_test, capture_json_logs_for_test};

    /// Episode 33. A call fails two hops deep. Each failing server writes
    /// one JSON line; its `trace_id` finds the failing request's whole
    /// trace among the exported spans, and its `span_id` the very server
    /// span that failed. A healthy call writes no such line.
    #[tokio::test]
    async fn telemetry_json_log_of_a_failing_call_finds_its_trace() {
        let (spans, _guard) = capture_for_test();
        let (logs, _log_guard) = capture_json_logs_for_test();
        let hop2 = tcp_relay("hop-2", None).await;
        let hop1 = tcp_relay("hop-1", Some(&hop2)).await;
        let mut client = RelayClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(hop1.uri()));
        let call = |visited: Vec<String>| ForwardRequest {
            payload: "order-17".into(),
            visited,
        };
        let healthy = client
            .forward(call(Vec::new()))
            .await
            .expect("healthy chain");
        let refused = client.forward(call(vec!["hop-2".into()])).await;
        assert_eq!(
            refused.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::InvalidArgument)
        );
        for hop in [hop1, hop2] {
            hop.shutdown().await.expect("graceful shutdown");
        }

        let lines: Vec<serde_json::Value> = logs
            .lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .filter(|line: &serde_json::Value| line["message"] == "call failed")
            .collect();
        assert_eq!(
            lines.len(),
            2,
            "hop-2 refused, hop-1 passed it on: {lines:#?}"
        );
        let captured = spans.spans();
        let healthy_trace = &healthy.get_ref().path[0].trace_id;
        for line in &lines {
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["fields"]["rpc.grpc.status_code"], 3);
            let trace_id = line["trace_id"].as_str().expect("trace_id");
            let span_id = line["span_id"].as_str().expect("span_id");
            assert_ne!(trace_id, healthy_trace);
            let trace: Vec<_> = captured
                .iter()
                .filter(|s| s.span_context.trace_id().to_string() == trace_id)
                .collect();
            assert_eq!(trace.len(), 4, "client → hop-1 → hop-2, whole");
            let failed = trace
                .iter()
                .find(|s| s.span_context.span_id().to_string() == span_id)
                .expect("the line's span is in the trace");
            assert_eq!(failed.span_kind, SpanKind::Server);
            assert_eq!(
                attribute(failed, "rpc.grpc.status_code").as_deref(),
                Some("3")
            );
        }
        assert_ne!(lines[0]["span_id"], lines[1]["span_id"], "one line per hop");
    }

    #[test]
    fn telemetry_log_format_parses_text_and_json_only() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" text ".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
