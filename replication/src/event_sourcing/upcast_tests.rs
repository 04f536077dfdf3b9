//! Upcasting old event schemas, and loading aggregates from snapshots.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tests::{deposit, name};
use super::*;
use crate::log::MemDisk;

fn cents(mut payload: Value) -> std::result::Result<Value, String> {
    let amount = payload
        .get("amount")
        .and_then(Value::as_u64)
        .ok_or("no amount")?;
    payload["amount_cents"] = json!(amount * 100);
    payload
        .as_object_mut()
        .ok_or("not an object")?
        .remove("amount");
    Ok(payload)
}

fn currency(mut payload: Value) -> std::result::Result<Value, String> {
    payload["currency"] = json!("EUR");
    Ok(payload)
}

fn upcaster() -> Upcaster {
    Upcaster::new()
        .with_step("Deposited", 1, cents)
        .with_step("Deposited", 2, currency)
}

/// Episode 23. Events written as v1 (`amount`), v2 (`amount_cents`) and
/// v3 (with `currency`) all read as v3; the stored events are untouched.
#[tokio::test]
async fn event_sourcing_upcaster_raises_old_events_step_by_step() {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    let account = name("account-5");
    let written = vec![
        NewEvent::json("Deposited", 1, &json!({ "amount": 3 })).expect("serializes"),
        NewEvent::json("Deposited", 2, &json!({ "amount_cents": 250 })).expect("serializes"),
        NewEvent::json(
            "Deposited",
            3,
            &json!({ "amount_cents": 1, "currency": "USD" }),
        )
        .expect("serializes"),
        NewEvent::json("Opened", 1, &json!({})).expect("serializes"),
    ];
    store
        .append(&account, ExpectedVersion::Any, written)
        .await
        .expect("appends");
    let stored = store
        .read_stream(&account, Version::NONE, 10)
        .await
        .expect("reads");
    let upcaster = upcaster();
    let read: Vec<(u32, Value)> = stored
        .iter()
        .map(|event| {
            let event = upcaster.upcast(event.clone()).expect("upcasts");
            (event.schema_version, event.json().expect("JSON"))
        })
        .collect();
    assert_eq!(
        read,
        vec![
            (3, json!({ "amount_cents": 300, "currency": "EUR" })),
            (3, json!({ "amount_cents": 250, "currency": "EUR" })),
            (3, json!({ "amount_cents": 1, "currency": "USD" })),
            (1, json!({})),
        ]
    );
    assert_eq!(
        stored[0].schema_version, 1,
        "the store keeps what was written"
    );
}

/// Episode 23. A reader older than the writer refuses events newer than it
/// knows (FailedPrecondition), and a gap in the steps is named.
#[tokio::test]
async fn event_sourcing_upcaster_refuses_unknown_versions() {
    let event = |schema_version| RecordedEvent {
        stream: name("s"),
        version: Version(1),
        position: Position(1),
        event_type: "Deposited".into(),
        schema_version,
        payload: b"{\"amount\":1}".to_vec(),
    };
    let newer = upcaster().upcast(event(4));
    assert!(
        matches!(
            &newer,
            Err(StoreError::Upcast {
                schema_version: 4,
                ..
            })
        ),
        "{newer:?}"
    );
    assert_eq!(
        tonic::Status::from(newer.expect_err("refused")).code(),
        tonic::Code::FailedPrecondition
    );
    let gappy = Upcaster::new().with_step("Deposited", 2, currency);
    let missing = gappy.upcast(event(1));
    assert!(
        matches!(&missing, Err(StoreError::Upcast { schema_version: 1, reason, .. }) if reason.contains("no step")),
        "{missing:?}"
    );
}

/// An account as an aggregate: its balance in cents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    balance_cents: u64,
    deposits: u64,
}

impl Aggregate for Account {
    const SNAPSHOT_SCHEMA: u32 = 1;
    fn apply(&mut self, event: &RecordedEvent) -> Result<()> {
        let data: Value = event.json()?;
        self.balance_cents += data["amount_cents"].as_u64().unwrap_or(0);
        self.deposits += 1;
        Ok(())
    }
}

/// Episode 23. Loading from a snapshot replays only the events after it
/// and gives the same aggregate as a full replay; a snapshot of another
/// state schema is ignored; a new stream loads as the default at v0.
#[tokio::test]
async fn event_sourcing_snapshot_load_equals_full_replay() {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    let account = name("account-6");
    let upcaster = upcaster();
    for amount in 1..=25 {
        store
            .append(&account, ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    let full: Loaded<Account> = load_aggregate(&store, &account, &upcaster)
        .await
        .expect("loads");
    assert_eq!(
        (full.version, full.replayed, full.from_snapshot),
        (Version(25), 25, None)
    );
    assert_eq!(full.aggregate.balance_cents, (1..=25).sum::<u64>() * 100);

    let policy = SnapshotPolicy { every: 20 };
    assert!(
        policy
            .maybe_snapshot(&store, &account, &full)
            .await
            .expect("snapshots")
    );
    for amount in 26..=30 {
        store
            .append(
                &account,
                ExpectedVersion::Exact(Version(amount - 1)),
                vec![deposit(amount)],
            )
            .await
            .expect("appends");
    }
    let fast: Loaded<Account> = load_aggregate(&store, &account, &upcaster)
        .await
        .expect("loads");
    assert_eq!(
        (fast.from_snapshot, fast.replayed, fast.version),
        (Some(Version(25)), 5, Version(30))
    );
    assert!(
        !policy
            .maybe_snapshot(&store, &account, &fast)
            .await
            .expect("decides")
    );
    let store_full = {
        let mut replay = Account::default();
        for event in store
            .read_stream(&account, Version::NONE, 100)
            .await
            .expect("reads")
        {
            replay
                .apply(&upcaster.upcast(event).expect("upcasts"))
                .expect("applies");
        }
        replay
    };
    assert_eq!(fast.aggregate, store_full);

    let stale = Snapshot {
        version: Version(30),
        schema_version: 99,
        state: b"{}".to_vec(),
    };
    store.save_snapshot(&account, stale).await.expect("saves");
    let ignored: Loaded<Account> = load_aggregate(&store, &account, &upcaster)
        .await
        .expect("loads");
    assert_eq!((ignored.from_snapshot, ignored.replayed), (None, 30));
    assert_eq!(ignored.aggregate, store_full);

    let new: Loaded<Account> = load_aggregate(&store, &name("nobody"), &upcaster)
        .await
        .expect("loads");
    assert_eq!(
        (new.version, new.aggregate),
        (Version::NONE, Account::default())
    );
}
