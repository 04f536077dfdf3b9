//! Bully and ring as gRPC services in turmoil's simulated network: five
//! nodes (node i on host ni), 1–5 ms latency, seeded. The harness steps
//! the simulation itself and reads each node's view between steps; a
//! phase runs exactly as in [`mod@super::compare`] — same events, same
//! settling time — and yields the same [`ElectionReport`], so one set of
//! claims checks both the services and the simulation of their cores.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use observability::demo::Narrator;
use observability::fuzz::{FuzzOptions, fuzz_service};
use observability::rpc::{ClientBuilder, Net, tcp_uri};
use observability::sim::{self, SimResult, Simulation};
use tonic::Code;

use super::*;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::leader_election_client::LeaderElectionClient;
use crate::proto::v1::{CampaignRequest, ElectionKind, ElectionMessage, GetViewRequest};

const NODES: u64 = 5;

/// Seeds per simulation test: three, or `DSLAB_SEEDS` from `DSLAB_SEED`.
fn seeds() -> Vec<u64> {
    if std::env::var_os("DSLAB_SEEDS").is_some() {
        sim::seeds()
    } else {
        let first = sim::seeds()[0];
        (0..3).map(|i| first.wrapping_add(i)).collect()
    }
}

/// Runs `test` per seed; a failure names the seed and how to replay it.
fn for_seeds(test: impl Fn(u64) -> SimResult) {
    for seed in seeds() {
        if let Err(err) = test(seed) {
            panic!(
                "seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p consensus election_"
            );
        }
    }
}

type Slot = Rc<RefCell<Option<ElectionNode>>>;

/// Five election nodes in a simulation, and the views of the ones that
/// crashed (their counts still count).
struct Cluster {
    sim: Simulation<'static>,
    slots: Vec<Slot>,
    crashed: Vec<View>,
    side: Vec<u8>,
    /// Client scripts started so far (each needs a host name of its own).
    scripts: usize,
    /// Links cut by [`Cluster::split`].
    cut: Vec<(u64, u64)>,
}

impl Cluster {
    fn new(algorithm: Algorithm, seed: u64) -> SimResult<Self> {
        let mut sim = Simulation::builder(seed)
            .hosts(NODES as usize)
            .duration(Duration::from_secs(120))
            .latency(Duration::from_millis(1), Duration::from_millis(5))
            .build();
        let peers: BTreeMap<NodeId, String> = (1..=NODES)
            .map(|i| {
                (
                    NodeId(i),
                    format!("{}:{}", sim::node(i as usize), sim::PORT),
                )
            })
            .collect();
        let mut slots = Vec::new();
        for i in 1..=NODES {
            let slot = Slot::default();
            slots.push(slot.clone());
            let peers = peers.clone();
            sim.host(&sim::node(i as usize), move || {
                let (slot, peers) = (slot.clone(), peers.clone());
                async move {
                    let mut config = NodeConfig::new(NodeId(i), peers, algorithm, Net::Sim);
                    config.seed = seed;
                    let node = ElectionNode::start(config)?;
                    *slot.borrow_mut() = Some(node.clone());
                    node.into_server()
                        .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                        .await?;
                    Ok(())
                }
            });
        }
        let mut cluster = Self {
            sim,
            slots,
            crashed: Vec::new(),
            side: vec![0; NODES as usize],
            scripts: 0,
            cut: Vec::new(),
        };
        cluster
            .run_until(Duration::from_secs(1), |c| {
                c.slots.iter().all(|s| s.borrow().is_some())
            })?
            .ok_or("the nodes did not start")?;
        Ok(cluster)
    }

    fn node(&self, id: u64) -> Option<ElectionNode> {
        self.slots[id as usize - 1].borrow().clone()
    }

    fn views(&self) -> Vec<View> {
        (1..=NODES)
            .filter_map(|id| self.node(id))
            .map(|node| node.view())
            .collect()
    }

    fn run_until(
        &mut self,
        timeout: Duration,
        condition: impl Fn(&Self) -> bool,
    ) -> SimResult<Option<Duration>> {
        let started = self.sim.elapsed();
        while self.sim.elapsed() - started < timeout {
            if condition(self) {
                return Ok(Some(self.sim.elapsed() - started));
            }
            self.sim.step()?;
        }
        Ok(condition(self).then(|| self.sim.elapsed() - started))
    }

    fn crash(&mut self, id: u64) {
        if let Some(node) = self.node(id) {
            self.crashed.push(node.view());
        }
        self.sim.crash(&sim::node(id as usize));
        *self.slots[id as usize - 1].borrow_mut() = None;
    }

    /// Cuts every link between `low` and the other nodes.
    fn split(&mut self, low: &[u64]) {
        for &a in low {
            self.side[a as usize - 1] = 0;
            for b in (1..=NODES).filter(|b| !low.contains(b)) {
                self.side[b as usize - 1] = 1;
                self.sim
                    .partition(&sim::node(a as usize), &sim::node(b as usize));
                self.cut.push((a, b));
            }
        }
    }

    fn heal(&mut self) {
        for (a, b) in std::mem::take(&mut self.cut) {
            self.sim
                .heal(&sim::node(a as usize), &sim::node(b as usize));
        }
        self.side.fill(0);
    }

    /// Live nodes' views by side of the partition.
    fn sides(&self) -> Vec<Vec<View>> {
        let mut sides: BTreeMap<u8, Vec<View>> = BTreeMap::new();
        for view in self.views() {
            sides
                .entry(self.side[view.id.0 as usize - 1])
                .or_default()
                .push(view);
        }
        sides.into_values().collect()
    }

    /// Every side has one leader among its live nodes, and all of them
    /// follow it.
    fn agreed(&self) -> bool {
        self.sides().iter().all(|side| {
            let leader = side[0].leader;
            leader.is_some_and(|leader| side.iter().any(|view| view.id == leader))
                && side.iter().all(|view| view.leader == leader)
        })
    }

    fn counters(&self) -> (u64, u64) {
        self.views()
            .iter()
            .chain(&self.crashed)
            .fold((0, 0), |(messages, beats), view| {
                (
                    messages + view.election_messages(),
                    beats + view.heartbeats(),
                )
            })
    }

    /// Applies `event`, runs until every side agrees, then settles — as
    /// the simulation in [`mod@super::compare`] does — and reports.
    fn phase(
        &mut self,
        algorithm: Algorithm,
        phase: Phase,
        event: impl FnOnce(&mut Self),
    ) -> SimResult<ElectionReport> {
        let scenario = Scenario::episode_17(0);
        let (messages_before, heartbeats_before) = self.counters();
        event(self);
        let time_to_elect = self.run_until(scenario.give_up, Self::agreed)?;
        let settle_from = self.sim.elapsed();
        self.run_until(scenario.settle, |c| {
            c.sim.elapsed() - settle_from >= scenario.settle
        })?;
        let (messages, heartbeats) = self.counters();
        Ok(ElectionReport {
            algorithm,
            phase,
            nodes: NODES as usize,
            messages: messages - messages_before,
            heartbeats: heartbeats - heartbeats_before,
            time_to_elect,
            leaders: self
                .sides()
                .iter()
                .map(|side| {
                    side.iter()
                        .filter(|view| view.leads())
                        .map(|view| view.id)
                        .collect()
                })
                .collect(),
        })
    }

    /// Asks node `id` to start an election, through its Campaign RPC from
    /// a client host (the nodes' tasks live inside the simulation).
    fn campaign(&mut self, id: u64) {
        self.scripts += 1;
        self.sim
            .turmoil()
            .client(format!("campaign-{}", self.scripts), async move {
                let channel = ClientBuilder::new(Net::Sim)
                    .default_deadline(Duration::from_secs(1))
                    .connect_lazy(sim::uri(&sim::node(id as usize)));
                LeaderElectionClient::new(channel)
                    .campaign(CampaignRequest {})
                    .await?;
                Ok(())
            });
    }
}

/// Start and leader crash, on the services.
fn start_and_crash(algorithm: Algorithm, seed: u64) -> SimResult<[ElectionReport; 2]> {
    let mut cluster = Cluster::new(algorithm, seed)?;
    let start = cluster.phase(algorithm, Phase::Start, |c| c.campaign(1))?;
    let crash = cluster.phase(algorithm, Phase::LeaderCrash, |c| c.crash(NODES))?;
    Ok([start, crash])
}

/// Partition {1,2,3} | {4,5} with the leader 5, then heal, on the services.
fn partition_and_heal(algorithm: Algorithm, seed: u64) -> SimResult<[ElectionReport; 2]> {
    let mut cluster = Cluster::new(algorithm, seed)?;
    cluster.phase(algorithm, Phase::Start, |c| c.campaign(1))?;
    let split = cluster.phase(algorithm, Phase::Partition, |c| c.split(&[1, 2, 3]))?;
    let heal = cluster.phase(algorithm, Phase::Heal, Cluster::heal)?;
    Ok([split, heal])
}

fn ids(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

// The claims, shared by the services and the simulation. `n` = 5.

/// All up, the lowest id notices: one leader, the highest, everyone
/// following it; the bully pays O(n²), the ring exactly 3n − 1.
fn check_start(report: &ElectionReport) {
    let n = NODES;
    assert_eq!(report.leaders, vec![ids(&[n])], "{report:?}");
    assert!(report.time_to_elect.is_some(), "{report:?}");
    match report.algorithm {
        Algorithm::Bully => {
            let (least, most) = bully_start_bounds(n);
            assert!(
                (least..=most).contains(&report.messages),
                "bully from the lowest id: {} messages, expected {least}..={most}",
                report.messages
            );
        }
        // One initiator just past the top: 2n − 1 ELECTIONs, n ELECTEDs.
        Algorithm::Ring => assert_eq!(report.messages, 3 * n - 1, "{report:?}"),
    }
}

/// The bully's cost when the lowest of `n` live nodes notices first.
///
/// At least: every node below the top holds an election (n(n−1)/2
/// ELECTIONs, each answered: as many OKs) and the top announces itself
/// (n − 1): n(n−1) + (n−1).
///
/// At most, with the worst timing: a node that has finished its election
/// starts another for each ELECTION from below that arrives late (after
/// the COORDINATOR). Node 1 elects once, node 2 at most once, node k < n
/// at most once per election below it: 2^(k−2) times. The top announces
/// itself once to everyone and once more to each later ELECTION.
fn bully_start_bounds(n: u64) -> (u64, u64) {
    let least = n * (n - 1) + (n - 1);
    let elections_by = |k: u64| if k == 1 { 1 } else { 1u64 << (k - 2) };
    let elections: u64 = (1..n).map(|k| elections_by(k) * (n - k)).sum();
    let reaching_top: u64 = (1..n).map(elections_by).sum();
    let most = 2 * elections + (n - 1) + (reaching_top - 1);
    (least, most)
}

/// The leader crashes: the next highest is elected, no sooner than the
/// failure detector allows and within a second.
fn check_crash(report: &ElectionReport) {
    assert_eq!(report.leaders, vec![ids(&[NODES - 1])], "{report:?}");
    check_time(report, Duration::from_secs(1));
}

/// An election can be no faster than the failure detector: nobody
/// suspects before `timeout_ticks` of silence, and the last heartbeat left
/// at most one heartbeat interval before the fault. The bully's winner
/// then waits out `answer_ticks` for an OK from the unreachable top.
fn check_time(report: &ElectionReport, most: Duration) {
    let timing = Timing::default();
    let mut least = timing.tick * (timing.timeout_ticks - timing.heartbeat_ticks);
    if report.algorithm == Algorithm::Bully {
        least += timing.tick * timing.answer_ticks;
    }
    let Some(took) = report.time_to_elect else {
        panic!("no leader: {report:?}");
    };
    assert!(
        took >= least && took <= most,
        "{} {} took {took:?} to elect, expected {least:?}..={most:?}",
        report.algorithm.name(),
        report.phase.name()
    );
}

/// {1,2,3} | {4,5}: the side without the leader elects its own. Two
/// leaders at once — split brain.
fn check_partition(report: &ElectionReport) {
    assert_eq!(report.leaders, vec![ids(&[3]), ids(&[5])], "{report:?}");
    check_time(report, Duration::from_secs(1));
}

/// Healed: one leader again, the highest, within a second.
fn check_heal(report: &ElectionReport) {
    assert_eq!(report.leaders, vec![ids(&[5])], "{report:?}");
    assert!(
        report
            .time_to_elect
            .is_some_and(|took| took <= Duration::from_secs(1)),
        "{report:?}"
    );
}

/// Episode 17. All five nodes up, no leader; n1 notices first. The bully
/// elects n5 after every node below it has held an election of its own:
/// O(n²) messages.
#[test]
fn election_start_bully_elects_the_highest_with_quadratic_messages() {
    for_seeds(|seed| {
        let [start, _] = start_and_crash(Algorithm::Bully, seed)?;
        check_start(&start);
        Ok(())
    });
}

/// Episode 17. The same start on a ring: one message goes almost twice
/// around and the result once, 3n − 1 messages, whatever the latencies.
#[test]
fn election_start_ring_elects_the_highest_with_3n_minus_1_messages() {
    for_seeds(|seed| {
        let [start, _] = start_and_crash(Algorithm::Ring, seed)?;
        check_start(&start);
        Ok(())
    });
}

/// Episode 17. n5 leads and crashes. The others notice its silence and
/// elect n4; the time to elect, in simulated time, is the failure
/// detector's timeout plus the election.
#[test]
fn election_leader_crash_bully_elects_the_next_highest() {
    for_seeds(|seed| {
        let [_, crash] = start_and_crash(Algorithm::Bully, seed)?;
        check_crash(&crash);
        Ok(())
    });
}

/// Episode 17. The same crash on a ring: the round skips the dead n5 —
/// twice, once for the election and once for the result.
#[test]
fn election_leader_crash_ring_elects_the_next_highest() {
    for_seeds(|seed| {
        let [_, crash] = start_and_crash(Algorithm::Ring, seed)?;
        check_crash(&crash);
        Ok(())
    });
}

/// Episodes 17 and 4. n5 leads; the network splits {1,2,3} | {4,5}. n1–n3
/// take n5's silence for death and elect n3, while n5 leads n4: two
/// leaders (Raft's majority rule forbids this; see
/// `raft_minority_side_of_a_partition_has_no_leader`). Healed, n5 bullies
/// n3 out and one leader remains.
#[test]
fn election_partition_bully_has_two_leaders_until_healed() {
    for_seeds(|seed| {
        let [split, heal] = partition_and_heal(Algorithm::Bully, seed)?;
        check_partition(&split);
        check_heal(&heal);
        Ok(())
    });
}

/// Episodes 17 and 4. The same partition on a ring: n1–n3 skip the
/// unreachable n4 and n5 as if dead and elect n3. Healed, each leader
/// hears the other's heartbeats, a new round runs, and n5 wins it.
#[test]
fn election_partition_ring_has_two_leaders_until_healed() {
    for_seeds(|seed| {
        let [split, heal] = partition_and_heal(Algorithm::Ring, seed)?;
        check_partition(&split);
        check_heal(&heal);
        Ok(())
    });
}

/// Episode 17. The comparison a demo prints: the simulation of the cores,
/// over 50 seeds, makes the same claims as the services in turmoil — and
/// prints the table of the first seed.
#[test]
fn election_compare_simulation_makes_the_same_claims() {
    for seed in 1..=50 {
        let reports = compare(seed);
        assert_eq!(reports.len(), 8, "four phases per algorithm");
        for report in &reports {
            match report.phase {
                Phase::Start => check_start(report),
                Phase::LeaderCrash => check_crash(report),
                Phase::Partition => check_partition(report),
                Phase::Heal => check_heal(report),
            }
        }
        let cost = |algorithm, phase| {
            reports
                .iter()
                .find(|r| r.algorithm == algorithm && r.phase == phase)
                .map(|r| r.messages)
        };
        assert!(
            cost(Algorithm::Bully, Phase::Start) > cost(Algorithm::Ring, Phase::Start),
            "seed {seed}: from the lowest id, the bully costs more than the ring"
        );
        if seed == 1 {
            let mut out = Narrator::stdout();
            out.section("Episode 17: bully and ring, five nodes (simulated, seed 1)");
            let rows: Vec<Vec<String>> = reports.iter().map(ElectionReport::cells).collect();
            out.table(&REPORT_HEADER, &rows);
        }
    }
}

/// The simulation replays: the same seed, the same reports.
#[test]
fn election_compare_same_seed_same_reports() {
    assert_eq!(compare(7), compare(7));
}

/// Episode 17. How the cost grows with n, on the cores: from the lowest
/// id the bully sends at least n(n−1) + (n−1) messages and the ring
/// exactly 3n − 1; when the highest id notices, the bully sends n − 1.
#[test]
fn election_start_cost_grows_quadratically_for_bully_linearly_for_ring() {
    for n in [5u64, 9, 16] {
        let scenario = Scenario {
            nodes: n,
            ..Scenario::episode_17(1)
        };
        let start =
            |algorithm| simulate(algorithm, &scenario).expect("a valid scenario")[0].messages;
        let (least, _) = bully_start_bounds(n);
        let bully = start(Algorithm::Bully);
        assert!(bully >= least, "n = {n}: bully {bully} < {least}");
        assert_eq!(start(Algorithm::Ring), 3 * n - 1, "n = {n}");
        let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut top = Node::new(Algorithm::Bully, NodeId(n), members, Timing::default(), 1)
            .expect("a valid node");
        assert_eq!(top.campaign().len() as u64, n - 1, "n = {n}: best case");
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A node of a two-member election on 127.0.0.1 whose peer is not there.
async fn lone_node() -> (ElectionNode, observability::rpc::ServerHandle) {
    let peers = BTreeMap::from([
        (NodeId(1), "127.0.0.1:1".to_owned()),
        (NodeId(2), "127.0.0.1:9".to_owned()),
    ]);
    let node = ElectionNode::start(NodeConfig::new(
        NodeId(1),
        peers,
        Algorithm::Bully,
        Net::Tcp,
    ))
    .expect("starts");
    let server = node
        .clone()
        .into_server()
        .bind(Net::Tcp, loopback())
        .await
        .expect("binds")
        .spawn();
    (node, server)
}

/// Bad input: a message from outside the election, from the node itself,
/// of no known kind, or naming a stranger, is refused with
/// InvalidArgument and changes nothing; a good one is taken.
#[tokio::test]
async fn election_service_refuses_messages_from_outside_the_election() {
    let (node, server) = lone_node().await;
    let mut client = LeaderElectionClient::new(
        ClientBuilder::new(Net::Tcp).connect_lazy(tcp_uri(server.local_addr())),
    );
    let good = ElectionMessage {
        from: 2,
        kind: ElectionKind::Coordinator.into(),
        epoch: 1,
        candidate: 2,
    };
    let bad = [
        ElectionMessage { from: 7, ..good },
        ElectionMessage { from: 1, ..good },
        ElectionMessage { from: 0, ..good },
        ElectionMessage { kind: 0, ..good },
        ElectionMessage { kind: 99, ..good },
        ElectionMessage {
            candidate: u64::MAX,
            ..good
        },
    ];
    for message in bad {
        let refused = client
            .deliver(message)
            .await
            .expect_err("refused: not a valid message of this election");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{message:?}: {refused:?}"
        );
    }
    // (Alone, the node may have elected itself meanwhile; no refused
    // message may have made anyone else its leader.)
    assert!(
        matches!(node.view().leader, None | Some(NodeId(1))),
        "a refused message changed the view: {:?}",
        node.view()
    );
    client.deliver(good).await.expect("a member's message");
    let view = client
        .get_view(GetViewRequest {})
        .await
        .expect("answers")
        .into_inner();
    assert_eq!((view.leader, view.algorithm.as_str()), (2, "bully"));
}

/// Hostile input (noise, oversized and random messages on every method):
/// precise statuses, no panic; the node still answers afterwards.
#[tokio::test]
async fn election_service_survives_hostile_input() {
    let (_node, server) = lone_node().await;
    let options = FuzzOptions {
        random_messages: 24,
        max_message_bytes: MAX_MESSAGE_BYTES,
        ..FuzzOptions::default()
    };
    let report = fuzz_service(
        tcp_uri(server.local_addr()),
        FILE_DESCRIPTOR_SET,
        "consensus.v1.LeaderElection",
        &options,
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert!(report.calls > 0);
    let mut client = LeaderElectionClient::new(
        ClientBuilder::new(Net::Tcp).connect_lazy(tcp_uri(server.local_addr())),
    );
    let view = client
        .campaign(CampaignRequest {})
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(view.id, 1);
}

/// A flood of work for the sender: node 2 of 64, whose 62 higher peers
/// take connections but never answer, is provoked into five elections in
/// a row (310 ELECTIONs). At most [`MAX_IN_FLIGHT`] go out; the rest are
/// dropped and counted, and the node still answers.
#[tokio::test]
async fn election_service_bounds_messages_in_flight() {
    // Never accepted: connections open (the kernel's backlog), and every
    // call on them waits for its deadline.
    let silent = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("binds");
    let silent = silent.local_addr().expect("bound").to_string();
    let n = MAX_NODES as u64;
    let peers = (1..=n).map(|id| (NodeId(id), silent.clone())).collect();
    let mut config = NodeConfig::new(NodeId(2), peers, Algorithm::Bully, Net::Tcp);
    // Long enough that nothing sent during the test has finished.
    config.timing.deliver_timeout = Duration::from_secs(10);
    let node = ElectionNode::start(config).expect("starts");
    let server = node
        .clone()
        .into_server()
        .bind(Net::Tcp, loopback())
        .await
        .expect("binds")
        .spawn();
    let mut client = LeaderElectionClient::new(
        ClientBuilder::new(Net::Tcp).connect_lazy(tcp_uri(server.local_addr())),
    );
    let from = |id: u64, kind: ElectionKind| ElectionMessage {
        from: id,
        kind: kind.into(),
        epoch: 1,
        candidate: id,
    };
    for _ in 0..5 {
        // A heartbeat from below: node 2 bullies, ELECTION to all above.
        client
            .deliver(from(1, ElectionKind::Heartbeat))
            .await
            .expect("taken");
        // The top's COORDINATOR ends that election, ready for the next.
        client
            .deliver(from(n, ElectionKind::Coordinator))
            .await
            .expect("taken");
    }
    let view = node.view();
    let elections = 5 * (n - 2);
    assert_eq!(view.sent.get(&Kind::Election), Some(&elections));
    assert_eq!(view.dropped, elections - MAX_IN_FLIGHT as u64, "{view:?}");
    let answered = client
        .get_view(GetViewRequest {})
        .await
        .expect("still answers");
    assert_eq!(answered.into_inner().dropped, view.dropped);
}
