//! The ledger over gRPC on loopback: commands, queries, retries,
//! overdrafts under contention, a rebuild by replay, an interrupted
//! transfer completed, bad input refused precisely with nothing appended,
//! and the same service on a three-member Raft KV.

use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle};
use replication::event_sourcing::{
    EmbeddedStore, EventStore, ExpectedVersion, StreamName, Version, fold_all,
};
use replication::log::MemDisk;
use tonic::Code;

use super::BankLedger;
use super::events::BankEvent;
use super::projections::BalanceProjection;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::bank_ledger_client::BankLedgerClient;
use crate::proto::v1::{
    AccountRef, AuditRequest, HistoryRequest, MoneyRequest, OpenAccountRequest, TransferRequest,
};

pub(super) type Client = BankLedgerClient<RpcChannel>;

pub(super) async fn serve<S: EventStore + 'static>(
    ledger: BankLedger<S>,
) -> (ServerHandle, Client) {
    let server = RpcServer::new()
        .add_service(ledger.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("binds")
        .spawn();
    let client = BankLedgerClient::new(
        ClientBuilder::new(Net::Tcp)
            .default_deadline(Duration::from_secs(20))
            .connect_lazy(server.uri()),
    );
    (server, client)
}

pub(super) fn embedded() -> EmbeddedStore<MemDisk> {
    EmbeddedStore::open(MemDisk::new()).expect("an empty store opens")
}

pub(super) fn open(account: &str) -> OpenAccountRequest {
    OpenAccountRequest {
        account: account.into(),
        owner: format!("owner of {account}"),
    }
}

pub(super) fn money(account: &str, amount_cents: i64, request_id: &str) -> MoneyRequest {
    MoneyRequest {
        account: account.into(),
        amount_cents,
        request_id: request_id.into(),
    }
}

pub(super) fn transfer(
    from: &str,
    to: &str,
    amount_cents: i64,
    request_id: &str,
) -> TransferRequest {
    TransferRequest {
        from: from.into(),
        to: to.into(),
        amount_cents,
        request_id: request_id.into(),
    }
}

pub(super) async fn balance(client: &mut Client, account: &str) -> i64 {
    client
        .get_balance(AccountRef {
            account: account.into(),
        })
        .await
        .expect("a balance")
        .into_inner()
        .balance_cents
}

/// Episode 23. Open, deposit, withdraw, transfer; balances and the audit
/// trail read back at once (replies wait for the read side); a retried
/// command is answered, not applied again; an overdraft is refused.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_commands_and_queries_round_trip() {
    let (_server, mut client) = serve(BankLedger::start(std::sync::Arc::new(embedded()))).await;
    client.open_account(open("alice")).await.expect("opens");
    client.open_account(open("bob")).await.expect("opens");
    // Opening again as the same owner is a retry.
    let again = client.open_account(open("alice")).await.expect("a retry");
    assert!(again.into_inner().duplicate);
    let taken = OpenAccountRequest {
        owner: "mallory".into(),
        ..open("alice")
    };
    let status = client.open_account(taken).await.expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists);

    client
        .deposit(money("alice", 10_000, "d1"))
        .await
        .expect("deposits");
    let retried = client
        .deposit(money("alice", 10_000, "d1"))
        .await
        .expect("a retry")
        .into_inner();
    assert!(retried.duplicate);
    assert_eq!(retried.balance_cents, 10_000);
    client
        .withdraw(money("alice", 2_500, "w1"))
        .await
        .expect("withdraws");
    let moved = client
        .transfer(transfer("alice", "bob", 5_000, "t1"))
        .await
        .expect("transfers")
        .into_inner();
    assert_eq!(moved.balance_cents, 2_500);
    client
        .transfer(transfer("alice", "bob", 5_000, "t1"))
        .await
        .expect("a retried transfer");
    let overdraft = client
        .withdraw(money("alice", 2_501, "w2"))
        .await
        .expect_err("an overdraft");
    assert_eq!(overdraft.code(), Code::FailedPrecondition, "{overdraft:?}");
    assert_eq!(balance(&mut client, "alice").await, 2_500);
    assert_eq!(balance(&mut client, "bob").await, 5_000);

    let audit = client
        .audit(AuditRequest {
            account: "alice".into(),
            after_version: 0,
            limit: 0,
        })
        .await
        .expect("an audit")
        .into_inner();
    let kinds: Vec<&str> = audit.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "deposited", "withdrawn", "transfer-sent"]);
    let running: Vec<i64> = audit
        .entries
        .iter()
        .map(|e| e.balance_after_cents)
        .collect();
    assert_eq!(running, [0, 10_000, 7_500, 2_500]);
    let history = client
        .history(HistoryRequest {
            account: "bob".into(),
            after_version: 1,
            limit: 0,
        })
        .await
        .expect("a history")
        .into_inner();
    assert_eq!(history.events.len(), 1);
    assert_eq!(history.events[0].event_type, "TransferReceived");
}

/// Episode 23. Ten withdrawals of 30 race for 100: the version check
/// lets exactly three through, whatever the interleaving.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_concurrent_withdrawals_never_overdraw() {
    let (_server, mut client) = serve(BankLedger::start(std::sync::Arc::new(embedded()))).await;
    client.open_account(open("shared")).await.expect("opens");
    client
        .deposit(money("shared", 100, "d"))
        .await
        .expect("deposits");
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(
                async move { client.withdraw(money("shared", 30, &format!("w{i}"))).await },
            )
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("joins") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(won, 3);
    assert_eq!(balance(&mut client, "shared").await, 10);
}

/// Episode 23 (CQRS). A second ledger on the same store rebuilds both read
/// models by replay; they equal a fold over the whole log.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_rebuilds_its_read_models_by_replay() {
    let store = std::sync::Arc::new(embedded());
    let first = BankLedger::start(store.clone());
    let (_server, mut client) = serve(first.clone()).await;
    for account in ["a", "b", "c"] {
        client.open_account(open(account)).await.expect("opens");
        client
            .deposit(money(account, 1_000, "seed"))
            .await
            .expect("deposits");
    }
    for i in 0..12 {
        let (from, to) = (["a", "b", "c"][i % 3], ["b", "c", "a"][i % 3]);
        client
            .transfer(transfer(from, to, 10 * (i as i64 + 1), &format!("t{i}")))
            .await
            .expect("transfers");
    }
    let head = store.head().await.expect("a head");
    let rebuilt = BankLedger::start(store.clone());
    assert!(
        rebuilt
            .read_side()
            .wait_for(head, Duration::from_secs(10))
            .await
    );
    let (folded, _) = fold_all(store.as_ref(), &BalanceProjection, &super::upcaster())
        .await
        .expect("a fold");
    let original = first.read_side().read(|m| m.balances.clone());
    assert_eq!(rebuilt.read_side().read(|m| m.balances.clone()), folded);
    assert_eq!(original, folded);
    assert_eq!(folded.total_cents(), 3_000);
    assert!(folded.in_flight.is_empty());
}

/// Episode 23. A transfer interrupted between its two appends (the payer
/// debited, the payee not yet credited) is completed when the ledger
/// starts: money in flight lands once.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_completes_an_interrupted_transfer_on_start() {
    let store = embedded();
    let append = |stream: &str, expected: u64, events: Vec<BankEvent>| {
        let stream = StreamName::new(stream).expect("a name");
        let events: Vec<_> = events.iter().map(BankEvent::to_new_event).collect();
        let store = &store;
        async move {
            store
                .append(&stream, ExpectedVersion::Exact(Version(expected)), events)
                .await
                .expect("appends")
        }
    };
    let opened = |owner: &str| BankEvent::AccountOpened {
        owner: owner.into(),
    };
    append(
        "account-p",
        0,
        vec![
            opened("p"),
            BankEvent::Deposited {
                amount_cents: 900,
                request_id: "d".into(),
            },
            BankEvent::TransferSent {
                to: "q".into(),
                amount_cents: 400,
                request_id: "t".into(),
            },
        ],
    )
    .await;
    append("account-q", 0, vec![opened("q")]).await;
    let (_server, mut client) = serve(BankLedger::start(std::sync::Arc::new(store))).await;
    let mut credited = 0;
    for _ in 0..100 {
        credited = balance(&mut client, "q").await;
        if credited == 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(credited, 400);
    // A late retry of the same transfer changes nothing.
    client
        .transfer(transfer("p", "q", 400, "t"))
        .await
        .expect("a retry");
    assert_eq!(balance(&mut client, "p").await, 500);
    assert_eq!(balance(&mut client, "q").await, 400);
}

/// Episode 23 (on 13): the same ledger, replicated — its events on a
/// three-member Raft KV through the etcd-API store.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_runs_on_the_raft_kv() {
    let members = crate::raft::demo::loopback_cluster(3, Duration::from_millis(20))
        .await
        .expect("a cluster");
    members[0]
        .1
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let addresses: Vec<String> = members
        .iter()
        .map(|(_, _, server)| server.local_addr().to_string())
        .collect();
    let store =
        crate::event_store::EtcdEventStore::connect(Net::Tcp, &addresses, "/bank/").expect("dials");
    let (_server, mut client) = serve(BankLedger::start(std::sync::Arc::new(store))).await;
    client.open_account(open("a")).await.expect("opens");
    client.open_account(open("b")).await.expect("opens");
    client
        .deposit(money("a", 300, "d"))
        .await
        .expect("deposits");
    client
        .transfer(transfer("a", "b", 120, "t"))
        .await
        .expect("transfers");
    let refused = client
        .withdraw(money("a", 181, "w"))
        .await
        .expect_err("an overdraft");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(balance(&mut client, "a").await, 180);
    assert_eq!(balance(&mut client, "b").await, 120);
    for (_, node, _) in &members {
        node.stop().await;
    }
}
