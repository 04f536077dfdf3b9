//! The etcd-API event store on a simulated three-member Raft KV:
//! concurrent appenders and a subscriber while the leader crashes, and
//! `replication`'s backend suite; plus, `#[ignore]`d, the same suite
//! against a real etcd.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use replication::event_sourcing::{
    Appended, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError,
    StreamName, Version,
};

use super::EtcdEventStore;
use crate::raft::Timing;
use crate::raft::tests::{Cluster, Options, channel, seeds_or, shared};

const NODES: usize = 3;
const WRITERS: usize = 3;
const EVENTS_PER_WRITER: usize = 8;

/// Elections in a few hundred milliseconds, so a failover fits a short run.
pub(crate) fn fast_options() -> Options {
    let mut options = Options::new(NODES);
    options.timing = Timing {
        tick: Duration::from_millis(20),
        election_ticks: 10,
        heartbeat_ticks: 1,
        request_timeout: Duration::from_secs(2),
    };
    options
}

/// A store on every member, starting with member `first`.
pub(crate) fn store_on(first: usize, prefix: &str) -> EtcdEventStore {
    let channels = (0..NODES)
        .map(|i| channel((first - 1 + i) % NODES + 1))
        .collect();
    EtcdEventStore::new(channels, prefix).expect("three channels")
}

fn stream() -> StreamName {
    StreamName::new("account-1").expect("a valid name")
}

/// What one writer was told about one of its events.
#[derive(Clone, Debug)]
struct Outcome {
    tag: String,
    /// `None`: the store could not say (the event may or may not be in).
    appended: Option<Appended>,
}

/// Appends `EVENTS_PER_WRITER` events as writer `w`, each by the
/// read-decide-append loop: read the version, append expecting it, and on
/// a conflict read again.
async fn writer(w: usize, store: EtcdEventStore, acked: Rc<Cell<usize>>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for n in 0..EVENTS_PER_WRITER {
        let tag = format!("w{w}-{n}");
        let event =
            NewEvent::json("Tagged", 1, &serde_json::json!({ "tag": tag })).expect("serializes");
        let mut appended = None;
        for _ in 0..40 {
            let version = match store.stream_version(&stream()).await {
                Ok(version) => version,
                Err(_) => continue,
            };
            match store
                .append(
                    &stream(),
                    ExpectedVersion::Exact(version),
                    vec![event.clone()],
                )
                .await
            {
                Ok(done) => {
                    acked.set(acked.get() + 1);
                    appended = Some(done);
                    break;
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {}
                // Unavailable: the outcome is unknown, and this writer
                // stops retrying this event (a retry could add it twice).
                Err(_) => break,
            }
        }
        outcomes.push(Outcome { tag, appended });
    }
    outcomes
}

fn tag_of(event: &RecordedEvent) -> String {
    event
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["tag"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One seeded run; returns the stream as read at the end, what the
/// writers were told and what the subscriber received.
fn failover_run(seed: u64) -> observability::sim::SimResult {
    let mut cluster = Cluster::new(seed, &fast_options());
    let leader = cluster
        .await_leader(Duration::from_secs(5))?
        .ok_or("no leader")?;
    let (outcomes, told) = shared::<Vec<Outcome>>();
    let writers_done = Rc::new(Cell::new(false));
    let done = writers_done.clone();
    let acked = Rc::new(Cell::new(0));
    let counted = acked.clone();
    cluster.script("writers", async move {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store_on(w % NODES + 1, "/es/");
                tokio::task::spawn_local(writer(w, store, counted.clone()))
            })
            .collect();
        for task in tasks {
            let finished = task.await?;
            outcomes.borrow_mut().extend(finished);
        }
        done.set(true);
        Ok(())
    });
    let (received, delivered) = shared::<Vec<RecordedEvent>>();
    let (final_stream, stored) = shared::<Vec<RecordedEvent>>();
    cluster.script("subscriber", async move {
        let store = store_on(leader % NODES + 1, "/es/");
        let mut subscription = store.subscribe(Position::START).await?;
        let mut target = None;
        loop {
            if target.is_none() && writers_done.get() {
                let events = store.read_stream(&stream(), Version::NONE, 1000).await?;
                target = Some(events.len());
                *final_stream.borrow_mut() = events;
            }
            if target.is_some_and(|t| received.borrow().len() >= t) {
                return Ok(());
            }
            if let Ok(next) =
                tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
            {
                received
                    .borrow_mut()
                    .push(next.ok_or("the subscription ended")??);
            }
        }
    });
    // The leader crashes while the appends are under way, and returns.
    cluster
        .run_until(Duration::from_secs(30), |_| acked.get() >= WRITERS * 2)?
        .ok_or("the first appends never completed")?;
    cluster.crash(leader);
    cluster.run_for(Duration::from_secs(3))?;
    cluster.restart(leader)?;
    cluster.finish(Duration::from_secs(300))?;

    let stored = stored.borrow();
    // Dense versions: 1, 2, 3… with no gap and no repeat.
    let versions: Vec<u64> = stored.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, (1..=stored.len() as u64).collect::<Vec<_>>());
    // No event twice, acknowledged or not.
    let tags: Vec<String> = stored.iter().map(tag_of).collect();
    let unique: BTreeSet<&String> = tags.iter().collect();
    assert_eq!(
        unique.len(),
        tags.len(),
        "an event was appended twice: {tags:?}"
    );
    // Every acknowledged event is there, at the version it was told, and
    // no two writers were told they won the same version.
    let told = told.borrow();
    let mut won = BTreeSet::new();
    for outcome in told.iter() {
        let Some(appended) = outcome.appended else {
            continue;
        };
        assert!(
            won.insert(appended.first_version),
            "two winners of {:?}",
            appended.first_version
        );
        let at = stored
            .get(appended.first_version.0 as usize - 1)
            .ok_or("an acknowledged version is missing")?;
        assert_eq!(tag_of(at), outcome.tag, "lost acknowledged event");
        assert_eq!(at.position, appended.first_position);
    }
    assert!(
        won.len() >= WRITERS,
        "too few appends were acknowledged: {}",
        won.len()
    );
    // The subscriber saw exactly the stream, once each, in order.
    assert_eq!(*delivered.borrow(), *stored);
    let positions: Vec<Position> = stored.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]));
    Ok(())
}

/// Episode 23 (on 13). Three writers append to one stream through a
/// three-member Raft KV, read-decide-append with the expected version,
/// while the leader crashes mid-append and comes back. Every version has
/// exactly one event and one winner; every acknowledged event is at its
/// version; none is there twice (the retry recognises its own events); a
/// subscriber following the store through the failover receives the
/// stream exactly once, in order.
#[test]
fn event_store_raft_kv_failover_keeps_one_winner_per_version() {
    for seed in seeds_or(2) {
        if let Err(err) = failover_run(seed) {
            panic!("seed {seed}: {err}\nreplay with DSLAB_SEED={seed} DSLAB_SEEDS=1");
        }
    }
}
