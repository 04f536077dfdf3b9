//! The scenario people remember: money moves between three banks, things
//! fail halfway, and the books must still balance.
//!
//! Three `Accounts` services and a saga orchestrator in turmoil's
//! simulated network. Random transfers between random accounts, many at
//! once, while the orchestrator loses requests and replies and receives
//! duplicates, banks crash and restart, and the orchestrator itself
//! crashes and resumes from its saga log. Once it is quiet:
//! - the sum of all balances is what it was;
//! - every account holds exactly what the completed transfers say — no
//!   transfer applied twice, none half applied;
//! - every saga ended completed or compensated;
//! - no hold is left behind.
//!
//! The banks compact their logs every hundred records or so, so restarts
//! replay snapshots as well as records.
//!
//! Run more seeds: `DSLAB_SEEDS=50 cargo test --test bank_transfer_saga`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use consensus::proto::FILE_DESCRIPTOR_SET;
use consensus::proto::v1::accounts_client::AccountsClient;
use consensus::proto::v1::saga_orchestrator_client::SagaOrchestratorClient;
use consensus::proto::v1::{KeyRequest, OpenRequest, SagaRef, SagaState, StartSagaRequest};
use consensus::transaction::faults::MessageFaults;
use consensus::transaction::ledger::service::{LedgerConfig, LedgerServer};
use consensus::transaction::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use observability::sim::{self, Simulation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replication::clock::physical::TokioClock;
use replication::log::MemDisk;

const BANKS: usize = 3;
const ACCOUNTS_PER_BANK: usize = 4;
const OPENING_BALANCE: i64 = 1_000;
const TRANSFERS: usize = 1_000;
const WORKERS: usize = 8;
const ORCHESTRATOR: &str = "n4";

fn bank(i: usize) -> String {
    format!("bank{i}")
}

fn host_of_bank(i: usize) -> String {
    sim::node(i)
}

fn accounts() -> Vec<(usize, String)> {
    (1..=BANKS)
        .flat_map(|b| (0..ACCOUNTS_PER_BANK).map(move |a| (b, format!("acct{a}"))))
        .collect()
}

fn channel(host: &str) -> RpcChannel {
    ClientBuilder::new(Net::Sim)
        .default_deadline(Duration::from_secs(5))
        .connect_lazy(sim::uri(host))
}

/// One transfer as the client asked for it.
#[derive(Clone, Debug)]
struct Transfer {
    from: (usize, String),
    to: (usize, String),
    amount: i64,
}

fn simulate(seed: u64) -> sim::SimResult {
    let mut sim = Simulation::builder(seed)
        .hosts(BANKS + 1)
        .duration(Duration::from_secs(3_600))
        .build();
    for i in 1..=BANKS {
        let disk = MemDisk::new();
        let name = bank(i);
        sim.host(&host_of_bank(i), move || {
            let (disk, name) = (disk.clone(), name.clone());
            async move {
                disk.crash();
                let mut config = LedgerConfig::new(&name, Box::new(disk), Net::Sim);
                config.clock = Arc::new(TokioClock::new(1_700_000_000_000_000_000, 0));
                // Compact often, so the crashes land on snapshots too.
                config.compact_every = 100;
                let ledger = LedgerServer::start(config)?;
                RpcServer::new()
                    .add_service(ledger.accounts(), FILE_DESCRIPTOR_SET)
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
    }
    let participants: BTreeMap<String, String> = (1..=BANKS)
        .map(|i| (bank(i), format!("{}:{}", host_of_bank(i), sim::PORT)))
        .collect();
    let saga_log = MemDisk::new();
    let starts = Rc::new(RefCell::new(0u64));
    sim.host(ORCHESTRATOR, move || {
        let (participants, disk) = (participants.clone(), saga_log.clone());
        *starts.borrow_mut() += 1;
        let run = *starts.borrow();
        async move {
            disk.crash();
            let mut config = OrchestratorConfig::new(participants, Box::new(disk), Net::Sim);
            config.faults = MessageFaults {
                drop_request: 0.05,
                drop_reply: 0.05,
                duplicate: 0.05,
            };
            config.seed = seed ^ run << 32;
            config.step_timeout = Duration::from_secs(3);
            let orchestrator = Orchestrator::start(config)?;
            RpcServer::new()
                .add_service(orchestrator.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });

    let mut rng = SmallRng::seed_from_u64(seed);
    let all = accounts();
    let transfers: Vec<Transfer> = (0..TRANSFERS)
        .map(|_| {
            let from = all[rng.random_range(0..all.len())].clone();
            let mut to = all[rng.random_range(0..all.len())].clone();
            while to == from {
                to = all[rng.random_range(0..all.len())].clone();
            }
            // Some transfers ask for more than any account can have, so
            // some sagas compensate on purpose.
            let amount = if rng.random_bool(0.1) {
                OPENING_BALANCE * BANKS as i64 * ACCOUNTS_PER_BANK as i64
            } else {
                rng.random_range(1..=200)
            };
            Transfer { from, to, amount }
        })
        .collect();

    let outcomes: Rc<RefCell<HashMap<usize, SagaState>>> = Rc::default();
    let done = Rc::new(RefCell::new(false));
    let script_outcomes = outcomes.clone();
    let script_done = done.clone();
    let script_transfers = transfers.clone();
    sim.client(async move {
        for (b, key) in accounts() {
            AccountsClient::new(channel(&host_of_bank(b)))
                .open(OpenRequest {
                    key,
                    amount: OPENING_BALANCE,
                })
                .await?;
        }
        let transfers = Rc::new(script_transfers);
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let transfers = transfers.clone();
            let outcomes = script_outcomes.clone();
            workers.spawn_local(async move {
                for index in (worker..transfers.len()).step_by(WORKERS) {
                    let state = run_saga(index, &transfers[index]).await;
                    outcomes.borrow_mut().insert(index, state);
                }
            });
        }
        while workers.join_next().await.is_some() {}
        *script_done.borrow_mut() = true;
        let outcomes = script_outcomes.borrow().clone();
        check_books(&transfers, &outcomes).await?;
        Ok(())
    });

    // Crashes: a bank or the orchestrator restarts every few seconds of
    // simulated time while the transfers run.
    let mut crashes = SmallRng::seed_from_u64(seed ^ 0xc0ffee);
    let mut next_crash = Duration::from_millis(500);
    let mut restarted = 0;
    while !sim.step()? {
        if !*done.borrow() && sim.elapsed() >= next_crash {
            let victim = if crashes.random_bool(0.5) {
                ORCHESTRATOR.to_owned()
            } else {
                host_of_bank(crashes.random_range(1..=BANKS))
            };
            sim.restart(&victim);
            restarted += 1;
            next_crash = sim.elapsed() + Duration::from_millis(crashes.random_range(300..1_500));
        }
    }
    assert!(restarted > 0, "the run was too short to crash anything");
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), TRANSFERS);
    let completed = outcomes
        .values()
        .filter(|s| **s == SagaState::Completed)
        .count();
    eprintln!(
        "seed {seed}: {TRANSFERS} transfers, {completed} completed, {} compensated, \
         {restarted} crashes, {:?} simulated",
        TRANSFERS - completed,
        sim.elapsed()
    );
    Ok(())
}

/// Starts transfer `index` and waits for its end, retrying the start
/// (same saga id) while the orchestrator is down.
async fn run_saga(index: usize, transfer: &Transfer) -> SagaState {
    let request = StartSagaRequest {
        saga_id: format!("transfer-{index}"),
        saga_type: "transfer".into(),
        params: HashMap::from([
            (
                "from".into(),
                format!("{}/{}", bank(transfer.from.0), transfer.from.1),
            ),
            (
                "to".into(),
                format!("{}/{}", bank(transfer.to.0), transfer.to.1),
            ),
            ("amount".into(), transfer.amount.to_string()),
        ]),
        wait: true,
        step_timeout_ms: 0,
    };
    loop {
        let mut orchestrator = SagaOrchestratorClient::new(channel(ORCHESTRATOR));
        if let Ok(saga) = orchestrator.start(request.clone()).await {
            let saga = saga.into_inner();
            let state = SagaState::try_from(saga.state).unwrap_or_default();
            if matches!(state, SagaState::Completed | SagaState::Compensated) {
                return state;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The invariants, once every saga has ended.
async fn check_books(
    transfers: &[Transfer],
    outcomes: &HashMap<usize, SagaState>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut expected: BTreeMap<(usize, String), i64> = accounts()
        .into_iter()
        .map(|account| (account, OPENING_BALANCE))
        .collect();
    for (index, transfer) in transfers.iter().enumerate() {
        if outcomes.get(&index) == Some(&SagaState::Completed) {
            *expected.entry(transfer.from.clone()).or_default() -= transfer.amount;
            *expected.entry(transfer.to.clone()).or_default() += transfer.amount;
        }
    }
    // Let retriable steps still in flight after a late crash settle.
    let mut orchestrator = SagaOrchestratorClient::new(channel(ORCHESTRATOR));
    for index in 0..transfers.len() {
        let saga = orchestrator
            .get(SagaRef {
                saga_id: format!("transfer-{index}"),
            })
            .await?
            .into_inner();
        let state = SagaState::try_from(saga.state).unwrap_or_default();
        assert!(
            matches!(state, SagaState::Completed | SagaState::Compensated),
            "saga {index} ended {state:?}"
        );
        assert_eq!(
            Some(&state),
            outcomes.get(&index),
            "saga {index} changed its end"
        );
    }
    let mut total = 0;
    for ((b, key), want) in &expected {
        let entry = AccountsClient::new(channel(&host_of_bank(*b)))
            .balance(KeyRequest { key: key.clone() })
            .await?
            .into_inner();
        assert_eq!(entry.held, 0, "{}/{key}: a hold was left behind", bank(*b));
        assert_eq!(
            entry.available,
            *want,
            "{}/{key}: balance differs from the completed transfers (applied twice, or half)",
            bank(*b)
        );
        total += entry.available;
    }
    let opening = OPENING_BALANCE * (BANKS * ACCOUNTS_PER_BANK) as i64;
    assert_eq!(total, opening, "money was created or destroyed");
    let completed = outcomes
        .values()
        .filter(|s| **s == SagaState::Completed)
        .count();
    assert!(
        completed > transfers.len() / 2,
        "most transfers complete: {completed}"
    );
    assert!(completed < transfers.len(), "some transfers compensate");
    Ok(())
}

/// Eight seeds by default (about half a minute); `DSLAB_SEEDS` for more.
#[test]
fn bank_transfer_saga_keeps_the_books_balanced() {
    if std::env::var_os("DSLAB_SEEDS").is_some() {
        sim::for_each_seed(simulate);
    } else {
        for seed in 1..=8 {
            simulate(seed).unwrap_or_else(|err| {
                panic!("seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test --test bank_transfer_saga")
            });
        }
    }
}
