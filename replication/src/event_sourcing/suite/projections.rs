//! Projections over any backend: a projector that crashes and restarts
//! still ends equal to a fold over the whole log.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Outcome, ensure, event, step, stream};
use crate::event_sourcing::{
    EventStore, ExpectedVersion, Position, Projection, Projector, RecordedEvent, Result,
    StoreError, Upcaster, fold_all,
};
use crate::log::MemDisk;

/// Per stream: how many events, and the sum of their `amount` fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub streams: BTreeMap<String, StreamTotal>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTotal {
    pub events: u64,
    pub amount: i64,
}

/// The suite's projection: [`Totals`]. Every event counts, so any event
/// applied twice or skipped shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct TotalsProjection;

impl Projection for TotalsProjection {
    type State = Totals;

    fn apply(&self, state: &mut Totals, event: &RecordedEvent) -> Result<()> {
        let data: serde_json::Value = event.json()?;
        let total = state.streams.entry(event.stream.to_string()).or_default();
        total.events += 1;
        total.amount += data
            .get("amount")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        Ok(())
    }
}

/// Events applied between crashes; one more than the checkpoint interval,
/// so each crash loses one applied-but-unrecorded event.
const APPLIED_PER_ROUND: usize = 4;
const CHECKPOINT_EVERY: u64 = 3;

/// A [`TotalsProjection`] projector (checkpoint every 3 events, on a
/// crashable in-memory disk) is crashed five times mid-way through a
/// stored log — each crash loses applied events it had not checkpointed —
/// then follows live appends from another task through a subscription,
/// is crashed again, and catches up. Its state must equal a fold over
/// the full log, its position the head; redelivered events must be
/// skipped.
pub async fn projection_matches_fold_after_projector_crashes<S: EventStore + 'static>(
    store: Arc<S>,
) -> Outcome {
    const CASE: &str = "projection_matches_fold_after_projector_crashes";
    let names = [
        stream(CASE, "acct-a")?,
        stream(CASE, "acct-b")?,
        stream(CASE, "acct-c")?,
    ];
    for n in 0..30u64 {
        let target = &names[(n % 3) as usize];
        let events = vec![event("Deposited", json!({ "amount": n * 7 % 11 }))];
        step(
            CASE,
            "appending",
            store.append(target, ExpectedVersion::Any, events).await,
        )?;
    }
    let disk = MemDisk::new();
    let open = |disk: &MemDisk| {
        Projector::open(
            TotalsProjection,
            Upcaster::new(),
            disk.clone(),
            CHECKPOINT_EVERY,
        )
    };
    let mut projector = step(CASE, "opening the projector", open(&disk))?;

    for round in 0..5 {
        let batch = step(
            CASE,
            "reading the log",
            store
                .read_all(projector.position(), APPLIED_PER_ROUND)
                .await,
        )?;
        let applied_to = batch.last().map(|event| event.position);
        for event in batch {
            let applied = step(CASE, "applying", projector.apply(event))?;
            ensure(CASE, applied, || {
                format!("round {round}: a new event was skipped")
            })?;
        }
        drop(projector);
        disk.crash();
        projector = step(CASE, "reopening the projector", open(&disk))?;
        ensure(CASE, Some(projector.position()) < applied_to, || {
            format!(
                "round {round}: the crash lost nothing (at {}, applied to {applied_to:?}), so nothing is redelivered",
                projector.position()
            )
        })?;
        // Redelivery of everything already applied is a no-op.
        let seen = step(
            CASE,
            "re-reading",
            store.read_all(Position::START, 1000).await,
        )?;
        let before = projector.state().clone();
        let recorded = projector.position();
        for event in seen.into_iter().take_while(|e| e.position <= recorded) {
            let applied = step(CASE, "re-applying", projector.apply(event))?;
            ensure(CASE, !applied, || {
                format!("round {round}: a seen event was applied again")
            })?;
        }
        ensure(CASE, *projector.state() == before, || {
            format!("round {round}: redelivery changed the state")
        })?;
    }

    // Live: a writer appends while the projector follows a subscription.
    let writer = {
        let store = Arc::clone(&store);
        let names = names.clone();
        tokio::spawn(async move {
            for n in 0..20u64 {
                let events = vec![event("Withdrawn", json!({ "amount": -((n % 5) as i64) }))];
                store
                    .append(&names[(n % 3) as usize], ExpectedVersion::Any, events)
                    .await?;
            }
            Ok::<_, StoreError>(())
        })
    };
    let mut subscription = step(
        CASE,
        "subscribing",
        store.subscribe(projector.position()).await,
    )?;
    step(
        CASE,
        "following",
        projector.follow(&mut subscription, 15).await,
    )?;
    drop(subscription);
    drop(projector);
    disk.crash();
    let mut projector = step(CASE, "reopening the projector", open(&disk))?;
    let written = step(CASE, "joining the writer", writer.await)?;
    step(CASE, "appending live", written)?;
    step(
        CASE,
        "catching up",
        projector.catch_up(store.as_ref()).await,
    )?;

    let (folded, end) = step(
        CASE,
        "folding the log",
        fold_all(store.as_ref(), &TotalsProjection, &Upcaster::new()).await,
    )?;
    let head = step(CASE, "reading the head", store.head().await)?;
    ensure(CASE, projector.position() == head && end == head, || {
        format!(
            "projector at {}, fold at {end}, head {head}",
            projector.position()
        )
    })?;
    let events: u64 = folded.streams.values().map(|total| total.events).sum();
    ensure(CASE, events == 50, || {
        format!("the fold counts {events} events, 50 were appended")
    })?;
    ensure(CASE, *projector.state() == folded, || {
        format!(
            "the projector's {:?} differs from the fold {folded:?}",
            projector.state()
        )
    })
}
