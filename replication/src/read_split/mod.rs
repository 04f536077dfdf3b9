//! Read/write splitting that keeps read-your-writes: session position
//! tokens.
//!
//! Episode: 30, "Database Performance Patterns" (also 19)
//! Pattern: performance / read/write splitting, session consistency
//! Try it:  cargo test -p replication read_split -- --nocapture
//! Test it: cargo test -p replication read_split
//!
//! Reads outnumber writes, so a database scales reads by splitting them
//! off: writes go to the primary, reads to asynchronous replicas. The
//! replicas lag, and a client that writes and then reads can miss its own
//! write — the [`StaleRegister`](crate::register::stale::StaleRegister)'s
//! bug, here with several replicas ([`NaiveSession`] shows it). The fix
//! costs one number: every write returns the primary's log position
//! after it, the client keeps the largest position it has seen as its
//! session token, and sends it with each read. Only a replica that has
//! applied the log at least that far may answer; if none has, the read
//! waits a bounded time for one, then falls back to the primary. The
//! token also grows with every read's position, so a session never reads
//! an older state than it read before (monotonic reads). MySQL's GTID
//! waits (`WAIT_FOR_EXECUTED_GTID_SET`), PostgreSQL's LSN checks and
//! MongoDB's causally consistent sessions (`afterClusterTime`) are this
//! mechanism.
//!
//! Bounds: keys and values as the [`register`](crate::register) (each
//! copy stores at most [`MAX_STORED_BYTES`](crate::register::MAX_STORED_BYTES));
//! each replica's backlog holds at most [`MAX_BACKLOG`] writes, past which
//! writes are refused with `ResourceExhausted`; a read waits at most the
//! configured `wait` before it goes to the primary; a token past the
//! primary's position is refused with `InvalidArgument`.
//!
//! Simplified: in-process replicas with a fixed lag each, no network, no
//! failover. Real systems ship the log over the network, and a replica
//! promoted after a failover must not answer tokens from a history it
//! never had.

mod session;
#[cfg(test)]
mod tests;

pub use session::{NaiveSession, Session};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::register::{Change, Store, validate};
use crate::{Error, Result};

/// Writes that may wait for one replica at once.
pub const MAX_BACKLOG: usize = 1024;

/// A position in the primary's log: how many writes it has applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

/// Who answered a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedBy {
    Replica(usize),
    Primary,
}

/// A read's answer: the value, and the log position it reflects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadReply {
    pub value: String,
    pub position: Position,
    pub served_by: ServedBy,
}

/// A copy and the log position it reflects, under one lock so a read
/// never pairs a value with the wrong position.
#[derive(Debug, Default)]
struct DataCopy {
    store: Store,
    position: u64,
}

#[derive(Debug)]
struct Replica {
    copy: Arc<Mutex<DataCopy>>,
    /// The replica's position, for reads that wait for it.
    applied: watch::Receiver<u64>,
    log: mpsc::Sender<(Instant, Change)>,
    lag: Duration,
}

fn lock(copy: &Mutex<DataCopy>) -> MutexGuard<'_, DataCopy> {
    // Every change validates before it writes, so a poisoned copy is whole.
    copy.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many reads each path served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitStats {
    pub replica_reads: u64,
    /// Token reads that had to wait for a replica to catch up.
    pub waited: u64,
    /// Token reads no replica could answer in time.
    pub primary_fallbacks: u64,
}

#[derive(Debug)]
struct Inner {
    primary: Mutex<DataCopy>,
    replicas: Vec<Replica>,
    wait: Duration,
    next: AtomicUsize,
    replica_reads: AtomicU64,
    waited: AtomicU64,
    primary_fallbacks: AtomicU64,
}

/// One primary, asynchronous replicas, and reads routed by position.
#[derive(Clone, Debug)]
pub struct ReadWriteSplit {
    inner: Arc<Inner>,
}

impl ReadWriteSplit {
    /// A primary and one replica per entry of `lags` (each applies every
    /// write that long after the primary); a token read waits at most
    /// `wait` for a replica. Starts the replication tasks: call inside a
    /// tokio runtime.
    pub fn new(lags: &[Duration], wait: Duration) -> Result<Self> {
        if lags.is_empty() {
            return Err(Error::NoReplicas);
        }
        let replicas = lags.iter().map(|&lag| Self::start_replica(lag)).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                primary: Mutex::default(),
                replicas,
                wait,
                next: AtomicUsize::new(0),
                replica_reads: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                primary_fallbacks: AtomicU64::new(0),
            }),
        })
    }

    fn start_replica(lag: Duration) -> Replica {
        let copy: Arc<Mutex<DataCopy>> = Arc::default();
        let (log, mut pending) = mpsc::channel::<(Instant, Change)>(MAX_BACKLOG);
        let (advanced, applied) = watch::channel(0);
        let applying = copy.clone();
        tokio::spawn(async move {
            // In log order, each write `lag` after the primary took it: the
            // replica is always a past state of the primary, so applying
            // cannot fail.
            while let Some((due, change)) = pending.recv().await {
                tokio::time::sleep_until(due).await;
                let mut copy = lock(&applying);
                let applied = copy.store.apply(change);
                debug_assert!(
                    applied.is_ok(),
                    "a replica refused a write the primary took"
                );
                copy.position += 1;
                advanced.send_replace(copy.position);
            }
        });
        Replica {
            copy,
            applied,
            log,
            lag,
        }
    }

    pub fn stats(&self) -> SplitStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SplitStats {
            replica_reads: read(&self.inner.replica_reads),
            waited: read(&self.inner.waited),
            primary_fallbacks: read(&self.inner.primary_fallbacks),
        }
    }

    pub fn put(&self, key: &str, value: &str) -> Result<Position> {
        validate(key, value)?;
        self.write(Change::Put(key.to_owned(), value.to_owned()))
    }

    pub fn append(&self, key: &str, suffix: &str) -> Result<Position> {
        validate(key, suffix)?;
        self.write(Change::Append(key.to_owned(), suffix.to_owned()))
    }

    /// Applies `change` on the primary and ships it to every replica;
    /// returns the primary's position after it — the session token.
    fn write(&self, change: Change) -> Result<Position> {
        // Room on every replica first, so a refused write changes nothing.
        let permits = self
            .inner
            .replicas
            .iter()
            .map(|r| {
                r.log
                    .try_reserve()
                    .map_err(|_| Error::BacklogFull { max: MAX_BACKLOG })
            })
            .collect::<Result<Vec<_>>>()?;
        // The primary's lock is held across the sends, so every replica
        // receives the writes in the primary's order.
        let mut primary = lock(&self.inner.primary);
        primary.store.apply(change.clone())?;
        primary.position += 1;
        let now = Instant::now();
        for (permit, replica) in permits.into_iter().zip(&self.inner.replicas) {
            permit.send((now + replica.lag, change.clone()));
        }
        Ok(Position(primary.position))
    }

    /// Reads `key` from a replica. With `after`, only from one that has
    /// applied the log at least that far: another replica that has, or
    /// the chosen one after waiting up to `wait`, or else the primary.
    /// Without it, from whichever replica is next — possibly stale.
    pub async fn read(&self, key: &str, after: Option<Position>) -> Result<ReadReply> {
        validate(key, "")?;
        let replicas = &self.inner.replicas;
        let first = self.inner.next.fetch_add(1, Ordering::Relaxed) % replicas.len();
        let Some(Position(token)) = after else {
            return Ok(self.read_replica(first, key));
        };
        let primary_position = lock(&self.inner.primary).position;
        if token > primary_position {
            return Err(Error::PositionAhead {
                token,
                primary: primary_position,
            });
        }
        // Any replica already there will do, starting with this read's turn.
        let order = (0..replicas.len()).map(|i| (first + i) % replicas.len());
        for at in order {
            if *replicas[at].applied.borrow() >= token {
                return Ok(self.read_replica(at, key));
            }
        }
        // Pitfall: waiting without a bound turns a lagging replica into a
        // hung read; the wait is short, and the primary is the way out.
        let mut applied = replicas[first].applied.clone();
        let caught_up = tokio::time::timeout(self.inner.wait, applied.wait_for(|&p| p >= token));
        if let Ok(Ok(_)) = caught_up.await {
            self.inner.waited.fetch_add(1, Ordering::Relaxed);
            return Ok(self.read_replica(first, key));
        }
        self.inner.primary_fallbacks.fetch_add(1, Ordering::Relaxed);
        let primary = lock(&self.inner.primary);
        Ok(ReadReply {
            value: primary.store.get(key),
            position: Position(primary.position),
            served_by: ServedBy::Primary,
        })
    }

    fn read_replica(&self, at: usize, key: &str) -> ReadReply {
        self.inner.replica_reads.fetch_add(1, Ordering::Relaxed);
        let copy = lock(&self.inner.replicas[at].copy);
        ReadReply {
            value: copy.store.get(key),
            position: Position(copy.position),
            served_by: ServedBy::Replica(at),
        }
    }
}
