//! `dslab demo event-sourcing`: two tellers race for one balance (an
//! append conflict), a read model rebuilt by replay next to a fold that
//! counts a redelivery twice, and an event from the first release read
//! through an upcaster.

use std::sync::Arc;
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;
use replication::event_sourcing::{
    EmbeddedStore, EventStore, ExpectedVersion, MAX_READ_EVENTS, NewEvent, Position, Projection,
    StoreError, StreamName, Version, load_aggregate,
};
use replication::log::MemDisk;

use super::core::Account;
use super::events::{BankEvent, stream_of};
use super::projections::{BalanceProjection, Balances};
use super::read_side::ReadModels;
use super::{BankLedger, upcaster};

type Store = EmbeddedStore<MemDisk>;

/// Appends a command's event the event-sourcing way: load, decide,
/// append expecting the version loaded.
async fn command(store: &Store, account: &str, event: BankEvent) -> Result<Version, String> {
    let stream = stream_of(account).map_err(|e| e.to_string())?;
    let loaded = load_aggregate::<_, Account>(store, &stream, &upcaster())
        .await
        .map_err(|e| e.to_string())?;
    if loaded
        .aggregate
        .decide(account, &event)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(loaded.version);
    }
    store
        .append(
            &stream,
            ExpectedVersion::Exact(loaded.version),
            vec![event.to_new_event()],
        )
        .await
        .map(|appended| appended.last_version)
        .map_err(|e| e.to_string())
}

fn withdraw(amount_cents: i64, request_id: &str) -> BankEvent {
    BankEvent::Withdrawn {
        amount_cents,
        request_id: request_id.into(),
    }
}

/// Episode 23: event sourcing, its optimistic concurrency, CQRS replay and
/// event versioning, on the bank ledger.
pub async fn event_sourcing_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    let store = Arc::new(EmbeddedStore::open(MemDisk::new())?);
    out.section("Episode 23: event sourcing — the log is the truth, every table a cache");
    out.say("A bank ledger keeps no balance column: each account is a stream of events");
    out.say("(AccountOpened, Deposited, Withdrawn, TransferSent, TransferReceived), and a");
    out.say("balance is the fold of its stream. The store is the embedded one here; `dslab");
    out.say("serve ledger --event-store etcd=…` runs the same code on the Raft KV.");
    command(
        &store,
        "acme",
        BankEvent::AccountOpened {
            owner: "ACME".into(),
        },
    )
    .await?;
    let deposit = BankEvent::Deposited {
        amount_cents: 10_000,
        request_id: "d1".into(),
    };
    command(&store, "acme", deposit).await?;

    out.section("1. An append conflict: two tellers, one balance");
    let stream = stream_of("acme")?;
    let a = load_aggregate::<_, Account>(store.as_ref(), &stream, &upcaster()).await?;
    let b = load_aggregate::<_, Account>(store.as_ref(), &stream, &upcaster()).await?;
    out.say(&format!(
        "Tellers A and B both load acme at {} with {} cents, and both decide a withdrawal",
        a.version, a.aggregate.balance_cents
    ));
    out.say("of 8000 is covered. Each appends \"if the stream is still at that version\".");
    let first = store
        .append(
            &stream,
            ExpectedVersion::Exact(a.version),
            vec![withdraw(8_000, "a").to_new_event()],
        )
        .await;
    let second = store
        .append(
            &stream,
            ExpectedVersion::Exact(b.version),
            vec![withdraw(8_000, "b").to_new_event()],
        )
        .await;
    let refused = match &second {
        Err(err @ StoreError::WrongExpectedVersion { .. }) => err.to_string(),
        other => format!("{other:?}"),
    };
    out.table(
        &["teller", "expects", "answer"],
        &[
            vec![
                "A".into(),
                a.version.to_string(),
                first.as_ref().map_or_else(ToString::to_string, |x| {
                    format!("appended at {}", x.last_version)
                }),
            ],
            vec!["B".into(), b.version.to_string(), refused.clone()],
        ],
    );
    out.say("B re-reads the stream and decides again, against the balance A left:");
    let again = command(&store, "acme", withdraw(8_000, "b")).await;
    out.say(&format!(
        "  B's second decision: {}",
        again
            .as_ref()
            .map_or_else(String::clone, |v| format!("appended at {v}"))
    ));
    let now = load_aggregate::<_, Account>(store.as_ref(), &stream, &upcaster()).await?;
    out.check(
        "of two appends expecting the same version, exactly one wins",
        first.is_ok() && matches!(second, Err(StoreError::WrongExpectedVersion { .. })),
        refused,
    );
    out.check(
        "re-deciding after the conflict refuses the overdraft: the money is spent once",
        again.is_err() && now.aggregate.balance_cents == 2_000,
        format!(
            "balance {} cents at {}",
            now.aggregate.balance_cents, now.version
        ),
    );

    out.section("2. CQRS: the read model rebuilt by replay");
    let ledger = BankLedger::start(store.clone());
    for (account, cents) in [("bob", 5_000), ("carol", 7_000)] {
        command(
            &store,
            account,
            BankEvent::AccountOpened {
                owner: account.into(),
            },
        )
        .await?;
        let deposit = BankEvent::Deposited {
            amount_cents: cents,
            request_id: "seed".into(),
        };
        command(&store, account, deposit).await?;
    }
    for (i, (from, to, cents)) in [
        ("bob", "carol", 1_500),
        ("carol", "acme", 400),
        ("acme", "bob", 900),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("t{i}");
        let sent = BankEvent::TransferSent {
            to: to.into(),
            amount_cents: cents,
            request_id: id.clone(),
        };
        command(&store, from, sent).await?;
        let received = BankEvent::TransferReceived {
            from: from.into(),
            amount_cents: cents,
            request_id: id,
        };
        command(&store, to, received).await?;
    }
    let head = store.head().await?;
    ledger
        .read_side()
        .wait_for(head, Duration::from_secs(10))
        .await;
    let live: Balances = ledger.read_side().read(|m| m.balances.clone());
    out.say(&format!(
        "The ledger's balance projection followed {head} events as they were appended."
    ));
    out.say("Throw it away and start a fresh ledger on the same store: it replays the log.");
    let rebuilt_ledger = BankLedger::start(store.clone());
    let caught_up = rebuilt_ledger
        .read_side()
        .wait_for(head, Duration::from_secs(10))
        .await;
    let rebuilt: Balances = rebuilt_ledger.read_side().read(|m| m.balances.clone());
    out.table(
        &["account", "live", "rebuilt"],
        &live
            .accounts
            .iter()
            .map(|(name, row)| {
                let again = rebuilt.accounts.get(name).map_or(0, |r| r.balance_cents);
                vec![
                    name.clone(),
                    row.balance_cents.to_string(),
                    again.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    out.check(
        "a read model rebuilt from scratch by replay equals the live one",
        caught_up && rebuilt == live,
        format!(
            "{} accounts, {} cents in total",
            rebuilt.accounts.len(),
            rebuilt.total_cents()
        ),
    );
    out.say("Delivery is at least once: a projector that resumes from a stale position sees");
    out.say("events again. Redeliver the whole log to a fold that tracks its position, and");
    out.say("to one that does not:");
    let everything = store.read_all(Position::START, MAX_READ_EVENTS).await?;
    let mut careful = ReadModels::default();
    let mut naive = Balances::default();
    for event in everything.iter().chain(everything.iter()) {
        careful.apply(&upcaster(), event.clone())?;
        BalanceProjection.apply(&mut naive, &upcaster().upcast(event.clone())?)?;
    }
    out.check(
        "skipping positions already applied makes redelivery harmless",
        careful.balances == live,
        format!(
            "{} cents after the log twice",
            careful.balances.total_cents()
        ),
    );
    out.check(
        "the naive fold counts every redelivered deposit twice",
        naive.total_cents() == 2 * live.total_cents(),
        format!(
            "{} cents instead of {}",
            naive.total_cents(),
            live.total_cents()
        ),
    );

    out.section("3. Event versioning: an upcast");
    out.say("The first release wrote Deposited in whole units: {\"amount\": 12}, schema 1.");
    out.say("Events are never rewritten; the reader upcasts schema 1 to 2 (cents) on the way out.");
    let legacy = StreamName::new("account-legacy")?;
    let old = vec![
        BankEvent::AccountOpened {
            owner: "Old Bank".into(),
        }
        .to_new_event(),
        NewEvent {
            event_type: "Deposited".into(),
            schema_version: 1,
            payload: br#"{"amount":12}"#.to_vec(),
        },
    ];
    store
        .append(&legacy, ExpectedVersion::Exact(Version::NONE), old)
        .await?;
    let stored = store.read_stream(&legacy, Version(1), 1).await?;
    let raw = stored.first().ok_or("the stored deposit")?;
    let upcast = upcaster().upcast(raw.clone())?;
    out.table(
        &["", "schema", "payload"],
        &[
            vec![
                "stored".into(),
                raw.schema_version.to_string(),
                String::from_utf8_lossy(&raw.payload).into_owned(),
            ],
            vec![
                "read".into(),
                upcast.schema_version.to_string(),
                String::from_utf8_lossy(&upcast.payload).into_owned(),
            ],
        ],
    );
    let head = store.head().await?;
    ledger
        .read_side()
        .wait_for(head, Duration::from_secs(10))
        .await;
    let balance = ledger
        .read_side()
        .read(|m| m.balances.accounts.get("legacy").map(|r| r.balance_cents));
    out.check(
        "the old event reads as 1200 cents, and the store still holds schema 1",
        balance == Some(1_200) && raw.schema_version == 1,
        format!("legacy balance {balance:?}"),
    );
    Ok(())
}
