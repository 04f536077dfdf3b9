//! The read side's runtime: both projections fed from one subscription,
//! and a way for a command to wait until they have applied its events.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use replication::event_sourcing::{
    EventStore, Position, Projection, RecordedEvent, Result, Upcaster,
};
use tokio::sync::watch;

use super::projections::{AuditProjection, AuditTrail, BalanceProjection, Balances};

/// The pause before subscribing again after the subscription failed.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// Both read models at one position.
#[derive(Clone, Debug, Default)]
pub struct ReadModels {
    pub balances: Balances,
    pub audit: AuditTrail,
    pub position: Position,
}

impl ReadModels {
    /// Applies `event` unless it is at or before the position: a
    /// redelivered event (a subscription resumed after a failure) changes
    /// nothing. Compare the naive twin in `replication`, which counts it
    /// twice.
    pub fn apply(&mut self, upcaster: &Upcaster, event: RecordedEvent) -> Result<bool> {
        if event.position <= self.position {
            return Ok(false);
        }
        let event = upcaster.upcast(event)?;
        // Apply to copies-in-place only after both succeed would cost a
        // clone per event; instead a failing event stops the read side
        // (see `feed`), which is rebuilt on restart.
        BalanceProjection.apply(&mut self.balances, &event)?;
        AuditProjection.apply(&mut self.audit, &event)?;
        self.position = event.position;
        Ok(true)
    }
}

/// The read models, shared between the feeder and the queries.
#[derive(Clone, Debug)]
pub struct ReadSide {
    models: Arc<Mutex<ReadModels>>,
    position: watch::Receiver<Position>,
}

impl ReadSide {
    /// Starts feeding the read models from `store`, from the beginning:
    /// a CQRS read side is rebuilt by replay on every start.
    pub fn start<S: EventStore + 'static>(store: Arc<S>, upcaster: Upcaster) -> Self {
        let models = Arc::new(Mutex::new(ReadModels::default()));
        let (tx, position) = watch::channel(Position::START);
        tokio::spawn(feed(store, upcaster, models.clone(), tx));
        Self { models, position }
    }

    /// Reads the models as they are now.
    pub fn read<T>(&self, read: impl FnOnce(&ReadModels) -> T) -> T {
        read(&self.models.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Waits until the models have applied `position`, at most `limit`;
    /// whether they have.
    pub async fn wait_for(&self, position: Position, limit: Duration) -> bool {
        let mut rx = self.position.clone();
        tokio::time::timeout(limit, rx.wait_for(|at| *at >= position))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }
}

/// Follows the store for as long as the read side lives; resubscribes
/// from the last applied position when the subscription ends or fails.
async fn feed<S: EventStore>(
    store: Arc<S>,
    upcaster: Upcaster,
    models: Arc<Mutex<ReadModels>>,
    tx: watch::Sender<Position>,
) {
    loop {
        if tx.is_closed() {
            return;
        }
        let from = *tx.borrow();
        let mut subscription = match store.subscribe(from).await {
            Ok(subscription) => subscription,
            Err(err) => {
                tracing::warn!(%err, "the ledger's read side cannot subscribe; retrying");
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                continue;
            }
        };
        while let Some(next) = subscription.next().await {
            let event = match next {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(%err, "the ledger's subscription failed; resubscribing");
                    break;
                }
            };
            let applied = models
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(&upcaster, event);
            match applied {
                Ok(_) => {
                    let at = models
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .position;
                    tx.send_replace(at);
                }
                Err(err) => {
                    // An event the ledger cannot read (a newer schema, a
                    // corrupt record): stop here rather than skip it and
                    // serve balances that silently miss money.
                    tracing::error!(%err, "the ledger's read side stopped");
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}
