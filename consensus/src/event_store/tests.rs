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

use replication::event_sourcing::suite;

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

/// A fresh store per suite case: its own prefix on the same cluster.
fn fresh_stores(first: usize) -> impl FnMut() -> std::future::Ready<EtcdEventStore> {
    let mut case = 0;
    move || {
        case += 1;
        std::future::ready(store_on(first, &format!("/suite-{case}/")))
    }
}

/// Episode 23. `replication`'s backend suite, every case, against a
/// three-member Raft KV in simulation: the etcd-API backend keeps the
/// same contract as the embedded one.
#[test]
fn event_store_raft_kv_passes_the_backend_suite() {
    for seed in seeds_or(1) {
        let mut cluster = Cluster::new(seed, &fast_options());
        let leader = cluster.await_leader(Duration::from_secs(5)).ok().flatten();
        assert!(leader.is_some(), "seed {seed}: no leader");
        // Through a follower: writes are forwarded to the leader.
        let first = leader.map_or(1, |l| l % NODES + 1);
        cluster.script("suite", async move {
            suite::run_all(fresh_stores(first)).await?;
            Ok(())
        });
        if let Err(err) = cluster.finish(Duration::from_secs(600)) {
            panic!("seed {seed}: {err}\nreplay with DSLAB_SEED={seed} DSLAB_SEEDS=1");
        }
    }
}

/// Episode 23 (on 13). The suite's concurrent-appenders case while the
/// leader crashes mid-append and returns: `Unavailable` answers are
/// "outcome unknown", and still no version has two winners, no event is
/// lost or doubled.
#[test]
fn event_store_raft_kv_suite_holds_through_leader_failover() {
    for seed in seeds_or(2) {
        let run = || -> observability::sim::SimResult {
            let mut cluster = Cluster::new(seed, &fast_options());
            let leader = cluster
                .await_leader(Duration::from_secs(5))?
                .ok_or("no leader")?;
            let node = cluster.node(leader).ok_or("the leader is not running")?;
            let start = node.read_state(|state| state.mvcc.revision());
            cluster.script("suite", async move {
                let store = std::sync::Arc::new(store_on(leader, "/failover/"));
                suite::concurrent_appenders_one_winner_per_version(store).await?;
                Ok(())
            });
            // Mid-append: a few appends are in, most are still to come.
            cluster
                .run_until(Duration::from_secs(30), |_| {
                    node.read_state(|state| state.mvcc.revision()) >= start + 4
                })?
                .ok_or("the appends never started")?;
            cluster.crash(leader);
            cluster.run_for(Duration::from_secs(2))?;
            cluster.restart(leader)?;
            cluster.finish(Duration::from_secs(600))
        };
        if let Err(err) = run() {
            panic!("seed {seed}: {err}\nreplay with DSLAB_SEED={seed} DSLAB_SEEDS=1");
        }
    }
}

/// One etcd member (Debian's `etcd-server`) on free loopback ports, in a
/// temporary directory; killed on drop.
struct RealEtcd {
    child: std::process::Child,
    client: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("bound").to_string()
}

impl RealEtcd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (client, peer) = (free_address(), free_address());
        let child = std::process::Command::new("etcd")
            .args(["--name", "e1", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &format!("http://{client}")])
            .args(["--advertise-client-urls", &format!("http://{client}")])
            .args(["--listen-peer-urls", &format!("http://{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
            .args(["--initial-cluster", &format!("e1=http://{peer}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd runs (apt-get install etcd-server)");
        Self {
            child,
            client,
            _dir: dir,
        }
    }
}

/// The backend suite against a real etcd 3.4: the same keys, Txns and
/// watches work on etcd itself. Needs Debian's `etcd-server`; `.ci/run`
/// installs it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs etcd; run by .ci/run"]
async fn interop_etcd_event_store_passes_the_backend_suite_on_real_etcd() {
    use observability::rpc::Net;
    let etcd = RealEtcd::start();
    let addresses = vec![etcd.client.clone()];
    let probe = EtcdEventStore::connect(Net::Tcp, &addresses, "/probe/").expect("dials");
    let mut ready = false;
    for _ in 0..100 {
        if probe.head().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "etcd did not answer");
    let mut case = 0;
    let result = suite::run_all(|| {
        case += 1;
        let store = EtcdEventStore::connect(Net::Tcp, &addresses, &format!("/suite-{case}/"))
            .expect("dials");
        std::future::ready(store)
    })
    .await;
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
