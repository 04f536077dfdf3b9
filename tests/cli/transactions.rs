//! The transaction services as separate `dslab serve` processes: an order
//! saga across them, an orchestrator restarted on its log, and a client
//! from another gRPC implementation.

use std::collections::HashMap;

use consensus::proto::v1::accounts_client::AccountsClient;
use consensus::proto::v1::inventory_client::InventoryClient;
use consensus::proto::v1::saga_orchestrator_client::SagaOrchestratorClient;
use consensus::proto::v1::{KeyRequest, OpenRequest, SagaRef, SagaState, StartSagaRequest};

use crate::support::Served;

/// Accounts, Inventory, Shipping (no deliveries to Atlantis) and an
/// orchestrator keeping its log in `dir`.
struct Shop {
    accounts: Served,
    inventory: Served,
    shipping: Served,
    orchestrator: Served,
}

impl Shop {
    fn start(dir: &std::path::Path) -> Self {
        let accounts = Served::start("accounts", &[]);
        let inventory = Served::start("inventory", &[]);
        let shipping = Served::start("shipping", &["--unserved", "atlantis"]);
        let orchestrator = start_orchestrator(&accounts, &inventory, &shipping, dir);
        Self {
            accounts,
            inventory,
            shipping,
            orchestrator,
        }
    }

    fn stop(self) {
        for served in [
            self.orchestrator,
            self.shipping,
            self.inventory,
            self.accounts,
        ] {
            assert!(served.terminate(), "a clean exit on SIGTERM");
        }
    }
}

fn start_orchestrator(
    accounts: &Served,
    inventory: &Served,
    shipping: &Served,
    dir: &std::path::Path,
) -> Served {
    let peer = |name: &str, served: &Served| format!("{name}={}", served.addr);
    Served::start(
        "saga-orchestrator",
        &[
            "--peer",
            &peer("accounts", accounts),
            "--peer",
            &peer("inventory", inventory),
            "--peer",
            &peer("shipping", shipping),
            "--data-dir",
            &dir.display().to_string(),
        ],
    )
}

fn order(id: &str, destination: &str) -> StartSagaRequest {
    StartSagaRequest {
        saga_id: id.into(),
        saga_type: "order".into(),
        params: HashMap::from([
            ("customer".into(), "carol".into()),
            ("sku".into(), "lamp".into()),
            ("quantity".into(), "2".into()),
            ("price".into(), "15".into()),
            ("destination".into(), destination.into()),
        ]),
        wait: true,
        step_timeout_ms: 0,
    }
}

/// Episode 18: an order that ships, one that compensates, and an
/// orchestrator that remembers both after a restart on its --data-dir.
#[tokio::test]
async fn cli_serve_saga_services_run_orders_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let shop = Shop::start(dir.path());
    let mut accounts = AccountsClient::connect(shop.accounts.uri())
        .await
        .expect("connects");
    let mut inventory = InventoryClient::connect(shop.inventory.uri())
        .await
        .expect("connects");
    accounts
        .open(OpenRequest {
            key: "carol".into(),
            amount: 100,
        })
        .await
        .expect("opens");
    inventory
        .add_item(OpenRequest {
            key: "lamp".into(),
            amount: 5,
        })
        .await
        .expect("adds");
    let mut orchestrator = SagaOrchestratorClient::connect(shop.orchestrator.uri())
        .await
        .expect("connects");
    let shipped = orchestrator
        .start(order("order-1", "paris"))
        .await
        .expect("runs")
        .into_inner();
    assert_eq!(shipped.state, SagaState::Completed as i32, "{shipped:?}");
    let refused = orchestrator
        .start(order("order-2", "atlantis"))
        .await
        .expect("runs")
        .into_inner();
    assert_eq!(refused.state, SagaState::Compensated as i32, "{refused:?}");
    assert_eq!(carol(&mut accounts).await, (70, 0));

    // The orchestrator restarts on its log and still knows both sagas.
    let Shop {
        accounts: a,
        inventory: i,
        shipping: s,
        orchestrator: o,
    } = shop;
    // Off the runtime: the clients above must keep answering the server's
    // goodbye while it drains, or it waits for them.
    assert!(terminate(o).await);
    let restarted = start_orchestrator(&a, &i, &s, dir.path());
    let mut orchestrator = SagaOrchestratorClient::connect(restarted.uri())
        .await
        .expect("connects");
    for (id, state) in [
        ("order-1", SagaState::Completed),
        ("order-2", SagaState::Compensated),
    ] {
        let saga = orchestrator
            .get(SagaRef { saga_id: id.into() })
            .await
            .expect("known")
            .into_inner();
        assert_eq!(saga.state, state as i32, "{id} after the restart");
    }
    // Starting order-1 again returns it; nothing is paid twice.
    orchestrator
        .start(order("order-1", "paris"))
        .await
        .expect("returns the saga");
    assert_eq!(carol(&mut accounts).await, (70, 0));
    let shop = Shop {
        accounts: a,
        inventory: i,
        shipping: s,
        orchestrator: restarted,
    };
    tokio::task::spawn_blocking(|| shop.stop())
        .await
        .expect("stops");
}

/// carol's (available, held).
async fn carol(accounts: &mut AccountsClient<tonic::transport::Channel>) -> (i64, i64) {
    let entry = accounts
        .balance(KeyRequest {
            key: "carol".into(),
        })
        .await
        .expect("reads")
        .into_inner();
    (entry.available, entry.held)
}

async fn terminate(served: Served) -> bool {
    tokio::task::spawn_blocking(|| served.terminate())
        .await
        .unwrap_or(false)
}

/// The same from Python grpcio, by reflection only.
#[test]
#[ignore = "needs python3 with grpcio and grpcio-reflection; .ci/run installs them"]
fn interop_python_grpc_client_runs_order_sagas() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let shop = Shop::start(dir.path());
    let text = crate::python_client(
        "saga_client.py",
        &[
            shop.accounts.addr,
            shop.inventory.addr,
            shop.orchestrator.addr,
        ],
    );
    for line in [
        "order-1: SAGA_STATE_COMPLETED failure_code=0",
        "order-2: SAGA_STATE_COMPENSATED failure_code=9",
        "bad quantity: INVALID_ARGUMENT",
        "carol: 70 held 0",
        "lamp: 3 held 0",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    shop.stop();
}
