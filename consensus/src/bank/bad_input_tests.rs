//! Bad input on every RPC of the ledger: precise codes, nothing appended;
//! then the hostile client from `observability::fuzz`.

use replication::event_sourcing::{EventStore, MAX_EVENTS_PER_APPEND, fold_all};
use tonic::Code;

use super::BankLedger;
use super::projections::BalanceProjection;
use super::tests::{balance, embedded, money, open, serve, transfer};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::{
    AccountRef, AuditRequest, HistoryRequest, ImportRequest, LedgerEvent, OpenAccountRequest,
};

fn raw(event_type: &str, schema_version: u32, payload_json: &str) -> LedgerEvent {
    LedgerEvent {
        event_type: event_type.into(),
        schema_version,
        payload_json: payload_json.into(),
        ..LedgerEvent::default()
    }
}

/// Bad input on every RPC: unknown accounts, zero and negative amounts,
/// versions from the future, malformed events, oversized batches, missing
/// idempotency keys — each refused with its precise code, and nothing
/// appended. Then the hostile client (observability::fuzz) against every
/// method, and the ledger still works.
#[tokio::test(flavor = "multi_thread")]
async fn bank_ledger_bad_input_gets_precise_codes_and_appends_nothing() {
    let store = std::sync::Arc::new(embedded());
    let (server, mut client) = serve(BankLedger::start(store.clone())).await;
    client.open_account(open("alice")).await.expect("opens");
    client
        .deposit(money("alice", 500, "d"))
        .await
        .expect("deposits");
    let head = store.head().await.expect("a head");

    let deposit = |amount: i64, id: &str| money("alice", amount, id);
    let future = |after_version: u64| HistoryRequest {
        account: "alice".into(),
        after_version,
        limit: 0,
    };
    let import = |expected_version: u64, events: Vec<LedgerEvent>| ImportRequest {
        account: "alice".into(),
        expected_version,
        events,
    };
    let deposited = r#"{"amount_cents":5,"request_id":"i"}"#;
    let mut c = client.clone();
    let cases: Vec<(&str, Result<(), tonic::Status>, Code)> = vec![
        (
            "zero amount",
            c.deposit(deposit(0, "x")).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "negative amount",
            c.withdraw(deposit(-5, "x")).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "huge amount",
            c.deposit(deposit(i64::MAX, "x")).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "no request id",
            c.deposit(deposit(5, "")).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "unknown account",
            c.deposit(money("nobody", 5, "x")).await.map(drop),
            Code::NotFound,
        ),
        (
            "bad account id",
            c.deposit(money("a/b", 5, "x")).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "empty owner",
            c.open_account(OpenAccountRequest {
                account: "z".into(),
                owner: String::new(),
            })
            .await
            .map(drop),
            Code::InvalidArgument,
        ),
        (
            "unknown payee",
            c.transfer(transfer("alice", "nobody", 5, "x"))
                .await
                .map(drop),
            Code::NotFound,
        ),
        (
            "self transfer",
            c.transfer(transfer("alice", "alice", 5, "x"))
                .await
                .map(drop),
            Code::InvalidArgument,
        ),
        (
            "overdraft",
            c.withdraw(deposit(501, "x")).await.map(drop),
            Code::FailedPrecondition,
        ),
        (
            "reused request id",
            c.deposit(deposit(7, "d")).await.map(drop),
            Code::FailedPrecondition,
        ),
        (
            "unknown balance",
            c.get_balance(AccountRef {
                account: "nobody".into(),
            })
            .await
            .map(drop),
            Code::NotFound,
        ),
        (
            "history of nobody",
            c.history(HistoryRequest {
                account: "nobody".into(),
                after_version: 0,
                limit: 0,
            })
            .await
            .map(drop),
            Code::NotFound,
        ),
        (
            "history from the future",
            c.history(future(99)).await.map(drop),
            Code::OutOfRange,
        ),
        (
            "audit from the future",
            c.audit(AuditRequest {
                account: "alice".into(),
                after_version: 99,
                limit: 0,
            })
            .await
            .map(drop),
            Code::OutOfRange,
        ),
        (
            "import at a future version",
            c.import(import(99, vec![raw("Deposited", 2, deposited)]))
                .await
                .map(drop),
            Code::OutOfRange,
        ),
        (
            "import at a stale version",
            c.import(import(1, vec![raw("Deposited", 2, deposited)]))
                .await
                .map(drop),
            Code::Aborted,
        ),
        (
            "import of no events",
            c.import(import(2, vec![])).await.map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of bad JSON",
            c.import(import(2, vec![raw("Deposited", 2, "{not json")]))
                .await
                .map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of an unknown type",
            c.import(import(2, vec![raw("Robbed", 1, "{}")]))
                .await
                .map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of a negative deposit",
            c.import(import(
                2,
                vec![raw(
                    "Deposited",
                    2,
                    r#"{"amount_cents":-5,"request_id":"i"}"#,
                )],
            ))
            .await
            .map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of a future schema",
            c.import(import(2, vec![raw("Deposited", 3, deposited)]))
                .await
                .map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of a transfer",
            c.import(import(
                2,
                vec![raw(
                    "TransferSent",
                    1,
                    r#"{"to":"b","amount_cents":5,"request_id":"i"}"#,
                )],
            ))
            .await
            .map(drop),
            Code::InvalidArgument,
        ),
        (
            "import of an overdraft",
            c.import(import(
                2,
                vec![raw(
                    "Withdrawn",
                    1,
                    r#"{"amount_cents":501,"request_id":"i"}"#,
                )],
            ))
            .await
            .map(drop),
            Code::FailedPrecondition,
        ),
        (
            "oversized batch",
            c.import(import(
                2,
                (0..=MAX_EVENTS_PER_APPEND)
                    .map(|i| {
                        raw(
                            "Deposited",
                            2,
                            &format!(r#"{{"amount_cents":1,"request_id":"b{i}"}}"#),
                        )
                    })
                    .collect(),
            ))
            .await
            .map(drop),
            Code::InvalidArgument,
        ),
    ];
    for (what, result, code) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    assert_eq!(
        store.head().await.expect("a head"),
        head,
        "a refused request appended"
    );

    observability::fuzz::fuzz_service(
        server.uri(),
        FILE_DESCRIPTOR_SET,
        "consensus.v1.BankLedger",
        &observability::fuzz::FuzzOptions {
            random_messages: 24,
            ..observability::fuzz::FuzzOptions::default()
        },
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    // Random valid messages may open accounts and move money; what they
    // must not do is break the books or the service.
    let books = store.head().await.expect("a head");
    let (folded, _) = fold_all(store.as_ref(), &BalanceProjection, &super::upcaster())
        .await
        .expect("the log still folds");
    assert!(folded.accounts.values().all(|row| row.balance_cents >= 0));
    assert!(books >= head);
    client
        .deposit(money("alice", 1, "after"))
        .await
        .expect("still serves");
    assert_eq!(
        balance(&mut client, "alice").await,
        folded.accounts["alice"].balance_cents + 1
    );
}
