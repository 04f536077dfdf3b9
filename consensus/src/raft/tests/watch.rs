//! Watches on a simulated cluster: every committed change under a prefix
//! delivered exactly once, in revision order, across the leader's crash
//! and the watcher's reconnects.

use std::time::Duration;

use observability::sim::SimResult;

use super::{Cluster, Options, channel, seeds_or, shared};
use crate::lock::recipe::prefix_end;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchRequest,
};

const PREFIX: &[u8] = b"/jobs/";
const WRITES: usize = 60;

/// One delivered event: (revision, key, was it a deletion).
type Seen = (i64, Vec<u8>, bool);

/// Watches `PREFIX` from revision 1, reconnecting to the next node with
/// `start_revision` = one past the last revision seen whenever a stream
/// breaks, until it has seen `until` events or `give_up` passes.
async fn watch_all(seen: &std::cell::RefCell<Vec<Seen>>, until: usize, give_up: Duration) {
    let started = tokio::time::Instant::now();
    let mut node = 2;
    while seen.borrow().len() < until && started.elapsed() < give_up {
        let next = seen.borrow().last().map_or(1, |(rev, _, _)| rev + 1);
        let (requests, inbox) = tokio::sync::mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: PREFIX.to_vec(),
                range_end: prefix_end(PREFIX),
                start_revision: next,
                ..WatchCreateRequest::default()
            })),
        };
        let _ = requests.send(create).await;
        let stream = WatchClient::new(channel(node))
            .watch(tokio_stream::wrappers::ReceiverStream::new(inbox))
            .await;
        if let Ok(stream) = stream {
            let mut stream = stream.into_inner();
            let mut created = false;
            // A silent stream (its node cut off) is abandoned after 2 s.
            while let Ok(Ok(Some(response))) =
                tokio::time::timeout(Duration::from_secs(2), stream.message()).await
            {
                if response.created {
                    assert!(!created, "created twice on one stream");
                    assert!(response.events.is_empty(), "events in the created message");
                    created = true;
                    continue;
                }
                assert!(created, "an event before the created message");
                for event in response.events {
                    let kv = event.kv.unwrap_or_default();
                    seen.borrow_mut()
                        .push((kv.mod_revision, kv.key, event.r#type == 1));
                }
                if seen.borrow().len() >= until {
                    return;
                }
            }
        }
        drop(requests);
        node = node % 3 + 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Episode 16 (and 13). A writer puts and deletes keys under a prefix
/// while the leader crashes and returns; a watcher that reconnects from
/// its last revision sees every committed change exactly once, in order.
#[test]
fn watch_delivers_every_change_once_in_order_across_failover() -> SimResult {
    for seed in seeds_or(3) {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let old = cluster
            .await_leader(Duration::from_secs(30))?
            .ok_or("no leader")?;
        cluster.script("writer", async move {
            for n in 0..WRITES {
                let key = [PREFIX, format!("{n:03}").as_bytes()].concat();
                for attempt in 0..50 {
                    let mut kv = super::client((n + attempt) % 3 + 1);
                    let done = if n % 5 == 4 {
                        // Every fifth change deletes the key before it.
                        let previous = [PREFIX, format!("{:03}", n - 1).as_bytes()].concat();
                        kv.delete_range(DeleteRangeRequest {
                            key: previous,
                            ..DeleteRangeRequest::default()
                        })
                        .await
                        .is_ok()
                    } else {
                        kv.put(PutRequest {
                            key: key.clone(),
                            value: vec![b'v'; 8],
                            ..PutRequest::default()
                        })
                        .await
                        .is_ok()
                    };
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        });
        let (watcher, seen) = shared::<Vec<Seen>>();
        cluster.script("watcher", async move {
            watch_all(&watcher, usize::MAX, Duration::from_secs(40)).await;
            Ok(())
        });
        cluster.run_for(Duration::from_secs(1))?;
        cluster.crash(old);
        cluster.run_for(Duration::from_secs(3))?;
        cluster.restart(old)?;
        cluster.finish(Duration::from_secs(120))?;
        assert!(
            cluster.converge(Duration::from_secs(10))?,
            "seed {seed}: replicas diverged"
        );

        // What the log committed under the prefix, from any replica.
        let node = cluster.node(1).ok_or("node 1 is down")?;
        let committed: Vec<Seen> = node.read_state(|state| {
            state
                .mvcc
                .changes_since(PREFIX, &prefix_end(PREFIX), (1, 0), usize::MAX, false)
                .into_iter()
                .map(|c| (c.version.mod_revision, c.key, c.version.is_tombstone()))
                .collect()
        });
        let seen = seen.borrow().clone();
        assert!(
            committed.len() >= WRITES,
            "seed {seed}: {} changes committed",
            committed.len()
        );
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0),
            "seed {seed}: events out of order or repeated"
        );
        assert_eq!(
            seen, committed,
            "seed {seed}: the watcher's events differ from the committed changes"
        );
    }
    Ok(())
}
