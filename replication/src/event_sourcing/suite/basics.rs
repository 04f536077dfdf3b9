//! The single-writer cases: what an append writes, how reads page, the
//! expected-version rules, snapshots and subscriptions.

use std::sync::Arc;

use serde_json::json;

use super::{Outcome, check_global_order, ensure, event, read_everything, step, stream};
use crate::event_sourcing::{EventStore, ExpectedVersion, Position, Snapshot, StoreError, Version};

/// Appends to two interleaved streams and reads them back: versions are
/// dense per stream, positions increase across streams, `Appended`
/// describes what was written, and paged reads see every event once.
pub async fn append_and_read_back<S: EventStore>(store: Arc<S>) -> Outcome {
    const CASE: &str = "append_and_read_back";
    let account = stream(CASE, "account-1")?;
    let audit = stream(CASE, "audit")?;
    let plan: [(&_, usize); 4] = [(&account, 3), (&audit, 2), (&account, 1), (&audit, 4)];
    let mut written = Vec::new();
    for (round, &(target, count)) in plan.iter().enumerate() {
        let events = (0..count)
            .map(|i| event("Noted", json!({ "round": round, "i": i })))
            .collect::<Vec<_>>();
        let before = step(
            CASE,
            "reading a version",
            store.stream_version(target).await,
        )?;
        let appended = step(
            CASE,
            "appending",
            store
                .append(target, ExpectedVersion::Any, events.clone())
                .await,
        )?;
        ensure(
            CASE,
            appended.first_version == before.next()
                && appended.last_version == Version(before.0 + count as u64)
                && appended.first_position <= appended.last_position,
            || format!("append of {count} to {target} at {before} reported {appended:?}"),
        )?;
        written.push((target, appended, events));
    }

    let log = read_everything(CASE, store.as_ref(), 3).await?;
    ensure(CASE, log.len() == 10, || {
        format!(
            "the global log holds {} events, 10 were appended",
            log.len()
        )
    })?;
    check_global_order(CASE, &log)?;
    let head = step(CASE, "reading the head", store.head().await)?;
    ensure(CASE, log.last().map(|e| e.position) == Some(head), || {
        format!(
            "head is {head}, the last event is at {:?}",
            log.last().map(|e| e.position)
        )
    })?;

    // Each append's events are where `Appended` says, with their content.
    for (target, appended, events) in &written {
        let read = step(
            CASE,
            "reading a stream",
            store
                .read_stream(target, Version(appended.first_version.0 - 1), events.len())
                .await,
        )?;
        let matches = read.len() == events.len()
            && read.first().map(|e| e.position) == Some(appended.first_position)
            && read.last().map(|e| e.position) == Some(appended.last_position)
            && read.iter().zip(events).all(|(stored, sent)| {
                stored.stream == **target
                    && stored.event_type == sent.event_type
                    && stored.schema_version == sent.schema_version
                    && stored.payload == sent.payload
            });
        ensure(CASE, matches, || {
            format!("append {appended:?} to {target} reads back as {read:?}")
        })?;
    }

    let whole = step(
        CASE,
        "reading a stream",
        store.read_stream(&account, Version::NONE, 100).await,
    )?;
    let versions: Vec<u64> = whole.iter().map(|e| e.version.0).collect();
    ensure(CASE, versions == [1, 2, 3, 4], || {
        format!("{account} has versions {versions:?}, expected 1..=4")
    })?;
    let tail = step(
        CASE,
        "reading a stream's end",
        store.read_stream(&account, Version(4), 10).await,
    )?;
    ensure(CASE, tail.is_empty(), || {
        format!("reading after the last version gave {tail:?}")
    })?;
    let past = step(
        CASE,
        "reading past the head",
        store.read_all(head, 10).await,
    )?;
    ensure(CASE, past.is_empty(), || {
        format!("reading after the head gave {past:?}")
    })
}

/// The optimistic-concurrency rules, one by one, and that a refused
/// append writes nothing.
pub async fn expected_version_rules<S: EventStore>(store: Arc<S>) -> Outcome {
    const CASE: &str = "expected_version_rules";
    let name = stream(CASE, "order-7")?;
    let one = || vec![event("Placed", json!({}))];
    let created = store
        .append(&name, ExpectedVersion::Exact(Version::NONE), one())
        .await;
    step(CASE, "creating with Exact(NONE)", created)?;
    let again = store
        .append(&name, ExpectedVersion::Exact(Version::NONE), one())
        .await;
    ensure(
        CASE,
        matches!(&again, Err(StoreError::WrongExpectedVersion { expected, actual, .. })
            if *expected == Version::NONE && *actual == Version(1)),
        || format!("creating an existing stream gave {again:?}"),
    )?;
    step(
        CASE,
        "appending at Exact(v1)",
        store
            .append(&name, ExpectedVersion::Exact(Version(1)), one())
            .await,
    )?;
    step(
        CASE,
        "appending with Any",
        store.append(&name, ExpectedVersion::Any, one()).await,
    )?;
    let head = step(CASE, "reading the head", store.head().await)?;
    let stale = store
        .append(&name, ExpectedVersion::Exact(Version(2)), one())
        .await;
    ensure(
        CASE,
        matches!(&stale, Err(StoreError::WrongExpectedVersion { expected, actual, .. })
            if *expected == Version(2) && *actual == Version(3)),
        || format!("a stale expected version gave {stale:?}"),
    )?;
    let version = step(CASE, "reading a version", store.stream_version(&name).await)?;
    let after = step(CASE, "reading the head", store.head().await)?;
    ensure(CASE, version == Version(3) && after == head, || {
        format!("a refused append changed the store: {version}, head {head} -> {after}")
    })?;
    let fresh = stream(CASE, "never-written")?;
    let absent = step(
        CASE,
        "reading a version",
        store.stream_version(&fresh).await,
    )?;
    ensure(CASE, absent == Version::NONE, || {
        format!("a stream never written is at {absent}")
    })
}

/// Snapshots: none at first, the latest saved after, per stream.
pub async fn snapshots_round_trip<S: EventStore>(store: Arc<S>) -> Outcome {
    const CASE: &str = "snapshots_round_trip";
    let name = stream(CASE, "cart-3")?;
    let other = stream(CASE, "cart-4")?;
    for target in [&name, &other] {
        let events = (0..3)
            .map(|i| event("Added", json!({ "item": i })))
            .collect();
        step(
            CASE,
            "appending",
            store.append(target, ExpectedVersion::Any, events).await,
        )?;
    }
    let none = step(CASE, "loading a snapshot", store.load_snapshot(&name).await)?;
    ensure(CASE, none.is_none(), || {
        format!("a fresh stream has snapshot {none:?}")
    })?;
    // Saved in order, each must be the one loaded back.
    for (version, items) in [(2, 2), (3, 3)] {
        let snapshot = Snapshot {
            version: Version(version),
            schema_version: 1,
            state: json!({ "items": items }).to_string().into_bytes(),
        };
        let saved = store.save_snapshot(&name, snapshot.clone()).await;
        step(CASE, "saving a snapshot", saved)?;
        let loaded = step(CASE, "loading a snapshot", store.load_snapshot(&name).await)?;
        ensure(CASE, loaded.as_ref() == Some(&snapshot), || {
            format!("saved {snapshot:?}, loaded {loaded:?}")
        })?;
    }
    let untouched = step(
        CASE,
        "loading a snapshot",
        store.load_snapshot(&other).await,
    )?;
    ensure(CASE, untouched.is_none(), || {
        format!("another stream's snapshot leaked: {untouched:?}")
    })
}

/// A subscription from the start sees the stored events and then the new
/// ones, exactly as the global log holds them; one from a position sees
/// only what follows it.
pub async fn subscription_delivers_in_global_order<S: EventStore + 'static>(
    store: Arc<S>,
) -> Outcome {
    const CASE: &str = "subscription_delivers_in_global_order";
    let names = [stream(CASE, "s-a")?, stream(CASE, "s-b")?];
    for name in &names {
        let events = (0..3).map(|n| event("Ticked", json!({ "n": n }))).collect();
        step(
            CASE,
            "appending",
            store.append(name, ExpectedVersion::Any, events).await,
        )?;
    }
    let middle = step(CASE, "reading the head", store.head().await)?;
    let mut from_start = step(CASE, "subscribing", store.subscribe(Position::START).await)?;
    let mut from_middle = step(CASE, "subscribing", store.subscribe(middle).await)?;
    // New events arrive while the subscribers are live, from another task.
    let writer = {
        let store = Arc::clone(&store);
        let names = names.clone();
        tokio::spawn(async move {
            for n in 0..6 {
                let target = &names[n % 2];
                let events = vec![event("Ticked", json!({ "late": n }))];
                store.append(target, ExpectedVersion::Any, events).await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    let joined = writer.await.map_err(|err| err.to_string());
    step(CASE, "running the writer task", joined)?.map_err(|err| super::SuiteFailure {
        case: CASE,
        detail: format!("a live append failed: {err}"),
    })?;
    let log = read_everything(CASE, store.as_ref(), 100).await?;
    for (subscription, skip) in [(&mut from_start, 0), (&mut from_middle, 6)] {
        let mut seen = Vec::new();
        while seen.len() < log.len() - skip {
            // A liveness guard, not a timing assertion: a backend that
            // stops delivering fails here instead of hanging the suite.
            match tokio::time::timeout(super::PATIENCE, subscription.next()).await {
                Ok(Some(Ok(event))) => seen.push(event),
                other => {
                    return ensure(CASE, false, || {
                        format!(
                            "the subscription ended early with {other:?} after {} events",
                            seen.len()
                        )
                    });
                }
            }
        }
        ensure(CASE, seen == log[skip..], || {
            format!("subscribed after {skip} events, saw {seen:?}, the log holds {log:?}")
        })?;
    }
    Ok(())
}
