//! How the stack learns the gRPC status of a call, and records it once.
//!
//! A gRPC status travels in one of three places: in the response headers
//! (a "trailers-only" response, how errors usually come back), in the
//! trailers after the last message (how successes end), or nowhere — the
//! stream was cut, cancelled or timed out. [`ObservedBody`] watches the
//! response body for the trailers and hands the status to a
//! [`StatusSink`] exactly once. [`CallRecord`] is the sink the RPC stack
//! uses (span + RED metrics); tower layers elsewhere (circuit breakers,
//! bulkheads, adaptive limiters) bring their own, and learn the real
//! outcome of streaming-shaped gRPC calls the same way.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::{Code, Status};

use super::method::RpcMethod;
use crate::metrics::RedMetrics;

/// Which end of the call a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// The open span (and, on servers, the metrics) of one call in flight.
#[derive(Debug)]
pub struct CallRecord {
    span: tracing::Span,
    side: Side,
    method: RpcMethod,
    started: Instant,
    deadline: Option<Instant>,
    metrics: Option<RedMetrics>,
    finished: bool,
}

impl CallRecord {
    pub fn new(
        span: tracing::Span,
        side: Side,
        method: RpcMethod,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            span,
            side,
            method,
            started: Instant::now(),
            deadline,
            metrics: None,
            finished: false,
        }
    }

    pub fn with_metrics(mut self, metrics: RedMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the call's final status.
    pub fn finish(mut self, code: Code, message: &str) {
        self.record(code, message);
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn record(&mut self, code: Code, message: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.span.record("rpc.grpc.status_code", code as i32);
        if self.side == Side::Server && code != Code::Ok {
            // The server's log of failed calls. Written inside the call's
            // span, so a JSON log line carries its trace and span ids
            // (`--log-format json`) and the trace shows it as an event.
            self.span.in_scope(|| {
                tracing::info!(
                    rpc.method = %self.method,
                    rpc.grpc.status_code = code as i32,
                    grpc.message = message,
                    "call failed"
                );
            });
        }
        if is_error(self.side, code) {
            self.span.record("otel.status_code", "ERROR");
            let description = if message.is_empty() {
                format!("{code:?}")
            } else {
                format!("{code:?}: {message}")
            };
            self.span
                .record("otel.status_description", description.as_str());
        } else {
            self.span.record("otel.status_code", "OK");
        }
        if let Some(metrics) = &self.metrics {
            metrics.record(&self.method, code, self.started.elapsed());
        }
    }
}

impl Drop for CallRecord {
    /// A call dropped before its status arrived was abandoned: by the peer
    /// going away, or by a deadline expiring somewhere up the stack.
    /// Pitfall: tonic's server reports its own deadline expiry as
    /// `Cancelled`; the record looks at the clock to tell the two apart.
    fn drop(&mut self) {
        if !self.finished {
            let expired = self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
            let (code, message) = if expired {
                (
                    Code::DeadlineExceeded,
                    "deadline expired before the call completed",
                )
            } else {
                (Code::Cancelled, "call abandoned before completion")
            };
            self.record(code, message);
        }
    }
}

/// OpenTelemetry's RPC conventions: every non-OK status is a client error,
/// but a server only marks its span as an error for codes that indicate a
/// server-side fault — `InvalidArgument` is the caller's mistake.
fn is_error(side: Side, code: Code) -> bool {
    match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

/// Something that wants to know how a call ended, exactly once.
///
/// A sink dropped without [`finish`](Self::finish) means the call was
/// abandoned (cancelled, timed out upstream); sinks handle that in `Drop`.
pub trait StatusSink: Send + 'static {
    fn finish(self, code: Code, message: &str);

    /// A layer between this one and the backend refused the call (see
    /// [`LocalRefusal`]): the backend never saw it. By default the sink is
    /// dropped, which for the resilience layers is a call that counts for
    /// nothing; a sink whose drop means something else (a span's record
    /// ends as `Cancelled`) must say what a local refusal is instead.
    fn refused_locally(self)
    where
        Self: Sized,
    {
        drop(self);
    }
}

/// Marks a response that a layer in this process made up — an open
/// breaker, a full bulkhead, a rate limit, a shed or throttled call —
/// rather than one the backend sent.
///
/// Pitfall: those refusals carry ordinary gRPC codes (`Unavailable`,
/// `ResourceExhausted`), so a breaker stacked above a bulkhead would open
/// on the bulkhead's own rejections, and a retry layer would re-send
/// "breaker open" refusals and spend its budget on them. The mark lets
/// every layer tell the two apart. It is a response *extension*, which
/// never crosses the wire: a server's refusal reaches its clients as an
/// ordinary status, which is what it is to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalRefusal {
    /// Which layer refused: `circuit_breaker`, `bulkhead`, `rate_limit`, …
    pub layer: &'static str,
}

/// The mark on `response`, if a layer in this process refused the call.
pub fn local_refusal_of<B>(response: &http::Response<B>) -> Option<LocalRefusal> {
    response.extensions().get::<LocalRefusal>().copied()
}

impl StatusSink for CallRecord {
    fn finish(self, code: Code, message: &str) {
        CallRecord::finish(self, code, message);
    }
}

/// Hands the status to `sink` now if the response carries it in its
/// headers (trailers-only), or wraps the body to hand it over from the
/// trailers. `deadline` bounds reading the rest of the body.
pub fn observe<B, S: StatusSink>(
    response: http::Response<B>,
    sink: S,
    deadline: Option<Instant>,
) -> http::Response<ObservedBody<B, S>> {
    if local_refusal_of(&response).is_some() {
        sink.refused_locally();
        return response.map(ObservedBody::finished);
    }
    match code_in(response.headers()) {
        Some(Code::Ok) => {
            sink.finish(Code::Ok, "");
            response.map(ObservedBody::finished)
        }
        Some(_) => {
            let status = status_in(response.headers())
                .unwrap_or_else(|| Status::unknown("unreadable grpc-status"));
            sink.finish(status.code(), status.message());
            response.map(ObservedBody::finished)
        }
        None => response.map(|body| ObservedBody::new(body, sink, deadline)),
    }
}

/// The `grpc-status` code in a header map, read without building a
/// `Status` (which copies every header into its metadata): the fast path
/// every successful call takes. Unparseable values read as `Unknown`.
pub fn code_in(headers: &HeaderMap) -> Option<Code> {
    let raw = headers.get("grpc-status")?;
    Some(match raw.as_bytes() {
        b"0" => Code::Ok,
        bytes => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32),
    })
}

/// A trailers-only response carrying `status`, marked as refused by
/// `layer` in this process: how a layer refuses a call without calling
/// the service behind it.
pub fn local_refusal<B: Default>(status: &Status, layer: &'static str) -> http::Response<B> {
    let mut response = refusal(status);
    response.extensions_mut().insert(LocalRefusal { layer });
    response
}

/// A trailers-only response carrying `status`.
pub fn refusal<B: Default>(status: &Status) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    // `add_header` only fails for a message that cannot be percent-encoded
    // into a header, which it always can.
    let _ = status.add_header(response.headers_mut());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The status in a header map (`grpc-status` and `grpc-message`), if any.
pub fn status_in(headers: &HeaderMap) -> Option<Status> {
    headers.get("grpc-status")?;
    Status::from_header_map(headers)
}

pin_project! {
    /// A response body that hands the call's status to its sink when it
    /// ends: from trailers, from an error, or from its deadline expiring.
    /// Dropped unread, it drops the sink unfinished.
    pub struct ObservedBody<B, S = CallRecord> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Option<Sleep>,
        record: Option<S>,
    }
}

impl<B, S> ObservedBody<B, S> {
    /// Wraps a body whose status is still to come. `deadline` (clients
    /// only) bounds how long reading the rest of the body may take.
    pub fn new(inner: B, sink: S, deadline: Option<Instant>) -> Self {
        Self {
            inner,
            deadline: deadline.map(tokio::time::sleep_until),
            record: Some(sink),
        }
    }

    /// Wraps a body whose status was already handed over (trailers-only).
    pub fn finished(inner: B) -> Self {
        Self {
            inner,
            deadline: None,
            record: None,
        }
    }
}

impl<B: Default, S> Default for ObservedBody<B, S> {
    fn default() -> Self {
        Self::finished(B::default())
    }
}

impl<B, S: StatusSink> Body for ObservedBody<B, S>
where
    B: Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(polled) = this.inner.as_mut().poll_frame(cx) {
            return Poll::Ready(match polled {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref()
                        && let Some(record) = this.record.take()
                    {
                        match code_in(trailers) {
                            Some(Code::Ok) => record.finish(Code::Ok, ""),
                            _ => {
                                let status = status_in(trailers).unwrap_or_else(|| {
                                    Status::unknown("trailers without grpc-status")
                                });
                                record.finish(status.code(), status.message());
                            }
                        }
                    }
                    Some(Ok(frame))
                }
                Some(Err(err)) => {
                    // Keep the code tonic would derive (a `Status` in the
                    // chain, an h2 reset, a connect error), not `Unknown`.
                    let status = Status::from_error(err.into());
                    if let Some(record) = this.record.take() {
                        record.finish(status.code(), status.message());
                    }
                    Some(Err(Box::new(status)))
                }
                None => {
                    if let Some(record) = this.record.take() {
                        record.finish(Code::Unknown, "stream ended without grpc-status");
                    }
                    None
                }
            });
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            ready!(deadline.poll(cx));
            let status = Status::deadline_exceeded("deadline expired while reading the response");
            if let Some(record) = this.record.take() {
                record.finish(status.code(), status.message());
            }
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
