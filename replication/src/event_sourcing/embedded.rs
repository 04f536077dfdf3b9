//! The embedded backend: an [`EventStore`] on one
//! [`DurableLog`](crate::log::DurableLog), with every event indexed in
//! memory.
//!
//! Each append is one log record, written and `fsync`ed before the call
//! returns, so an acknowledged append survives any crash, and a crash
//! mid-append leaves all of the batch or none of it (the log cuts a torn
//! tail). Appends and snapshots go to one writer thread (writer.rs), which
//! commits every request waiting with one `fsync` (group commit), so no
//! async worker ever blocks on the disk, and readers take the index lock
//! only while copying. An event is visible only after its `fsync`.
//! Opening replays the log to rebuild the index; positions are the
//! events' 1-based places in the log, so they are dense here.
//!
//! Bounds: the store holds at most `max_bytes` ([`DEFAULT_MAX_STORE_BYTES`],
//! [`EmbeddedStore::with_max_bytes`]) of events and snapshots, counting
//! superseded snapshots until the log is compacted (compact.rs) — so the
//! bound covers the log on disk and what reopening reads, not only memory.
//!
//! Simplified: all events stay in memory, and compaction drops only old
//! snapshots; once full of events, the store refuses writes. EventStoreDB and Marten page
//! events from disk and archive old chunks.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{mpsc, oneshot, watch};

use super::codec::Record;
use super::writer::{WRITE_QUEUE, Write, Writer};
use super::{
    Appended, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, Result, Snapshot,
    StoreError, StreamName, Subscription, SubscriptionSender, Version, check_read_after,
    read_limit, validate_append,
};
use crate::log::{DurableLog, LogDisk};

/// The default bound on what the store holds.
pub const DEFAULT_MAX_STORE_BYTES: usize = 256 * 1024 * 1024;

/// Bytes charged per event beyond its payload and type (version,
/// position, the index entry), so a flood of empty events is bounded too.
const EVENT_OVERHEAD_BYTES: usize = 64;

/// Events a subscription reads per round while catching up.
const CATCH_UP_BATCH: usize = 256;

/// The embedded event store. Cheap to clone; clones share the store. The
/// writer thread ends once every clone is dropped.
pub struct EmbeddedStore<D> {
    shared: Arc<Shared>,
    writes: mpsc::Sender<Write>,
    /// The disk lives on the writer thread.
    disk: PhantomData<fn() -> D>,
}

impl<D> Clone for EmbeddedStore<D> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            writes: self.writes.clone(),
            disk: PhantomData,
        }
    }
}

impl<D> std::fmt::Debug for EmbeddedStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

pub(super) struct Shared {
    index: Mutex<Index>,
    /// The head position, for subscribers waiting for new events.
    pub(super) head: watch::Sender<Position>,
}

/// Everything on disk, indexed; changed only by the writer, after a sync.
pub(super) struct Index {
    /// Every event in global order: position p is `events[p - 1]`.
    pub(super) events: Vec<RecordedEvent>,
    /// Each stream's events, as indexes into `events`, in version order.
    streams: BTreeMap<StreamName, Vec<usize>>,
    pub(super) snapshots: BTreeMap<StreamName, Snapshot>,
    /// What the log holds, as charged against `max_bytes`.
    pub(super) bytes: usize,
    /// Of `bytes`, the snapshots a later one replaced (compact.rs).
    pub(super) superseded: usize,
}

impl<D: LogDisk + Send + 'static> EmbeddedStore<D> {
    /// Opens the store on `disk`, replaying its log; bounded at
    /// [`DEFAULT_MAX_STORE_BYTES`].
    pub fn open(disk: D) -> Result<Self> {
        Self::with_max_bytes(disk, DEFAULT_MAX_STORE_BYTES)
    }

    /// Opens the store, refusing appends and snapshots that would grow it
    /// past `max_bytes` ([`StoreError::StoreFull`]).
    pub fn with_max_bytes(disk: D, max_bytes: usize) -> Result<Self> {
        let (log, recovered) = DurableLog::open(disk)?;
        if recovered.discarded_bytes > 0 {
            tracing::warn!(
                bytes = recovered.discarded_bytes,
                "event store: cut off a torn append that was never acknowledged"
            );
        }
        let mut index = Index {
            events: Vec::new(),
            streams: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            bytes: 0,
            superseded: 0,
        };
        for bytes in &recovered.records {
            // Replay does not re-check the bound: what was acknowledged
            // stays readable even if the bound was lowered since.
            index.apply(Record::decode(bytes)?)?;
        }
        let head = index.head();
        let shared = Arc::new(Shared {
            index: Mutex::new(index),
            head: watch::channel(head).0,
        });
        let (writes, requests) = mpsc::channel(WRITE_QUEUE);
        let writer = Writer {
            log,
            shared: Arc::clone(&shared),
            max_bytes,
            failed: None,
        };
        std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || writer.run(requests))
            .map_err(|err| StoreError::Storage {
                reason: format!("cannot start the writer thread: {err}"),
            })?;
        Ok(Self {
            shared,
            writes,
            disk: PhantomData,
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.shared)
    }

    /// Hands `request` to the writer and waits for its outcome.
    async fn write<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> Write,
    ) -> Result<T> {
        let (reply, outcome) = oneshot::channel();
        let gone = || StoreError::Storage {
            reason: "the writer thread stopped".into(),
        };
        // Backpressure: waits while WRITE_QUEUE requests are queued.
        self.writes.send(request(reply)).await.map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }

    /// Requests waiting for the writer (for tests of group commit).
    #[cfg(test)]
    pub(super) fn queued_writes(&self) -> usize {
        self.writes.max_capacity() - self.writes.capacity()
    }
}

pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Index> {
    shared.index.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Index {
    pub(super) fn head(&self) -> Position {
        Position(self.events.len() as u64)
    }

    pub(super) fn version(&self, stream: &StreamName) -> Version {
        Version(
            self.streams
                .get(stream)
                .map_or(0, |events| events.len() as u64),
        )
    }

    /// Applies a record that is on disk.
    pub(super) fn apply(&mut self, record: Record) -> Result<()> {
        match record {
            Record::Append {
                stream,
                first_version,
                events,
            } => {
                if first_version != self.version(&stream).next() {
                    return Err(StoreError::Storage {
                        reason: format!(
                            "log record appends {stream} at {first_version} out of order"
                        ),
                    });
                }
                let indexes = self.streams.entry(stream.clone()).or_default();
                for (offset, event) in events.into_iter().enumerate() {
                    self.bytes += event_bytes(&event);
                    indexes.push(self.events.len());
                    self.events.push(RecordedEvent {
                        stream: stream.clone(),
                        version: Version(first_version.0 + offset as u64),
                        position: Position(self.events.len() as u64 + 1),
                        event_type: event.event_type,
                        schema_version: event.schema_version,
                        payload: event.payload,
                    });
                }
                self.bytes += stream.as_str().len();
            }
            Record::Snapshot { stream, snapshot } => {
                // The superseded snapshot stays in the log, charged, until
                // the log is compacted.
                if let Some(old) = self.snapshots.get(&stream) {
                    self.superseded += old.state.len();
                }
                self.bytes += snapshot.state.len();
                self.snapshots.insert(stream, snapshot);
            }
        }
        Ok(())
    }

    fn read_all(&self, after: Position, max: usize) -> Vec<RecordedEvent> {
        let start = usize::try_from(after.0).unwrap_or(usize::MAX);
        self.events.iter().skip(start).take(max).cloned().collect()
    }
}

pub(super) fn event_bytes(event: &NewEvent) -> usize {
    event.payload.len() + event.event_type.len() + EVENT_OVERHEAD_BYTES
}

impl<D: LogDisk + Send + 'static> EventStore for EmbeddedStore<D> {
    /// Decided and written by the writer thread; returns after the
    /// `fsync`. A [`StoreError::Storage`] from a failed write or `fsync`
    /// means the outcome is unknown — the events may be on disk and
    /// appear after a reopen — and the store refuses writes until it is
    /// reopened.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended> {
        validate_append(&events)?;
        let stream = stream.clone();
        self.write(|reply| Write::Append {
            stream,
            expected,
            events,
            reply,
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let max = read_limit(max)?;
        let index = self.index();
        check_read_after(stream, after, index.version(stream))?;
        let indexes = index.streams.get(stream).map_or(&[][..], Vec::as_slice);
        let start = usize::try_from(after.0).unwrap_or(usize::MAX);
        Ok(indexes
            .iter()
            .skip(start)
            .take(max)
            .map(|&at| index.events[at].clone())
            .collect())
    }

    async fn read_all(&self, after: Position, max: usize) -> Result<Vec<RecordedEvent>> {
        let max = read_limit(max)?;
        Ok(self.index().read_all(after, max))
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version> {
        Ok(self.index().version(stream))
    }

    async fn head(&self) -> Result<Position> {
        Ok(self.index().head())
    }

    async fn subscribe(&self, after: Position) -> Result<Subscription> {
        let (tx, subscription) = Subscription::channel();
        let head = self.shared.head.subscribe();
        tokio::spawn(feed(Arc::downgrade(&self.shared), head, after, tx));
        Ok(subscription)
    }

    async fn save_snapshot(&self, stream: &StreamName, snapshot: Snapshot) -> Result<()> {
        let stream = stream.clone();
        self.write(|reply| Write::Snapshot {
            stream,
            snapshot,
            reply,
        })
        .await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>> {
        Ok(self.index().snapshots.get(stream).cloned())
    }
}

/// A subscription's feeder: catch up in batches, then wait for the head
/// to move. It holds the store weakly, so dropping the store (and with it
/// the writer) ends it, and it stops when the subscriber drops its end.
async fn feed(
    shared: Weak<Shared>,
    mut head: watch::Receiver<Position>,
    mut after: Position,
    tx: SubscriptionSender,
) {
    loop {
        let batch = match shared.upgrade() {
            Some(shared) => lock(&shared).read_all(after, CATCH_UP_BATCH),
            None => return,
        };
        if batch.is_empty() {
            // The receiver remembers the last head it saw, so an append
            // between the read above and this wait still wakes us.
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            continue;
        }
        for event in batch {
            after = event.position;
            // Backpressure: `send` waits while the buffer is full.
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    }
}
