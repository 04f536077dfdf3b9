//! The embedded store's writer: the disk is off the async workers, waiting
//! appends share one `fsync`, and a failed write stops the writing — on a
//! disk a test can hold mid-`fsync` or fill up mid-write.

use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use super::tests::{deposit, name};
use super::*;
use crate::log::{LogDisk, MemDisk};

/// How long a held `fsync` waits for its release before failing: only a
/// guard so a broken store fails the test instead of hanging it.
const HOLD_GUARD: Duration = Duration::from_secs(10);

/// A [`MemDisk`] that counts `fsync`s, can hold the next one until the
/// test releases it, and can tear the next write (a full disk).
#[derive(Clone, Default)]
pub(super) struct TestDisk {
    inner: MemDisk,
    control: Arc<Mutex<Control>>,
}

#[derive(Default)]
struct Control {
    syncs: usize,
    hold: Option<(oneshot::Sender<()>, mpsc::Receiver<()>)>,
    /// The next append writes this many bytes, then fails.
    tear_next_append: Option<usize>,
}

impl TestDisk {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the next `fsync`: the receiver hears when it starts, and it
    /// finishes when the sender sends.
    pub(super) fn hold_next_sync(&self) -> (oneshot::Receiver<()>, mpsc::Sender<()>) {
        let (entered, started) = oneshot::channel();
        let (release, released) = mpsc::channel();
        self.control().hold = Some((entered, released));
        (started, release)
    }

    /// The next write stores its first `kept` bytes, then fails (ENOSPC).
    pub(super) fn tear_next_append(&self, kept: usize) {
        self.control().tear_next_append = Some(kept);
    }

    pub(super) fn syncs(&self) -> usize {
        self.control().syncs
    }

    pub(super) fn mem(&self) -> &MemDisk {
        &self.inner
    }
}

impl LogDisk for TestDisk {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        self.inner.read_all()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let tear = self.control().tear_next_append.take();
        match tear {
            Some(kept) => {
                self.inner.append(&bytes[..kept.min(bytes.len())])?;
                Err(std::io::Error::other("no space left on device"))
            }
            None => self.inner.append(bytes),
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let hold = self.control().hold.take();
        if let Some((entered, released)) = hold {
            let _ = entered.send(());
            released
                .recv_timeout(HOLD_GUARD)
                .map_err(|_| std::io::Error::other("the held fsync was never released"))?;
        }
        self.inner.sync()?;
        self.control().syncs += 1;
        Ok(())
    }

    fn truncate(&mut self, length: u64) -> std::io::Result<()> {
        self.inner.truncate(length)
    }

    fn replace(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.replace(bytes)
    }
}

/// Episode 23. On a single-threaded runtime, an append held in its
/// `fsync` does not stop a reader: the read is served at once, and does
/// not see the event yet — it is visible only once durable.
#[tokio::test]
async fn event_sourcing_embedded_fsync_does_not_block_the_runtime() {
    let disk = TestDisk::default();
    let store = EmbeddedStore::open(disk.clone()).expect("opens");
    let (started, release) = disk.hold_next_sync();
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            let events = vec![deposit(1)];
            store.append(&name("a"), ExpectedVersion::Any, events).await
        })
    };
    started.await.expect("the append reaches its fsync");
    assert_eq!(store.head().await.expect("reads"), Position::START);
    let read = store.read_all(Position::START, 10).await.expect("reads");
    assert!(read.is_empty(), "visible before its fsync: {read:?}");
    let _ = release.send(());
    let appended = appender.await.expect("joins").expect("appends");
    assert_eq!(appended.last_position, Position(1));
    assert_eq!(store.head().await.expect("reads"), Position(1));
}

/// Episode 23. Group commit: four appends that queue up behind a held
/// `fsync` are committed with one more. The writer checks them in order,
/// against each other too: of two `Exact(1)` appends exactly one wins,
/// and the `Exact(2)` behind it wins as well.
#[tokio::test]
async fn event_sourcing_embedded_group_commit_decides_in_order() {
    let disk = TestDisk::default();
    let store = EmbeddedStore::open(disk.clone()).expect("opens");
    let (started, release) = disk.hold_next_sync();
    let spawn = |stream: &str, expected: ExpectedVersion, amount: u64| {
        let (store, stream) = (store.clone(), name(stream));
        tokio::spawn(async move {
            let events = vec![deposit(amount)];
            store.append(&stream, expected, events).await
        })
    };
    let first = spawn("s", ExpectedVersion::Exact(Version::NONE), 1);
    started.await.expect("the first append reaches its fsync");
    let racers = [
        spawn("s", ExpectedVersion::Exact(Version(1)), 2),
        spawn("s", ExpectedVersion::Exact(Version(1)), 3),
        spawn("s", ExpectedVersion::Exact(Version(2)), 4),
        spawn("t", ExpectedVersion::Any, 5),
    ];
    for _ in 0..1000 {
        if store.queued_writes() == racers.len() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.queued_writes(), racers.len());
    let _ = release.send(());

    let first = first.await.expect("joins").expect("appends");
    let mut positions = vec![first.first_position.0];
    let mut results = Vec::new();
    for racer in racers {
        results.push(racer.await.expect("joins"));
    }
    let [b, c, d, e] = <[_; 4]>::try_from(results).expect("four results");
    let (won, lost) = match (b, c) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("exactly one Exact(1) append must win: {other:?}"),
    };
    assert!(
        matches!(lost, StoreError::WrongExpectedVersion { .. }),
        "{lost:?}"
    );
    let d = d.expect("Exact(2) behind the winner appends");
    let e = e.expect("another stream appends");
    assert_eq!(
        (won.first_version, d.first_version),
        (Version(2), Version(3))
    );
    positions.extend([won.first_position.0, d.first_position.0, e.first_position.0]);
    positions.sort_unstable();
    assert_eq!(positions, vec![1, 2, 3, 4]);
    assert_eq!(
        disk.syncs(),
        2,
        "one fsync for the held append, one for the rest"
    );
    let stored = store.read_all(Position::START, 10).await.expect("reads");
    assert_eq!(stored.len(), 4);
    assert_eq!(
        store.stream_version(&name("s")).await.expect("reads"),
        Version(3)
    );
}

/// Episode 23. A write that fills the disk halfway fails the append with
/// `Storage`, and the store refuses every later write rather than burying
/// the torn bytes under good records; reopening cuts them off and keeps
/// everything acknowledged, and positions continue without reuse.
#[tokio::test]
async fn event_sourcing_embedded_failed_write_stops_writes_until_reopen() {
    let disk = TestDisk::default();
    let account = name("acct");
    let store = EmbeddedStore::open(disk.clone()).expect("opens");
    store
        .append(&account, ExpectedVersion::Any, vec![deposit(1)])
        .await
        .expect("appends");
    disk.tear_next_append(5);
    let torn = store
        .append(&account, ExpectedVersion::Any, vec![deposit(2)])
        .await
        .expect_err("the disk is full");
    assert!(matches!(torn, StoreError::Storage { .. }), "{torn:?}");
    let refused = store
        .append(&account, ExpectedVersion::Any, vec![deposit(3)])
        .await
        .expect_err("writes stop after a failed one");
    assert!(matches!(refused, StoreError::Storage { .. }), "{refused:?}");
    drop(store);

    let store = EmbeddedStore::open(disk.mem().clone()).expect("reopens");
    let events = store.read_all(Position::START, 10).await.expect("reads");
    assert_eq!(events.len(), 1);
    let appended = store
        .append(
            &account,
            ExpectedVersion::Exact(Version(1)),
            vec![deposit(4)],
        )
        .await
        .expect("appends after reopening");
    assert_eq!(appended.first_position, Position(2));
}

/// Episode 23. Saving snapshots over and over does not grow the log
/// without bound: superseded ones count against the bound until the log
/// is compacted, which keeps every event (same versions and positions)
/// and each stream's latest snapshot — also after a reopen.
#[tokio::test]
async fn event_sourcing_embedded_superseded_snapshots_are_compacted_away() {
    let disk = MemDisk::new();
    let (odd, even) = (name("odd"), name("even"));
    let store = EmbeddedStore::with_max_bytes(disk.clone(), 4096).expect("opens");
    for amount in 1..=6 {
        let stream = if amount % 2 == 0 { &even } else { &odd };
        store
            .append(stream, ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    let before = store.read_all(Position::START, 100).await.expect("reads");
    let snapshot = |byte: u8| Snapshot {
        version: Version(2),
        schema_version: 1,
        state: vec![byte; 300],
    };
    let mut largest = 0;
    for round in 0..100u8 {
        for stream in [&odd, &even] {
            store
                .save_snapshot(stream, snapshot(round))
                .await
                .expect("compaction makes room");
        }
        largest = largest.max(disk.len());
    }
    assert!(largest <= 4096, "the log reached {largest} bytes");
    drop(store);

    let store = EmbeddedStore::open(disk).expect("reopens");
    assert_eq!(
        store.read_all(Position::START, 100).await.expect("reads"),
        before
    );
    for stream in [&odd, &even] {
        let latest = store.load_snapshot(stream).await.expect("loads");
        assert_eq!(latest, Some(snapshot(99)));
    }
    let appended = store
        .append(&odd, ExpectedVersion::Exact(Version(3)), vec![deposit(7)])
        .await
        .expect("appends after compaction");
    assert_eq!(appended.first_position, Position(7));
}
