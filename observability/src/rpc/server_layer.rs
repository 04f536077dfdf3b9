//! The middleware every dslab server runs each request through.
//!
//! In order, per request: continue the caller's trace (W3C `traceparent`)
//! in a server span named `package.Service/Method`; look the method up in
//! the server's [`RouteTable`] (the metrics label, and the limits); turn
//! `grpc-timeout` into a deadline — capped, for unary calls — that the
//! handler's own outgoing calls inherit; enforce the message size limit;
//! guard the response stream ([`StreamGuard`]); and, when the response
//! ends, record the status on the span and in the RED metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http_body::Body;
use tokio::time::Instant;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::limits::{ServerLimits, sanitize_status};
use super::message_limit::LimitedBody;
use super::method::RpcMethod;
use super::outcome::{CallRecord, LocalRefusal, ObservedBody, Side, observe, refusal};
use super::routes::RouteTable;
use super::stream_guard::{Activity, StreamGuard};
use super::{deadline, trace_context};
use crate::metrics::RedMetrics;
use crate::telemetry::service::{self, SERVICE_ATTRIBUTE};
use std::time::Duration;

/// Wraps a server's routes in the per-request stack.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    /// None only when a benchmark turned metrics off.
    metrics: Option<RedMetrics>,
    max_message_bytes: usize,
    routes: Arc<RouteTable>,
    limits: ServerLimits,
    service: Option<Arc<str>>,
}

impl ServerLayer {
    pub fn new(
        metrics: Option<RedMetrics>,
        max_message_bytes: usize,
        routes: Arc<RouteTable>,
        limits: ServerLimits,
    ) -> Self {
        Self {
            metrics,
            max_message_bytes,
            routes,
            limits,
            service: None,
        }
    }

    /// The `service.name` this server's spans are exported under (see
    /// [`crate::telemetry::service`]); the process's own when unset.
    pub fn service_name(mut self, service: Option<Arc<str>>) -> Self {
        self.service = service;
        self
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
    type Response = http::Response<ObservedBody<StreamGuard<tonic::body::Body>>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|never| match never {})
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let now = Instant::now();
        let route = self.layer.routes.get(request.uri().path());
        // Span names and attributes come from the route table too: a path
        // nobody hosts is `unknown`, however the client spelled it, or a
        // scanner would fill the trace store with made-up names.
        let method = match route {
            Some(_) => RpcMethod::from_path(request.uri().path()),
            None => RpcMethod::unknown(),
        };
        let limits = &self.layer.limits;
        let asked = deadline::parse(request.headers()).map(|timeout| now + timeout);
        let streaming = route.is_some_and(|r| r.kind.is_streaming());
        // A unary call runs until its deadline or the route's cap,
        // whichever comes first — a client that sends no deadline (or a
        // year) does not get to hold a task forever. A stream is bounded
        // by its deadline if it has one, and by idleness.
        let (call_deadline, idle) = if streaming {
            let idle = route
                .and_then(|r| r.idle_timeout)
                .unwrap_or(limits.stream_idle_timeout);
            (asked, Some((idle, Activity::new())))
        } else {
            let cap = route
                .and_then(|r| r.max_duration)
                .unwrap_or(limits.max_unary_duration);
            let capped = now + cap;
            (Some(asked.map_or(capped, |at| at.min(capped))), None)
        };
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
            dslab.service = Empty,
        );
        let service = self.layer.service.clone();
        if let Some(service) = &service {
            span.record(SERVICE_ATTRIBUTE, &**service);
        }
        // The only failure is "no OpenTelemetry layer installed", in which
        // case there is no trace to continue.
        let _ = span.set_parent(trace_context::extract(request.headers()));
        if let Some(metrics) = &self.layer.metrics {
            metrics.start(&method);
        }
        let mut record = CallRecord::new(span.clone(), Side::Server, method, call_deadline);
        if let Some(metrics) = &self.layer.metrics {
            record = record.with_metrics(metrics.clone());
        }
        let max = self.layer.max_message_bytes;
        let activity = idle.as_ref().map(|(_, activity)| activity.clone());
        let watchdog = idle
            .as_ref()
            .map(|(timeout, activity)| (*timeout, activity.clone()));
        // A path nobody hosts is answered here, with the words grpc-go
        // uses (clients and people both read them), not passed on.
        let handled = match route {
            Some(_) => Ok(self
                .inner
                .call(request.map(|body| LimitedBody::new(body, max).with_activity(activity)))),
            None => Err(unhosted(&self.layer.routes, request.uri().path())),
        };
        Box::pin(async move {
            let mut response = match handled {
                Err(status) => refusal(&status),
                Ok(handled) => {
                    let handled = service::scope(service, deadline::scope(call_deadline, handled))
                        .instrument(span);
                    if streaming {
                        until_the_stream_opens(handled, call_deadline, watchdog).await?
                    } else {
                        // Every unary call has a deadline: its own, or the cap.
                        let at = call_deadline.unwrap_or_else(Instant::now);
                        match tokio::time::timeout_at(at, handled).await {
                            Ok(response) => response?,
                            Err(_elapsed) => refusal(&Status::deadline_exceeded(
                                "the call ran past its deadline (or the server's cap on unary calls)",
                            )),
                        }
                    }
                }
            };
            sanitize_status(response.headers_mut());
            // A refusal made by a layer inside this server (a rate limit
            // hosted with `Guarded`) is this server's answer to its caller.
            response.extensions_mut().remove::<LocalRefusal>();
            let stream_deadline = if streaming { call_deadline } else { None };
            let guarded = response.map(|body| StreamGuard::new(body, stream_deadline, idle));
            Ok(observe(guarded, record, None))
        })
    }
}

/// Waits for a streaming handler to return its response. One that reads
/// its request stream to the end first (client streaming), or waits for a
/// first message, has not returned yet while the client sends nothing: the
/// call's deadline and idle limit apply to it already, or a silent client
/// would hold the task for good. Once the response exists, [`StreamGuard`]
/// takes over.
async fn until_the_stream_opens<E>(
    handled: impl Future<Output = Result<http::Response<tonic::body::Body>, E>>,
    deadline: Option<Instant>,
    idle: Option<(Duration, Arc<Activity>)>,
) -> Result<http::Response<tonic::body::Body>, E> {
    let past_deadline = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let silent = async {
        match &idle {
            Some((timeout, activity)) => activity.silent_for(*timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        response = handled => response,
        () = past_deadline => Ok(refusal(&Status::deadline_exceeded(
            "the call's deadline passed while streaming",
        ))),
        () = silent => Ok(refusal(&Status::cancelled(format!(
            "stream idle for {:?}: closed by the server",
            idle.as_ref().map(|(timeout, _)| *timeout).unwrap_or_default()
        )))),
    }
}

/// `Unimplemented` for a path the server does not host, worded as grpc-go
/// words it.
fn unhosted(routes: &RouteTable, path: &str) -> Status {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Status::unimplemented(format!("malformed method name: {path:?}"));
    };
    if routes.hosts_service(service) {
        Status::unimplemented(format!("unknown method {method} for service {service}"))
    } else {
        Status::unimplemented(format!("unknown service {service}"))
    }
}
