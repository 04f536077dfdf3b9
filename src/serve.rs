//! `dslab serve`: one service on real TCP, so several processes (or
//! machines) can form a system.

use std::net::SocketAddr;

use observability::relay::Relay;
use observability::rpc::{ClientBuilder, Net, RpcServer};
use patterns::hashing::StrategyConfig;
use patterns::shard_router::ShardRouter;

/// The services `dslab serve` can run.
pub const SERVICES: &[&str] = &["relay", "shard-router", "flaky"];

/// What `dslab serve` was asked to run.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub service: String,
    pub listen: SocketAddr,
    /// Peers to call (a relay's next hop).
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
}

/// The `service.name` a `dslab serve` process exports its spans under
/// unless `OTEL_SERVICE_NAME` says otherwise: the service and its
/// instance name (`relay-hop-1`), or the service and its address.
pub fn default_service_name(service: &str, name: Option<&str>, listen: SocketAddr) -> String {
    match name {
        Some(name) => format!("{service}-{name}"),
        None => format!("{service}-{listen}"),
    }
}

/// Binds, prints the address it listens on, and serves until Ctrl-C or
/// SIGTERM, then drains the calls in flight.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
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
            let name = config
                .name
                .clone()
                .unwrap_or_else(|| config.listen.to_string());
            RpcServer::new().add_service(
                Relay::new(name, next).into_service(),
                observability::relay::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "shard-router" => {
            let router = ShardRouter::new(config.placement, &config.nodes)?;
            RpcServer::new().add_service(
                router.into_service(),
                patterns::shard_router::proto::FILE_DESCRIPTOR_SET,
            )
        }
        "flaky" => {
            let behaviour = resilience::flaky::Behaviour::from_script(&config.script)?;
            let name = config
                .name
                .clone()
                .unwrap_or_else(|| config.listen.to_string());
            let flaky = match config.peers.as_slice() {
                [] => resilience::flaky::Flaky::new(name, behaviour),
                [next] => resilience::flaky::Flaky::forwarding(
                    name,
                    behaviour,
                    ClientBuilder::new(Net::Tcp).dial(next)?,
                ),
                _ => anyhow::bail!("flaky forwards to at most one --peer"),
            };
            RpcServer::new().add_service(
                flaky.into_service(),
                resilience::flaky::proto::FILE_DESCRIPTOR_SET,
            )
        }
        other => anyhow::bail!(
            "unknown service {other:?}; choose one of: {}",
            SERVICES.join(", ")
        ),
    };
    let bound = server
        .service_name(config.service_name.clone())
        .bind(Net::Tcp, config.listen)
        .await?;
    // Scripts (and the tests) read this line to learn a port chosen by the OS.
    println!(
        "dslab {} listening on {}",
        config.service,
        bound.local_addr()
    );
    bound.serve_until(shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: reporting NOT_SERVING and draining calls in flight");
}
