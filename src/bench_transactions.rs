//! `dslab bench transactions`: what an orchestrator and a commit
//! coordinator cost, against the same participant calls made directly.
//!
//! Three `Accounts` ledgers, a saga orchestrator and a 2PC coordinator run
//! in this process on 127.0.0.1, every one with its log in a file (fsync
//! on every flush). Two comparisons, each like for like:
//!
//! - **sagas**: a transfer saga (hold → credit → capture, three calls on
//!   two ledgers) started through the orchestrator and awaited, against a
//!   client making those same three calls itself, in order; `--clients`
//!   transfers in flight at once, throughput in transfers per second;
//! - **2PC**: a transaction debiting one ledger and crediting two, through
//!   the coordinator, against a client sending the same PREPAREs (in
//!   parallel) and then the same COMMITs (in parallel); one at a time,
//!   latency per transaction.
//!
//! With `--in-memory` every log is kept in memory instead: what remains is
//! the orchestration itself (the extra hop, the bookkeeping), without the
//! cost of one more `fsync` per saga or transaction.
//!
//! Rounds alternate (direct, coordinated, direct, …) so that drift on a
//! noisy machine hits both sides alike; the figures are the medians over
//! rounds.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use consensus::proto::FILE_DESCRIPTOR_SET;
use consensus::proto::v1::accounts_client::AccountsClient;
use consensus::proto::v1::saga_orchestrator_client::SagaOrchestratorClient;
use consensus::proto::v1::transaction_coordinator_client::TransactionCoordinatorClient;
use consensus::proto::v1::transaction_participant_client::TransactionParticipantClient;
use consensus::proto::v1::{
    Branch, Change, CreditRequest, HoldRef, HoldRequest, OpenRequest, PrepareRequest, Protocol,
    SagaState, StartSagaRequest, TxnPhase, TxnRef, TxnRequest,
};
use consensus::transaction::ledger::service::{COORDINATOR, LedgerConfig, LedgerServer};
use consensus::transaction::saga::orchestrator::{Orchestrator, OrchestratorConfig};
use consensus::transaction::two_phase::{Coordinator, CoordinatorConfig};
use futures_util::future::try_join_all;
use hdrhistogram::Histogram;
use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle};
use replication::log::{FileDisk, MemDisk};
use serde_json::json;
use tokio::time::Instant;

const LEDGERS: usize = 3;
const OPENING_BALANCE: i64 = 100_000_000_000;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct TransactionBenchOptions {
    /// Transfers per saga round.
    pub sagas: usize,
    /// Transfers in flight at once.
    pub clients: usize,
    /// 2PC transactions per round.
    pub transactions: usize,
    pub rounds: usize,
    /// Logs in memory instead of files: what orchestration costs without
    /// the disk.
    pub in_memory: bool,
}

struct Services {
    ledgers: Vec<ServerHandle>,
    orchestrator: ServerHandle,
    coordinator: ServerHandle,
    _dir: tempfile::TempDir,
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn bank(i: usize) -> String {
    format!("bank{i}")
}

async fn start(in_memory: bool) -> anyhow::Result<Services> {
    let dir = tempfile::tempdir().context("a directory for the logs")?;
    let disk = |name: &str| -> anyhow::Result<consensus::transaction::journal::Disk> {
        if in_memory {
            return Ok(Box::new(MemDisk::new()));
        }
        Ok(Box::new(FileDisk::open(
            dir.path().join(format!("{name}.log")),
        )?))
    };
    // Ledgers vote only with a coordinator to ask: its address first.
    let coordinator_listener = tokio::net::TcpListener::bind(loopback()).await?;
    let coordinator_address = coordinator_listener.local_addr()?.to_string();
    let mut ledgers = Vec::new();
    for i in 0..LEDGERS {
        let mut config = LedgerConfig::new(&bank(i), disk(&bank(i))?, Net::Tcp);
        config.peers = BTreeMap::from([(COORDINATOR.to_owned(), coordinator_address.clone())]);
        let ledger = LedgerServer::start(config)?;
        ledgers.push(
            RpcServer::new()
                .add_service(ledger.accounts(), FILE_DESCRIPTOR_SET)
                .add_service(ledger.participant(), FILE_DESCRIPTOR_SET)
                .bind(Net::Tcp, loopback())
                .await?
                .spawn(),
        );
    }
    let participants: BTreeMap<String, String> = ledgers
        .iter()
        .enumerate()
        .map(|(i, server)| (bank(i), server.local_addr().to_string()))
        .collect();
    let orchestrator = Orchestrator::start(OrchestratorConfig::new(
        participants.clone(),
        disk("saga")?,
        Net::Tcp,
    ))?;
    let coordinator = Coordinator::start(CoordinatorConfig::new(
        participants,
        disk("coordinator")?,
        Net::Tcp,
    ))?;
    let serve = |server: RpcServer| async move {
        anyhow::Ok(server.bind(Net::Tcp, loopback()).await?.spawn())
    };
    let orchestrator =
        serve(RpcServer::new().add_service(orchestrator.into_service(), FILE_DESCRIPTOR_SET))
            .await?;
    let coordinator = RpcServer::new()
        .add_service(coordinator.into_service(), FILE_DESCRIPTOR_SET)
        .bind_tcp(coordinator_listener)?
        .spawn();
    for server in &ledgers {
        let mut accounts = AccountsClient::new(channel(server));
        for account in ["a", "b"] {
            accounts
                .open(OpenRequest {
                    key: account.into(),
                    amount: OPENING_BALANCE,
                })
                .await?;
        }
    }
    Ok(Services {
        ledgers,
        orchestrator,
        coordinator,
        _dir: dir,
    })
}

fn channel(server: &ServerHandle) -> RpcChannel {
    ClientBuilder::new(Net::Tcp)
        .default_deadline(Duration::from_secs(30))
        .connect_lazy(server.uri())
}

/// Transfer `n` of a round: from one ledger to the next.
fn route(n: usize) -> (usize, usize) {
    let from = n % LEDGERS;
    (from, (from + 1) % LEDGERS)
}

/// One saga round; transfers per second and the latency histogram.
async fn saga_round(
    services: &Services,
    round: &str,
    options: TransactionBenchOptions,
    orchestrated: bool,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let ledgers: Vec<RpcChannel> = services.ledgers.iter().map(channel).collect();
    let orchestrator = channel(&services.orchestrator);
    let started = Instant::now();
    let per_client = options.sagas / options.clients.max(1);
    let workers = (0..options.clients).map(|client| {
        let ledgers = ledgers.clone();
        let orchestrator = orchestrator.clone();
        let round = round.to_owned();
        tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for i in 0..per_client {
                let n = client * per_client + i;
                let (from, to) = route(n);
                let id = format!("{round}-{n}");
                let began = Instant::now();
                if orchestrated {
                    let saga = SagaOrchestratorClient::new(orchestrator.clone())
                        .start(StartSagaRequest {
                            saga_id: id,
                            saga_type: "transfer".into(),
                            params: [
                                ("from", format!("{}/a", bank(from))),
                                ("to", format!("{}/b", bank(to))),
                                ("amount", "1".to_owned()),
                            ]
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                            wait: true,
                            step_timeout_ms: 0,
                        })
                        .await?
                        .into_inner();
                    anyhow::ensure!(saga.state == SagaState::Completed as i32, "saga {saga:?}");
                } else {
                    // The orchestrator's three calls, made by the client.
                    let hold_id = format!("{id}/hold");
                    let mut source = AccountsClient::new(ledgers[from].clone());
                    source
                        .hold(HoldRequest {
                            hold_id: hold_id.clone(),
                            key: "a".into(),
                            amount: 1,
                            ttl_ms: 0,
                        })
                        .await?;
                    AccountsClient::new(ledgers[to].clone())
                        .credit(CreditRequest {
                            credit_id: format!("{id}/credit"),
                            key: "b".into(),
                            amount: 1,
                        })
                        .await?;
                    source.capture(HoldRef { hold_id }).await?;
                }
                latency.record(began.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(latency)
        })
    });
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for worker in try_join_all(workers).await? {
        latency.add(worker?)?;
    }
    let rate = latency.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, latency))
}

/// One 2PC round; the latency histogram.
async fn commit_round(
    services: &Services,
    round: &str,
    options: TransactionBenchOptions,
    coordinated: bool,
) -> anyhow::Result<Histogram<u64>> {
    let ledgers: Vec<RpcChannel> = services.ledgers.iter().map(channel).collect();
    let mut coordinator = TransactionCoordinatorClient::new(channel(&services.coordinator));
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let branches = || {
        (0..LEDGERS)
            .map(|i| Branch {
                participant: bank(i),
                changes: vec![Change {
                    key: if i == 0 { "a" } else { "b" }.into(),
                    delta: if i == 0 { -2 } else { 1 },
                }],
            })
            .collect::<Vec<_>>()
    };
    for n in 0..options.transactions {
        let txn_id = format!("{round}-{n}");
        let began = Instant::now();
        if coordinated {
            let decided = coordinator
                .execute(TxnRequest {
                    txn_id,
                    protocol: Protocol::TwoPhase.into(),
                    branches: branches(),
                })
                .await?
                .into_inner();
            anyhow::ensure!(decided.phase == TxnPhase::Committed as i32, "{decided:?}");
        } else {
            // The coordinator's calls, made by the client: every PREPARE,
            // then every COMMIT, each round in parallel.
            let participants: Vec<String> = (0..LEDGERS).map(bank).collect();
            try_join_all(
                branches()
                    .into_iter()
                    .zip(&ledgers)
                    .map(|(branch, ledger)| {
                        let prepare = PrepareRequest {
                            txn_id: txn_id.clone(),
                            protocol: Protocol::TwoPhase.into(),
                            changes: branch.changes,
                            participants: participants.clone(),
                        };
                        let mut client = TransactionParticipantClient::new(ledger.clone());
                        async move { client.prepare(prepare).await }
                    }),
            )
            .await?;
            try_join_all(ledgers.iter().map(|ledger| {
                let mut client = TransactionParticipantClient::new(ledger.clone());
                let txn = TxnRef {
                    txn_id: txn_id.clone(),
                };
                async move { client.commit(txn).await }
            }))
            .await?;
        }
        latency.record(began.elapsed().as_micros() as u64)?;
    }
    Ok(latency)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1e3
}

/// Runs both comparisons; prints a table, or one line of JSON.
pub async fn bench_transactions(
    options: TransactionBenchOptions,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.clients >= 1 && options.clients <= 1024,
        "--clients: 1..=1024"
    );
    anyhow::ensure!(
        options.sagas >= options.clients,
        "--sagas must be at least --clients"
    );
    anyhow::ensure!(
        options.rounds >= 1 && options.rounds <= 100,
        "--rounds: 1..=100"
    );
    anyhow::ensure!(options.transactions >= 1, "--transactions must be positive");
    let services = start(options.in_memory).await?;
    // Warm up connections and caches on both paths.
    let warm = TransactionBenchOptions {
        sagas: options.clients,
        transactions: 10,
        ..options
    };
    saga_round(&services, "warm-direct", warm, false).await?;
    saga_round(&services, "warm-saga", warm, true).await?;
    commit_round(&services, "warm-direct", warm, false).await?;
    commit_round(&services, "warm-2pc", warm, true).await?;

    let mut direct_rates = Vec::new();
    let mut saga_rates = Vec::new();
    let mut direct_p50 = Vec::new();
    let mut saga_p50 = Vec::new();
    let mut direct_commit = Vec::new();
    let mut coordinated_commit = Vec::new();
    let mut direct_commit_p99 = Vec::new();
    let mut coordinated_commit_p99 = Vec::new();
    for round in 0..options.rounds {
        let (rate, latency) = saga_round(&services, &format!("d{round}"), options, false).await?;
        direct_rates.push(rate);
        direct_p50.push(ms(latency.value_at_quantile(0.5)));
        let (rate, latency) = saga_round(&services, &format!("s{round}"), options, true).await?;
        saga_rates.push(rate);
        saga_p50.push(ms(latency.value_at_quantile(0.5)));
        let latency = commit_round(&services, &format!("d{round}"), options, false).await?;
        direct_commit.push(ms(latency.value_at_quantile(0.5)));
        direct_commit_p99.push(ms(latency.value_at_quantile(0.99)));
        let latency = commit_round(&services, &format!("c{round}"), options, true).await?;
        coordinated_commit.push(ms(latency.value_at_quantile(0.5)));
        coordinated_commit_p99.push(ms(latency.value_at_quantile(0.99)));
        if !json {
            eprintln!("round {}/{} done", round + 1, options.rounds);
        }
    }
    let (direct_rate, saga_rate) = (median(direct_rates), median(saga_rates));
    let (direct_latency, saga_latency) = (median(direct_p50), median(saga_p50));
    let (direct_commit, coordinated_commit) = (median(direct_commit), median(coordinated_commit));
    let (direct_commit_p99, coordinated_commit_p99) =
        (median(direct_commit_p99), median(coordinated_commit_p99));
    let saga_overhead = direct_rate / saga_rate - 1.0;
    let commit_overhead = coordinated_commit / direct_commit - 1.0;
    if json {
        println!(
            "{}",
            json!({
                "clients": options.clients,
                "logs": if options.in_memory { "memory" } else { "files" },
                "sagas_per_round": options.sagas,
                "rounds": options.rounds,
                "direct_transfers_per_s": direct_rate,
                "saga_transfers_per_s": saga_rate,
                "saga_overhead": saga_overhead,
                "direct_p50_ms": direct_latency,
                "saga_p50_ms": saga_latency,
                "direct_2pc_p50_ms": direct_commit,
                "coordinated_2pc_p50_ms": coordinated_commit,
                "direct_2pc_p99_ms": direct_commit_p99,
                "coordinated_2pc_p99_ms": coordinated_commit_p99,
                "commit_overhead": commit_overhead,
            })
        );
    } else {
        println!(
            "logs in {}",
            if options.in_memory {
                "memory"
            } else {
                "files, fsynced"
            }
        );
        println!(
            "transfer sagas, {} in flight ({} per round, median of {} rounds):",
            options.clients, options.sagas, options.rounds
        );
        println!("  direct calls     {direct_rate:>9.0} transfers/s   p50 {direct_latency:.2} ms");
        println!("  orchestrated     {saga_rate:>9.0} transfers/s   p50 {saga_latency:.2} ms");
        println!(
            "  the orchestrator costs {:+.0}% of throughput",
            saga_overhead * 100.0
        );
        println!("2PC, 3 participants, one at a time:");
        println!("  direct calls     p50 {direct_commit:.2} ms   p99 {direct_commit_p99:.2} ms");
        println!(
            "  coordinator      p50 {coordinated_commit:.2} ms   p99 {coordinated_commit_p99:.2} ms"
        );
        println!(
            "  the coordinator adds {:+.0}% to the commit latency",
            commit_overhead * 100.0
        );
    }
    for server in services.ledgers {
        server.shutdown().await?;
    }
    services.orchestrator.shutdown().await?;
    services.coordinator.shutdown().await?;
    Ok(())
}
