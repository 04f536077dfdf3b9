//! The middleware every dslab server runs each request through.
//!
//! In order, per request: continue the caller's trace (W3C `traceparent`)
//! in a server span named `package.Service/Method`; turn `grpc-timeout`
//! into a deadline the handler's own outgoing calls inherit; enforce the
//! message size limit; and, when the response ends, record the status on
//! the span and in the RED metrics.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http_body::Body;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::message_limit::LimitedBody;
use super::method::RpcMethod;
use super::outcome::{CallRecord, ObservedBody, Side, observe};
use super::{deadline, trace_context};
use crate::metrics::RedMetrics;

/// Wraps a server's routes in the per-request stack.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    metrics: RedMetrics,
    max_message_bytes: usize,
}

impl ServerLayer {
    pub fn new(metrics: RedMetrics, max_message_bytes: usize) -> Self {
        Self {
            metrics,
            max_message_bytes,
        }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerStack<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerStack {
            inner,
            layer: self.clone(),
        }
    }
}

/// [`ServerLayer`] applied to a service.
#[derive(Clone, Debug)]
pub struct ServerStack<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S, B> Service<http::Request<B>> for ServerStack<S>
where
    S: Service<
            http::Request<LimitedBody<B>>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<ObservedBody<tonic::body::Body>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = RpcMethod::from_path(request.uri().path());
        let deadline = deadline::parse(request.headers()).map(|timeout| Instant::now() + timeout);
        // `parent: None`: the only parent a server span may have is the one
        // the caller sent. Whatever span happens to be current in this
        // process (another request, a test) is not part of this trace.
        let span = tracing::info_span!(
            parent: None,
            "rpc.server",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %method.service,
            rpc.method = %method.method,
            server.address = request.uri().authority().map(|a| a.as_str()).unwrap_or_default(),
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        );
        // The only failure is "no OpenTelemetry layer installed", in which
        // case there is no trace to continue.
        let _ = span.set_parent(trace_context::extract(request.headers()));
        let record = CallRecord::new(span.clone(), Side::Server, method, deadline)
            .with_metrics(self.layer.metrics.clone());
        let max = self.layer.max_message_bytes;
        let handled = self
            .inner
            .call(request.map(|body| LimitedBody::new(body, max)));
        Box::pin(async move {
            let response = deadline::scope(deadline, handled).instrument(span).await?;
            Ok(observe(response, record, None))
        })
    }
}
