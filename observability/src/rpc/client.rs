//! Dialing a dslab gRPC peer.
//!
//! [`RpcChannel`] is a tonic `Channel` with the client half of the stack:
//! a client span per call (`package.Service/Method`, child of whatever span
//! is current), W3C trace context injected into the outgoing metadata, and
//! a deadline on every call — the caller's own, the remainder of the
//! request being handled, or the default, whichever ends first.
//!
//! Pitfall: a call without a deadline waits forever on a partitioned peer,
//! because a dropped packet and a slow answer look the same. The simulated
//! network drops silently, exactly like real partitions do.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Uri;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;
use tower_service::Service;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::method::RpcMethod;
use super::net::{Net, peer_uri};
use super::outcome::{CallRecord, ObservedBody, Side, observe};
use super::{deadline, trace_context};
use crate::Result;
use crate::telemetry::service::{self, SERVICE_ATTRIBUTE};

/// Default time allowed to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval of HTTP/2 pings on a busy connection, and how long a
/// ping may go unanswered before the connection is declared dead.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(1);
/// Default deadline of a call that sets none and inherits none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How clients are dialed: over which network, with which timeouts.
#[derive(Clone, Copy, Debug)]
pub struct ClientBuilder {
    net: Net,
    connect_timeout: Duration,
    keepalive: Duration,
    default_deadline: Duration,
}

impl ClientBuilder {
    pub fn new(net: Net) -> Self {
        Self {
            net,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            default_deadline: DEFAULT_DEADLINE,
        }
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often to ping a connection with calls in flight, and how long to
    /// wait for the answer before treating the connection as dead.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// The deadline of calls that neither set one (`Request::set_timeout`)
    /// nor inherit one from the request they are made for.
    pub fn default_deadline(mut self, deadline: Duration) -> Self {
        self.default_deadline = deadline;
        self
    }

    /// A channel to `uri` that connects on first use.
    pub fn connect_lazy(&self, uri: Uri) -> RpcChannel {
        let peer: Arc<str> = uri
            .authority()
            .map_or_else(|| uri.to_string(), |a| a.to_string())
            .into();
        RpcChannel {
            channel: self.net.channel(uri, self.connect_timeout, self.keepalive),
            default_deadline: self.default_deadline,
            peer,
        }
    }

    /// A channel to `addr` (`host:port` or `http://host:port`).
    pub fn dial(&self, addr: &str) -> Result<RpcChannel> {
        Ok(self.connect_lazy(peer_uri(addr)?))
    }
}

/// A channel to one peer, carrying every call through the client stack.
/// Generated clients take it directly: `RelayClient::new(channel)`.
#[derive(Clone, Debug)]
pub struct RpcChannel {
    channel: Channel,
    default_deadline: Duration,
    peer: Arc<str>,
}

impl Service<http::Request<tonic::body::Body>> for RpcChannel {
    type Response = http::Response<ObservedBody<tonic::body::Body>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = RpcMethod::from_path(request.uri().path());
        let now = Instant::now();
        let own = deadline::parse(request.headers()).unwrap_or(self.default_deadline);
        let call_deadline = match deadline::current() {
            Some(inherited) => inherited.min(now + own),
            None => now + own,
        };
        let span = tracing::info_span!(
            "rpc.client",
            otel.name = %method,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %method.service,
            rpc.method = %method.method,
            server.address = &*self.peer,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
            dslab.service = Empty,
        );
        // A call made while handling a request belongs to that service.
        if let Some(service) = service::current() {
            span.record(SERVICE_ATTRIBUTE, &*service);
        }
        trace_context::inject(&span.context(), request.headers_mut());
        let remaining = call_deadline.saturating_duration_since(now);
        deadline::set(request.headers_mut(), remaining);
        let record = CallRecord::new(span.clone(), Side::Client, method, Some(call_deadline));

        if remaining.is_zero() {
            // Sending a call nobody will wait for only adds load downstream.
            let status = Status::deadline_exceeded("deadline expired before the call was sent");
            record.finish(status.code(), status.message());
            return Box::pin(std::future::ready(Err(Box::new(status) as BoxError)));
        }
        // `Channel` is a cheap handle: call the instance that was polled
        // ready and leave a fresh clone in its place.
        let ready = self.channel.clone();
        let mut ready = std::mem::replace(&mut self.channel, ready);
        let sent = ready.call(request);
        Box::pin(
            async move {
                match tokio::time::timeout_at(call_deadline, sent).await {
                    Err(_elapsed) => {
                        let status = Status::deadline_exceeded(format!(
                            "no response within the deadline of {remaining:?}"
                        ));
                        record.finish(status.code(), status.message());
                        Err(Box::new(status) as BoxError)
                    }
                    // Pitfall: tonic's channel runs its own timer from the
                    // same `grpc-timeout` header and reports its expiry as
                    // `Cancelled`. Past the deadline, the truth is
                    // `DeadlineExceeded`.
                    Ok(Err(_)) if Instant::now() >= call_deadline => {
                        let status = Status::deadline_exceeded(format!(
                            "no response within the deadline of {remaining:?}"
                        ));
                        record.finish(status.code(), status.message());
                        Err(Box::new(status) as BoxError)
                    }
                    Ok(Err(err)) => {
                        let status = Status::from_error(err.into());
                        record.finish(status.code(), status.message());
                        Err(Box::new(status) as BoxError)
                    }
                    Ok(Ok(response)) => Ok(observe(
                        expired_as_deadline(response, call_deadline),
                        record,
                        Some(call_deadline),
                    )),
                }
            }
            .instrument(span),
        )
    }
}

/// Pitfall: tonic's server reports an expired `grpc-timeout` as
/// `Cancelled`. When the call's deadline has in fact passed, the caller is
/// told the truth: `DeadlineExceeded`.
fn expired_as_deadline<B>(
    mut response: http::Response<B>,
    call_deadline: Instant,
) -> http::Response<B> {
    let cancelled = response
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code == "1");
    if cancelled && Instant::now() >= call_deadline {
        let status =
            Status::deadline_exceeded("deadline expired (reported by the server as cancelled)");
        let headers = response.headers_mut();
        headers.remove("grpc-message");
        let _ = status.add_header(headers);
    }
    response
}
