//! Retries that arrive after the account's idempotency window moved on:
//! refused or answered, never applied twice.

use std::sync::Arc;

use tonic::Code;

use super::BankLedger;
use super::MAX_REMEMBERED_REQUESTS;
use super::tests::{Client, balance, embedded, money, open, serve, transfer};
use crate::proto::v1::{ImportRequest, LedgerEvent};
use replication::event_sourcing::MAX_EVENTS_PER_APPEND;

/// Imports `count` deposits of one cent on `account`, in batches the store
/// accepts, starting at `version`; returns the version after them.
async fn import_deposits(client: &mut Client, account: &str, version: u64, count: usize) -> u64 {
    let mut version = version;
    for batch in 0..count.div_ceil(MAX_EVENTS_PER_APPEND) {
        let n = MAX_EVENTS_PER_APPEND.min(count - batch * MAX_EVENTS_PER_APPEND);
        let events = (0..n)
            .map(|i| LedgerEvent {
                event_type: "Deposited".into(),
                schema_version: 2,
                payload_json: format!(r#"{{"amount_cents":1,"request_id":"imp-{batch}-{i}"}}"#),
                version: 0,
                position: 0,
            })
            .collect();
        let reply = client
            .import(ImportRequest {
                account: account.into(),
                expected_version: version,
                events,
            })
            .await
            .expect("imports")
            .into_inner();
        version = reply.version;
    }
    version
}

/// The review's repro: a transfer, more than a window of commands on the
/// payee, the transfer resent. The payer is debited once and the payee
/// credited once; a deposit resent after the window is refused, not
/// applied again.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_late_retries_never_create_money() {
    let (_server, mut client) = serve(BankLedger::start(Arc::new(embedded()))).await;
    client.open_account(open("alice")).await.expect("opens");
    client.open_account(open("dave")).await.expect("opens");
    client
        .deposit(money("alice", 5_000, "seed"))
        .await
        .expect("deposits");
    client
        .transfer(transfer("alice", "dave", 1_000, "tz"))
        .await
        .expect("transfers");
    client
        .deposit(money("dave", 7, "d-old"))
        .await
        .expect("deposits");
    let flood = MAX_REMEMBERED_REQUESTS + 64;
    // dave: opened, received, deposited = version 3.
    import_deposits(&mut client, "dave", 3, flood).await;
    let dave = 1_000 + 7 + flood as i64;
    assert_eq!(balance(&mut client, "dave").await, dave);

    let resent = client
        .transfer(transfer("alice", "dave", 1_000, "tz"))
        .await
        .expect("a retry is answered")
        .into_inner();
    assert!(resent.duplicate);
    assert_eq!(balance(&mut client, "alice").await, 4_000);
    assert_eq!(balance(&mut client, "dave").await, dave, "credited twice");

    let late = client
        .deposit(money("dave", 7, "d-old"))
        .await
        .expect_err("too old to deduplicate");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("too old"), "{late:?}");
    assert_eq!(balance(&mut client, "dave").await, dave, "deposited twice");
    // A new request id still works.
    client
        .deposit(money("dave", 1, "d-new"))
        .await
        .expect("deposits");
    assert_eq!(balance(&mut client, "dave").await, dave + 1);
}
