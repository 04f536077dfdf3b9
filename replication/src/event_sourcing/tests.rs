//! The embedded backend: the generic suite, then what only a durable
//! local store can show — crashes, torn writes, its memory bound.

use serde_json::json;

use super::suite;
use super::*;
use crate::log::{FileDisk, MemDisk};

pub(super) fn name(text: &str) -> StreamName {
    StreamName::new(text).expect("test names are valid")
}

pub(super) fn deposit(amount: u64) -> NewEvent {
    NewEvent::json("Deposited", 1, &json!({ "amount": amount })).expect("serializes")
}

async fn everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store
        .read_all(Position::START, MAX_READ_EVENTS)
        .await
        .expect("reads")
}

/// Episode 23. Every case of the backend suite on the embedded store,
/// on a multi-threaded runtime so appenders truly race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_sourcing_embedded_passes_the_backend_suite() {
    let result = suite::run_all(|| async {
        EmbeddedStore::open(MemDisk::new()).expect("an empty disk opens")
    })
    .await;
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Episode 23. The same suite on a real file, single-threaded.
#[tokio::test]
async fn event_sourcing_embedded_on_a_file_passes_the_backend_suite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut run = 0;
    let result = suite::run_all(|| {
        run += 1;
        let path = dir.path().join(format!("events-{run}.log"));
        async move { EmbeddedStore::open(FileDisk::open(path).expect("opens")).expect("opens") }
    })
    .await;
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Episode 23. Appends, a crash (unsynced bytes lost), a reopen: every
/// acknowledged event and snapshot is back at its version and position,
/// and appends continue where they stopped.
#[tokio::test]
async fn event_sourcing_embedded_reopen_after_crash_keeps_acknowledged_events() {
    let disk = MemDisk::new();
    let account = name("account-1");
    let store = EmbeddedStore::open(disk.clone()).expect("opens");
    for amount in 1..=5 {
        store
            .append(&account, ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    let snapshot = Snapshot {
        version: Version(4),
        schema_version: 1,
        state: b"10".to_vec(),
    };
    store
        .save_snapshot(&account, snapshot.clone())
        .await
        .expect("saves");
    let before = everything(&store).await;
    drop(store);
    disk.crash();

    let store = EmbeddedStore::open(disk.clone()).expect("reopens");
    assert_eq!(everything(&store).await, before);
    assert_eq!(
        store.load_snapshot(&account).await.expect("loads"),
        Some(snapshot)
    );
    let appended = store
        .append(
            &account,
            ExpectedVersion::Exact(Version(5)),
            vec![deposit(6)],
        )
        .await
        .expect("continues at v5");
    assert_eq!(
        (appended.first_version, appended.first_position),
        (Version(6), Position(6))
    );
}

/// Episode 23. A crash tears the last append (a batch of three) midway,
/// at every possible byte: reopening cuts it off whole — never half a
/// batch — and keeps everything acknowledged before it.
#[tokio::test]
async fn event_sourcing_embedded_torn_batch_is_all_or_nothing() {
    let account = name("account-2");
    let disk = MemDisk::new();
    let store = EmbeddedStore::open(disk.clone()).expect("opens");
    store
        .append(&account, ExpectedVersion::Any, vec![deposit(1)])
        .await
        .expect("appends");
    let acknowledged = everything(&store).await;
    let before = disk.len();
    let batch = vec![deposit(2), deposit(3), deposit(4)];
    store
        .append(&account, ExpectedVersion::Any, batch)
        .await
        .expect("appends");
    let bytes = crate::log::LogDisk::read_all(&mut disk.clone()).expect("reads");
    drop(store);

    // Replay the disk as a crash would have left it, for every cut point
    // inside the batch's record.
    for cut in before..bytes.len() {
        let mut torn = MemDisk::new();
        crate::log::LogDisk::append(&mut torn, &bytes[..cut]).expect("writes");
        crate::log::LogDisk::sync(&mut torn).expect("syncs");
        let store = EmbeddedStore::open(torn).expect("a torn tail is cut, not refused");
        assert_eq!(everything(&store).await, acknowledged, "cut at byte {cut}");
        let version = store.stream_version(&account).await.expect("reads");
        assert_eq!(version, Version(1), "cut at byte {cut}");
    }
}

/// Episode 23. The memory bound: an append that would pass it is refused
/// with `StoreFull` (ResourceExhausted) and writes nothing.
#[tokio::test]
async fn event_sourcing_embedded_full_store_refuses_appends() {
    let account = name("account-3");
    let store = EmbeddedStore::with_max_bytes(MemDisk::new(), 1024).expect("opens");
    let mut appended = 0;
    let refused = loop {
        match store
            .append(&account, ExpectedVersion::Any, vec![deposit(appended)])
            .await
        {
            Ok(_) => appended += 1,
            Err(err) => break err,
        }
        assert!(appended < 100, "a 1 KiB store took {appended} events");
    };
    assert!(
        matches!(refused, StoreError::StoreFull { .. }),
        "{refused:?}"
    );
    assert_eq!(
        tonic::Status::from(refused).code(),
        tonic::Code::ResourceExhausted
    );
    assert_eq!(
        store.stream_version(&account).await.expect("reads"),
        Version(appended)
    );
    assert_eq!(everything(&store).await.len() as u64, appended);
}

/// Episode 23. Each error carries the gRPC code a client acts on.
#[test]
fn event_sourcing_errors_map_to_precise_grpc_codes() {
    use tonic::Code;
    let stream = name("s");
    let cases = [
        (
            StoreError::WrongExpectedVersion {
                stream: stream.clone(),
                expected: Version(1),
                actual: Version(2),
            },
            Code::Aborted,
        ),
        (
            StoreError::VersionAhead {
                stream: stream.clone(),
                requested: Version(9),
                current: Version(2),
            },
            Code::OutOfRange,
        ),
        (StoreError::StreamNotFound { stream }, Code::NotFound),
        (
            StoreError::TooManyEvents { count: 65, max: 64 },
            Code::InvalidArgument,
        ),
        (
            StoreError::BatchTooLarge { bytes: 1, max: 0 },
            Code::InvalidArgument,
        ),
        (
            StoreError::MalformedEvent {
                index: 0,
                reason: String::new(),
            },
            Code::InvalidArgument,
        ),
        (
            StoreError::StoreFull {
                what: String::new(),
            },
            Code::ResourceExhausted,
        ),
        (
            StoreError::Unavailable {
                reason: String::new(),
            },
            Code::Unavailable,
        ),
        (
            StoreError::Storage {
                reason: String::new(),
            },
            Code::Internal,
        ),
    ];
    for (err, code) in cases {
        assert_eq!(tonic::Status::from(err.clone()).code(), code, "{err}");
    }
}

/// Episode 23. Positions built from etcd-style revisions increase with
/// (revision, index in batch) and refuse an index outside a batch.
#[test]
fn event_sourcing_positions_from_revisions_increase() {
    let a = Position::from_revision(7, MAX_EVENTS_PER_APPEND - 1).expect("fits");
    let b = Position::from_revision(8, 0).expect("fits");
    assert!(a < b);
    assert_eq!(Position::from_revision(8, MAX_EVENTS_PER_APPEND), None);
    assert_eq!(Position::from_revision(u64::MAX, 0), None);
}

/// A broken backend: it checks the expected version, then appends
/// unconditionally — check-then-act instead of compare-and-set.
struct CheckThenAppend<S>(S);

impl<S: EventStore> EventStore for CheckThenAppend<S> {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended> {
        let current = self.0.stream_version(stream).await?;
        check_expected_version(stream, expected, current)?;
        // The window: another appender passes the same check here.
        tokio::task::yield_now().await;
        self.0.append(stream, ExpectedVersion::Any, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.0.read_stream(stream, after, max).await
    }

    async fn read_all(&self, after: Position, max: usize) -> Result<Vec<RecordedEvent>> {
        self.0.read_all(after, max).await
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version> {
        self.0.stream_version(stream).await
    }

    async fn head(&self) -> Result<Position> {
        self.0.head().await
    }

    async fn subscribe(&self, after: Position) -> Result<Subscription> {
        self.0.subscribe(after).await
    }

    async fn save_snapshot(&self, stream: &StreamName, snapshot: Snapshot) -> Result<()> {
        self.0.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>> {
        self.0.load_snapshot(stream).await
    }
}

/// Episode 23. The suite can fail: a backend that checks the version and
/// then appends, without making the two one atomic step, lets racing
/// appenders both win — and the suite's race case says so.
#[tokio::test]
async fn event_sourcing_suite_catches_check_then_append_backend() {
    let store = CheckThenAppend(EmbeddedStore::open(MemDisk::new()).expect("opens"));
    let failure = suite::racing_appenders_one_wins(std::sync::Arc::new(store))
        .await
        .expect_err("a check-then-act backend must fail the race");
    assert_eq!(failure.case, "racing_appenders_one_wins");
    let store = CheckThenAppend(EmbeddedStore::open(MemDisk::new()).expect("opens"));
    let failure = suite::concurrent_appenders_one_winner_per_version(std::sync::Arc::new(store))
        .await
        .expect_err("a check-then-act backend must fail the contention case");
    assert_eq!(failure.case, "concurrent_appenders_one_winner_per_version");
}

/// Episode 23. A subscriber that does not read holds at most
/// SUBSCRIPTION_BUFFER events — the feeder waits instead of buffering
/// more — and still receives every event, in order, once it reads.
#[tokio::test]
async fn event_sourcing_embedded_slow_subscriber_is_bounded_not_dropped() {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    let account = name("busy");
    let total = 3 * SUBSCRIPTION_BUFFER;
    for amount in 0..total as u64 {
        store
            .append(&account, ExpectedVersion::Any, vec![deposit(amount)])
            .await
            .expect("appends");
    }
    let mut subscription = store.subscribe(Position::START).await.expect("subscribes");
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(subscription.buffered(), SUBSCRIPTION_BUFFER);
    let mut positions = Vec::new();
    while positions.len() < total {
        let event = subscription.next().await.expect("open").expect("an event");
        positions.push(event.position.0);
    }
    assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>());
}

/// Episode 23. Dropping the store ends its subscriptions (`None`), so a
/// follower never waits forever on a store that is gone.
#[tokio::test]
async fn event_sourcing_embedded_subscription_ends_with_the_store() {
    let store = EmbeddedStore::open(MemDisk::new()).expect("opens");
    store
        .append(&name("s"), ExpectedVersion::Any, vec![deposit(1)])
        .await
        .expect("appends");
    let mut subscription = store.subscribe(Position::START).await.expect("subscribes");
    assert!(matches!(subscription.next().await, Some(Ok(_))));
    drop(store);
    assert!(subscription.next().await.is_none());
}
