//! Building and running a dslab gRPC server.
//!
//! Every service is served through [`RpcServer`], so each one gets the same
//! things without asking: gRPC health (`grpc.health.v1`) and reflection for
//! everything it hosts, the [`ServerLayer`] per request (trace context,
//! deadlines, size limit, RED metrics), the [`ServerLimits`] on
//! connections, streams and call durations, and a graceful shutdown that
//! first reports `NOT_SERVING` and then drains the calls in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use http::Uri;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::closable::Closable;
use super::limits::{ServerLimits, gate_connections};
use super::message_limit::DEFAULT_MAX_MESSAGE_BYTES;
use super::net::{Net, tcp_uri};
use super::routes::RouteTable;
use super::server_layer::ServerLayer;
use crate::metrics::RedMetrics;
use crate::{Error, Result};

/// Default time a shutdown waits for calls in flight.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A server under construction: the services it hosts and its limits.
#[derive(Debug)]
pub struct RpcServer {
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    max_message_bytes: usize,
    drain_timeout: Duration,
    limits: ServerLimits,
    route_limits: Vec<(String, RouteLimit)>,
    service_name: Option<Arc<str>>,
    record_metrics: bool,
}

/// A per-route override of the server's limits.
#[derive(Clone, Copy, Debug)]
enum RouteLimit {
    MaxDuration(Duration),
    IdleTimeout(Duration),
}

/// The services every server hosts besides its own.
const BUILT_IN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

impl Default for RpcServer {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcServer {
    pub fn new() -> Self {
        Self {
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            descriptor_sets: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            limits: ServerLimits::default(),
            route_limits: Vec::new(),
            service_name: None,
            record_metrics: true,
        }
    }

    /// Turns RED metrics off (they are on by default); only for measuring
    /// what they cost. The server's [`BoundServer::metrics`] then stay
    /// empty.
    pub fn record_metrics(mut self, on: bool) -> Self {
        self.record_metrics = on;
        self
    }

    /// The `service.name` this server's spans (and the calls its handlers
    /// make) are exported under, e.g. `relay-hop-1`. Without it, the
    /// process's own; set it when one process hosts several services.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into().into());
        self
    }

    /// Replaces the stack's limits (see [`super::limits`] for each one
    /// and its default).
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets unary calls to `path` (`/package.Service/Method`) run up to
    /// `max` instead of [`ServerLimits::max_unary_duration`]. A path the
    /// server does not host is refused when it binds.
    pub fn route_max_duration(mut self, path: &str, max: Duration) -> Self {
        self.route_limits
            .push((path.to_owned(), RouteLimit::MaxDuration(max)));
        self
    }

    /// Ends streams on `path` after `idle` without a message either way,
    /// instead of [`ServerLimits::stream_idle_timeout`].
    pub fn route_idle_timeout(mut self, path: &str, idle: Duration) -> Self {
        self.route_limits
            .push((path.to_owned(), RouteLimit::IdleTimeout(idle)));
        self
    }

    /// How long a shutdown waits for calls in flight before closing the
    /// connections that remain.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The largest request message accepted; larger ones get
    /// `ResourceExhausted`. Keep it at or below 4 MiB, tonic's own decode
    /// limit, or tonic answers first with `OutOfRange`.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Hosts `service`. `descriptor_set` is the encoded protobuf
    /// `FileDescriptorSet` of its proto, published through reflection.
    pub fn add_service<S>(mut self, service: S, descriptor_set: &'static [u8]) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.service_names.push(S::NAME);
        if !self
            .descriptor_sets
            .iter()
            .any(|known| std::ptr::eq(*known, descriptor_set))
        {
            self.descriptor_sets.push(descriptor_set);
        }
        self
    }

    /// Serves on a TCP listener bound already (to learn a port chosen by
    /// the OS before building the services, say).
    pub fn bind_tcp(self, listener: tokio::net::TcpListener) -> Result<BoundServer> {
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        self.bound(Listener::Tcp(listener), local_addr)
    }

    /// Binds the listen address. On TCP, port 0 picks a free port; read
    /// it back with [`BoundServer::local_addr`].
    pub async fn bind(self, net: Net, addr: SocketAddr) -> Result<BoundServer> {
        let listener = match net {
            Net::Tcp => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?;
                Listener::Tcp(listener)
            }
            #[cfg(any(test, feature = "sim"))]
            Net::Sim => Listener::Sim(
                super::sim_adapter::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?,
            ),
        };
        let local_addr = match &listener {
            Listener::Tcp(listener) => listener.local_addr(),
            #[cfg(any(test, feature = "sim"))]
            Listener::Sim(listener) => listener.local_addr(),
        }
        .map_err(|source| Error::Bind { addr, source })?;
        self.bound(listener, local_addr)
    }

    fn bound(self, listener: Listener, local_addr: SocketAddr) -> Result<BoundServer> {
        let routes = Arc::new(self.route_table()?);
        let metrics = RedMetrics::for_routes(
            routes
                .routes()
                .map(|route| (route.name.to_string(), route.kind)),
        );
        Ok(BoundServer {
            server: self,
            listener,
            local_addr,
            metrics,
            routes,
        })
    }

    /// Every hosted method, from the descriptor sets, with per-route limits.
    fn route_table(&self) -> Result<RouteTable> {
        let mut services = self.service_names.clone();
        services.extend(BUILT_IN_SERVICES);
        let mut sets = self.descriptor_sets.clone();
        sets.extend([
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]);
        let mut table = RouteTable::from_descriptors(&services, &sets)?;
        for (path, limit) in &self.route_limits {
            let route = table.get_mut(path)?;
            match *limit {
                RouteLimit::MaxDuration(max) => route.max_duration = Some(max),
                RouteLimit::IdleTimeout(idle) => route.idle_timeout = Some(idle),
            }
        }
        Ok(table)
    }

    /// Binds and serves until `shutdown` completes.
    pub async fn serve(
        self,
        net: Net,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        self.bind(net, addr).await?.serve_until(shutdown).await
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(any(test, feature = "sim"))]
    Sim(turmoil::net::TcpListener),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Listener::Tcp(_) => "Listener::Tcp",
            #[cfg(any(test, feature = "sim"))]
            Listener::Sim(_) => "Listener::Sim",
        })
    }
}

/// A server whose address is bound, ready to serve.
#[derive(Debug)]
pub struct BoundServer {
    server: RpcServer,
    listener: Listener,
    local_addr: SocketAddr,
    metrics: RedMetrics,
    routes: Arc<RouteTable>,
}

impl BoundServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The RED metrics this server records.
    pub fn metrics(&self) -> RedMetrics {
        self.metrics.clone()
    }

    /// Serves until `shutdown` completes, then reports `NOT_SERVING` and
    /// drains the calls in flight.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let BoundServer {
            server,
            listener,
            metrics,
            routes: route_table,
            ..
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &server.service_names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        let descriptor_sets = &server.descriptor_sets;
        let service_names = &server.service_names;
        let reflection = |itself: &str| {
            let builder = descriptor_sets.iter().fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            );
            // List what this server hosts, not every service its descriptor
            // sets describe: one package's protos can define services that
            // other processes host (a relay's set also holds Heartbeat).
            service_names
                .iter()
                .fold(builder, |builder, name| builder.with_service_name(*name))
                .with_service_name(tonic_health::pb::health_server::SERVICE_NAME)
                .with_service_name(itself)
        };
        // Both reflection versions: grpcurl speaks v1, many clients (Python's
        // grpcio-reflection among them) still speak only v1alpha.
        let reflection_v1 =
            reflection(tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME)
                .build_v1()
                .map_err(|err| Error::Descriptor(err.to_string()))?;
        let reflection_v1alpha =
            reflection(tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME)
                .build_v1alpha()
                .map_err(|err| Error::Descriptor(err.to_string()))?;
        let mut routes = server.routes;
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let routes = routes.routes().prepare();

        let names = server.service_names.clone();
        let (draining, drain_started) = oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            report_not_serving(&health, &names).await;
            let _ = draining.send(());
        };
        // Pitfall: a graceful drain waits for every client to hang up, and a
        // client that never does (wedged, or simply idle and unpolled) would
        // hold the process forever. Drain for a bounded time, then close.
        let drain_timeout = server.drain_timeout;
        let drain_expired = async move {
            match drain_started.await {
                Ok(()) => tokio::time::sleep(drain_timeout).await,
                Err(_) => std::future::pending().await,
            }
        };
        let limits = server.limits;
        let builder = Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_connection_age(limits.max_connection_age)
            .max_connection_age_grace(drain_timeout)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .layer(
                ServerLayer::new(
                    server.record_metrics.then_some(metrics),
                    server.max_message_bytes,
                    route_table,
                    limits,
                )
                .service_name(server.service_name.clone()),
            );
        let cut_connections = CancellationToken::new();
        let connections = cut_connections.clone();
        let serving = async move {
            match listener {
                Listener::Tcp(listener) => {
                    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                    let incoming = gate_connections(incoming, limits.max_connections)
                        .map_ok(closable(&connections, limits));
                    builder
                        .serve_with_incoming_shutdown(routes, incoming, shutdown)
                        .await
                }
                #[cfg(any(test, feature = "sim"))]
                Listener::Sim(listener) => {
                    let incoming = super::sim_adapter::incoming(listener);
                    let incoming = gate_connections(incoming, limits.max_connections)
                        .map_ok(closable(&connections, limits));
                    builder
                        .serve_with_incoming_shutdown(routes, incoming, shutdown)
                        .await
                }
            }
        };
        let mut serving = std::pin::pin!(serving);
        tokio::select! {
            served = &mut serving => return Ok(served?),
            () = drain_expired => {
                tracing::warn!(?drain_timeout, "calls still in flight after the drain timeout; closing their connections");
                cut_connections.cancel();
            }
        }
        serving.await?;
        Ok(())
    }

    /// Serves on a background task; the server stops when the returned
    /// handle is shut down or dropped.
    pub fn spawn(self) -> ServerHandle {
        let local_addr = self.local_addr;
        let metrics = self.metrics.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_until(async move {
            // A dropped handle also stops the server.
            let _ = stopped.await;
        }));
        ServerHandle {
            local_addr,
            metrics,
            stop: Some(stop),
            task,
        }
    }
}

/// Wraps each accepted connection so `token` can cut it, holding its
/// connection slot until it closes.
fn closable<IO>(
    token: &CancellationToken,
    limits: ServerLimits,
) -> impl FnMut((IO, OwnedSemaphorePermit)) -> Closable<IO> + use<IO> {
    let token = token.clone();
    move |(io, slot)| {
        Closable::new(io, token.clone())
            .holding(slot)
            .first_byte_within(limits.first_byte_timeout)
    }
}

async fn report_not_serving(health: &HealthReporter, names: &[&'static str]) {
    // Health checkers see NOT_SERVING before connections start closing,
    // so a load balancer stops sending new work first.
    for name in names {
        health
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// A server running on a background task.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    metrics: RedMetrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://addr` for clients on TCP.
    pub fn uri(&self) -> Uri {
        tcp_uri(self.local_addr)
    }

    pub fn metrics(&self) -> RedMetrics {
        self.metrics.clone()
    }

    /// Stops accepting calls, drains those in flight, and waits.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(Error::ServerTask(join.to_string())),
        }
    }
}
