//! `GET /metrics`: the HTTP endpoint Prometheus scrapes.
//!
//! Every `dslab serve` process opens one with `--metrics-listen ADDR`. It is
//! plain HTTP/1.1 on its own port, as Prometheus expects, and answers
//! `GET /metrics` (and `HEAD`) with the [`MetricsRegistry`] encoded at that
//! moment; `/` points there, other paths get 404 and other methods 405.
//!
//! Bounds — a scrape port is often reachable by more than Prometheus:
//! - at most [`MAX_CONNECTIONS`] connections at once; more are closed on
//!   arrival;
//! - request headers must arrive within [`HEADER_READ_TIMEOUT`], fit in
//!   [`MAX_BUFFER_BYTES`] and number at most [`MAX_HEADERS`];
//! - a connection lives at most [`CONNECTION_LIFETIME`], however busy;
//! - request bodies are never read, and nothing a client sends is echoed
//!   or becomes a label, so the response is as large as the registry and
//!   no larger.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::MetricsRegistry;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per connection, bounding a request's headers (hyper's
/// minimum is 8 KiB).
pub const MAX_BUFFER_BYTES: usize = 16 * 1024;
/// Headers per request.
pub const MAX_HEADERS: usize = 64;
/// Longest a connection is kept, however many scrapes it carries.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// The content type of the OpenMetrics text `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running metrics endpoint; stops when dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Serves `registry` on `listener` until dropped.
    pub fn spawn(listener: TcpListener, registry: MetricsRegistry) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, registry));
        Ok(Self { local_addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.local_addr)
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, registry: MetricsRegistry) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, usually: wait rather than spin.
                tracing::warn!("metrics endpoint: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics endpoint: connection limit reached; closing");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(respond(&request, &registry)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_BUFFER_BYTES)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service);
            // Past its lifetime the connection is simply dropped.
            if let Ok(Err(err)) = tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                tracing::debug!(%peer, "metrics endpoint: {err}");
            }
            drop(permit);
        });
    }
}

/// The whole routing table of the endpoint.
fn respond(request: &Request<Incoming>, registry: &MetricsRegistry) -> Response<Full<Bytes>> {
    let get_or_head = matches!(*request.method(), Method::GET | Method::HEAD);
    match (request.uri().path(), get_or_head) {
        ("/metrics", true) => {
            let body = if request.method() == Method::HEAD {
                Bytes::new()
            } else {
                Bytes::from(registry.encode())
            };
            reply(StatusCode::OK, CONTENT_TYPE, body)
        }
        ("/", true) => text(StatusCode::OK, "dslab: metrics are at /metrics\n"),
        ("/metrics" | "/", false) => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
