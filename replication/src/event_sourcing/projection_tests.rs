//! Projections, the naive twin and read-model rebuilds, on the embedded
//! store.

use serde_json::json;

use super::suite::{Totals, TotalsProjection};
use super::tests::{deposit, name};
use super::*;
use crate::log::MemDisk;

async fn store_with_deposits(count: u64) -> EmbeddedStore<MemDisk> {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    for amount in 1..=count {
        let stream = name(if amount % 2 == 0 { "even" } else { "odd" });
        store
            .append(&stream, ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    store
}

async fn fold(store: &EmbeddedStore<MemDisk>) -> Totals {
    fold_all(store, &TotalsProjection, &Upcaster::new())
        .await
        .expect("folds")
        .0
}

fn events_in(totals: &Totals) -> u64 {
    totals.streams.values().map(|total| total.events).sum()
}

/// Episode 23. The broken twin: the naive projection saves its read model
/// after every event but its position only every 4, so after a restart it
/// re-applies the events in between — 10 deposits counted as 12. The
/// real projector, restarted the same way, equals the fold.
#[tokio::test]
async fn event_sourcing_naive_projection_double_counts_after_restart() {
    let store = store_with_deposits(10).await;
    let truth = fold(&store).await;
    assert_eq!(events_in(&truth), 10);

    let disk = MemDisk::new();
    let open = || NaiveProjection::open(TotalsProjection, Upcaster::new(), disk.clone(), 4);
    let mut naive = open().expect("opens");
    naive.catch_up(&store).await.expect("catches up");
    assert_eq!(
        *naive.state(),
        truth,
        "before any restart the naive one looks right"
    );
    drop(naive);
    disk.crash();
    let mut naive = open().expect("reopens");
    naive.catch_up(&store).await.expect("catches up");
    assert_ne!(*naive.state(), truth);
    assert_eq!(
        events_in(naive.state()),
        12,
        "events 9 and 10 counted twice"
    );

    let disk = MemDisk::new();
    let open = || Projector::open(TotalsProjection, Upcaster::new(), disk.clone(), 4);
    let mut projector = open().expect("opens");
    projector.catch_up(&store).await.expect("catches up");
    drop(projector);
    disk.crash();
    let mut projector = open().expect("reopens");
    projector.catch_up(&store).await.expect("catches up");
    assert_eq!(*projector.state(), truth);
}

/// Episode 23. Redelivery without a crash: handed the same events twice
/// (an at-least-once subscription), the naive projection counts them
/// twice and the projector skips them.
#[tokio::test]
async fn event_sourcing_naive_projection_double_counts_redelivered_events() {
    let store = store_with_deposits(6).await;
    let events = store.read_all(Position::START, 100).await.expect("reads");
    let mut naive =
        NaiveProjection::open(TotalsProjection, Upcaster::new(), MemDisk::new(), 1).expect("opens");
    let mut projector =
        Projector::open(TotalsProjection, Upcaster::new(), MemDisk::new(), 1).expect("opens");
    for event in events.iter().chain(&events) {
        naive.apply(event.clone()).expect("applies");
        projector.apply(event.clone()).expect("applies");
    }
    assert_eq!(events_in(naive.state()), 12);
    assert_eq!(*projector.state(), fold(&store).await);
}

/// Episode 23. The projection suite case on the embedded store, and the
/// checkpoint log staying compact across many checkpoints.
#[tokio::test]
async fn event_sourcing_projector_compacts_its_checkpoint_log() {
    let store = store_with_deposits(200).await;
    let disk = MemDisk::new();
    let mut projector =
        Projector::open(TotalsProjection, Upcaster::new(), disk.clone(), 1).expect("opens");
    projector.catch_up(&store).await.expect("catches up");
    let one = serde_json::to_vec(&json!({ "position": 200, "state": projector.state() }))
        .expect("serializes")
        .len();
    // 200 checkpoints, compacted every COMPACT_EVERY: the log holds at
    // most COMPACT_EVERY of them, not 200.
    assert!(
        disk.len() < (COMPACT_EVERY as usize + 1) * (one + 8),
        "{} bytes",
        disk.len()
    );
    drop(projector);
    let projector = Projector::open(TotalsProjection, Upcaster::new(), disk, 1).expect("reopens");
    assert_eq!(projector.position(), Position(200));
    assert_eq!(*projector.state(), fold(&store).await);
}

/// Fails on one event, to show a projector refusing to go on half-applied.
struct FailsOnThird;

impl Projection for FailsOnThird {
    type State = Vec<u64>;
    fn apply(&self, state: &mut Vec<u64>, event: &RecordedEvent) -> Result<()> {
        state.push(event.position.0);
        if event.position == Position(3) {
            return Err(StoreError::MalformedEvent {
                index: 0,
                reason: "poison".into(),
            });
        }
        Ok(())
    }
}

/// Episode 23. A projection step that fails mid-way leaves the projector
/// refusing further events (its state may be half-changed) until it is
/// reopened from its checkpoint, which holds no trace of the failure.
#[tokio::test]
async fn event_sourcing_projector_failed_step_requires_reopen() {
    let store = store_with_deposits(4).await;
    let disk = MemDisk::new();
    let mut projector =
        Projector::open(FailsOnThird, Upcaster::new(), disk.clone(), 1).expect("opens");
    let failed = projector.catch_up(&store).await;
    assert!(
        matches!(failed, Err(StoreError::MalformedEvent { .. })),
        "{failed:?}"
    );
    assert_eq!(projector.position(), Position(2));
    let refused = projector.catch_up(&store).await;
    assert!(
        matches!(refused, Err(StoreError::Storage { .. })),
        "{refused:?}"
    );
    drop(projector);
    let projector = Projector::open(FailsOnThird, Upcaster::new(), disk, 1).expect("reopens");
    assert_eq!(
        (projector.state().as_slice(), projector.position()),
        (&[1, 2][..], Position(2))
    );
}

/// Episode 23. CQRS: a read model kept live by a projector, then its
/// disk lost and the model rebuilt from scratch by replay — equal to the
/// live one and to a fold. Rebuilding onto a used checkpoint is refused.
#[tokio::test]
async fn event_sourcing_read_model_rebuilt_by_replay_equals_live_one() {
    let store = store_with_deposits(40).await;
    let model = ReadModel::<Totals>::default();
    let live_disk = MemDisk::new();
    let mut live =
        Projector::open(TotalsProjection, Upcaster::new(), live_disk.clone(), 8).expect("opens");
    assert_eq!(
        refresh(&store, &mut live, &model).await.expect("refreshes"),
        40
    );
    let before = model.current();
    assert_eq!(before.position, Position(40));

    let rebuilt = rebuild(
        &store,
        TotalsProjection,
        Upcaster::new(),
        MemDisk::new(),
        8,
        &model,
    )
    .await
    .expect("rebuilds");
    let after = model.current();
    assert_eq!(*after, *before);
    assert_eq!(after.state, fold(&store).await);
    assert_eq!(rebuilt.position(), Position(40));
    assert_eq!(before.state, *live.state(), "old readers keep the old view");

    let refused = rebuild(
        &store,
        TotalsProjection,
        Upcaster::new(),
        live_disk,
        8,
        &model,
    )
    .await;
    assert!(
        matches!(refused, Err(StoreError::Storage { .. })),
        "{refused:?}"
    );
}
