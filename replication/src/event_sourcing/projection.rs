//! Projections: folding the global log into a read model, exactly once
//! in effect, across crashes of the projector.
//!
//! Delivery is at-least-once by nature: a projector that crashes after
//! applying an event but before recording that it did will see the event
//! again. The [`Projector`] makes that harmless by writing its state and
//! its position **in one record** (a checkpoint), and by skipping every
//! event at or before its position. After a crash it resumes from the
//! last checkpoint: state and position agree, the events after it are
//! replayed once, and the result equals a fold over the whole log.
//! Compare [`super::NaiveProjection`], which records them apart.
//!
//! Bounds: a checkpoint (state and position as JSON) of at most
//! [`MAX_CHECKPOINT_BYTES`] — that is the largest read model a projector
//! can keep; one that outgrows it stops with `StoreFull` and must be
//! reopened (from its last checkpoint) with a leaner projection. The
//! checkpoint log holds at most [`COMPACT_EVERY`] records: reaching it,
//! the next checkpoint replaces the log, however often it was reopened.
//!
//! A checkpoint write that fails (a full disk) may leave part of a record
//! behind; the projector then refuses to go on until it is reopened, which
//! cuts the torn tail off — writing on would bury it mid-log, and the log
//! would no longer open.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    EventStore, MAX_READ_EVENTS, Position, RecordedEvent, Result, StoreError, Subscription,
    Upcaster,
};
use crate::log::{DurableLog, LogDisk, MAX_RECORD_BYTES};

/// The largest checkpoint a projector writes: the read model's bound.
pub const MAX_CHECKPOINT_BYTES: usize = MAX_RECORD_BYTES;
/// The most records the checkpoint log holds before it is compacted.
pub const COMPACT_EVERY: u64 = 64;

/// A read model's fold step: how one event changes it.
pub trait Projection {
    /// The read model. Serializable, because checkpoints store it.
    type State: Default + Clone + Serialize + DeserializeOwned;

    /// Applies one event (already upcast to its newest schema). Event
    /// types the projection does not care about leave the state alone.
    fn apply(&self, state: &mut Self::State, event: &RecordedEvent) -> Result<()>;
}

/// What a checkpoint record holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint<T> {
    position: Position,
    state: T,
}

/// Runs a [`Projection`] over a store's global log, keeping its state
/// and position together in a durable checkpoint on `D`.
pub struct Projector<P: Projection, D> {
    projection: P,
    upcaster: Upcaster,
    log: DurableLog<D>,
    state: P::State,
    position: Position,
    /// Events applied since the last checkpoint.
    pending: u64,
    /// Checkpoint after this many events (1 = after every event).
    checkpoint_every: u64,
    /// Set when the projection failed on an event mid-apply, or a
    /// checkpoint could not be written.
    broken: Option<String>,
}

impl<P: Projection, D> std::fmt::Debug for Projector<P, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("position", &self.position)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<P: Projection, D: LogDisk> Projector<P, D> {
    /// Opens the projector on `disk`, resuming from its last checkpoint
    /// (or from the start, with a default state), checkpointing every
    /// `checkpoint_every` events (at least 1).
    pub fn open(projection: P, upcaster: Upcaster, disk: D, checkpoint_every: u64) -> Result<Self> {
        let (log, recovered) = DurableLog::open(disk)?;
        let (state, position) = match recovered.records.last() {
            Some(bytes) => {
                let checkpoint: Checkpoint<P::State> =
                    serde_json::from_slice(bytes).map_err(|err| StoreError::Storage {
                        reason: format!("undecodable projection checkpoint: {err}"),
                    })?;
                (checkpoint.state, checkpoint.position)
            }
            None => (P::State::default(), Position::START),
        };
        Ok(Self {
            projection,
            upcaster,
            log,
            state,
            position,
            pending: 0,
            checkpoint_every: checkpoint_every.max(1),
            broken: None,
        })
    }

    /// The read model as of [`Self::position`].
    pub fn state(&self) -> &P::State {
        &self.state
    }

    /// The last event applied.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Applies `event` unless it is at or before the position — the
    /// idempotence that makes redelivery harmless. `true` if applied.
    /// Checkpoints when `checkpoint_every` events are pending.
    pub fn apply(&mut self, event: RecordedEvent) -> Result<bool> {
        if event.position <= self.position {
            return Ok(false);
        }
        self.usable()?;
        let event = self.upcaster.upcast(event)?;
        // The fold works in place (no copy per event); a step that fails
        // may leave the state half-changed, so the projector refuses to
        // go on until it is reopened from its last checkpoint.
        if let Err(err) = self.projection.apply(&mut self.state, &event) {
            self.broken = Some(format!("at {}: {err}", event.position));
            return Err(err);
        }
        self.position = event.position;
        self.pending += 1;
        if self.pending >= self.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(true)
    }

    fn usable(&self) -> Result<()> {
        match &self.broken {
            Some(reason) => Err(StoreError::Storage {
                reason: format!("the projection failed earlier ({reason}); reopen it to resume"),
            }),
            None => Ok(()),
        }
    }

    /// Writes state and position in one durable record. If that fails,
    /// the projector refuses to go on until reopened.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.usable()?;
        let written = self.write_checkpoint();
        if let Err(err) = &written {
            self.broken = Some(format!("checkpoint at {}: {err}", self.position));
        }
        written
    }

    fn write_checkpoint(&mut self) -> Result<()> {
        let record = serde_json::to_vec(&Checkpoint {
            position: self.position,
            state: &self.state,
        })
        .map_err(|err| StoreError::Storage {
            reason: format!("the projection state does not serialize: {err}"),
        })?;
        if record.len() > MAX_CHECKPOINT_BYTES {
            return Err(StoreError::StoreFull {
                what: format!(
                    "a projection checkpoint of {} bytes, over {MAX_CHECKPOINT_BYTES}",
                    record.len()
                ),
            });
        }
        // Counting the log's records, not checkpoints since opening: a
        // projector reopened often still compacts.
        if self.log.len() + 1 >= COMPACT_EVERY {
            // Only the last checkpoint matters; the rewrite is atomic, so
            // a crash keeps the old log or the one-record new one.
            self.log.rewrite(&[&record])?;
        } else {
            self.log.append(&record)?;
        }
        self.pending = 0;
        Ok(())
    }

    /// Applies every stored event after the position, in pages, and
    /// checkpoints; the number applied.
    pub async fn catch_up<S: EventStore>(&mut self, store: &S) -> Result<usize> {
        let mut applied = 0;
        loop {
            let batch = store.read_all(self.position, MAX_READ_EVENTS).await?;
            if batch.is_empty() {
                self.checkpoint()?;
                return Ok(applied);
            }
            for event in batch {
                applied += usize::from(self.apply(event)?);
            }
        }
    }

    /// Applies events from `subscription` until `count` have been applied
    /// or it ends, checkpointing whenever it has nothing more ready (so a
    /// burst costs one checkpoint, not one per event).
    pub async fn follow(&mut self, subscription: &mut Subscription, count: usize) -> Result<usize> {
        let mut applied = 0;
        while applied < count {
            let Some(event) = subscription.next().await else {
                break;
            };
            applied += usize::from(self.apply(event?)?);
            if subscription.is_idle() {
                self.checkpoint()?;
            }
        }
        self.checkpoint()?;
        Ok(applied)
    }
}

/// A read model folded from scratch over the whole log: what a CQRS
/// rebuild computes, and what every projector must agree with.
pub async fn fold_all<S: EventStore, P: Projection>(
    store: &S,
    projection: &P,
    upcaster: &Upcaster,
) -> Result<(P::State, Position)> {
    let mut state = P::State::default();
    let mut position = Position::START;
    loop {
        let batch = store.read_all(position, MAX_READ_EVENTS).await?;
        if batch.is_empty() {
            return Ok((state, position));
        }
        for event in batch {
            position = event.position;
            projection.apply(&mut state, &upcaster.upcast(event)?)?;
        }
    }
}
