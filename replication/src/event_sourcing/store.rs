//! The `EventStore` trait every backend implements, the subscription
//! handle, and the checks every backend applies the same way.

use std::future::Future;

use tokio::sync::mpsc;

use super::types::check_event_type;
use super::{
    Appended, ExpectedVersion, MAX_APPEND_BYTES, MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES,
    MAX_READ_EVENTS, MAX_SNAPSHOT_BYTES, NewEvent, Position, RecordedEvent, Result,
    SUBSCRIPTION_BUFFER, Snapshot, StoreError, StreamName, Version,
};

/// An append-only store of event streams with one global order.
///
/// Generic rather than object-safe (`impl Future` returns, so backends
/// write plain `async fn`s); share one between tasks behind an `Arc`.
///
/// The contract, checked by `suite` for every backend:
/// - `append` is atomic (all events or none) and conditional
///   ([`ExpectedVersion`]); bad input is refused with a precise
///   [`StoreError`] before anything is written ([`validate_append`]).
/// - a stream's versions are dense (1, 2, 3…) with no duplicates;
///   global positions are increasing, not necessarily contiguous, and
///   agree with each stream's order.
/// - every acknowledged append is visible to every later read.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` if `expected` holds, atomically.
    ///
    /// An error other than [`StoreError::Unavailable`] or
    /// [`StoreError::Storage`] means nothing was appended. Those two mean
    /// the outcome is unknown: the request may have been applied (a
    /// failed `fsync` can still have put the record on disk, and a reopen
    /// then shows it). Retry with the same expected version: if the first
    /// try landed, the retry gets [`StoreError::WrongExpectedVersion`] and
    /// a re-read shows the events.
    fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended>> + Send;

    /// Up to `max` (at most [`MAX_READ_EVENTS`]) events of `stream` with
    /// versions after `after`, in order. [`StoreError::StreamNotFound`]
    /// if the stream has no events; [`StoreError::VersionAhead`] if
    /// `after` is past its version.
    fn read_stream(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// Up to `max` (at most [`MAX_READ_EVENTS`]) events of all streams
    /// with positions after `after`, in global order. A position past the
    /// end reads nothing (it is where a subscriber waits).
    fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// The stream's version: [`Version::NONE`] if it does not exist.
    fn stream_version(&self, stream: &StreamName) -> impl Future<Output = Result<Version>> + Send;

    /// The position of the last event ([`Position::START`] when empty).
    fn head(&self) -> impl Future<Output = Result<Position>> + Send;

    /// Every event after `after`, in global order: first those already
    /// stored, then each new one as it is appended. Backpressure, not
    /// loss: the backend waits while the subscriber's buffer
    /// ([`SUBSCRIPTION_BUFFER`]) is full.
    fn subscribe(&self, after: Position) -> impl Future<Output = Result<Subscription>> + Send;

    /// Stores `snapshot` as the stream's latest. The stream must exist
    /// and `snapshot.version` must not be past its version.
    fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The latest snapshot saved for `stream`, if any.
    fn load_snapshot(
        &self,
        stream: &StreamName,
    ) -> impl Future<Output = Result<Option<Snapshot>>> + Send;
}

/// A live feed of events in global order; ends (`None`) when the backend
/// goes away, and yields an error once before ending if the backend fails.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<RecordedEvent>>,
}

/// The backend's end of a [`Subscription`].
pub type SubscriptionSender = mpsc::Sender<Result<RecordedEvent>>;

impl Subscription {
    /// A subscription and the sender a backend feeds it through, bounded
    /// at [`SUBSCRIPTION_BUFFER`] events. Dropping the subscription closes
    /// the sender, which tells the backend to stop.
    pub fn channel() -> (SubscriptionSender, Subscription) {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        (tx, Subscription { rx })
    }

    /// The next event, waiting for one to be appended if need be.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent>> {
        self.rx.recv().await
    }

    /// Whether no event is buffered right now (the next `next` would
    /// wait): a consumer's cue to flush what it batched.
    pub fn is_idle(&self) -> bool {
        self.rx.is_empty()
    }

    /// Events buffered and not yet taken: at most [`SUBSCRIPTION_BUFFER`].
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }
}

/// The checks on an append's events that need no state: count, sizes,
/// types, schema versions, JSON payloads. Backends call it first, so bad
/// input is refused identically everywhere and nothing is appended.
pub fn validate_append(events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::TooManyEvents {
            count: events.len(),
            max: MAX_EVENTS_PER_APPEND,
        });
    }
    let mut total = 0usize;
    for (index, event) in events.iter().enumerate() {
        check_event_type(index, &event.event_type)?;
        if event.schema_version == 0 {
            return Err(StoreError::MalformedEvent {
                index,
                reason: "schema versions start at 1".into(),
            });
        }
        if event.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StoreError::PayloadTooLarge {
                index,
                bytes: event.payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        // Pitfall: storing opaque bytes unchecked lets one bad writer
        // poison every projection that replays the stream, forever —
        // events are never rewritten. Refuse non-JSON at the door.
        if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&event.payload) {
            return Err(StoreError::MalformedEvent {
                index,
                reason: format!("the payload is not JSON: {err}"),
            });
        }
        total += event.payload.len();
    }
    if total > MAX_APPEND_BYTES {
        return Err(StoreError::BatchTooLarge {
            bytes: total,
            max: MAX_APPEND_BYTES,
        });
    }
    Ok(())
}

/// Decides an append's concurrency check against the stream's `current`
/// version — the one rule every backend must apply the same way.
pub fn check_expected_version(
    stream: &StreamName,
    expected: ExpectedVersion,
    current: Version,
) -> Result<()> {
    let ExpectedVersion::Exact(expected) = expected else {
        return Ok(());
    };
    if expected == current {
        Ok(())
    } else if current == Version::NONE {
        Err(StoreError::StreamNotFound {
            stream: stream.clone(),
        })
    } else if expected > current {
        Err(StoreError::VersionAhead {
            stream: stream.clone(),
            requested: expected,
            current,
        })
    } else {
        Err(StoreError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: current,
        })
    }
}

/// Checks a `read_stream(stream, after, …)` against the stream's
/// `current` version.
pub fn check_read_after(stream: &StreamName, after: Version, current: Version) -> Result<()> {
    if current == Version::NONE {
        Err(StoreError::StreamNotFound {
            stream: stream.clone(),
        })
    } else if after > current {
        Err(StoreError::VersionAhead {
            stream: stream.clone(),
            requested: after,
            current,
        })
    } else {
        Ok(())
    }
}

/// Checks a snapshot of a stream at `current` before a backend saves it.
pub fn check_snapshot(stream: &StreamName, snapshot: &Snapshot, current: Version) -> Result<()> {
    if snapshot.state.len() > MAX_SNAPSHOT_BYTES {
        return Err(StoreError::SnapshotTooLarge {
            bytes: snapshot.state.len(),
            max: MAX_SNAPSHOT_BYTES,
        });
    }
    check_read_after(stream, snapshot.version, current)
}

/// A read's `max` clamped to [`MAX_READ_EVENTS`]; zero is refused.
pub fn read_limit(max: usize) -> Result<usize> {
    if max == 0 {
        return Err(StoreError::ZeroReadLimit);
    }
    Ok(max.min(MAX_READ_EVENTS))
}
