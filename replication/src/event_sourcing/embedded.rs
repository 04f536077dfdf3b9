//! The embedded backend: an [`EventStore`] on one
//! [`DurableLog`](crate::log::DurableLog), with every event indexed in
//! memory.
//!
//! Each append is one log record, written and `fsync`ed before the call
//! returns, so an acknowledged append survives any crash, and a crash
//! mid-append leaves all of the batch or none of it (the log cuts a torn
//! tail). Opening replays the log to rebuild the index; positions are the
//! events' 1-based places in the log, so they are dense here.
//!
//! Simplified: all events stay in memory (bounded by
//! [`EmbeddedStore::with_max_bytes`]), and the log is never compacted.
//! EventStoreDB and Marten page events from disk and archive old chunks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::watch;

use super::codec::Record;
use super::{
    Appended, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, Result, Snapshot,
    StoreError, StreamName, Subscription, SubscriptionSender, Version, check_expected_version,
    check_read_after, check_snapshot, read_limit, validate_append,
};
use crate::log::{DurableLog, LogDisk};

/// The default bound on what the store holds in memory.
pub const DEFAULT_MAX_STORE_BYTES: usize = 256 * 1024 * 1024;

/// Bytes charged per event beyond its payload and type (version,
/// position, the index entry), so a flood of empty events is bounded too.
const EVENT_OVERHEAD_BYTES: usize = 64;

/// Events a subscription reads per round while catching up.
const CATCH_UP_BATCH: usize = 256;

/// The embedded event store. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct EmbeddedStore<D> {
    shared: Arc<Shared<D>>,
}

impl<D> std::fmt::Debug for EmbeddedStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

struct Shared<D> {
    state: Mutex<State<D>>,
    /// The head position, for subscribers waiting for new events.
    head: watch::Sender<Position>,
}

struct State<D> {
    log: DurableLog<D>,
    /// Every event in global order: position p is `events[p - 1]`.
    events: Vec<RecordedEvent>,
    /// Each stream's events, as indexes into `events`, in version order.
    streams: BTreeMap<StreamName, Vec<usize>>,
    snapshots: BTreeMap<StreamName, Snapshot>,
    bytes: usize,
    max_bytes: usize,
    /// Set when a write to the log failed: refuse further writes.
    failed: Option<String>,
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
        let mut state = State {
            log,
            events: Vec::new(),
            streams: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            bytes: 0,
            max_bytes,
            failed: None,
        };
        for bytes in &recovered.records {
            // Replay does not re-check the bound: what was acknowledged
            // stays readable even if the bound was lowered since.
            state.apply(Record::decode(bytes)?)?;
        }
        let head = state.head();
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                head: watch::channel(head).0,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State<D>> {
        lock(&self.shared)
    }
}

fn lock<D>(shared: &Shared<D>) -> MutexGuard<'_, State<D>> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<D: LogDisk> State<D> {
    fn head(&self) -> Position {
        Position(self.events.len() as u64)
    }

    fn version(&self, stream: &StreamName) -> Version {
        Version(
            self.streams
                .get(stream)
                .map_or(0, |events| events.len() as u64),
        )
    }

    fn writable(&self) -> Result<()> {
        match &self.failed {
            // Pitfall: after a failed write or fsync, the file may hold
            // half a record, and the kernel may have dropped the dirty
            // pages (PostgreSQL's "fsyncgate"). Appending after it would
            // bury the damage under good records, which the next open
            // refuses as corruption. Stop writing; reopening recovers.
            Some(reason) => Err(StoreError::Storage {
                reason: format!("a write failed earlier ({reason}); reopen the store"),
            }),
            None => Ok(()),
        }
    }

    fn charge(&self, bytes: usize) -> Result<()> {
        if self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(StoreError::StoreFull {
                what: format!("it holds {} of its {} bytes", self.bytes, self.max_bytes),
            });
        }
        Ok(())
    }

    /// Writes `record` to the log, durably, then applies it.
    fn commit(&mut self, record: Record) -> Result<()> {
        if let Err(err) = self.log.append(&record.encode()) {
            self.failed = Some(err.to_string());
            return Err(err.into());
        }
        self.apply(record)
    }

    /// Applies a record that is on disk to the in-memory index.
    fn apply(&mut self, record: Record) -> Result<()> {
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
                let old = self.snapshots.get(&stream).map_or(0, |s| s.state.len());
                self.bytes = self.bytes.saturating_sub(old) + snapshot.state.len();
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

fn event_bytes(event: &NewEvent) -> usize {
    event.payload.len() + event.event_type.len() + EVENT_OVERHEAD_BYTES
}

impl<D: LogDisk + Send + 'static> EventStore for EmbeddedStore<D> {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended> {
        validate_append(&events)?;
        let count = events.len() as u64;
        let appended = {
            let mut state = self.state();
            state.writable()?;
            // The check and the write happen under one lock: this is the
            // compare-and-set that makes exactly one concurrent appender
            // win each version.
            let current = state.version(stream);
            check_expected_version(stream, expected, current)?;
            state.charge(events.iter().map(event_bytes).sum::<usize>() + stream.as_str().len())?;
            let first_position = Position(state.head().0 + 1);
            state.commit(Record::Append {
                stream: stream.clone(),
                first_version: current.next(),
                events,
            })?;
            Appended {
                first_version: current.next(),
                last_version: Version(current.0 + count),
                first_position,
                last_position: state.head(),
            }
        };
        // Outside the lock, two appenders may publish out of order; the
        // head only moves forward.
        let last = appended.last_position;
        self.shared.head.send_if_modified(|head| {
            let moved = *head < last;
            *head = (*head).max(last);
            moved
        });
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let max = read_limit(max)?;
        let state = self.state();
        check_read_after(stream, after, state.version(stream))?;
        let indexes = state.streams.get(stream).map_or(&[][..], Vec::as_slice);
        let start = usize::try_from(after.0).unwrap_or(usize::MAX);
        Ok(indexes
            .iter()
            .skip(start)
            .take(max)
            .map(|&index| state.events[index].clone())
            .collect())
    }

    async fn read_all(&self, after: Position, max: usize) -> Result<Vec<RecordedEvent>> {
        let max = read_limit(max)?;
        Ok(self.state().read_all(after, max))
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version> {
        Ok(self.state().version(stream))
    }

    async fn head(&self) -> Result<Position> {
        Ok(self.state().head())
    }

    async fn subscribe(&self, after: Position) -> Result<Subscription> {
        let (tx, subscription) = Subscription::channel();
        let head = self.shared.head.subscribe();
        tokio::spawn(feed(Arc::downgrade(&self.shared), head, after, tx));
        Ok(subscription)
    }

    async fn save_snapshot(&self, stream: &StreamName, snapshot: Snapshot) -> Result<()> {
        let mut state = self.state();
        state.writable()?;
        check_snapshot(stream, &snapshot, state.version(stream))?;
        let old = state.snapshots.get(stream).map_or(0, |s| s.state.len());
        state.charge(snapshot.state.len().saturating_sub(old))?;
        state.commit(Record::Snapshot {
            stream: stream.clone(),
            snapshot,
        })
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>> {
        Ok(self.state().snapshots.get(stream).cloned())
    }
}

/// A subscription's feeder: catch up in batches, then wait for the head
/// to move. It holds the store weakly, so dropping the store ends it, and
/// it stops when the subscriber drops its end.
async fn feed<D: LogDisk>(
    shared: Weak<Shared<D>>,
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
