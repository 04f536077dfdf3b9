use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::{Code, Status};

use super::*;

/// The batches the downstream received, in the order it received them.
type Log = Arc<Mutex<Vec<Vec<u32>>>>;

/// A batcher whose downstream records each batch and doubles each item.
fn recording(config: BatchConfig) -> (Batcher<u32, u32>, Log) {
    let log = Log::default();
    let seen = log.clone();
    let batcher = Batcher::spawn(config, move |items: Vec<u32>| {
        seen.lock().expect("test lock").push(items.clone());
        async move { Ok(items.into_iter().map(|i| i * 2).collect()) }
    })
    .expect("valid config");
    (batcher, log)
}

fn batches(log: &Log) -> Vec<Vec<u32>> {
    log.lock().expect("test lock").clone()
}

/// Episode 5. A batch that fills up leaves at once: no item waits for the
/// linger (tokio's clock is paused; no time passes).
#[tokio::test(start_paused = true)]
async fn batching_flushes_when_the_batch_is_full() {
    let (batcher, log) = recording(BatchConfig::new(4, MAX_LINGER));
    let start = Instant::now();
    let pending: Vec<_> = (1..=4)
        .map(|i| batcher.enqueue(i).expect("room in the queue"))
        .collect();
    for (i, item) in (1..=4).zip(pending) {
        assert_eq!(item.await.expect("stored"), i * 2);
    }
    assert_eq!(Instant::now(), start, "no item waited for the linger");
    assert_eq!(batches(&log), vec![vec![1, 2, 3, 4]]);
}

/// Episode 5. A batch that does not fill leaves when the linger runs out,
/// and not before.
#[tokio::test(start_paused = true)]
async fn batching_flushes_after_the_linger() {
    let linger = Duration::from_millis(5);
    let (batcher, log) = recording(BatchConfig::new(100, linger));
    let start = Instant::now();
    let pending: Vec<_> = (1..=3).map(|i| batcher.enqueue(i).expect("room")).collect();
    tokio::time::sleep(linger / 2).await;
    assert!(batches(&log).is_empty(), "nothing sent before the linger");
    for item in pending {
        item.await.expect("stored");
    }
    let waited = Instant::now() - start;
    assert!(waited >= linger && waited < linger * 2, "{waited:?}");
    assert_eq!(batches(&log), vec![vec![1, 2, 3]]);
}

/// Episode 5. With a zero linger the batcher sends whatever is queued the
/// moment it can: items enqueued together still travel together.
#[tokio::test(start_paused = true)]
async fn batching_zero_linger_sends_what_is_queued() {
    let (batcher, log) = recording(BatchConfig::new(8, Duration::ZERO));
    let pending: Vec<_> = (0..5).map(|i| batcher.enqueue(i).expect("room")).collect();
    for item in pending {
        item.await.expect("stored");
    }
    assert_eq!(batches(&log), vec![vec![0, 1, 2, 3, 4]]);
}

/// Items reach the downstream, and their results reach their callers, in
/// the order they were enqueued, across many batches.
#[tokio::test(start_paused = true)]
async fn batching_preserves_order() {
    let mut config = BatchConfig::new(8, Duration::from_millis(1));
    config.in_flight = 4;
    let (batcher, log) = recording(config);
    let pending: Vec<_> = (0..100)
        .map(|i| batcher.enqueue(i).expect("room"))
        .collect();
    for (i, item) in (0..100).zip(pending) {
        assert_eq!(item.await.expect("stored"), i * 2, "item {i}'s own result");
    }
    let sent = batches(&log);
    assert!(sent.iter().all(|b| b.len() <= 8), "{sent:?}");
    assert_eq!(sent.concat(), (0..100).collect::<Vec<_>>());
}

/// Bounds: while the downstream is stuck, the queue fills and the next
/// item is refused at once with `ResourceExhausted`; the accepted ones
/// still complete once it recovers.
#[tokio::test(start_paused = true)]
async fn batching_full_queue_refuses_with_resource_exhausted() {
    let entered = Arc::new(Notify::new());
    // Closed until the test adds a permit; each call returns the permit,
    // so one permit then lets every call through.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (e, r) = (entered.clone(), release.clone());
    let mut config = BatchConfig::new(1, Duration::ZERO);
    config.queue = 2;
    let batcher = Batcher::spawn(config, move |items: Vec<u32>| {
        let (e, r) = (e.clone(), r.clone());
        async move {
            e.notify_one();
            let _pass = r.acquire().await;
            Ok(items)
        }
    })
    .expect("valid config");
    let first = batcher.enqueue(1).expect("room");
    entered.notified().await;
    // The worker holds item 1 downstream; its one slot is taken, so the
    // queue's two places are all that is left.
    let queued = [
        batcher.enqueue(2).expect("room"),
        batcher.enqueue(3).expect("room"),
    ];
    let refused = batcher.enqueue(4).expect_err("the queue is full");
    assert!(matches!(refused, BatchError::QueueFull { capacity: 2 }));
    assert_eq!(Status::from(refused).code(), Code::ResourceExhausted);
    release.add_permits(1);
    assert_eq!(first.await.expect("stored"), 1);
    for (item, expected) in queued.into_iter().zip([2, 3]) {
        assert_eq!(item.await.expect("stored"), expected);
    }
}

/// A failed downstream call fails every item of its batch with the same
/// status; a downstream that miscounts its results is an internal error.
#[tokio::test(start_paused = true)]
async fn batching_downstream_errors_reach_every_item() {
    let failing = Batcher::spawn(BatchConfig::new(2, Duration::ZERO), |_: Vec<u32>| async {
        Err::<Vec<u32>, _>(Status::unavailable("down"))
    })
    .expect("valid");
    let pending = [
        failing.enqueue(1).expect("room"),
        failing.enqueue(2).expect("room"),
    ];
    for item in pending {
        let status = Status::from(item.await.expect_err("downstream failed"));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "down");
    }
    let miscounting = Batcher::spawn(BatchConfig::new(2, Duration::ZERO), |_: Vec<u32>| async {
        Ok(vec![1])
    })
    .expect("valid");
    let pending = [
        miscounting.enqueue(1).expect("room"),
        miscounting.enqueue(2).expect("room"),
    ];
    for item in pending {
        let err = item.await.expect_err("one result for two items");
        assert!(
            matches!(err, BatchError::ResultCount { sent: 2, got: 1 }),
            "{err}"
        );
        assert_eq!(Status::from(err).code(), Code::Internal);
    }
}

/// Bad configuration is refused before anything starts.
#[tokio::test]
async fn batching_bad_config_is_refused() {
    let spawn = |config: BatchConfig| {
        Batcher::<u32, u32>::spawn(config, |items: Vec<u32>| async move { Ok(items) }).is_err()
    };
    assert!(spawn(BatchConfig::new(0, Duration::ZERO)));
    assert!(spawn(BatchConfig::new(MAX_BATCH + 1, Duration::ZERO)));
    assert!(spawn(BatchConfig::new(
        8,
        MAX_LINGER + Duration::from_millis(1)
    )));
    let mut no_queue = BatchConfig::new(8, Duration::ZERO);
    no_queue.queue = 0;
    assert!(spawn(no_queue));
    let mut no_slots = BatchConfig::new(8, Duration::ZERO);
    no_slots.in_flight = 0;
    assert!(spawn(no_slots));
}

/// `BatchStore` numbers a batch's items consecutively, in request order,
/// and refuses an oversized batch with `InvalidArgument`.
#[test]
fn batching_store_numbers_items_in_order_and_bounds_batches() {
    let store = BatchStore::new();
    let reply = store
        .store(&[b"a".to_vec(), b"bc".to_vec()])
        .expect("stored");
    assert_eq!(reply.sequence, vec![0, 1]);
    let reply = store.store(&[b"d".to_vec()]).expect("stored");
    assert_eq!(reply.sequence, vec![2]);
    assert_eq!((store.stored(), store.bytes()), (3, 4));
    let flood = vec![Vec::new(); MAX_BATCH + 1];
    let status = store.store(&flood).expect_err("too many items");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(store.stored(), 3, "nothing of a refused batch is stored");
}

/// The hostile client against `BatchStore` on loopback: malformed, empty,
/// oversized and random requests each get a precise status, and the store
/// still stores afterwards.
#[tokio::test]
async fn fuzz_batch_store_answers_precisely() {
    use observability::rpc::{ClientBuilder, Net, RpcServer};

    use super::service::proto::batch_store_client::BatchStoreClient;
    use super::service::proto::{FILE_DESCRIPTOR_SET, StoreRequest};
    use crate::test_support::fuzz_on_loopback;

    let (server, _report) = fuzz_on_loopback(
        RpcServer::new().add_service(BatchStore::new().into_service(), FILE_DESCRIPTOR_SET),
        FILE_DESCRIPTOR_SET,
        "patterns.batching.v1.BatchStore",
    )
    .await;
    let mut client = BatchStoreClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let reply = client
        .store(StoreRequest {
            items: vec![b"after".to_vec()],
        })
        .await
        .expect("still storing");
    assert_eq!(reply.into_inner().sequence.len(), 1);
}
