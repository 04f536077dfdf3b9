//! `dslab demo saga`, `two-phase-commit` and
//! `three-phase-commit-partition`: the services on 127.0.0.1, failing on
//! cue.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle};
use observability::telemetry::{SpanCapture, span_tree};
use replication::log::{FileDisk, MemDisk};
use tonic::Code;

use super::faults::LinkCuts;
use super::journal::Disk;
use super::ledger::service::{COORDINATOR, LedgerConfig, LedgerServer};
use super::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use super::shipping::{ShippingConfig, ShippingService};
use super::two_phase::{Coordinator, CoordinatorConfig, HaltPoint};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::accounts_client::AccountsClient;
use crate::proto::v1::inventory_client::InventoryClient;
use crate::proto::v1::saga_orchestrator_client::SagaOrchestratorClient;
use crate::proto::v1::transaction_coordinator_client::TransactionCoordinatorClient;
use crate::proto::v1::transaction_participant_client::TransactionParticipantClient;
use crate::proto::v1::{
    Branch, Change, HoldRequest, OpenRequest, Protocol, Saga, SagaState, StartSagaRequest,
    StepState, TxnPhase, TxnRef, TxnRequest,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn channel(server: &ServerHandle) -> RpcChannel {
    ClientBuilder::new(Net::Tcp)
        .default_deadline(Duration::from_secs(10))
        .connect_lazy(server.uri())
}

fn ledger_server(ledger: &LedgerServer) -> RpcServer {
    RpcServer::new()
        .service_name(format!("ledger-{}", ledger.name()))
        .add_service(ledger.accounts(), FILE_DESCRIPTOR_SET)
        .add_service(ledger.inventory(), FILE_DESCRIPTOR_SET)
        .add_service(ledger.participant(), FILE_DESCRIPTOR_SET)
}

fn step_table(saga: &Saga) -> Vec<Vec<String>> {
    saga.steps
        .iter()
        .map(|step| {
            vec![
                step.name.clone(),
                StepState::try_from(step.state)
                    .unwrap_or_default()
                    .as_str_name()
                    .trim_start_matches("STEP_STATE_")
                    .to_lowercase(),
                step.attempts.to_string(),
            ]
        })
        .collect()
}

fn saga_state(saga: &Saga) -> &'static str {
    SagaState::try_from(saga.state)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("SAGA_STATE_")
}

/// Episode 18: an order saga across Inventory, Accounts and Shipping —
/// once shipped, once refused by the carrier and compensated.
pub async fn saga_demo(out: &mut Narrator, spans: &SpanCapture) -> DemoResult {
    out.section("Episode 18: an order saga, and what happens when shipping fails");
    out.say("Four services on 127.0.0.1, each with its own durable log: Inventory and Accounts");
    out.say("(ledgers that can set amounts aside), Shipping (which does not deliver to Atlantis)");
    out.say("and the saga orchestrator. An order is five steps: reserve stock, hold payment,");
    out.say("ship (the pivot: no way back after it), capture payment, confirm the reservation.");

    let dir = tempfile::tempdir()?;
    let log = |name: &str| -> Result<Disk, BoxError> {
        Ok(Box::new(FileDisk::open(
            dir.path().join(format!("{name}.log")),
        )?))
    };
    let accounts = LedgerServer::start(LedgerConfig::new("accounts", log("accounts")?, Net::Tcp))?;
    let inventory =
        LedgerServer::start(LedgerConfig::new("inventory", log("inventory")?, Net::Tcp))?;
    let shipping = ShippingService::start(
        ShippingConfig {
            unserved: BTreeSet::from(["atlantis".to_owned()]),
            ..ShippingConfig::default()
        },
        log("shipping")?,
    )?;
    let accounts_server = ledger_server(&accounts)
        .bind(Net::Tcp, loopback())
        .await?
        .spawn();
    let inventory_server = ledger_server(&inventory)
        .bind(Net::Tcp, loopback())
        .await?
        .spawn();
    let shipping_server = RpcServer::new()
        .service_name("shipping")
        .add_service(shipping.clone().into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, loopback())
        .await?
        .spawn();
    let participants = BTreeMap::from([
        (
            "accounts".to_owned(),
            accounts_server.local_addr().to_string(),
        ),
        (
            "inventory".to_owned(),
            inventory_server.local_addr().to_string(),
        ),
        (
            "shipping".to_owned(),
            shipping_server.local_addr().to_string(),
        ),
    ]);
    let orchestrator = Orchestrator::start(OrchestratorConfig::new(
        participants,
        log("saga")?,
        Net::Tcp,
    ))?;
    let orchestrator_server = RpcServer::new()
        .service_name("saga-orchestrator")
        .add_service(orchestrator.clone().into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, loopback())
        .await?
        .spawn();

    let mut accounts_client = AccountsClient::new(channel(&accounts_server));
    let mut inventory_client = InventoryClient::new(channel(&inventory_server));
    accounts_client
        .open(OpenRequest {
            key: "carol".into(),
            amount: 100,
        })
        .await?;
    inventory_client
        .add_item(OpenRequest {
            key: "lamp".into(),
            amount: 5,
        })
        .await?;
    let snapshot = |accounts: &LedgerServer, inventory: &LedgerServer| {
        let carol = accounts.snapshot().entry("carol").ok();
        let lamp = inventory.snapshot().entry("lamp").ok();
        (
            carol.map(|e| (e.available, e.held)).unwrap_or_default(),
            lamp.map(|e| (e.available, e.held)).unwrap_or_default(),
        )
    };
    out.say("carol has 100; the shop has 5 lamps at 15 each.");

    let order = |id: &str, destination: &str| StartSagaRequest {
        saga_id: id.into(),
        saga_type: "order".into(),
        params: [
            ("customer", "carol"),
            ("sku", "lamp"),
            ("quantity", "2"),
            ("price", "15"),
            ("destination", destination),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        wait: true,
        step_timeout_ms: 0,
    };
    let mut client = SagaOrchestratorClient::new(channel(&orchestrator_server));

    out.section("Order 1: two lamps to Paris");
    let shipped = client.start(order("order-1", "paris")).await?.into_inner();
    out.table(&["step", "state", "calls"], &step_table(&shipped));
    let (carol, lamps) = snapshot(&accounts, &inventory);
    out.check(
        "the saga completed: carol paid 30, two lamps left the shelf",
        shipped.state == SagaState::Completed as i32 && carol == (70, 0) && lamps == (3, 0),
        format!(
            "{}, carol {carol:?}, lamps {lamps:?} (available, held)",
            saga_state(&shipped)
        ),
    );

    out.section("Order 2: two lamps to Atlantis — the carrier refuses");
    spans.clear();
    let refused = client
        .start(order("order-2", "atlantis"))
        .await?
        .into_inner();
    out.table(&["step", "state", "calls"], &step_table(&refused));
    out.say(&format!("why: {}", refused.failure));
    let (carol, lamps) = snapshot(&accounts, &inventory);
    let compensated_in_reverse = refused
        .steps
        .iter()
        .map(|s| StepState::try_from(s.state).unwrap_or_default())
        .collect::<Vec<_>>()
        == [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Failed,
            StepState::Pending,
            StepState::Pending,
        ];
    out.say("Compensation runs newest first: the shipment is cancelled (in case the refused");
    out.say("call ran after all), the payment hold released, the reservation cancelled.");
    out.check(
        "the saga compensated: the payment hold and the reservation were released",
        refused.state == SagaState::Compensated as i32 && compensated_in_reverse,
        saga_state(&refused).to_owned(),
    );
    out.check(
        "nothing is left behind: carol still has 70 and nothing held, 3 lamps on the shelf",
        carol == (70, 0) && lamps == (3, 0),
        format!("carol {carol:?}, lamps {lamps:?}"),
    );

    out.section("A retry is harmless: the same saga id returns the same saga");
    let again = client
        .start(order("order-2", "atlantis"))
        .await?
        .into_inner();
    out.check(
        "starting order-2 again starts nothing new",
        again == refused && snapshot(&accounts, &inventory) == ((70, 0), (3, 0)),
        format!("{} with the same steps and calls", saga_state(&again)),
    );

    for server in [
        orchestrator_server,
        shipping_server,
        inventory_server,
        accounts_server,
    ] {
        server.shutdown().await?;
    }
    out.section("The trace of order 2: one trace, compensations included");
    let mut traced = Vec::new();
    for _ in 0..100 {
        traced = spans.spans();
        if traced
            .iter()
            .filter(|s| s.name == "saga.compensate")
            .count()
            >= 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let saga_trace = traced
        .iter()
        .find(|span| span.name == "saga")
        .map(|span| span.span_context.trace_id());
    let in_trace: Vec<_> = traced
        .into_iter()
        .filter(|span| Some(span.span_context.trace_id()) == saga_trace)
        .collect();
    out.block(&span_tree::render(&in_trace));
    let compensations = in_trace
        .iter()
        .filter(|span| span.name == "saga.compensate")
        .count();
    let participant_servers: BTreeSet<String> = in_trace
        .iter()
        .filter(|span| span.span_kind == opentelemetry::trace::SpanKind::Server)
        .map(|span| span.name.to_string())
        .collect();
    out.check(
        "one trace holds the saga, its three compensations and every participant's server spans",
        saga_trace.is_some()
            && compensations == 3
            && ["Inventory/Cancel", "Accounts/Release", "Shipping/Ship"]
                .iter()
                .all(|method| {
                    participant_servers
                        .iter()
                        .any(|name| name.ends_with(method))
                }),
        format!(
            "{} spans; {compensations} compensations; servers: {}",
            in_trace.len(),
            participant_servers
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let saga_log = std::fs::metadata(dir.path().join("saga.log"))?.len();
    out.say(&format!(
        "The saga log holds {saga_log} bytes: a START forced (fsync) before the first step of each order,"
    ));
    out.say("a COMPENSATING forced before order 2 turned back, and how each ended (not forced).");
    Ok(())
}

/// Two ledgers (`a`: alice, `b`: bob) and a coordinator that halts at
/// `halt`; the links between them, cut on demand.
struct CommitCluster {
    a: ServerHandle,
    b: ServerHandle,
    ledgers: [LedgerServer; 2],
    coordinator: Option<ServerHandle>,
    coordinator_address: SocketAddr,
    coordinator_log: MemDisk,
    participants: BTreeMap<String, String>,
}

impl CommitCluster {
    async fn start(halt: HaltPoint, cuts: &LinkCuts) -> Result<Self, BoxError> {
        let listeners = [
            tokio::net::TcpListener::bind(loopback()).await?,
            tokio::net::TcpListener::bind(loopback()).await?,
            tokio::net::TcpListener::bind(loopback()).await?,
        ];
        let address =
            |i: usize| -> std::io::Result<String> { Ok(listeners[i].local_addr()?.to_string()) };
        let peers = BTreeMap::from([
            (COORDINATOR.to_owned(), address(0)?),
            ("a".to_owned(), address(1)?),
            ("b".to_owned(), address(2)?),
        ]);
        let coordinator_address = listeners[0].local_addr()?;
        let [coordinator_listener, a_listener, b_listener] = listeners;
        let mut ledgers = Vec::new();
        let mut servers = Vec::new();
        for (name, listener) in [("a", a_listener), ("b", b_listener)] {
            let mut config = LedgerConfig::new(name, Box::new(MemDisk::new()), Net::Tcp);
            config.peers = peers.clone();
            config.cuts = cuts.clone();
            config.tick = Duration::from_millis(50);
            config.in_doubt_after = Duration::from_millis(300);
            config.three_phase_timeout = Duration::from_millis(500);
            let ledger = LedgerServer::start(config)?;
            servers.push(ledger_server(&ledger).bind_tcp(listener)?.spawn());
            ledgers.push(ledger);
        }
        let participants: BTreeMap<String, String> = peers
            .iter()
            .filter(|(name, _)| *name != COORDINATOR)
            .map(|(name, address)| (name.clone(), address.clone()))
            .collect();
        let coordinator_log = MemDisk::new();
        let coordinator = start_coordinator(
            &participants,
            &coordinator_log,
            Some(halt),
            cuts,
            coordinator_listener,
        )?;
        let open = |server: &ServerHandle, key: &str, amount: i64| {
            let mut client = AccountsClient::new(channel(server));
            let key = key.to_owned();
            async move { client.open(OpenRequest { key, amount }).await }
        };
        open(&servers[0], "alice", 100).await?;
        open(&servers[1], "bob", 0).await?;
        let mut servers = servers.into_iter();
        let (Some(a), Some(b)) = (servers.next(), servers.next()) else {
            return Err("two ledgers".into());
        };
        let mut ledgers = ledgers.into_iter();
        let (Some(ledger_a), Some(ledger_b)) = (ledgers.next(), ledgers.next()) else {
            return Err("two ledgers".into());
        };
        Ok(Self {
            a,
            b,
            ledgers: [ledger_a, ledger_b],
            coordinator: Some(coordinator),
            coordinator_address,
            coordinator_log,
            participants,
        })
    }

    fn transfer(&self, txn: &str, protocol: Protocol) -> TxnRequest {
        let branch = |participant: &str, key: &str, delta: i64| Branch {
            participant: participant.into(),
            changes: vec![Change {
                key: key.into(),
                delta,
            }],
        };
        TxnRequest {
            txn_id: txn.into(),
            protocol: protocol.into(),
            branches: vec![branch("a", "alice", -30), branch("b", "bob", 30)],
        }
    }

    /// Each participant's phase of `txn`.
    fn phases(&self, txn: &str) -> (TxnPhase, TxnPhase) {
        (
            self.ledgers[0].snapshot().phase(txn),
            self.ledgers[1].snapshot().phase(txn),
        )
    }

    /// (alice, bob), available + held, and whether either is locked.
    fn books(&self) -> (i64, i64, bool) {
        let entry = |ledger: &LedgerServer, key: &str| ledger.snapshot().entry(key).ok();
        let alice = entry(&self.ledgers[0], "alice").unwrap_or_default();
        let bob = entry(&self.ledgers[1], "bob").unwrap_or_default();
        (
            alice.available + alice.held,
            bob.available + bob.held,
            !alice.locked_by.is_empty() || !bob.locked_by.is_empty(),
        )
    }

    /// Polls until both participants have decided, for at most `within`.
    async fn settle(&self, txn: &str, within: Duration) -> (TxnPhase, TxnPhase) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let phases = self.phases(txn);
            let done = |p: TxnPhase| matches!(p, TxnPhase::Committed | TxnPhase::Aborted);
            if (done(phases.0) && done(phases.1)) || tokio::time::Instant::now() > deadline {
                return phases;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the halted coordinator and starts a new one on its log, at
    /// its address: a restart after a crash.
    async fn restart_coordinator(&mut self, cuts: &LinkCuts) -> Result<(), BoxError> {
        if let Some(halted) = self.coordinator.take() {
            halted.shutdown().await?;
        }
        let listener = tokio::net::TcpListener::bind(self.coordinator_address).await?;
        self.coordinator = Some(start_coordinator(
            &self.participants,
            &self.coordinator_log,
            None,
            cuts,
            listener,
        )?);
        Ok(())
    }

    fn coordinator_client(&self) -> TransactionCoordinatorClient<RpcChannel> {
        TransactionCoordinatorClient::new(
            ClientBuilder::new(Net::Tcp)
                .default_deadline(Duration::from_secs(5))
                .connect_lazy(observability::rpc::tcp_uri(self.coordinator_address)),
        )
    }

    async fn shutdown(self) -> Result<(), BoxError> {
        for server in self.coordinator.into_iter().chain([self.a, self.b]) {
            server.shutdown().await?;
        }
        Ok(())
    }
}

fn start_coordinator(
    participants: &BTreeMap<String, String>,
    log: &MemDisk,
    halt_at: Option<HaltPoint>,
    cuts: &LinkCuts,
    listener: tokio::net::TcpListener,
) -> Result<ServerHandle, BoxError> {
    log.crash();
    let mut config = CoordinatorConfig::new(participants.clone(), Box::new(log.clone()), Net::Tcp);
    config.halt_at = halt_at;
    config.cuts = cuts.clone();
    config.redeliver_every = Duration::from_millis(100);
    let coordinator = Coordinator::start(config)?;
    Ok(RpcServer::new()
        .service_name("tpc-coordinator")
        .add_service(coordinator.into_service(), FILE_DESCRIPTOR_SET)
        .bind_tcp(listener)?
        .spawn())
}

fn phase_name(phase: TxnPhase) -> String {
    phase
        .as_str_name()
        .trim_start_matches("TXN_PHASE_")
        .to_lowercase()
}

/// Episode 18 (and 14): 2PC blocks while its coordinator is down, and
/// recovers from the coordinator's log.
pub async fn two_phase_commit_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 18: two-phase commit, and the coordinator that dies mid-protocol");
    out.say("Ledger `a` holds alice (100), ledger `b` holds bob (0). A coordinator moves 30 from");
    out.say("alice to bob atomically: PREPARE to both; if both vote yes, COMMIT goes to its log,");
    out.say("then to both. Each side logs its vote before answering.");
    let cuts = LinkCuts::default();

    for (halt, title, expected) in [
        (
            HaltPoint::AfterVotes,
            "Crash 1: after both voted yes, before deciding",
            TxnPhase::Aborted,
        ),
        (
            HaltPoint::AfterDecision,
            "Crash 2: after COMMIT reached its log, before anyone heard",
            TxnPhase::Committed,
        ),
    ] {
        out.section(title);
        let mut cluster = CommitCluster::start(halt, &cuts).await?;
        let mut coordinator = cluster.coordinator_client();
        let crashed = coordinator
            .execute(cluster.transfer("t1", Protocol::TwoPhase))
            .await;
        out.say(&format!(
            "the client hears: {}",
            crashed
                .as_ref()
                .map_or_else(|s| s.message().to_owned(), |_| "a decision".to_owned())
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let phases = cluster.phases("t1");
        let blocked = AccountsClient::new(channel(&cluster.a))
            .hold(HoldRequest {
                hold_id: "unrelated".into(),
                key: "alice".into(),
                amount: 1,
                ttl_ms: 0,
            })
            .await;
        out.check(
            "a second later both participants are still in doubt, holding their locks",
            phases == (TxnPhase::Prepared, TxnPhase::Prepared) && cluster.books().2,
            format!(
                "a {}, b {}; they asked the coordinator and each other — nobody knows",
                phase_name(phases.0),
                phase_name(phases.1)
            ),
        );
        out.check(
            "an unrelated hold on alice is refused while she is locked (2PC blocks)",
            blocked.as_ref().err().map(tonic::Status::code) == Some(Code::Aborted),
            blocked
                .err()
                .map(|s| s.message().to_owned())
                .unwrap_or_default(),
        );
        out.say("The coordinator restarts and replays its log.");
        cluster.restart_coordinator(&cuts).await?;
        let settled = cluster.settle("t1", Duration::from_secs(5)).await;
        let (alice, bob, locked) = cluster.books();
        let why = match expected {
            TxnPhase::Committed => "its log holds COMMIT: it delivers it again",
            _ => "no COMMIT in its log: presumed abort",
        };
        out.check(
            format!("both reach the same decision: {}", phase_name(expected)),
            settled == (expected, expected) && !locked,
            format!("{why}; alice {alice}, bob {bob}, locks released"),
        );
        cluster.shutdown().await?;
    }
    Ok(())
}

/// Episode 18 (and 14): three-phase commit does not block — and splits
/// its decision when the network does.
pub async fn three_phase_commit_partition_demo(
    out: &mut Narrator,
    _spans: &SpanCapture,
) -> DemoResult {
    out.section("Episode 18: three-phase commit — no blocking, until the network splits");
    out.say("3PC adds PRE-COMMIT (\"everyone voted yes\") between the votes and the commit.");
    out.say("A participant that times out pre-committed commits; one that times out merely");
    out.say("prepared aborts, unless a peer it can reach has pre-committed.");
    out.say("Both runs: the coordinator sends PRE-COMMIT to `a` only, then dies for good.");

    for (partitioned, title) in [
        (false, "Run 1: the coordinator dies; the network is whole"),
        (
            true,
            "Run 2: the coordinator dies and a partition separates `a` from `b`",
        ),
    ] {
        out.section(title);
        let cuts = LinkCuts::default();
        let cluster =
            CommitCluster::start(HaltPoint::AfterPreCommit { delivered: 1 }, &cuts).await?;
        let mut coordinator = cluster.coordinator_client();
        let _ = coordinator
            .execute(cluster.transfer("t1", Protocol::ThreePhase))
            .await;
        if partitioned {
            cuts.partition(&["a"], &["b", COORDINATOR]);
        }
        let phases = cluster.settle("t1", Duration::from_secs(5)).await;
        let (alice, bob, _) = cluster.books();
        let asked = TransactionParticipantClient::new(channel(&cluster.b))
            .status(TxnRef {
                txn_id: "t1".into(),
            })
            .await
            .map(|s| phase_name(TxnPhase::try_from(s.into_inner().phase).unwrap_or_default()))
            .unwrap_or_default();
        out.table(
            &["participant", "decided", "balance"],
            &[
                vec![
                    "a (pre-committed)".into(),
                    phase_name(phases.0),
                    format!("alice {alice}"),
                ],
                vec!["b (prepared)".into(), asked, format!("bob {bob}")],
            ],
        );
        if partitioned {
            out.check(
                "the broken side, caught: `a` committed and `b` aborted — 30 vanished",
                phases == (TxnPhase::Committed, TxnPhase::Aborted) && alice + bob == 70,
                format!("alice {alice} + bob {bob} = {}", alice + bob),
            );
            out.say("Each side took the partition for a crash of the other. Timeouts cannot tell");
            out.say("the two apart; that is why real systems replicate the coordinator with a");
            out.say(
                "consensus protocol (Paxos Commit, or a Raft group) instead of adding a phase.",
            );
        } else {
            out.check(
                "no blocking: both commit without the coordinator (`b` learned from `a`)",
                phases == (TxnPhase::Committed, TxnPhase::Committed) && (alice, bob) == (70, 30),
                format!("alice {alice}, bob {bob}"),
            );
        }
        cluster.shutdown().await?;
    }
    Ok(())
}
