//! CQRS: the query side as a read model that is only ever derived — kept
//! current by a projector, and rebuilt from scratch by replaying the log.
//!
//! Commands go to aggregates ([`super::load_aggregate`], optimistic
//! appends); queries go to read models shaped for them (balances by
//! account, an audit trail), which may lag the log slightly but never
//! disagree with it. Because a read model is a fold of the log, it can be
//! thrown away and rebuilt: to recover a lost disk, to fix a projection
//! bug, or to add a new view over old events. [`rebuild`] replays into a
//! fresh projector and then swaps the finished state in whole, so readers
//! see the old model or the new one, never half a replay (blue/green).

use std::sync::{Arc, PoisonError, RwLock};

use super::{EventStore, Position, Projection, Projector, Result, Upcaster};
use crate::log::LogDisk;

/// A read model's state as of a position in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View<T> {
    pub state: T,
    /// The last event folded in: a reader that needs its own write can
    /// wait until this passes its append's position.
    pub position: Position,
}

/// The query side: a published [`View`] many readers share. Cheap to
/// clone; clones share it.
#[derive(Debug)]
pub struct ReadModel<T> {
    view: Arc<RwLock<Arc<View<T>>>>,
}

impl<T> Clone for ReadModel<T> {
    fn clone(&self) -> Self {
        Self {
            view: Arc::clone(&self.view),
        }
    }
}

impl<T: Default> Default for ReadModel<T> {
    fn default() -> Self {
        Self::new(View {
            state: T::default(),
            position: Position::START,
        })
    }
}

impl<T> ReadModel<T> {
    pub fn new(view: View<T>) -> Self {
        Self {
            view: Arc::new(RwLock::new(Arc::new(view))),
        }
    }

    /// The current view. Readers hold an `Arc`, so a publish never waits
    /// for a slow query and a query never sees a torn state.
    pub fn current(&self) -> Arc<View<T>> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the view whole.
    pub fn publish(&self, view: View<T>) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }
}

/// Catches `projector` up with the store and publishes its state.
pub async fn refresh<S, P, D>(
    store: &S,
    projector: &mut Projector<P, D>,
    model: &ReadModel<P::State>,
) -> Result<usize>
where
    S: EventStore,
    P: Projection,
    D: LogDisk,
{
    let applied = projector.catch_up(store).await?;
    model.publish(View {
        state: projector.state().clone(),
        position: projector.position(),
    });
    Ok(applied)
}

/// Rebuilds a read model from scratch: a new projector on `empty_disk`
/// replays the whole log, then its state replaces the model's. Returns
/// the new projector, which carries on from there.
pub async fn rebuild<S, P, D>(
    store: &S,
    projection: P,
    upcaster: Upcaster,
    empty_disk: D,
    checkpoint_every: u64,
    model: &ReadModel<P::State>,
) -> Result<Projector<P, D>>
where
    S: EventStore,
    P: Projection,
    D: LogDisk,
{
    let mut projector = Projector::open(projection, upcaster, empty_disk, checkpoint_every)?;
    if projector.position() != Position::START {
        // Pitfall: "rebuilding" on top of an old checkpoint replays only
        // its tail — or, in a projector without position checks, applies
        // the whole log a second time over the old state.
        return Err(super::StoreError::Storage {
            reason: format!(
                "a rebuild needs an empty checkpoint disk; this one is at {}",
                projector.position()
            ),
        });
    }
    refresh(store, &mut projector, model).await?;
    Ok(projector)
}
