//! `GET /metrics`: the HTTP endpoint Prometheus scrapes.
//!
//! Every `dslab serve` process opens one with `--metrics-listen ADDR`. It is
//! plain HTTP/1.1 on its own port, as Prometheus expects, and answers
//! `GET /metrics` (and `HEAD`) with the [`MetricsRegistry`] encoded at that
//! moment; `/` points there, other paths get 404 and other methods 405.
//!
//! Bounds — a scrape port is often reachable by more than Prometheus:
//! - the endpoint runs on its own thread with its own single-threaded
//!   runtime, so a flood of scrapes costs at most that one thread and
//!   never queues the service's calls behind it;
//! - the registry is encoded at most every [`MIN_ENCODE_INTERVAL`]; scrapes
//!   in between get the same page;
//! - one request per connection (no keep-alive, no pipelining), and a
//!   connection lives at most [`CONNECTION_LIFETIME`], reading and writing;
//! - at most [`MAX_CONNECTIONS`] at once; when full, a new connection
//!   evicts the oldest one, so clients that open connections and stall
//!   cannot lock a scraper out (a real scrape takes milliseconds);
//! - request headers must arrive within [`HEADER_READ_TIMEOUT`], fit in
//!   [`MAX_BUFFER_BYTES`] and number at most [`MAX_HEADERS`];
//! - request bodies are never read, and nothing a client sends is echoed
//!   or becomes a label, so the response is as large as the registry and
//!   no larger.
//!
//! Still: bind it to an interface only the monitoring network reaches, as
//! one does with any exporter.

use std::collections::VecDeque;
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

use super::MetricsRegistry;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Scrapes closer together than this share one encoding.
pub const MIN_ENCODE_INTERVAL: Duration = Duration::from_millis(100);
/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per connection, bounding a request's headers (hyper's
/// minimum is 8 KiB).
pub const MAX_BUFFER_BYTES: usize = 16 * 1024;
/// Headers per request.
pub const MAX_HEADERS: usize = 64;
/// Longest a connection is kept, from accept to the last byte written.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// The content type of the OpenMetrics text `prometheus-client` writes,
/// served to clients that ask for it (Prometheus does).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for everyone else (curl, promtool,
/// older scrapers).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running metrics endpoint; stops when dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MetricsEndpoint {
    /// Serves `registry` on `listener`, from a thread of its own, until
    /// dropped.
    pub fn spawn(
        listener: std::net::TcpListener,
        registry: MetricsRegistry,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("metrics-endpoint".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            tracing::warn!("metrics endpoint: {err}");
                            return;
                        }
                    };
                    tokio::select! {
                        () = accept_loop(listener, registry) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            local_addr,
            stop: Some(stop),
        })
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The last page encoded, in both formats, and when.
#[derive(Debug, Default)]
struct Page {
    openmetrics: Bytes,
    text: Bytes,
    encoded_at: Option<std::time::Instant>,
}

async fn accept_loop(listener: TcpListener, registry: MetricsRegistry) {
    let page = Arc::new(std::sync::Mutex::new(Page::default()));
    let mut open: VecDeque<tokio::task::AbortHandle> = VecDeque::new();
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
        open.retain(|task| !task.is_finished());
        if open.len() >= MAX_CONNECTIONS
            && let Some(oldest) = open.pop_front()
        {
            tracing::debug!(%peer, "metrics endpoint full: evicting the oldest connection");
            oldest.abort();
        }
        let registry = registry.clone();
        let page = page.clone();
        let task = tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, |openmetrics| {
                    current_page(&page, &registry, openmetrics)
                });
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(false)
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_BUFFER_BYTES)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service);
            // Past its lifetime the connection is simply dropped.
            if let Ok(Err(err)) = tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                tracing::debug!(%peer, "metrics endpoint: {err}");
            }
        });
        open.push_back(task.abort_handle());
    }
}

/// The registry's page in the format asked for, encoded again only if the
/// last one is older than [`MIN_ENCODE_INTERVAL`].
fn current_page(
    page: &std::sync::Mutex<Page>,
    registry: &MetricsRegistry,
    openmetrics: bool,
) -> Bytes {
    let mut page = page
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fresh = page
        .encoded_at
        .is_some_and(|at| at.elapsed() < MIN_ENCODE_INTERVAL);
    if !fresh {
        let encoded = registry.encode();
        page.text = Bytes::from(prometheus_text(&encoded));
        page.openmetrics = Bytes::from(encoded);
        page.encoded_at = Some(std::time::Instant::now());
    }
    if openmetrics {
        page.openmetrics.clone()
    } else {
        page.text.clone()
    }
}

/// OpenMetrics text rewritten as the classic Prometheus format (0.0.4):
/// no `# EOF` or `# UNIT`, and a counter's `# HELP` / `# TYPE` name the
/// series with its `_total` suffix, as that format's parsers expect.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Held until its TYPE line says whether it is a counter.
            if let Some(previous) = help.replace(line) {
                out.push_str(previous);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            if let Some(held) = help.take() {
                let text = held
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.strip_prefix(name))
                    .unwrap_or("");
                out.push_str(&format!("# HELP {name}_total{text}\n"));
            }
            out.push_str(&format!("# TYPE {name}_total counter\n"));
            continue;
        }
        if let Some(held) = help.take() {
            out.push_str(held);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The whole routing table of the endpoint.
fn respond(request: &Request<Incoming>, page: impl FnOnce(bool) -> Bytes) -> Response<Full<Bytes>> {
    let get_or_head = matches!(*request.method(), Method::GET | Method::HEAD);
    match (request.uri().path(), get_or_head) {
        ("/metrics", true) => {
            // Content negotiation, as Prometheus's client libraries do it.
            let openmetrics = request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .any(|accept| {
                    accept
                        .to_str()
                        .is_ok_and(|a| a.contains("application/openmetrics-text"))
                });
            let body = if request.method() == Method::HEAD {
                Bytes::new()
            } else {
                page(openmetrics)
            };
            let content_type = if openmetrics {
                OPENMETRICS
            } else {
                PROMETHEUS_TEXT
            };
            reply(StatusCode::OK, content_type, body)
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
