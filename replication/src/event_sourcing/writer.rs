//! The embedded store's writer: one thread owns the log, decides every
//! append and snapshot in arrival order, and commits what is waiting
//! with one `fsync` (group commit).
//!
//! Why a thread: `fsync` blocks for milliseconds. Called on an async
//! worker — worse, under the index lock every reader takes — it stalls
//! every task on that worker, and two appenders can stall a two-worker
//! runtime. Here callers wait on a channel instead, and the index lock is
//! taken only to decide (no I/O) and to publish after the sync.
//!
//! Why decide here: the optimistic-concurrency check must be atomic with
//! the order of writes. The writer checks each request against the index
//! plus the requests accepted before it in the same batch, so of two
//! `Exact(v)` appends in one batch exactly one wins, and an `Exact(v+1)`
//! behind the winner wins too.
//!
//! Bounds: at most [`WRITE_QUEUE`] requests wait (callers then wait for
//! room), and one commit takes at most [`GROUP_COMMIT_MAX`] of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::codec::Record;
use super::embedded::{Shared, event_bytes, lock};
use super::{
    Appended, ExpectedVersion, NewEvent, Position, Result, Snapshot, StoreError, StreamName,
    Version, check_expected_version, check_snapshot,
};
use crate::log::{DurableLog, LogDisk};

/// Requests that may wait for the writer.
pub(super) const WRITE_QUEUE: usize = 64;
/// Requests committed with one `fsync`.
pub(super) const GROUP_COMMIT_MAX: usize = 64;

/// One request to the writer, with where to send its outcome.
pub(super) enum Write {
    Append {
        stream: StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Appended>>,
    },
    Snapshot {
        stream: StreamName,
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A decided request: its record if accepted, and its reply.
enum Outcome {
    Append(oneshot::Sender<Result<Appended>>, Result<Appended>),
    Snapshot(oneshot::Sender<Result<()>>, Result<()>),
}

impl Outcome {
    /// The write failed: an accepted request learns it; a refused one
    /// keeps its refusal.
    fn fail(self, err: &StoreError) -> Self {
        match self {
            Outcome::Append(reply, Ok(_)) => Outcome::Append(reply, Err(err.clone())),
            Outcome::Snapshot(reply, Ok(())) => Outcome::Snapshot(reply, Err(err.clone())),
            refused => refused,
        }
    }

    fn send(self) {
        // A caller that gave up (dropped its future) gets no reply; its
        // write stands or fails all the same.
        match self {
            Outcome::Append(reply, result) => drop(reply.send(result)),
            Outcome::Snapshot(reply, result) => drop(reply.send(result)),
        }
    }
}

pub(super) struct Writer<D> {
    pub(super) log: DurableLog<D>,
    pub(super) shared: Arc<Shared>,
    pub(super) max_bytes: usize,
    /// Set when a write to the log failed: refuse further writes.
    pub(super) failed: Option<String>,
}

/// What the requests accepted so far in this batch add to the index.
#[derive(Default)]
struct Pending {
    versions: BTreeMap<StreamName, Version>,
    events: u64,
    bytes: usize,
}

impl<D: LogDisk> Writer<D> {
    /// Serves requests until every store handle is gone.
    pub(super) fn run(mut self, mut requests: mpsc::Receiver<Write>) {
        while let Some(first) = requests.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < GROUP_COMMIT_MAX {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Write>) {
        let mut records = Vec::new();
        let outcomes: Vec<Outcome> = {
            let index = lock(&self.shared);
            let mut pending = Pending::default();
            batch
                .into_iter()
                .map(|request| self.decide(&index, &mut pending, request, &mut records))
                .collect()
        };
        let outcomes = if records.is_empty() {
            outcomes
        } else {
            let encoded: Vec<Vec<u8>> = records.iter().map(Record::encode).collect();
            let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            match self.log.append_batch(&payloads) {
                Ok(_) => {
                    let outcomes = self.publish(records, outcomes);
                    self.compact();
                    outcomes
                }
                Err(err) => {
                    // Pitfall: after a failed write or fsync, the file may
                    // hold part of the batch, and the kernel may have
                    // dropped the dirty pages (PostgreSQL's "fsyncgate").
                    // Writing on would bury the damage under good records,
                    // which the next open refuses as corruption, and would
                    // hand out positions the torn batch may hold. Stop
                    // writing; reopening recovers.
                    self.failed = Some(err.to_string());
                    let err = StoreError::from(err);
                    outcomes.into_iter().map(|o| o.fail(&err)).collect()
                }
            }
        };
        outcomes.into_iter().for_each(Outcome::send);
    }

    /// Checks one request against the index plus what this batch already
    /// accepted; if it passes, its record joins `records`.
    fn decide(
        &self,
        index: &super::embedded::Index,
        pending: &mut Pending,
        request: Write,
        records: &mut Vec<Record>,
    ) -> Outcome {
        match request {
            Write::Append {
                stream,
                expected,
                events,
                reply,
            } => {
                let result = self.writable().and_then(|()| {
                    let current = pending.version(index, &stream);
                    check_expected_version(&stream, expected, current)?;
                    let bytes =
                        events.iter().map(event_bytes).sum::<usize>() + stream.as_str().len();
                    self.charge(index.bytes + pending.bytes, bytes)?;
                    let count = events.len() as u64;
                    let first_position = Position(index.head().0 + pending.events + 1);
                    let appended = Appended {
                        first_version: current.next(),
                        last_version: Version(current.0 + count),
                        first_position,
                        last_position: Position(first_position.0 + count - 1),
                    };
                    pending.bytes += bytes;
                    pending.events += count;
                    pending
                        .versions
                        .insert(stream.clone(), appended.last_version);
                    records.push(Record::Append {
                        stream,
                        first_version: appended.first_version,
                        events,
                    });
                    Ok(appended)
                });
                Outcome::Append(reply, result)
            }
            Write::Snapshot {
                stream,
                snapshot,
                reply,
            } => {
                let result = self.writable().and_then(|()| {
                    check_snapshot(&stream, &snapshot, pending.version(index, &stream))?;
                    // Every snapshot is charged in full: the one it
                    // supersedes stays in the log, so the bound covers
                    // what the disk holds (and reopening reads), too.
                    self.charge(index.bytes + pending.bytes, snapshot.state.len())?;
                    pending.bytes += snapshot.state.len();
                    records.push(Record::Snapshot { stream, snapshot });
                    Ok(())
                });
                Outcome::Snapshot(reply, result)
            }
        }
    }

    /// The batch is on disk: make it visible, then wake subscribers.
    fn publish(&mut self, records: Vec<Record>, outcomes: Vec<Outcome>) -> Vec<Outcome> {
        let applied = {
            let mut index = lock(&self.shared);
            records
                .into_iter()
                .try_for_each(|record| index.apply(record))
                .map(|()| index.head())
        };
        match applied {
            Ok(head) => {
                self.shared.head.send_if_modified(|seen| {
                    let moved = *seen < head;
                    *seen = head;
                    moved
                });
                outcomes
            }
            // Records the writer just built always apply; if one did not,
            // the index no longer matches the log: say so, and stop.
            Err(err) => {
                self.failed = Some(err.to_string());
                outcomes.into_iter().map(|o| o.fail(&err)).collect()
            }
        }
    }

    /// Rewrites the log without superseded snapshots once they are half
    /// of it. The index lock is held only to encode (no I/O); the index
    /// cannot change meanwhile, since only this thread changes it.
    fn compact(&mut self) {
        let records = {
            let index = lock(&self.shared);
            if self.failed.is_some() || !index.worth_compacting() {
                return;
            }
            index.compacted()
        };
        let payloads: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        match self.log.rewrite(&payloads) {
            Ok(()) => lock(&self.shared).compacted_done(),
            Err(err) => {
                // The rewrite is atomic, but what the file handle points
                // at after a failed rename is uncertain: stop writing.
                tracing::warn!(%err, "event store: compacting the log failed");
                self.failed = Some(err.to_string());
            }
        }
    }

    fn writable(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(StoreError::Storage {
                reason: format!("a write failed earlier ({reason}); reopen the store"),
            }),
            None => Ok(()),
        }
    }

    fn charge(&self, held: usize, bytes: usize) -> Result<()> {
        if held.saturating_add(bytes) > self.max_bytes {
            return Err(StoreError::StoreFull {
                what: format!("it holds {held} of its {} bytes", self.max_bytes),
            });
        }
        Ok(())
    }
}

impl Pending {
    fn version(&self, index: &super::embedded::Index, stream: &StreamName) -> Version {
        self.versions
            .get(stream)
            .copied()
            .unwrap_or_else(|| index.version(stream))
    }
}
