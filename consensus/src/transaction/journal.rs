//! A service's durable log with group commit: what every coordinator,
//! participant and orchestrator here writes before it answers.
//!
//! Episode: 18, "Distributed Transactions" (also 5: batching)
//! Pattern: write-ahead log / group commit
//!
//! One `fsync` per record caps a service at one change per disk flush. A
//! writer task instead takes every record queued while the last flush
//! ran and writes them with one `fsync` ([`DurableLog::append_batch`]);
//! each caller waits for the flush that covers its record. Under load,
//! many changes share a flush; alone, a change pays one.
//!
//! Records a restart can do without (progress hints) are queued *lazily*
//! ([`Journal::queue_lazy`]): written at once but synced only by the next
//! durable flush, so they add bytes, not `fsync`s.
//!
//! Records keep the order in which callers queued them. A caller that
//! changes its state under a lock and queues the record before releasing
//! it therefore logs in the order it applied, and its reply waits for the
//! flush — so nothing is acknowledged before it is on disk.
//!
//! After a failed write the journal refuses every later append: the state
//! in memory has run ahead of the disk, and only a restart (which replays
//! the disk) can put them back in step.
//!
//! Bounds: at most [`MAX_BATCH`] records per flush; callers wait on a
//! bounded queue of [`QUEUE_DEPTH`] batches.

use std::sync::Arc;

use observability::offload;
use replication::log::{DurableLog, LogDisk};
use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

/// Records written by one flush, at most.
pub const MAX_BATCH: usize = 1024;
/// Batches waiting for the writer, at most.
pub const QUEUE_DEPTH: usize = 4096;

/// Where a journal keeps its bytes.
pub type Disk = Box<dyn LogDisk + Send>;

struct Pending {
    records: Vec<Vec<u8>>,
    /// Replace the whole log with these records (compaction).
    rewrite: bool,
    /// Whoever waits for the records to be on disk; none for lazy records,
    /// which are written at once but synced with the next durable batch.
    done: Option<oneshot::Sender<Result<()>>>,
}

/// A handle on the writer task; clones share it.
#[derive(Clone, Debug)]
pub struct Journal {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("records", &self.records.len())
            .field("rewrite", &self.rewrite)
            .finish()
    }
}

impl Journal {
    /// Opens the log on `disk` and starts its writer on the current
    /// runtime; the records found, oldest first.
    pub fn open(disk: Disk) -> Result<(Self, Vec<Vec<u8>>)> {
        let (log, recovered) = DurableLog::open(disk)?;
        if recovered.discarded_bytes > 0 {
            tracing::warn!(
                bytes = recovered.discarded_bytes,
                "cut a torn write off the end of the log"
            );
        }
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(log, receiver));
        Ok((Self { queue }, recovered.records))
    }

    /// Queues `records` and waits until they are on disk.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<()> {
        self.submit(records, false).await
    }

    /// A place in the queue, taken before the caller changes its state:
    /// with the slot in hand, the records of that change cannot be refused
    /// after the change is made. A full queue is refused here, before
    /// anything happened (ResourceExhausted).
    pub fn reserve(&self) -> Result<Slot> {
        match self.queue.clone().try_reserve_owned() {
            Ok(permit) => Ok(Slot { permit }),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Error::Full {
                table: "log queue",
                max: QUEUE_DEPTH,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(Error::Log("the log writer stopped".into()))
            }
        }
    }

    /// Queues records that need not be durable before anyone is answered
    /// (progress hints whose loss a restart tolerates): written with the
    /// next flush, synced by the next durable one. Never waits; a full
    /// queue drops them, which is what a crash would do.
    pub fn queue_lazy(&self, records: Vec<Vec<u8>>) {
        let _ = self.queue.try_send(Pending {
            records,
            rewrite: false,
            done: None,
        });
    }

    async fn submit(&self, records: Vec<Vec<u8>>, rewrite: bool) -> Result<()> {
        let (done, written) = oneshot::channel();
        self.queue
            .send(Pending {
                records,
                rewrite,
                done: Some(done),
            })
            .await
            .map_err(|_| Error::Log("the log writer stopped".into()))?;
        written
            .await
            .unwrap_or_else(|_| Err(Error::Log("the log writer stopped".into())))
    }
}

/// A reserved place in the journal's queue (see [`Journal::reserve`]).
#[derive(Debug)]
pub struct Slot {
    permit: mpsc::OwnedPermit<Pending>,
}

impl Slot {
    /// Queues `records` in this slot; the future waits until they are on
    /// disk. Callers queue under their state lock (so the log keeps their
    /// order) and await after releasing it. With no records it waits for
    /// everything queued before: a reply that repeats an earlier change (a
    /// deduplicated retry) must not be sent before that change is durable.
    pub fn write(self, records: Vec<Vec<u8>>) -> impl Future<Output = Result<()>> + Send + 'static {
        self.send(records, false)
    }

    /// Replaces the log with `records` (a snapshot of the state, for
    /// compaction) once everything queued before is written.
    pub fn rewrite(
        self,
        records: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.send(records, true)
    }

    fn send(
        self,
        records: Vec<Vec<u8>>,
        rewrite: bool,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (done, written) = oneshot::channel();
        self.permit.send(Pending {
            records,
            rewrite,
            done: Some(done),
        });
        async move {
            written
                .await
                .unwrap_or_else(|_| Err(Error::Log("the log writer stopped".into())))
        }
    }
}

async fn write_batches(log: DurableLog<Disk>, mut receiver: mpsc::Receiver<Pending>) {
    let log = Arc::new(std::sync::Mutex::new(log));
    let mut failed: Option<String> = None;
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut records = first.records.len();
        let mut batch = vec![first];
        // A rewrite travels alone; appends share a flush.
        while !batch[0].rewrite && records < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) if next.rewrite => {
                    carried = Some(next);
                    break;
                }
                Ok(next) => {
                    records += next.records.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        flush(&log, &mut failed, batch).await;
    }
}

/// Writes one batch (or one rewrite) and answers its callers.
async fn flush(
    log: &Arc<std::sync::Mutex<DurableLog<Disk>>>,
    failed: &mut Option<String>,
    mut batch: Vec<Pending>,
) {
    if batch.is_empty() {
        return;
    }
    let result = match failed.clone() {
        Some(reason) => Err(reason),
        None => {
            let rewrite = batch[0].rewrite;
            let durable = batch.iter().any(|pending| pending.done.is_some());
            let payloads: Vec<Vec<u8>> = batch
                .iter_mut()
                .flat_map(|pending| std::mem::take(&mut pending.records))
                .collect();
            let syncs = rewrite || (durable && !payloads.is_empty());
            let log = Arc::clone(log);
            let write = move || {
                let mut log = log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                if rewrite {
                    log.rewrite(&slices)
                } else if slices.is_empty() {
                    Ok(())
                } else if durable {
                    log.append_batch(&slices).map(drop)
                } else {
                    log.append_batch_unsynced(&slices).map(drop)
                }
            };
            if !syncs {
                // A buffered write, or nothing at all: too quick to be
                // worth a trip to the blocking pool.
                write().map_err(|err| err.to_string())
            } else {
                // fsync blocks: off the async workers (inline under simulation).
                offload::cpu(write)
                    .await
                    .map_err(|err| err.to_string())
                    .and_then(|written| written.map_err(|err| err.to_string()))
            }
        }
    };
    if let Err(reason) = &result {
        tracing::error!(%reason, "the log failed; refusing every later change");
        *failed = Some(reason.clone());
    }
    for done in batch.into_iter().filter_map(|pending| pending.done) {
        let _ = done.send(result.clone().map_err(Error::Log));
    }
}
