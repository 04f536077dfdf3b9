//! Projector checkpoints under stress: a disk that fills up mid-write, a
//! projector reopened over and over, a read model that outgrows its
//! checkpoint.

use super::suite::TotalsProjection;
use super::tests::{deposit, name};
use super::writer_tests::TestDisk;
use super::*;
use crate::log::{DurableLog, MemDisk};

async fn deposits(count: u64) -> Vec<RecordedEvent> {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    for amount in 1..=count {
        store
            .append(&name("acct"), ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    store.read_all(Position::START, 1000).await.expect("reads")
}

/// Episode 23. A checkpoint write that fills the disk halfway leaves a
/// torn record; the projector then refuses every later event instead of
/// writing good records after the torn one — which would make the log
/// unreadable (`LogCorrupt`). Reopening cuts the torn tail and resumes
/// from the last good checkpoint.
#[tokio::test]
async fn event_sourcing_projector_failed_checkpoint_write_requires_reopen() {
    let events = deposits(3).await;
    let disk = TestDisk::default();
    let mut projector =
        Projector::open(TotalsProjection, Upcaster::new(), disk.clone(), 1).expect("opens");
    assert!(projector.apply(events[0].clone()).expect("applies"));
    disk.tear_next_append(5);
    assert!(
        projector.apply(events[1].clone()).is_err(),
        "the disk is full"
    );
    let refused = projector
        .apply(events[2].clone())
        .expect_err("no writes after a failed one");
    assert!(matches!(refused, StoreError::Storage { .. }), "{refused:?}");
    drop(projector);

    let projector = Projector::open(TotalsProjection, Upcaster::new(), disk.mem().clone(), 1)
        .expect("the torn checkpoint is cut off, the log opens");
    assert_eq!(projector.position(), events[0].position);
}

/// Episode 23. The naive twin double-counts, but it does not corrupt its
/// log either: after a torn write it stops until reopened.
#[tokio::test]
async fn event_sourcing_naive_projection_failed_write_requires_reopen() {
    let events = deposits(3).await;
    let disk = TestDisk::default();
    let mut naive =
        NaiveProjection::open(TotalsProjection, Upcaster::new(), disk.clone(), 1).expect("opens");
    naive.apply(events[0].clone()).expect("applies");
    disk.tear_next_append(5);
    assert!(naive.apply(events[1].clone()).is_err(), "the disk is full");
    assert!(
        naive.apply(events[2].clone()).is_err(),
        "no writes after a failed one"
    );
    drop(naive);

    let naive = NaiveProjection::open(TotalsProjection, Upcaster::new(), disk.mem().clone(), 1)
        .expect("the torn record is cut off, the log opens");
    assert_eq!(naive.position(), events[0].position);
}

/// Episode 23. A projector reopened after every checkpoint still
/// compacts: its log never holds more than COMPACT_EVERY records.
#[tokio::test]
async fn event_sourcing_projector_reopened_often_still_compacts() {
    let events = deposits(2 * COMPACT_EVERY + 5).await;
    let disk = MemDisk::new();
    for event in &events {
        let mut projector =
            Projector::open(TotalsProjection, Upcaster::new(), disk.clone(), 1).expect("opens");
        assert!(projector.apply(event.clone()).expect("applies"));
        let (_, recovered) = DurableLog::open(disk.clone()).expect("opens");
        assert!(
            recovered.records.len() as u64 <= COMPACT_EVERY,
            "{} checkpoint records",
            recovered.records.len()
        );
    }
    let projector = Projector::open(TotalsProjection, Upcaster::new(), disk, 1).expect("reopens");
    assert_eq!(projector.position(), events[events.len() - 1].position);
}

/// A read model that grows by a whole checkpoint per event.
struct Hoard;

impl Projection for Hoard {
    type State = String;

    fn apply(&self, state: &mut String, _event: &RecordedEvent) -> Result<()> {
        state.push_str(&"x".repeat(MAX_CHECKPOINT_BYTES));
        Ok(())
    }
}

/// Episode 23. A read model past MAX_CHECKPOINT_BYTES cannot be
/// checkpointed: `StoreFull`, and then the projector stops (reopen)
/// instead of applying one more event per call and failing each time.
#[tokio::test]
async fn event_sourcing_projector_oversized_read_model_stops() {
    let events = deposits(2).await;
    let mut projector = Projector::open(Hoard, Upcaster::new(), MemDisk::new(), 1).expect("opens");
    let full = projector
        .apply(events[0].clone())
        .expect_err("the checkpoint is too big");
    assert!(matches!(full, StoreError::StoreFull { .. }), "{full:?}");
    let stopped = projector
        .apply(events[1].clone())
        .expect_err("stopped until reopened");
    assert!(matches!(stopped, StoreError::Storage { .. }), "{stopped:?}");
    assert_eq!(projector.position(), events[0].position);
    assert_eq!(projector.state().len(), MAX_CHECKPOINT_BYTES);
}
