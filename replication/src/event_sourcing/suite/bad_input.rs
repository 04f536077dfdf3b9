//! Bad input: every request a client can get wrong is refused with its
//! precise error, and nothing is appended.

use std::sync::Arc;

use serde_json::json;

use super::{Outcome, ensure, event, step, stream};
use crate::event_sourcing::{
    EventStore, ExpectedVersion, MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES,
    MAX_SNAPSHOT_BYTES, MAX_STREAM_NAME_BYTES, NewEvent, Position, Result, Snapshot, StoreError,
    StreamName, Version,
};

/// A JSON string payload of exactly `bytes` bytes.
fn payload_of(bytes: usize) -> Vec<u8> {
    let mut payload = vec![b'"'];
    payload.resize(bytes.saturating_sub(1), b'x');
    payload.push(b'"');
    payload
}

fn raw(event_type: &str, schema_version: u32, payload: &[u8]) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        schema_version,
        payload: payload.to_vec(),
    }
}

/// Unknown streams, versions from the future, malformed events, oversized
/// batches and snapshots, bad names and a zero read limit: each gets its
/// own typed error, and afterwards the store's head and the stream's
/// version are what they were.
pub async fn bad_input_is_refused_and_nothing_appended<S: EventStore>(store: Arc<S>) -> Outcome {
    const CASE: &str = "bad_input_is_refused_and_nothing_appended";
    let name = stream(CASE, "account-9")?;
    let seed = (0..2).map(|i| event("Opened", json!({ "i": i }))).collect();
    step(
        CASE,
        "appending",
        store.append(&name, ExpectedVersion::Any, seed).await,
    )?;
    let head = step(CASE, "reading the head", store.head().await)?;
    let unknown = stream(CASE, "account-404")?;
    let good = || event("Deposited", json!({ "amount": 5 }));

    // Names are checked when they are built, so no backend ever sees one.
    let long = "n".repeat(MAX_STREAM_NAME_BYTES + 1);
    for bad in ["", long.as_str(), "a/b", "tab\there", "ü"] {
        let refused = StreamName::new(bad);
        ensure(
            CASE,
            matches!(refused, Err(StoreError::InvalidStreamName { .. })),
            || format!("stream name {bad:?} gave {refused:?}"),
        )?;
    }

    let too_many = (0..=MAX_EVENTS_PER_APPEND)
        .map(|_| good())
        .collect::<Vec<_>>();
    let per_event = MAX_APPEND_BYTES / MAX_EVENTS_PER_APPEND * 2;
    let too_heavy = (0..MAX_EVENTS_PER_APPEND)
        .map(|_| raw("Deposited", 1, &payload_of(per_event)))
        .collect::<Vec<_>>();
    let malformed_in_middle = vec![good(), raw("Deposited", 1, b"{not json"), good()];
    type Expect = fn(&StoreError) -> bool;
    let appends: Vec<(&str, &StreamName, ExpectedVersion, Vec<NewEvent>, Expect)> = vec![
        ("no events", &name, ExpectedVersion::Any, vec![], |e| {
            matches!(e, StoreError::EmptyAppend)
        }),
        (
            "one event too many",
            &name,
            ExpectedVersion::Any,
            too_many,
            |e| {
                matches!(e, StoreError::TooManyEvents { count, max }
                if *count == MAX_EVENTS_PER_APPEND + 1 && *max == MAX_EVENTS_PER_APPEND)
            },
        ),
        (
            "an oversized payload",
            &name,
            ExpectedVersion::Any,
            vec![
                good(),
                raw("Deposited", 1, &payload_of(MAX_PAYLOAD_BYTES + 1)),
            ],
            |e| {
                matches!(e, StoreError::PayloadTooLarge { index: 1, bytes, .. }
                if *bytes == MAX_PAYLOAD_BYTES + 1)
            },
        ),
        (
            "an oversized batch",
            &name,
            ExpectedVersion::Any,
            too_heavy,
            |e| matches!(e, StoreError::BatchTooLarge { max, .. } if *max == MAX_APPEND_BYTES),
        ),
        (
            "a payload that is not JSON",
            &name,
            ExpectedVersion::Any,
            malformed_in_middle,
            |e| matches!(e, StoreError::MalformedEvent { index: 1, .. }),
        ),
        (
            "an empty event type",
            &name,
            ExpectedVersion::Any,
            vec![raw("", 1, b"{}")],
            |e| matches!(e, StoreError::MalformedEvent { index: 0, .. }),
        ),
        (
            "an event type with a slash",
            &name,
            ExpectedVersion::Any,
            vec![raw("Deposited/v2", 1, b"{}")],
            |e| matches!(e, StoreError::MalformedEvent { index: 0, .. }),
        ),
        (
            "schema version 0",
            &name,
            ExpectedVersion::Any,
            vec![raw("Deposited", 0, b"{}")],
            |e| matches!(e, StoreError::MalformedEvent { index: 0, .. }),
        ),
        (
            "a version from the future",
            &name,
            ExpectedVersion::Exact(Version(7)),
            vec![good()],
            |e| {
                matches!(e, StoreError::VersionAhead { requested, current, .. }
                if *requested == Version(7) && *current == Version(2))
            },
        ),
        (
            "an unknown stream at v3",
            &unknown,
            ExpectedVersion::Exact(Version(3)),
            vec![good()],
            |e| matches!(e, StoreError::StreamNotFound { .. }),
        ),
    ];
    for (what, target, expected, events, is_right) in appends {
        let refused = store.append(target, expected, events).await;
        let held = refused.as_ref().err().is_some_and(is_right);
        ensure(CASE, held, || format!("appending {what} gave {refused:?}"))?;
        unchanged(CASE, store.as_ref(), &name, &unknown, head).await?;
    }

    let reads: Vec<(
        &str,
        Result<Vec<crate::event_sourcing::RecordedEvent>>,
        Expect,
    )> = vec![
        (
            "an unknown stream",
            store.read_stream(&unknown, Version::NONE, 10).await,
            |e| matches!(e, StoreError::StreamNotFound { .. }),
        ),
        (
            "after a future version",
            store.read_stream(&name, Version(3), 10).await,
            |e| matches!(e, StoreError::VersionAhead { requested, .. } if *requested == Version(3)),
        ),
        (
            "zero events of a stream",
            store.read_stream(&name, Version::NONE, 0).await,
            |e| matches!(e, StoreError::ZeroReadLimit),
        ),
        (
            "zero events of the log",
            store.read_all(Position::START, 0).await,
            |e| matches!(e, StoreError::ZeroReadLimit),
        ),
    ];
    for (what, refused, is_right) in reads {
        let held = refused.as_ref().err().is_some_and(is_right);
        ensure(CASE, held, || format!("reading {what} gave {refused:?}"))?;
    }

    let snapshot = |version, bytes| Snapshot {
        version: Version(version),
        schema_version: 1,
        state: payload_of(bytes),
    };
    let snapshots: Vec<(&str, &StreamName, Snapshot, Expect)> = vec![
        ("of an unknown stream", &unknown, snapshot(0, 8), |e| {
            matches!(e, StoreError::StreamNotFound { .. })
        }),
        (
            "at a future version",
            &name,
            snapshot(5, 8),
            |e| matches!(e, StoreError::VersionAhead { requested, .. } if *requested == Version(5)),
        ),
        (
            "too large",
            &name,
            snapshot(2, MAX_SNAPSHOT_BYTES + 1),
            |e| matches!(e, StoreError::SnapshotTooLarge { .. }),
        ),
    ];
    for (what, target, snapshot, is_right) in snapshots {
        let refused = store.save_snapshot(target, snapshot).await;
        let held = refused.as_ref().err().is_some_and(is_right);
        ensure(CASE, held, || {
            format!("saving a snapshot {what} gave {refused:?}")
        })?;
    }
    let kept = step(CASE, "loading a snapshot", store.load_snapshot(&name).await)?;
    ensure(CASE, kept.is_none(), || {
        format!("a refused snapshot was stored: {kept:?}")
    })
}

/// The store still holds exactly what it held before a refused request.
async fn unchanged<S: EventStore>(
    case: &'static str,
    store: &S,
    name: &StreamName,
    unknown: &StreamName,
    head: Position,
) -> Outcome {
    let now = step(case, "reading the head", store.head().await)?;
    let version = step(case, "reading a version", store.stream_version(name).await)?;
    let ghost = step(
        case,
        "reading a version",
        store.stream_version(unknown).await,
    )?;
    ensure(
        case,
        now == head && version == Version(2) && ghost == Version::NONE,
        || {
            format!(
                "a refused append wrote: head {head} -> {now}, {name} at {version}, {unknown} at {ghost}"
            )
        },
    )
}
