//! Quorum clusters in turmoil's simulated network: partitions, crashes
//! and message loss, histories checked by `consistency`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::sim::{self, Simulation, faults};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::placement::Placement;
use super::{
    LinkCuts, MessageFaults, QuorumClient, QuorumConfig, QuorumNode, QuorumSession, ReadRepair,
    Resolution, SharedStore,
};
use crate::clock::ReplicaId;
use crate::clock::physical::TokioClock;
use crate::consistency::recorder::{KvClient, Recorder};
use crate::consistency::session::check_sessions;
use crate::consistency::{Model, Verdict, check};
use crate::proto::FILE_DESCRIPTOR_SET;

/// How a simulated cluster runs.
#[derive(Clone, Copy, Debug)]
struct Setup {
    read_repair: ReadRepair,
    nodes: usize,
    n: usize,
    loss: f64,
    anti_entropy: bool,
    /// A node that answers peers this much late (a slow replica).
    slow: Option<(usize, Duration)>,
}

impl Setup {
    fn new(nodes: usize, n: usize) -> Self {
        Self {
            read_repair: ReadRepair::BeforeReply,
            nodes,
            n,
            loss: 0.0,
            anti_entropy: true,
            slow: None,
        }
    }
}

fn addresses(nodes: usize) -> BTreeMap<ReplicaId, String> {
    (1..=nodes)
        .map(|i| {
            (
                ReplicaId(i as u64),
                format!("{}:{}", sim::node(i), sim::PORT),
            )
        })
        .collect()
}

/// `setup.nodes` nodes on n1.. Each store is made outside its host, so it
/// survives a crash like a disk; the returned stores let a test look at
/// what a node holds.
fn cluster(seed: u64, setup: Setup) -> (Simulation<'static>, Vec<SharedStore>) {
    cluster_with_cuts(seed, setup, LinkCuts::default())
}

/// [`cluster`], with links cut at the message layer by `cuts`.
fn cluster_with_cuts(
    seed: u64,
    setup: Setup,
    cuts: LinkCuts,
) -> (Simulation<'static>, Vec<SharedStore>) {
    let mut sim = Simulation::builder(seed)
        .hosts(setup.nodes)
        .duration(Duration::from_secs(600))
        .build();
    let addresses = addresses(setup.nodes);
    let stores: Vec<SharedStore> = (0..setup.nodes).map(|_| SharedStore::new()).collect();
    for i in 1..=setup.nodes {
        let (addresses, store, cuts) = (addresses.clone(), stores[i - 1].clone(), cuts.clone());
        sim.host(&sim::node(i), move || {
            let (addresses, store, cuts) = (addresses.clone(), store.clone(), cuts.clone());
            async move {
                let mut config = QuorumConfig::new(ReplicaId(i as u64), addresses, Net::Sim);
                config.n = setup.n;
                config.peer_timeout = Duration::from_millis(300);
                config.handoff_interval = Duration::from_millis(100);
                config.anti_entropy_interval =
                    setup.anti_entropy.then_some(Duration::from_millis(500));
                config.faults = MessageFaults { drop: setup.loss };
                config.read_repair = setup.read_repair;
                config.cuts = cuts;
                config.seed = seed ^ (i as u64) << 8;
                // Every host's clock reads simulated time from one origin.
                config.clock = Arc::new(TokioClock::new(1_700_000_000_000_000_000, 0));
                config.incarnation = 1;
                if let Some((slow, delay)) = setup.slow
                    && slow == i
                {
                    config.peer_delay = delay;
                }
                let node = QuorumNode::start(config, store)?;
                RpcServer::new()
                    .add_service(node.into_service(), FILE_DESCRIPTOR_SET)
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
    }
    (sim, stores)
}

fn client(i: usize) -> QuorumClient {
    QuorumClient::new(
        ClientBuilder::new(Net::Sim)
            .default_deadline(Duration::from_secs(3))
            .connect_lazy(sim::uri(&sim::node(i))),
    )
}

fn seeds() -> Vec<u64> {
    // Six seeds by default; DSLAB_SEED / DSLAB_SEEDS pick others.
    if std::env::var_os("DSLAB_SEEDS").is_some() || std::env::var_os("DSLAB_SEED").is_some() {
        sim::seeds()
    } else {
        (1..=6).collect()
    }
}

fn run(sim: &mut Simulation<'_>, seed: u64, test: &str) {
    if let Err(err) = sim.run() {
        panic!(
            "seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p replication {test}"
        );
    }
}

/// Cuts the nodes into a random side and the rest (the client reaches all).
fn random_partition(rng: &mut SmallRng, nodes: usize) {
    heal_all(nodes);
    let side: Vec<usize> = (1..=nodes).filter(|_| rng.random_bool(0.3)).collect();
    for &a in &side {
        for b in (1..=nodes).filter(|b| !side.contains(b)) {
            faults::partition(&sim::node(a), &sim::node(b));
        }
    }
}

fn heal_all(nodes: usize) {
    for a in 1..=nodes {
        for b in a + 1..=nodes {
            faults::heal(&sim::node(a), &sim::node(b));
        }
    }
}

/// Episodes 14, 19. Five nodes, N = 3, R = W = 2 with sloppy quorum,
/// through random partitions, 5% of peer messages lost (requests or
/// replies), and a node crashing and restarting from its disk. Every
/// write goes to a fresh key through a random node. After healing and a
/// pause for handoff and anti-entropy, a quorum read of every key returns
/// the acknowledged value: no acknowledged write is lost.
#[test]
fn quorum_majority_reads_back_every_acknowledged_write() {
    for seed in seeds() {
        let mut setup = Setup::new(5, 3);
        setup.loss = 0.05;
        let (mut sim, _) = cluster(seed, setup);
        sim.client(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut acknowledged = BTreeMap::new();
            for step in 0..60 {
                if step % 15 == 0 {
                    random_partition(&mut rng, setup.nodes);
                }
                let key = format!("k{step}");
                let value = format!("v{step}-{seed}");
                let at = rng.random_range(1..=setup.nodes);
                if client(at)
                    .put(&key, value.as_bytes(), Vec::new(), 2, true)
                    .await
                    .is_ok()
                {
                    acknowledged.insert(key, value);
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
            }
            heal_all(setup.nodes);
            tokio::time::sleep(Duration::from_secs(8)).await;
            assert!(
                acknowledged.len() >= 20,
                "seed {seed}: too few writes acknowledged"
            );
            for (key, value) in &acknowledged {
                let mut read = None;
                for attempt in 0..5 {
                    let at = (attempt + key.len()) % setup.nodes + 1;
                    if let Ok(result) = client(at).get(key, 2, false, Resolution::Siblings).await {
                        read = Some(result.values);
                        break;
                    }
                }
                assert_eq!(
                    read,
                    Some(vec![value.as_bytes().to_vec()]),
                    "seed {seed}: acknowledged write of {key} not read back"
                );
            }
            Ok(())
        });
        // n3 crashes at 0.5 s and restarts at 1.5 s, keeping its disk.
        let mut crashed = false;
        let mut restarted = false;
        loop {
            match sim.step() {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => panic!(
                    "seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p replication quorum_majority_reads_back"
                ),
            }
            if !crashed && sim.elapsed() >= Duration::from_millis(500) {
                sim.crash("n3");
                crashed = true;
            }
            if crashed && !restarted && sim.elapsed() >= Duration::from_millis(1500) {
                sim.restart("n3");
                restarted = true;
            }
        }
    }
}

/// Three concurrent recorded sessions on three keys, through `node`s.
async fn recorded_workload(
    seed: u64,
    r: u32,
    w: u32,
    partitions: bool,
    nodes: usize,
) -> crate::consistency::History {
    let recorder = Recorder::new();
    let mut tasks = Vec::new();
    for session in 0..3u64 {
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed * 31 + session);
            let mut client = recorder.client(
                session,
                QuorumSession::new(
                    client(session as usize % nodes + 1),
                    r,
                    w,
                    false,
                    Resolution::LastWriterWins,
                ),
            );
            for step in 0..25 {
                if partitions && session == 0 && step % 8 == 0 {
                    // Isolate one node (or none) from the other nodes.
                    heal_all(nodes);
                    let cut = rng.random_range(0..=nodes);
                    for other in (1..=nodes).filter(|&other| other != cut && cut > 0) {
                        faults::partition(&sim::node(cut), &sim::node(other));
                    }
                }
                let key = format!("k{}", rng.random_range(0..3));
                if rng.random_bool(0.5) {
                    let _ = client.get(&key).await;
                } else {
                    let _ = client.put(&key, &format!("{session}.{step}")).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    recorder.history()
}

/// Episode 19. Three nodes, N = 3, R = W = 2, no sloppy quorum, 5% of
/// peer messages lost and one node at a time cut off from the others;
/// three clients read and write three keys concurrently (last writer
/// wins, stamps from the one simulated clock). The linearizability
/// checker must find every history linearizable: R + W > N with blocking
/// read repair (2R > N) behaves as one copy per key.
#[test]
fn quorum_majority_histories_are_linearizable_without_sloppy_quorum() {
    for seed in seeds() {
        let mut setup = Setup::new(3, 3);
        setup.loss = 0.05;
        let (mut sim, _) = cluster(seed, setup);
        sim.client(async move {
            let history = recorded_workload(seed, 2, 2, true, 3).await;
            let result = check(&history, Model::Kv, Some(Duration::from_secs(20)))?;
            assert!(
                matches!(result.verdict, Verdict::Linearizable { .. }),
                "seed {seed}: {}\n{}",
                result.explain(&history),
                history.to_jsonl()
            );
            Ok(())
        });
        run(&mut sim, seed, "quorum_majority_histories");
    }
}

/// Episodes 14, 19: PACELC's "else latency". Three nodes, N = 3; n3
/// answers peers 200 ms late (a slow replica). A client appends through
/// n1 and reads through n3. With R = W = 1 the write is acknowledged by
/// n1 alone and n3 answers the read from its own stale copy: the
/// linearizability checker finds the history impossible and the session
/// checker names read-your-writes. With R = W = 2 the same schedule is
/// linearizable and keeps every session guarantee.
#[test]
fn quorum_weak_quorum_reads_stale_and_the_checkers_catch_it() {
    for seed in seeds() {
        for (r, w) in [(1, 1), (2, 2)] {
            let mut setup = Setup::new(3, 3);
            setup.anti_entropy = false;
            setup.slow = Some((3, Duration::from_millis(200)));
            let (mut sim, _) = cluster(seed, setup);
            sim.client(async move {
                let recorder = Recorder::new();
                let session =
                    |i| QuorumSession::new(client(i), r, w, false, Resolution::LastWriterWins);
                let mut writer = recorder.client(1, session(1));
                let mut reader = recorder.client(1, session(3));
                let mut rng = SmallRng::seed_from_u64(seed);
                for step in 0..4 {
                    let key = format!("k{}", rng.random_range(0..2));
                    // Both calls are client 1's session: one program order.
                    let appended = writer.append(&key, &format!("[{step}]")).await;
                    let read = reader.get(&key).await;
                    assert!(
                        appended.is_ok() && read.is_ok(),
                        "seed {seed}: no faults here"
                    );
                    tokio::time::sleep(Duration::from_millis(rng.random_range(300..600))).await;
                }
                let history = recorder.history();
                let verdict = check(&history, Model::Kv, Some(Duration::from_secs(20)))?.verdict;
                let violations = check_sessions(&history)?;
                if r + w > 3 {
                    assert!(
                        matches!(verdict, Verdict::Linearizable { .. }),
                        "seed {seed}, R={r} W={w}: {verdict:?}"
                    );
                    assert!(violations.is_empty(), "seed {seed}: {violations:?}");
                } else {
                    assert!(
                        matches!(verdict, Verdict::NotLinearizable(_)),
                        "seed {seed}, R={r} W={w}: the stale read went unnoticed: {verdict:?}"
                    );
                    assert!(
                        violations.iter().any(|violation| violation.guarantee
                            == crate::consistency::session::Guarantee::ReadYourWrites),
                        "seed {seed}: {violations:?}"
                    );
                }
                Ok(())
            });
            run(&mut sim, seed, "quorum_weak_quorum_reads_stale");
        }
    }
}

/// Episode 22. Five nodes, N = 3, W = 3, sloppy quorum, anti-entropy off
/// (so only handoff can deliver). n1 is cut off from every other node;
/// writes to keys n1 replicates land on stand-ins with hints. After the
/// heal, n1's own store holds every one of those hinted writes, and the
/// stand-ins hold no hint any more.
#[test]
fn quorum_hinted_handoff_delivers_every_hinted_write() {
    for seed in seeds() {
        let mut setup = Setup::new(5, 3);
        setup.anti_entropy = false;
        let (mut sim, stores) = cluster(seed, setup);
        let members: BTreeSet<ReplicaId> = (1..=5).map(ReplicaId).collect();
        let placement = Placement::new(&members, 3).expect("a valid ring");
        let keys: Vec<String> = (0..200)
            .map(|i| format!("key-{seed}-{i}"))
            .filter(|key| placement.replicates(key, ReplicaId(1)))
            .take(20)
            .collect();
        let hinted = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::new()));
        let recorded = hinted.clone();
        sim.client(async move {
            for other in 2..=5 {
                faults::partition("n1", &sim::node(other));
            }
            faults::partition("n1", sim::CLIENT);
            let mut rng = SmallRng::seed_from_u64(seed);
            for key in &keys {
                let value = format!("{key}=v");
                let at = rng.random_range(2..=5);
                let reply = client(at)
                    .put(key, value.as_bytes(), Vec::new(), 3, true)
                    .await?;
                if reply.hinted > 0 {
                    recorded.borrow_mut().insert(key.clone(), value);
                }
            }
            assert!(
                !recorded.borrow().is_empty(),
                "seed {seed}: no write needed a hint"
            );
            for other in 2..=5 {
                faults::heal("n1", &sim::node(other));
            }
            faults::heal("n1", sim::CLIENT);
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        });
        run(&mut sim, seed, "quorum_hinted_handoff");
        let n1 = stores[0].lock();
        for (key, value) in hinted.borrow().iter() {
            let state = n1
                .get(key)
                .unwrap_or_else(|| panic!("seed {seed}: {key} never reached n1"));
            assert!(
                state
                    .values()
                    .any(|stored| stored.value == value.as_bytes()),
                "seed {seed}: n1 lacks the hinted write of {key}"
            );
        }
        for (i, store) in stores.iter().enumerate().skip(1) {
            assert_eq!(
                store.lock().hints.len(),
                0,
                "seed {seed}: n{} still holds hints",
                i + 1
            );
        }
    }
}

/// Episode 22. Three nodes with anti-entropy on and no other repair
/// path: writes with W = 1 while n3 is cut off reach n1 and n2 only (the
/// background copies to n3 are lost). After the heal, Merkle exchanges
/// alone bring n3 to the same state as the others for every key.
#[test]
fn quorum_anti_entropy_converges_all_replicas() {
    for seed in seeds() {
        let setup = Setup::new(3, 3);
        let (mut sim, stores) = cluster(seed, setup);
        sim.client(async move {
            for other in [1, 2] {
                faults::partition("n3", &sim::node(other));
            }
            for i in 0..40 {
                client(1 + i % 2)
                    .put(&format!("k{i}"), b"v", Vec::new(), 1, false)
                    .await?;
            }
            heal_all(3);
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        });
        run(&mut sim, seed, "quorum_anti_entropy_converges");
        let snapshot = |i: usize| -> Vec<(String, Vec<Vec<u8>>)> {
            stores[i]
                .lock()
                .keys()
                .map(|(key, state)| {
                    (
                        key.to_owned(),
                        state.values().map(|s| s.value.clone()).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(snapshot(0).len(), 40, "seed {seed}");
        assert_eq!(snapshot(2), snapshot(0), "seed {seed}: n3 did not converge");
        assert_eq!(snapshot(1), snapshot(0), "seed {seed}: n2 did not converge");
    }
}

/// Episode 19, and read repair's broken twin. Three nodes, N = 3,
/// R = W = 2, n3 slow to answer peers. A write of "new" through n1 reaches
/// no other replica (n1's calls to n2 and n3 are cut) and fails; n3's
/// calls to n1 are cut too. A read through n2 meets n1 and returns "new";
/// a second read, through n3, meets n3 and n2. Repairing n2 before the
/// first read replies makes the second read return "new" too: the history
/// is linearizable. The twin that repairs after replying leaves n2 stale,
/// the second read returns "old" after the first returned "new", and the
/// checker finds the history impossible — though R + W > N.
#[test]
fn quorum_read_repair_before_reply_keeps_a_returned_write_visible() {
    for seed in seeds() {
        for read_repair in [ReadRepair::BeforeReply, ReadRepair::NaiveAfterReply] {
            let mut setup = Setup::new(3, 3);
            setup.anti_entropy = false;
            setup.read_repair = read_repair;
            setup.slow = Some((3, Duration::from_millis(200)));
            let cuts = LinkCuts::default();
            let (mut sim, _) = cluster_with_cuts(seed, setup, cuts.clone());
            sim.client(async move {
                let recorder = Recorder::new();
                let session = |i| QuorumSession::new(client(i), 2, 2, false, Resolution::Siblings);
                let mut writer = recorder.client(0, session(1));
                writer
                    .put("k", "old")
                    .await
                    .map_err(|err| format!("{err:?}"))?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (n1, n2, n3) = (ReplicaId(1), ReplicaId(2), ReplicaId(3));
                cuts.cut(n1, n2);
                cuts.cut(n1, n3);
                cuts.cut(n3, n1);
                let failed = writer.put("k", "new").await;
                assert!(failed.is_err(), "seed {seed}: the write cannot reach W = 2");
                let first = recorder.client(1, session(2)).get("k").await;
                let second = recorder.client(2, session(3)).get("k").await;
                let (first, second) = (
                    first.map_err(|err| format!("{err:?}"))?,
                    second.map_err(|err| format!("{err:?}"))?,
                );
                assert_eq!(first, "new", "seed {seed}: the first read meets n1");
                let history = recorder.history();
                let verdict = check(&history, Model::Kv, Some(Duration::from_secs(10)))?.verdict;
                match read_repair {
                    ReadRepair::BeforeReply => {
                        assert_eq!(second, "new", "seed {seed}");
                        assert!(
                            matches!(verdict, Verdict::Linearizable { .. }),
                            "seed {seed}: {verdict:?}"
                        );
                    }
                    ReadRepair::NaiveAfterReply => {
                        assert_eq!(second, "old", "seed {seed}: the twin reads stale");
                        assert!(
                            matches!(verdict, Verdict::NotLinearizable(_)),
                            "seed {seed}: the checker missed it: {verdict:?}"
                        );
                    }
                }
                Ok(())
            });
            run(&mut sim, seed, "quorum_read_repair_before_reply");
        }
    }
}
