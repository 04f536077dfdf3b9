//! `dslab serve`: one service on real TCP, so several processes (or
//! machines) can form a system.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use consensus::etcd::Services;
use consensus::raft::metrics::RaftMetrics;
use consensus::raft::{NodeConfig, PeerSecret, RaftNode, Storage};
use consensus::transaction::ledger::service::{LedgerConfig, LedgerServer};
use consensus::transaction::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use consensus::transaction::shipping::{ShippingConfig, ShippingService};
use consensus::transaction::two_phase::{Coordinator, CoordinatorConfig};
use observability::metrics::MetricsRegistry;
use observability::metrics::endpoint::MetricsEndpoint;
use observability::relay::Relay;
use observability::rpc::{ClientBuilder, Net, RpcServer};
use patterns::hashing::StrategyConfig;
use patterns::shard_router::ShardRouter;
use replication::clock::ReplicaId;
use replication::crdt_replica::{CrdtReplica, ReplicaConfig};
use replication::log::FileDisk;
use replication::quorum::{QuorumConfig, QuorumNode, SharedStore};

/// The services `dslab serve` can run.
pub const SERVICES: &[&str] = &[
    "relay",
    "shard-router",
    "flaky",
    "raft-kv",
    "crdt-replica",
    "quorum-kv",
    "accounts",
    "inventory",
    "shipping",
    "saga-orchestrator",
    "tpc-coordinator",
    "fenced-store",
    "ledger",
];

/// A Raft KV member's settings (`dslab serve raft-kv`).
#[derive(Clone, Debug, Default)]
pub struct RaftArgs {
    /// This member's id.
    pub id: u64,
    /// Where its log and snapshots live; a temporary directory if absent.
    pub data_dir: Option<PathBuf>,
    /// Join an existing cluster (after `member add`) instead of founding one.
    pub join: bool,
    /// The secret every member shares; without it any caller of the peer
    /// transport is believed.
    pub peer_secret: Option<String>,
}

/// What `dslab serve` was asked to run.
#[derive(Debug)]
pub struct ServeConfig {
    pub service: String,
    /// Bound already, so that names can carry the port the OS chose.
    pub listener: std::net::TcpListener,
    /// Where Prometheus scrapes `/metrics`, if anywhere.
    pub metrics_listener: Option<std::net::TcpListener>,
    /// Peers: a relay's or Flaky's next hop (`host:port`); a Raft KV's
    /// other members (`ID=host:port`).
    pub peers: Vec<String>,
    /// A name for this instance (relay hop names); defaults to the address.
    pub name: Option<String>,
    /// The `service.name` its spans are exported under.
    pub service_name: String,
    /// The shard router's strategy and its initial members.
    pub placement: StrategyConfig,
    pub nodes: Vec<String>,
    /// Flaky's starting script (change it later with its `Configure` RPC).
    pub script: resilience::flaky::proto::Script,
    /// Shipping's refused destinations.
    pub unserved: Vec<String>,
    /// The fenced store's broken twin: no token check.
    pub unfenced: bool,
    /// Server-wide admission control (`--max-concurrent`, `--rate-limit`).
    pub admission: resilience::server::Admission,
    pub raft: RaftArgs,
    /// The ledger's event store: `embedded` (a log in --data-dir) or
    /// `etcd=HOST:PORT,…` (a Raft KV or etcd cluster).
    pub event_store: Option<String>,
}

/// The `service.name` a `dslab serve` process exports its spans under
/// unless the OpenTelemetry variables say otherwise: the service and its
/// instance name (`relay-hop-1`), or the service and its address.
pub fn default_service_name(service: &str, name: Option<&str>, listen: SocketAddr) -> String {
    match name {
        Some(name) => format!("{service}-{name}"),
        None => format!("{service}-{listen}"),
    }
}

/// Binds the metrics endpoint's port: `--metrics-listen`, else
/// OpenTelemetry's `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT` (the
/// specification's defaults, `localhost` and 9464, fill in the other),
/// else none.
pub fn metrics_listener(flag: Option<SocketAddr>) -> anyhow::Result<Option<std::net::TcpListener>> {
    let variable = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let address = match flag {
        Some(address) => address.to_string(),
        None => {
            let host = variable("OTEL_EXPORTER_PROMETHEUS_HOST");
            let port = variable("OTEL_EXPORTER_PROMETHEUS_PORT");
            if host.is_none() && port.is_none() {
                return Ok(None);
            }
            let port: u16 = match port {
                Some(port) => port.parse().with_context(|| {
                    format!("OTEL_EXPORTER_PROMETHEUS_PORT={port:?} is not a port number")
                })?,
                None => 9464,
            };
            let host = host.unwrap_or_else(|| "localhost".to_owned());
            // An IPv6 literal needs brackets before the port.
            if host.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
    };
    let listener = std::net::TcpListener::bind(&address)
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    Ok(Some(listener))
}

/// `ID=host:port` → (id, address): a Raft KV member or a CRDT replica.
fn member_peer(text: &str) -> anyhow::Result<(u64, String)> {
    let (id, address) = text
        .split_once('=')
        .with_context(|| format!("--peer {text:?}: a member is ID=host:port"))?;
    let id: u64 = id
        .trim()
        .parse()
        .with_context(|| format!("--peer {text:?}: the id must be a number"))?;
    anyhow::ensure!(id != 0, "--peer {text:?}: member ids start at 1");
    Ok((id, address.trim().to_owned()))
}

/// The other members of a quorum KV cluster. The same --peer list on
/// every node is fine (its own entry is skipped), but an id named twice
/// or another id at this node's own --listen address is refused at
/// start: either would only fail later, on the first call that needs it.
fn quorum_peers(
    id: ReplicaId,
    local: SocketAddr,
    flags: &[String],
) -> anyhow::Result<BTreeMap<ReplicaId, String>> {
    let mut peers = BTreeMap::new();
    let mut named = std::collections::BTreeSet::new();
    for peer in flags {
        let (peer_id, address) = member_peer(peer)?;
        anyhow::ensure!(
            named.insert(peer_id),
            "--peer {peer:?}: member {peer_id} is named twice"
        );
        if peer_id == id.0 {
            continue;
        }
        if let Ok(at) = address.parse::<SocketAddr>() {
            // 0.0.0.0:P listens on 127.0.0.1:P too.
            let same_host = at.ip() == local.ip()
                || (at.ip().is_loopback()
                    && (local.ip().is_unspecified() || local.ip().is_loopback()));
            let own = at.port() == local.port() && same_host;
            anyhow::ensure!(
                !own,
                "--peer {peer:?}: that is this node's own --listen address ({local}); \
                 its id is {id}, so give it as --peer {}={address} or drop it",
                id.0
            );
        }
        peers.insert(ReplicaId(peer_id), address);
    }
    Ok(peers)
}

/// `NAME=host:port` → (name, address): a transaction participant.
fn named_peer(text: &str) -> anyhow::Result<(String, String)> {
    let (name, address) = text
        .split_once('=')
        .with_context(|| format!("--peer {text:?}: a participant is NAME=host:port"))?;
    let name = name.trim();
    consensus::transaction::check_id("--peer name", name)?;
    Ok((name.to_owned(), address.trim().to_owned()))
}

/// The durable log of a transaction service: `DIR/SERVICE.log` (or
/// `DIR/SERVICE-NAME.log` with --name) under --data-dir, or in a temporary
/// directory kept alive by `keep`.
fn transaction_log(
    config: &ServeConfig,
    keep: &mut Option<tempfile::TempDir>,
) -> anyhow::Result<consensus::transaction::journal::Disk> {
    let dir = match &config.raft.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = tempfile::tempdir().context("creating a temporary data directory")?;
            let path = dir.path().to_owned();
            tracing::warn!(path = %path.display(), "no --data-dir: the log is lost when the process exits");
            *keep = Some(dir);
            path
        }
    };
    // Two ledgers sharing a directory must not share a log.
    let file = match &config.name {
        Some(name) => format!("{}-{name}.log", config.service),
        None => format!("{}.log", config.service),
    };
    let path = dir.join(file);
    let disk = FileDisk::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(disk))
}

/// The bank ledger on the event store `--event-store` names.
fn ledger_server(
    config: &ServeConfig,
    admission: &resilience::server::Admission,
    keep: &mut Option<tempfile::TempDir>,
) -> anyhow::Result<RpcServer> {
    use consensus::bank::BankLedger;
    use consensus::event_store::{DEFAULT_PREFIX, EtcdEventStore};
    use std::sync::Arc;
    let choice = config.event_store.as_deref().unwrap_or("embedded");
    let server = if choice == "embedded" {
        let store =
            replication::event_sourcing::EmbeddedStore::open(transaction_log(config, keep)?)?;
        admission.host(
            RpcServer::new(),
            BankLedger::start(Arc::new(store)).into_service(),
            consensus::proto::FILE_DESCRIPTOR_SET,
        )
    } else if let Some(endpoints) = choice.strip_prefix("etcd=") {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(
            !endpoints.is_empty(),
            "--event-store etcd= needs HOST:PORT,…"
        );
        let store = EtcdEventStore::connect(Net::Tcp, &endpoints, DEFAULT_PREFIX)?;
        admission.host(
            RpcServer::new(),
            BankLedger::start(Arc::new(store)).into_service(),
            consensus::proto::FILE_DESCRIPTOR_SET,
        )
    } else {
        anyhow::bail!("--event-store {choice:?}: use embedded or etcd=HOST:PORT,HOST:PORT");
    };
    Ok(server)
}

/// The members' shared secret, or a warning that there is none.
fn peer_secret(args: &RaftArgs) -> anyhow::Result<Option<PeerSecret>> {
    match &args.peer_secret {
        Some(secret) => Ok(Some(PeerSecret::new(secret)?)),
        None => {
            tracing::warn!(
                "no peer secret (--peer-secret or DSLAB_PEER_SECRET): anyone who can reach \
                 this port can pose as a peer; set one on every member outside a lab"
            );
            Ok(None)
        }
    }
}

/// Serves until Ctrl-C or SIGTERM, then drains the calls in flight.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Before anything can announce the service, so that a SIGTERM sent
    // the moment it is announced drains it rather than kills it.
    let mut signals = ShutdownSignals::install()?;
    config
        .listener
        .set_nonblocking(true)
        .context("preparing the listener")?;
    let local = config.listener.local_addr().context("the listen address")?;
    let name = config.name.clone().unwrap_or_else(|| local.to_string());
    let mut raft_node = None;
    // What `/metrics` shows: the RPC server's RED metrics, plus what each
    // service knows about itself.
    let registry = MetricsRegistry::new();
    registry.register_collector(observability::metrics::process::ProcessMetrics);
    let admission = config.admission.clone();
    admission.register(&registry);
    // Keeps a temporary data directory alive as long as the process.
    let mut _temporary = None;
    let server = match config.service.as_str() {
        "relay" => {
            anyhow::ensure!(
                config.peers.len() <= 1,
                "a relay forwards to at most one --peer (the next hop)"
            );
            let next = config
                .peers
                .first()
                .map(|peer| ClientBuilder::new(Net::Tcp).dial(peer))
                .transpose()?;
            admission.host(
                RpcServer::new(),
                Relay::new(name, next).into_service(),
                observability::relay::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "shard-router" => {
            let router = ShardRouter::new(config.placement, &config.nodes)?;
            admission.host(
                RpcServer::new(),
                router.into_service(),
                patterns::shard_router::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "flaky" => {
            let behaviour = resilience::flaky::Behaviour::from_script(&config.script)?;
            let flaky = match config.peers.as_slice() {
                [] => resilience::flaky::Flaky::new(name, behaviour),
                [next] => resilience::flaky::Flaky::forwarding(
                    name,
                    behaviour,
                    ClientBuilder::new(Net::Tcp).dial(next)?,
                ),
                _ => anyhow::bail!("flaky forwards to at most one --peer"),
            };
            registry.register_collector(flaky.clone());
            admission.host(
                RpcServer::new(),
                flaky.into_service(),
                resilience::flaky::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "raft-kv" => {
            let id = config.raft.id;
            anyhow::ensure!(id != 0, "a Raft KV member needs --id (1, 2, 3, …)");
            anyhow::ensure!(
                admission.is_empty(),
                "--max-concurrent and --rate-limit are not for raft-kv: it bounds its own \
                 queues with etcd's limits (\"etcdserver: too many requests\")"
            );
            let mut peers = BTreeMap::from([(id, local.to_string())]);
            for peer in &config.peers {
                let (peer_id, address) = member_peer(peer)?;
                // The same --peer list on every member is fine: this one's
                // own entry is its --listen address.
                if peer_id != id {
                    peers.insert(peer_id, address);
                }
            }
            let dir = match &config.raft.data_dir {
                Some(dir) => dir.clone(),
                None => {
                    let dir = tempfile::tempdir().context("creating a temporary data directory")?;
                    let path = dir.path().to_owned();
                    tracing::info!(path = %path.display(), "no --data-dir: keeping state in a temporary directory");
                    _temporary = Some(dir);
                    path
                }
            };
            let mut node_config = NodeConfig::new(id, peers, Storage::Dir(dir), Net::Tcp);
            node_config.join = config.raft.join;
            node_config.peer_secret = peer_secret(&config.raft)?;
            let node = RaftNode::start(node_config).await?;
            let server = Services::new(&node, Net::Tcp).into_server();
            raft_node = Some(node);
            server
        }
        "crdt-replica" => {
            let id = ReplicaId(config.raft.id);
            anyhow::ensure!(id.0 != 0, "a CRDT replica needs --id (1, 2, 3, …)");
            let mut peers = BTreeMap::new();
            for peer in &config.peers {
                let (peer_id, address) = member_peer(peer)?;
                // The same --peer list on every replica is fine.
                if peer_id != id.0 {
                    peers.insert(ReplicaId(peer_id), address);
                }
            }
            let mut replica_config = ReplicaConfig::new(id, peers, Net::Tcp);
            replica_config.peer_secret = peer_secret(&config.raft)?;
            let replica = CrdtReplica::start(replica_config)?;
            admission.host(
                RpcServer::new(),
                replica.into_service(),
                replication::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "quorum-kv" => {
            let id = ReplicaId(config.raft.id);
            anyhow::ensure!(id.0 != 0, "a quorum KV node needs --id (1, 2, 3, …)");
            let peers = quorum_peers(id, local, &config.peers)?;
            // N = 3 (or the cluster size if smaller), R = W = a majority of
            // N unless a request names its own.
            let mut quorum_config = QuorumConfig::new(id, peers, Net::Tcp);
            quorum_config.peer_secret = peer_secret(&config.raft)?;
            let node = QuorumNode::start(quorum_config, SharedStore::new())?;
            admission.host(
                RpcServer::new(),
                node.into_service(),
                replication::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "accounts" | "inventory" => {
            let mut peers = BTreeMap::new();
            for peer in &config.peers {
                let (name, address) = named_peer(peer)?;
                peers.insert(name, address);
            }
            let disk = transaction_log(&config, &mut _temporary)?;
            let name = config
                .name
                .clone()
                .unwrap_or_else(|| config.service.clone());
            let mut ledger_config = LedgerConfig::new(&name, disk, Net::Tcp);
            ledger_config.peers = peers;
            let ledger = LedgerServer::start(ledger_config)?;
            let domain = if config.service == "accounts" {
                admission.host(
                    RpcServer::new(),
                    ledger.accounts(),
                    consensus::proto::FILE_DESCRIPTOR_SET,
                )
            } else {
                admission.host(
                    RpcServer::new(),
                    ledger.inventory(),
                    consensus::proto::FILE_DESCRIPTOR_SET,
                )
            };
            admission.host(
                domain,
                ledger.participant(),
                consensus::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "shipping" => {
            let disk = transaction_log(&config, &mut _temporary)?;
            let shipping = ShippingService::start(
                ShippingConfig {
                    unserved: config.unserved.iter().cloned().collect(),
                    transient_failure_rate: config.script.error_rate,
                    seed: rand::random(),
                    compact_every: 0,
                },
                disk,
            )?;
            admission.host(
                RpcServer::new(),
                shipping.into_service(),
                consensus::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "fenced-store" => {
            use consensus::lock::fencing::{FencedStore, Fencing};
            let fencing = if config.unfenced {
                Fencing::Off
            } else {
                Fencing::Enforced
            };
            admission.host(
                RpcServer::new(),
                FencedStore::new(fencing).into_service(),
                consensus::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "saga-orchestrator" | "tpc-coordinator" => {
            let mut participants = BTreeMap::new();
            for peer in &config.peers {
                let (name, address) = named_peer(peer)?;
                participants.insert(name, address);
            }
            if participants.is_empty() {
                // It runs, and refuses every saga or transaction naming a
                // participant it does not know (InvalidArgument).
                tracing::warn!("no participants: name them with --peer NAME=host:port");
            }
            let disk = transaction_log(&config, &mut _temporary)?;
            if config.service == "saga-orchestrator" {
                let mut orchestrator = OrchestratorConfig::new(participants, disk, Net::Tcp);
                orchestrator.seed = rand::random();
                admission.host(
                    RpcServer::new(),
                    Orchestrator::start(orchestrator)?.into_service(),
                    consensus::proto::FILE_DESCRIPTOR_SET,
                )
            } else {
                admission.host(
                    RpcServer::new(),
                    Coordinator::start(CoordinatorConfig::new(participants, disk, Net::Tcp))?
                        .into_service(),
                    consensus::proto::FILE_DESCRIPTOR_SET,
                )
            }
        }
        "ledger" => ledger_server(&config, &admission, &mut _temporary)?,
        other => anyhow::bail!(
            "unknown service {other:?}; choose one of: {}",
            SERVICES.join(", ")
        ),
    };
    let listener =
        tokio::net::TcpListener::from_std(config.listener).context("adopting the listener")?;
    let bound = server
        .service_name(config.service_name.clone())
        .bind_tcp(listener)?;
    registry.register_collector(bound.metrics());
    if let Some(node) = &raft_node {
        RaftMetrics::register(node, &registry);
    }
    let metrics_endpoint = match config.metrics_listener {
        Some(listener) => {
            Some(MetricsEndpoint::spawn(listener, registry).context("serving metrics")?)
        }
        None => None,
    };
    // Scripts (and the tests) read these lines to learn ports chosen by
    // the OS.
    // Best effort: a reader that went away (`| head -1`) must not stop
    // the service.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "dslab {} listening on {}",
        config.service,
        bound.local_addr()
    );
    if let Some(endpoint) = &metrics_endpoint {
        let _ = writeln!(stdout, "dslab metrics at {}", endpoint.url());
    }
    let _ = stdout.flush();
    let failed = std::sync::atomic::AtomicBool::new(false);
    bound
        .serve_until(async {
            let Some(node) = &raft_node else {
                return signals.recv().await;
            };
            tokio::select! {
                () = signals.recv() => {}
                () = node.stopped() => {
                    // The Raft loop ended by itself (a disk error, a panic
                    // in raft-rs): the process must not linger serving
                    // refusals as if it were a member.
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            // A Raft member stops first: calls in flight are answered
            // "server stopped" at once, and its peer streams end, so the
            // drain that follows does not wait for them.
            node.stop().await;
        })
        .await?;
    anyhow::ensure!(
        !failed.into_inner(),
        "the Raft loop stopped on its own; the log above says why"
    );
    Ok(())
}

/// Ctrl-C and SIGTERM, listened for from the moment this is built.
///
/// Pitfall: a handler installed only when the shutdown future is first
/// polled leaves a window after the "listening" line in which SIGTERM
/// still kills the process outright — an orchestrator (or a test) that
/// stops a service it just started would see a crash, not a drain.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Completes on Ctrl-C or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: reporting NOT_SERVING and draining calls in flight");
    }
}
