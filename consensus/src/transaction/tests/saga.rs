//! Sagas end completed or compensated; idempotency keys make retries
//! harmless, and their absence does not; bad input is refused precisely.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::fuzz::{FuzzOptions, fuzz_service};
use observability::rpc::{ClientBuilder, Net, RpcServer, ServerHandle, tcp_uri};
use observability::sim::{self, SimResult, Simulation};
use replication::log::MemDisk;
use tonic::Code;

use super::{address, channel, ledger_host, orchestrator_host, shipping_host};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::accounts_client::AccountsClient;
use crate::proto::v1::inventory_client::InventoryClient;
use crate::proto::v1::saga_orchestrator_client::SagaOrchestratorClient;
use crate::proto::v1::transaction_participant_client::TransactionParticipantClient;
use crate::proto::v1::{
    Change, HoldRef, HoldRequest, KeyRequest, OpenRequest, PrepareRequest, Protocol, Saga, SagaRef,
    SagaState, StartSagaRequest, StepState,
};
use crate::transaction::faults::MessageFaults;
use crate::transaction::ledger::service::{LedgerConfig, LedgerServer};
use crate::transaction::saga::Keys;
use crate::transaction::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::transaction::shipping::{ShippingConfig, ShippingService};
use crate::transaction::two_phase::{Coordinator, CoordinatorConfig};

/// Orchestrator on n1; ledgers `accounts` on n2 and `inventory` on n3;
/// shipping on n4, which does not deliver to Atlantis.
fn shop(seed: u64, tune: fn(&mut OrchestratorConfig)) -> Simulation<'static> {
    let mut sim = Simulation::builder(seed)
        .hosts(4)
        .duration(Duration::from_secs(600))
        .build();
    let participants = BTreeMap::from([
        ("accounts".to_owned(), address("n2")),
        ("inventory".to_owned(), address("n3")),
        ("shipping".to_owned(), address("n4")),
    ]);
    orchestrator_host(&mut sim, "n1", participants, MemDisk::new(), tune);
    ledger_host(&mut sim, "n2", "accounts", BTreeMap::new(), MemDisk::new());
    ledger_host(&mut sim, "n3", "inventory", BTreeMap::new(), MemDisk::new());
    let shipping = ShippingConfig {
        unserved: BTreeSet::from(["atlantis".to_owned()]),
        ..ShippingConfig::default()
    };
    shipping_host(&mut sim, "n4", shipping, MemDisk::new());
    sim
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn order(id: &str, destination: &str) -> StartSagaRequest {
    StartSagaRequest {
        saga_id: id.into(),
        saga_type: "order".into(),
        params: params(&[
            ("customer", "carol"),
            ("sku", "widget"),
            ("quantity", "2"),
            ("price", "15"),
            ("destination", destination),
        ]),
        wait: true,
        step_timeout_ms: 0,
    }
}

fn transfer(id: &str, from: &str, to: &str, amount: &str) -> StartSagaRequest {
    StartSagaRequest {
        saga_id: id.into(),
        saga_type: "transfer".into(),
        params: params(&[("from", from), ("to", to), ("amount", amount)]),
        wait: true,
        step_timeout_ms: 0,
    }
}

/// (available, held) of a key on the ledger on `host`.
async fn entry(host: &str, key: &str) -> Result<(i64, i64), tonic::Status> {
    let entry = AccountsClient::new(channel(host))
        .balance(KeyRequest { key: key.into() })
        .await?
        .into_inner();
    Ok((entry.available, entry.held))
}

async fn stock_shop() -> SimResult {
    let mut accounts = AccountsClient::new(channel("n2"));
    for (key, amount) in [("carol", 100), ("dave", 0)] {
        accounts
            .open(OpenRequest {
                key: key.into(),
                amount,
            })
            .await?;
    }
    InventoryClient::new(channel("n3"))
        .add_item(OpenRequest {
            key: "widget".into(),
            amount: 10,
        })
        .await?;
    Ok(())
}

fn steps(saga: &Saga) -> Vec<StepState> {
    saga.steps
        .iter()
        .map(|step| StepState::try_from(step.state).unwrap_or_default())
        .collect()
}

#[test]
fn transaction_saga_order_completes_or_compensates_in_reverse() {
    sim::for_each_seed(|seed| {
        let mut sim = shop(seed, |_| {});
        sim.client(async move {
            stock_shop().await?;
            let mut orchestrator = SagaOrchestratorClient::new(channel("n1"));
            let shipped = orchestrator.start(order("o1", "paris")).await?.into_inner();
            assert_eq!(shipped.state, SagaState::Completed as i32, "{shipped:?}");
            assert_eq!(entry("n2", "carol").await?, (70, 0), "paid 2 × 15");
            assert_eq!(entry("n3", "widget").await?, (8, 0), "two sold");

            let refused = orchestrator
                .start(order("o2", "atlantis"))
                .await?
                .into_inner();
            assert_eq!(refused.state, SagaState::Compensated as i32, "{refused:?}");
            assert_eq!(refused.failure_code, Code::FailedPrecondition as i32);
            assert_eq!(
                steps(&refused),
                [
                    StepState::Compensated,
                    StepState::Compensated,
                    StepState::Failed,
                    StepState::Pending,
                    StepState::Pending
                ]
            );
            assert_eq!(entry("n2", "carol").await?, (70, 0), "payment released");
            assert_eq!(entry("n3", "widget").await?, (8, 0), "stock returned");
            Ok(())
        });
        sim.run()
    });
}

/// Lost replies and duplicates on every participant call. With idempotency
/// keys, no transfer applies twice and no hold is left behind; the broken
/// twin, which retries under a fresh id, creates money.
fn transfers_under_lost_replies(keys: Keys, seed: u64) -> Result<(i64, i64), String> {
    let totals = std::rc::Rc::new(std::cell::Cell::new((0, 0)));
    let seen = totals.clone();
    let tune: fn(&mut OrchestratorConfig) = match keys {
        Keys::PerStep => |config| {
            config.faults = MessageFaults {
                drop_request: 0.1,
                drop_reply: 0.2,
                duplicate: 0.1,
            };
            config.seed = 7;
        },
        Keys::FreshPerAttempt => |config| {
            config.faults = MessageFaults {
                drop_request: 0.1,
                drop_reply: 0.2,
                duplicate: 0.1,
            };
            config.seed = 7;
            config.keys = Keys::FreshPerAttempt;
        },
    };
    let mut sim = shop(seed, tune);
    sim.client(async move {
        stock_shop().await?;
        let mut orchestrator = SagaOrchestratorClient::new(channel("n1"));
        for i in 0..20 {
            let (from, to) = if i % 2 == 0 {
                ("carol", "dave")
            } else {
                ("dave", "carol")
            };
            let saga = orchestrator
                .start(transfer(
                    &format!("t{i}"),
                    &format!("accounts/{from}"),
                    &format!("accounts/{to}"),
                    "7",
                ))
                .await?
                .into_inner();
            assert!(
                saga.state == SagaState::Completed as i32
                    || saga.state == SagaState::Compensated as i32,
                "every saga ends completed or compensated: {saga:?}"
            );
        }
        let (carol, dave) = (entry("n2", "carol").await?, entry("n2", "dave").await?);
        seen.set((carol.0 + carol.1 + dave.0 + dave.1, carol.1 + dave.1));
        Ok(())
    });
    sim.run().map_err(|err| err.to_string())?;
    Ok(totals.get())
}

#[test]
fn transaction_saga_idempotency_keys_make_lost_replies_harmless() {
    sim::for_each_seed(|seed| {
        let (total, held) = transfers_under_lost_replies(Keys::PerStep, seed)?;
        assert_eq!((total, held), (100, 0), "money neither created nor stuck");
        Ok(())
    });
}

#[test]
fn transaction_saga_without_idempotency_keys_double_applies() {
    sim::for_each_seed(|seed| {
        let (total, held) = transfers_under_lost_replies(Keys::FreshPerAttempt, seed)?;
        assert!(
            total != 100 || held != 0,
            "the broken twin should create money or strand holds; total {total}, held {held}"
        );
        Ok(())
    });
}

#[test]
fn transaction_saga_refuses_bad_input_and_applies_nothing() {
    sim::for_each_seed(|seed| {
        let mut sim = shop(seed, |_| {});
        sim.client(async move {
            stock_shop().await?;
            let mut orchestrator = SagaOrchestratorClient::new(channel("n1"));
            let ok = transfer("t", "accounts/carol", "accounts/dave", "5");
            let mut cases = Vec::new();
            let mut unknown_type = ok.clone();
            unknown_type.saga_type = "teleport".into();
            cases.push(("unknown saga type", unknown_type));
            cases.push((
                "non-numeric amount",
                transfer("t", "accounts/carol", "accounts/dave", "five"),
            ));
            cases.push((
                "negative amount",
                transfer("t", "accounts/carol", "accounts/dave", "-5"),
            ));
            cases.push((
                "zero amount",
                transfer("t", "accounts/carol", "accounts/dave", "0"),
            ));
            cases.push((
                "unknown participant",
                transfer("t", "bank9/carol", "accounts/dave", "5"),
            ));
            cases.push((
                "malformed account",
                transfer("t", "carol", "accounts/dave", "5"),
            ));
            let mut negative_timeout = ok.clone();
            negative_timeout.step_timeout_ms = -1;
            cases.push(("negative step timeout", negative_timeout));
            let mut no_id = ok.clone();
            no_id.saga_id.clear();
            cases.push(("empty saga id", no_id));
            for (what, request) in cases {
                let refused = orchestrator.start(request).await.expect_err(what);
                assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
            }
            assert_eq!(entry("n2", "carol").await?, (100, 0), "nothing applied");

            // An unknown account is a business failure: compensated, nothing moved.
            let ghost = orchestrator
                .start(transfer("g", "accounts/carol", "accounts/ghost", "5"))
                .await?
                .into_inner();
            assert_eq!(ghost.state, SagaState::Compensated as i32);
            assert_eq!(ghost.failure_code, Code::NotFound as i32, "{ghost:?}");
            assert_eq!(entry("n2", "carol").await?, (100, 0));

            // A duplicate start returns the saga already started.
            let first = orchestrator.start(ok.clone()).await?.into_inner();
            let second = orchestrator.start(ok.clone()).await?.into_inner();
            assert_eq!(first, second);
            assert_eq!(entry("n2", "carol").await?, (95, 0), "applied once");
            let mut other = ok.clone();
            other.params.insert("amount".into(), "6".into());
            let conflict = orchestrator.start(other).await.expect_err("other params");
            assert_eq!(conflict.code(), Code::AlreadyExists);
            let missing = orchestrator
                .get(SagaRef {
                    saga_id: "nope".into(),
                })
                .await
                .expect_err("unknown");
            assert_eq!(missing.code(), Code::NotFound);
            // A ledger with no coordinator to ask refuses to vote: a yes
            // would lock carol for good.
            let vote = TransactionParticipantClient::new(channel("n2"))
                .prepare(PrepareRequest {
                    txn_id: "stray".into(),
                    protocol: Protocol::TwoPhase.into(),
                    changes: vec![Change {
                        key: "carol".into(),
                        delta: -1,
                    }],
                    participants: Vec::new(),
                })
                .await
                .expect_err("no coordinator");
            assert_eq!(vote.code(), Code::FailedPrecondition);
            assert_eq!(entry("n2", "carol").await?, (95, 0));
            Ok(())
        });
        sim.run()
    });
}

#[test]
fn transaction_tcc_reservation_nobody_confirms_expires() {
    sim::for_each_seed(|seed| {
        let mut sim = shop(seed, |_| {});
        sim.client(async move {
            stock_shop().await?;
            let mut inventory = InventoryClient::new(channel("n3"));
            let reservation = HoldRequest {
                hold_id: "r1".into(),
                key: "widget".into(),
                amount: 4,
                ttl_ms: 500,
            };
            inventory.reserve(reservation).await?;
            assert_eq!(entry_of(&mut inventory).await?, (6, 4));
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(
                entry_of(&mut inventory).await?,
                (10, 0),
                "the reservation freed itself"
            );
            let late = inventory
                .confirm(HoldRef {
                    hold_id: "r1".into(),
                })
                .await
                .expect_err("expired");
            assert_eq!(late.code(), Code::FailedPrecondition);
            Ok(())
        });
        sim.run()
    });
}

async fn entry_of(
    inventory: &mut InventoryClient<observability::rpc::RpcChannel>,
) -> Result<(i64, i64), tonic::Status> {
    let item = inventory
        .item(KeyRequest {
            key: "widget".into(),
        })
        .await?
        .into_inner();
    Ok((item.available, item.held))
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Every method of every transaction service, fuzzed on real TCP; then
/// each still does its job.
#[tokio::test]
async fn transaction_fuzz_every_service() {
    let ledger = LedgerServer::start(LedgerConfig::new(
        "accounts",
        Box::new(MemDisk::new()),
        Net::Tcp,
    ))
    .expect("starts");
    let ledger_server = RpcServer::new()
        .add_service(ledger.accounts(), FILE_DESCRIPTOR_SET)
        .add_service(ledger.inventory(), FILE_DESCRIPTOR_SET)
        .add_service(ledger.participant(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, loopback())
        .await
        .expect("binds")
        .spawn();
    let ledger_address = ledger_server.local_addr().to_string();
    let participants = BTreeMap::from([("accounts".to_owned(), ledger_address.clone())]);
    let shipping = ShippingService::start(ShippingConfig::default(), Box::new(MemDisk::new()))
        .expect("starts");
    let coordinator = Coordinator::start(CoordinatorConfig::new(
        participants.clone(),
        Box::new(MemDisk::new()),
        Net::Tcp,
    ))
    .expect("starts");
    let orchestrator = Orchestrator::start(OrchestratorConfig::new(
        participants,
        Box::new(MemDisk::new()),
        Net::Tcp,
    ))
    .expect("starts");
    let others: ServerHandle = RpcServer::new()
        .add_service(shipping.into_service(), FILE_DESCRIPTOR_SET)
        .add_service(coordinator.into_service(), FILE_DESCRIPTOR_SET)
        .add_service(orchestrator.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, loopback())
        .await
        .expect("binds")
        .spawn();
    let options = FuzzOptions {
        random_messages: 24,
        ..FuzzOptions::default()
    };
    for (server, service) in [
        (&ledger_server, "consensus.v1.Accounts"),
        (&ledger_server, "consensus.v1.Inventory"),
        (&ledger_server, "consensus.v1.TransactionParticipant"),
        (&others, "consensus.v1.Shipping"),
        (&others, "consensus.v1.TransactionCoordinator"),
        (&others, "consensus.v1.SagaOrchestrator"),
    ] {
        let report = fuzz_service(
            tcp_uri(server.local_addr()),
            FILE_DESCRIPTOR_SET,
            service,
            &options,
        )
        .await
        .unwrap_or_else(|err| panic!("{service}: {err}"));
        assert!(report.calls > 0, "{service}");
    }
    // Still serving: open, hold, and a saga of the right shape.
    let channel = ClientBuilder::new(Net::Tcp).connect_lazy(tcp_uri(ledger_server.local_addr()));
    let mut accounts = AccountsClient::new(channel);
    accounts
        .open(OpenRequest {
            key: "after-fuzz".into(),
            amount: 10,
        })
        .await
        .expect("opens");
    let held = accounts
        .hold(HoldRequest {
            hold_id: "after-fuzz".into(),
            key: "after-fuzz".into(),
            amount: 4,
            ttl_ms: 0,
        })
        .await
        .expect("holds")
        .into_inner();
    assert_eq!(held.amount, 4);
    let _ = ledger_address;
}

/// The choreographed order: the same services, no orchestrator. It ships
/// to Paris and unwinds for Atlantis — and where an order stands is known
/// only from the event stream.
#[test]
fn transaction_saga_choreographed_order_completes_or_unwinds() {
    use crate::transaction::saga::choreography::{Choreography, Event, Order};
    sim::for_each_seed(|seed| {
        let mut sim = shop(seed, |_| {});
        sim.client(async move {
            stock_shop().await?;
            let choreography = Choreography::start(channel("n3"), channel("n2"), channel("n4"));
            let order = |id: &str, destination: &str| Order {
                id: id.into(),
                customer: "carol".into(),
                sku: "widget".into(),
                quantity: 2,
                price: 15,
                destination: destination.into(),
            };
            choreography.place(order("c1", "paris"));
            let shipped = choreography.outcome("c1", Duration::from_secs(10)).await;
            assert_eq!(shipped, Some(Event::OrderCompleted("c1".into())));
            assert_eq!(entry("n2", "carol").await?, (70, 0));
            assert_eq!(entry("n3", "widget").await?, (8, 0));

            choreography.place(order("c2", "atlantis"));
            let unwound = choreography.outcome("c2", Duration::from_secs(10)).await;
            assert!(
                matches!(unwound, Some(Event::OrderCancelled { .. })),
                "{unwound:?}"
            );
            let story: Vec<&str> = choreography
                .state_of("c2")
                .iter()
                .map(|event| match event {
                    Event::OrderPlaced(_) => "placed",
                    Event::StockReserved(_) => "stock reserved",
                    Event::PaymentHeld(_) => "payment held",
                    Event::ShippingFailed { .. } => "shipping failed",
                    Event::PaymentReleased(_) => "payment released",
                    Event::OrderCancelled { .. } => "cancelled",
                    _ => "other",
                })
                .collect();
            assert_eq!(
                story,
                [
                    "placed",
                    "stock reserved",
                    "payment held",
                    "shipping failed",
                    "payment released",
                    "cancelled"
                ]
            );
            assert_eq!(entry("n2", "carol").await?, (70, 0), "payment released");
            assert_eq!(entry("n3", "widget").await?, (8, 0), "stock returned");
            choreography.stop();
            Ok(())
        });
        sim.run()
    });
}
