//! W3C trace context (`traceparent`, `tracestate`) carried in gRPC metadata.
//!
//! gRPC metadata is HTTP/2 headers, so propagation is two small adapters
//! between OpenTelemetry's propagator and `http::HeaderMap`. The propagator
//! is used directly rather than through a process-global one, so the stack
//! behaves the same whether or not an application installed its own.

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Reads the caller's trace context from incoming headers.
///
/// Pitfall: a malformed `traceparent` must not fail the call. The
/// propagator returns an empty context for it, and the server span then
/// starts a fresh trace — exactly what the W3C spec asks of a receiver.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `context` into outgoing headers (replacing any stale values).
pub fn inject(context: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = http::HeaderName::from_bytes(key.as_bytes());
        let value = http::HeaderValue::from_str(&value);
        if let (Ok(name), Ok(value)) = (name, value) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
    use opentelemetry::trace::{SpanId, TraceId};

    #[test]
    fn trace_context_round_trips_through_headers() {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("valid hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let mut headers = HeaderMap::new();
        inject(
            &Context::new().with_remote_span_context(span.clone()),
            &mut headers,
        );
        assert_eq!(
            headers["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let extracted = extract(&headers);
        assert_eq!(extracted.span().span_context(), &span);
    }

    #[test]
    fn trace_context_malformed_traceparent_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-not-a-trace-01".parse().expect("ascii"));
        assert!(!extract(&headers).span().span_context().is_valid());
    }
}
