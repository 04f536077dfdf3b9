//! Transactions in turmoil's simulated network, and the services against
//! hostile input on real TCP.

mod commit;
mod ledger;
mod saga;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use observability::sim::{self, Simulation};
use replication::clock::physical::TokioClock;
use replication::log::MemDisk;

use super::ledger::service::{COORDINATOR, LedgerConfig, LedgerServer};
use super::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use super::shipping::{ShippingConfig, ShippingService};
use super::two_phase::{Coordinator, CoordinatorConfig, HaltPoint};
use crate::proto::FILE_DESCRIPTOR_SET;

/// Where a simulated host's server listens, as peers dial it.
fn address(host: &str) -> String {
    format!("{host}:{}", sim::PORT)
}

fn channel(host: &str) -> RpcChannel {
    ClientBuilder::new(Net::Sim)
        .default_deadline(Duration::from_secs(30))
        .connect_lazy(sim::uri(host))
}

/// Runs a ledger named `name` on `host`. Each (re)start replays `disk`
/// after dropping what was never synced, as a power cut would.
fn ledger_host(
    sim: &mut Simulation<'static>,
    host: &str,
    name: &str,
    peers: BTreeMap<String, String>,
    disk: MemDisk,
) {
    let name = name.to_owned();
    sim.host(host, move || {
        let (name, peers, disk) = (name.clone(), peers.clone(), disk.clone());
        async move {
            disk.crash();
            let mut config = LedgerConfig::new(&name, Box::new(disk), Net::Sim);
            config.peers = peers;
            config.clock = Arc::new(TokioClock::new(1_700_000_000_000_000_000, 0));
            config.tick = Duration::from_millis(100);
            config.in_doubt_after = Duration::from_millis(500);
            config.three_phase_timeout = Duration::from_secs(1);
            // Compact often, so restarts replay snapshots too.
            config.compact_every = 8;
            let ledger = LedgerServer::start(config)?;
            RpcServer::new()
                .add_service(ledger.accounts(), FILE_DESCRIPTOR_SET)
                .add_service(ledger.inventory(), FILE_DESCRIPTOR_SET)
                .add_service(ledger.participant(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

/// Runs the coordinator on `host`; each start takes the next halt point
/// from `halts` (none once it is empty).
fn coordinator_host(
    sim: &mut Simulation<'static>,
    host: &str,
    participants: BTreeMap<String, String>,
    disk: MemDisk,
    halts: Rc<RefCell<VecDeque<HaltPoint>>>,
) {
    sim.host(host, move || {
        let (participants, disk) = (participants.clone(), disk.clone());
        let halt_at = halts.borrow_mut().pop_front();
        async move {
            disk.crash();
            let mut config = CoordinatorConfig::new(participants, Box::new(disk), Net::Sim);
            config.halt_at = halt_at;
            config.redeliver_every = Duration::from_millis(200);
            let coordinator = Coordinator::start(config)?;
            RpcServer::new()
                .add_service(coordinator.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

fn shipping_host(sim: &mut Simulation<'static>, host: &str, config: ShippingConfig, disk: MemDisk) {
    sim.host(host, move || {
        let (config, disk) = (config.clone(), disk.clone());
        async move {
            disk.crash();
            let shipping = ShippingService::start(config, Box::new(disk))?;
            RpcServer::new()
                .add_service(shipping.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

fn orchestrator_host(
    sim: &mut Simulation<'static>,
    host: &str,
    participants: BTreeMap<String, String>,
    disk: MemDisk,
    tune: fn(&mut OrchestratorConfig),
) {
    sim.host(host, move || {
        let (participants, disk) = (participants.clone(), disk.clone());
        async move {
            disk.crash();
            let mut config = OrchestratorConfig::new(participants, Box::new(disk), Net::Sim);
            tune(&mut config);
            let orchestrator = Orchestrator::start(config)?;
            RpcServer::new()
                .add_service(orchestrator.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
}

/// The peers of every ledger in a commit test: the coordinator on n1,
/// ledgers `a` on n2 and `b` on n3.
fn commit_peers() -> BTreeMap<String, String> {
    BTreeMap::from([
        (COORDINATOR.to_owned(), address("n1")),
        ("a".to_owned(), address("n2")),
        ("b".to_owned(), address("n3")),
    ])
}
