//! The broken twin of [`super::Projector`]: a projection that is not
//! idempotent, and double-counts on replay.
//!
//! It does what looks reasonable: save the read model after every event
//! (durable!), and save its position now and then, because writing it
//! every time seems wasteful. But the two are separate records. After a
//! crash it resumes from the last saved position — which lags the saved
//! state — so the events in between are applied a second time: a deposit
//! counted twice. It also applies whatever it is handed, so a redelivered
//! event counts twice even without a crash. The test
//! `event_sourcing_naive_projection_double_counts_after_restart` shows the
//! read model drifting from a fold over the log while the real projector
//! matches it.

use serde::{Deserialize, Serialize};

use super::{
    EventStore, MAX_READ_EVENTS, Position, Projection, RecordedEvent, Result, StoreError, Upcaster,
};
use crate::log::{DurableLog, LogDisk};

/// A record of the naive projection's log: state and position apart.
#[derive(Serialize, Deserialize)]
enum NaiveRecord<T> {
    State(T),
    Position(Position),
}

/// Don't copy this: the position is not saved with the state, and seen
/// events are not skipped.
pub struct NaiveProjection<P: Projection, D> {
    projection: P,
    upcaster: Upcaster,
    log: DurableLog<D>,
    state: P::State,
    position: Position,
    unsaved_positions: u64,
    save_position_every: u64,
    /// Set when a write failed: it may have left part of a record, so
    /// nothing more is written until a reopen cuts it off. (The naive
    /// part is the projection logic, not the disk handling.)
    broken: Option<String>,
}

impl<P: Projection, D> std::fmt::Debug for NaiveProjection<P, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NaiveProjection")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<P: Projection, D: LogDisk> NaiveProjection<P, D> {
    /// Opens on `disk`: the last saved state, and the last saved position.
    pub fn open(
        projection: P,
        upcaster: Upcaster,
        disk: D,
        save_position_every: u64,
    ) -> Result<Self> {
        let (log, recovered) = DurableLog::open(disk)?;
        let mut state = P::State::default();
        let mut position = Position::START;
        for bytes in &recovered.records {
            match serde_json::from_slice(bytes) {
                Ok(NaiveRecord::State(saved)) => state = saved,
                Ok(NaiveRecord::Position(saved)) => position = saved,
                Err(err) => {
                    return Err(StoreError::Storage {
                        reason: format!("undecodable naive projection record: {err}"),
                    });
                }
            }
        }
        Ok(Self {
            projection,
            upcaster,
            log,
            state,
            position,
            unsaved_positions: 0,
            save_position_every: save_position_every.max(1),
            broken: None,
        })
    }

    pub fn state(&self) -> &P::State {
        &self.state
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// Applies `event` — whether or not it was seen before.
    pub fn apply(&mut self, event: RecordedEvent) -> Result<()> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::Storage {
                reason: format!("a write failed earlier ({reason}); reopen it"),
            });
        }
        let event = self.upcaster.upcast(event)?;
        self.projection.apply(&mut self.state, &event)?;
        // Pitfall: the state is saved here, the position below, and only
        // sometimes. A crash between the two re-applies the events since
        // the last saved position.
        let state = encode(&NaiveRecord::State(&self.state))?;
        self.write(&state)?;
        self.position = event.position;
        self.unsaved_positions += 1;
        if self.unsaved_positions >= self.save_position_every {
            let position = encode(&NaiveRecord::<()>::Position(self.position))?;
            self.write(&position)?;
            self.unsaved_positions = 0;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(err) = self.log.append(bytes) {
            self.broken = Some(err.to_string());
            return Err(err.into());
        }
        Ok(())
    }

    /// Applies every stored event after its (saved) position.
    pub async fn catch_up<S: EventStore>(&mut self, store: &S) -> Result<usize> {
        let mut applied = 0;
        loop {
            let batch = store.read_all(self.position, MAX_READ_EVENTS).await?;
            if batch.is_empty() {
                return Ok(applied);
            }
            for event in batch {
                self.apply(event)?;
                applied += 1;
            }
        }
    }
}

fn encode<T: Serialize>(record: &NaiveRecord<T>) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|err| StoreError::Storage {
        reason: format!("the naive projection's record does not serialize: {err}"),
    })
}
