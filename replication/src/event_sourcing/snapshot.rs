//! Snapshots: loading an aggregate without replaying its whole stream.
//!
//! An aggregate (an account) is the fold of its stream. A long-lived one
//! has thousands of events, so every command would replay thousands.
//! A snapshot stores the fold at some version; loading starts from it and
//! replays only the events after. The snapshot is a cache, never the
//! truth: [`load_aggregate`] ignores one whose state schema it does not
//! know (the aggregate's shape changed since) and replays from scratch,
//! and the result is the same either way — the test
//! `event_sourcing_snapshot_load_equals_full_replay` checks that.
//!
//! Strategy here: snapshot when a load replayed at least
//! [`SnapshotPolicy::every`] events (a snapshot every N events, taken
//! off the write path's critical section). Real systems also snapshot on
//! a timer or on the aggregate's own milestones (a closed month).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    EventStore, MAX_READ_EVENTS, RecordedEvent, Result, Snapshot, StoreError, StreamName, Upcaster,
    Version,
};

/// A consistency boundary whose state is the fold of one stream.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// The schema of the serialized state. Bump it when the state's shape
    /// changes: snapshots of other schemas are then ignored.
    const SNAPSHOT_SCHEMA: u32;

    /// Applies one of the stream's events (upcast to its newest schema).
    fn apply(&mut self, event: &RecordedEvent) -> Result<()>;
}

/// An aggregate as loaded, with the version a command appends after
/// (`ExpectedVersion::Exact(loaded.version)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: Version,
    /// The version of the snapshot loading started from, if any.
    pub from_snapshot: Option<Version>,
    /// Events replayed on top of it.
    pub replayed: usize,
}

/// Loads `stream`'s aggregate: the latest usable snapshot, then the events
/// after it. A stream that does not exist loads as the default at
/// [`Version::NONE`].
pub async fn load_aggregate<S: EventStore, A: Aggregate>(
    store: &S,
    stream: &StreamName,
    upcaster: &Upcaster,
) -> Result<Loaded<A>> {
    let snapshot = store.load_snapshot(stream).await?;
    let start = snapshot
        .filter(|snapshot| snapshot.schema_version == A::SNAPSHOT_SCHEMA)
        .and_then(|snapshot| {
            // A snapshot that no longer decodes is skipped, not fatal:
            // the events alone can always rebuild the aggregate.
            let aggregate = serde_json::from_slice::<A>(&snapshot.state).ok()?;
            Some((aggregate, snapshot.version))
        });
    let from_snapshot = start.as_ref().map(|(_, version)| *version);
    let (mut aggregate, mut version) = start.unwrap_or_default();
    let mut replayed = 0;
    loop {
        let batch = match store.read_stream(stream, version, MAX_READ_EVENTS).await {
            Ok(batch) => batch,
            Err(StoreError::StreamNotFound { .. }) if version == Version::NONE => Vec::new(),
            Err(err) => return Err(err),
        };
        if batch.is_empty() {
            return Ok(Loaded {
                aggregate,
                version,
                from_snapshot,
                replayed,
            });
        }
        for event in batch {
            version = event.version;
            aggregate.apply(&upcaster.upcast(event)?)?;
            replayed += 1;
        }
    }
}

/// When to snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot once a load replayed at least this many events.
    pub every: usize,
}

impl SnapshotPolicy {
    /// Saves a snapshot of `loaded` if it replayed enough events to be
    /// worth it; whether it did.
    pub async fn maybe_snapshot<S: EventStore, A: Aggregate>(
        &self,
        store: &S,
        stream: &StreamName,
        loaded: &Loaded<A>,
    ) -> Result<bool> {
        if loaded.replayed < self.every.max(1) {
            return Ok(false);
        }
        let state = serde_json::to_vec(&loaded.aggregate).map_err(|err| StoreError::Storage {
            reason: format!("the aggregate does not serialize: {err}"),
        })?;
        let snapshot = Snapshot {
            version: loaded.version,
            schema_version: A::SNAPSHOT_SCHEMA,
            state,
        };
        store.save_snapshot(stream, snapshot).await?;
        Ok(true)
    }
}
