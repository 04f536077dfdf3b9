//! Raft KV clusters in turmoil's simulated network: partitions, crashes,
//! restarts and message loss in simulated time, every run seeded.
//!
//! The harness steps the simulation itself and checks Raft's election
//! safety after every step: at most one leader per term, ever. Disks are
//! [`MemDisk`]s kept outside the hosts, so a crashed node restarts with
//! what it wrote. raft-rs draws its election timeouts from its own random
//! generator, so a seed fixes the network and the clients, not every
//! election: the tests assert invariants, never one exact schedule.

mod agreement;
mod durability;
mod election;
mod geo;
mod leases;
mod linearizability;
mod membership;
mod snapshots;
mod transport;
mod watch;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel};
use observability::sim::{self, SimResult, Simulation};

use super::{
    MemDisk, NodeConfig, NodeStatus, PeerSecret, RaftNode, ReadMode, Role, Storage, Timing,
    TransportFaults,
};
use crate::etcd::Services;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest};

/// How a test cluster is set up.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Hosts n1..=nN.
    pub nodes: usize,
    /// The first `founders` hosts found the cluster; the rest join later.
    pub founders: usize,
    pub timing: Timing,
    pub snapshot_entries: u64,
    pub keep_entries: u64,
    pub faults: TransportFaults,
    pub read_mode: ReadMode,
    pub peer_secret: Option<PeerSecret>,
    /// Hosts whose clock runs this many percent fast (their ticks come
    /// sooner): the simulation has one clock, so skew is injected here.
    pub fast_clocks: Vec<(usize, u32)>,
}

impl Options {
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            founders: nodes,
            timing: Timing::default(),
            // Lower than the default (100,000), so that longer runs
            // snapshot too; tests of snapshots lower it further.
            snapshot_entries: 10_000,
            keep_entries: 5_000,
            faults: TransportFaults::none(),
            read_mode: ReadMode::ReadIndex,
            peer_secret: None,
            fast_clocks: Vec::new(),
        }
    }
}

/// One host's node, as the test sees it.
#[derive(Clone, Default)]
pub(crate) struct Slot {
    node: Rc<RefCell<Option<RaftNode>>>,
}

impl Slot {
    pub fn status(&self) -> Option<NodeStatus> {
        self.node.borrow().as_ref().map(RaftNode::status)
    }

    pub fn node(&self) -> Option<RaftNode> {
        self.node.borrow().clone()
    }
}

/// One node's applied state: (host, revision, every key and value).
pub(crate) type Replica = (usize, i64, Vec<(Vec<u8>, Vec<u8>)>);

/// A simulated cluster and the invariants checked as it runs.
pub(crate) struct Cluster<'a> {
    pub sim: Simulation<'a>,
    pub slots: Vec<Slot>,
    pub disks: Vec<MemDisk>,
    /// Every leader ever seen, by term.
    leaders: HashMap<u64, u64>,
    /// Hosts running client scripts.
    scripts: Vec<String>,
}

pub(crate) fn host(i: usize) -> String {
    sim::node(i)
}

/// The address of host `i`'s node.
pub(crate) fn address(i: usize) -> String {
    format!("{}:{}", host(i), sim::PORT)
}

impl<'a> Cluster<'a> {
    pub fn new(seed: u64, options: &Options) -> Self {
        let mut sim = Simulation::builder(seed)
            .hosts(options.nodes)
            // Scripts start at any point of a long run; [`Cluster::finish`]
            // bounds each one instead.
            .duration(Duration::from_secs(24 * 3600))
            .build();
        let founders: BTreeMap<u64, String> = (1..=options.founders)
            .map(|i| (i as u64, address(i)))
            .collect();
        let mut slots = Vec::new();
        let mut disks = Vec::new();
        for i in 1..=options.nodes {
            let slot = Slot::default();
            let disk = MemDisk::new();
            slots.push(slot.clone());
            disks.push(disk.clone());
            let options = options.clone();
            let founders = founders.clone();
            sim.host(&host(i), move || {
                let slot = slot.clone();
                let disk = disk.clone();
                let options = options.clone();
                let founders = founders.clone();
                async move {
                    let join = i > options.founders;
                    let mut peers = founders.clone();
                    peers.insert(i as u64, address(i));
                    let mut config =
                        NodeConfig::new(i as u64, peers, Storage::Memory(disk), Net::Sim);
                    config.join = join;
                    config.timing = options.timing;
                    if let Some((_, percent)) = options.fast_clocks.iter().find(|(h, _)| *h == i) {
                        config.timing.tick = options
                            .timing
                            .tick
                            .mul_f64(100.0 / (100.0 + f64::from(*percent)));
                    }
                    config.snapshot_entries = options.snapshot_entries;
                    config.keep_entries = options.keep_entries;
                    config.faults = TransportFaults {
                        seed: options.faults.seed ^ i as u64,
                        ..options.faults
                    };
                    config.read_mode = options.read_mode;
                    config.peer_secret = options.peer_secret.clone();
                    let node = RaftNode::start(config).await?;
                    *slot.node.borrow_mut() = Some(node.clone());
                    Services::new(&node, Net::Sim)
                        .into_server()
                        .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                        .await?;
                    Ok(())
                }
            });
        }
        Self {
            sim,
            slots,
            disks,
            leaders: HashMap::new(),
            scripts: Vec::new(),
        }
    }

    /// Status of the node on host `i` (1-based), if it is running.
    pub fn status(&self, i: usize) -> Option<NodeStatus> {
        self.slots[i - 1].status()
    }

    /// The node on host `i`, if running.
    pub fn node(&self, i: usize) -> Option<RaftNode> {
        self.slots[i - 1].node()
    }

    /// Hosts whose node currently believes it leads.
    pub fn leaders(&self) -> Vec<usize> {
        (1..=self.slots.len())
            .filter(|&i| {
                self.status(i)
                    .is_some_and(|s| s.role == Role::Leader && !s.removed)
            })
            .collect()
    }

    /// Election safety: two nodes never lead in the same term. Checked
    /// against every leader ever observed in this run.
    fn check_election_safety(&mut self) {
        for i in self.leaders() {
            let Some(status) = self.status(i) else {
                continue;
            };
            let seen = *self.leaders.entry(status.term).or_insert(status.id);
            assert_eq!(
                seen, status.id,
                "two leaders in term {}: node {seen} and node {}",
                status.term, status.id
            );
        }
    }

    /// Steps the simulation for `duration` of simulated time, checking
    /// election safety after every step.
    pub fn run_for(&mut self, duration: Duration) -> SimResult {
        let until = self.sim.elapsed() + duration;
        while self.sim.elapsed() < until {
            self.sim.step()?;
            self.check_election_safety();
        }
        Ok(())
    }

    /// Steps until `condition` holds (checking invariants), at most
    /// `timeout` of simulated time; returns how long it took.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut condition: impl FnMut(&Self) -> bool,
    ) -> SimResult<Option<Duration>> {
        let started = self.sim.elapsed();
        while self.sim.elapsed() - started < timeout {
            if condition(self) {
                return Ok(Some(self.sim.elapsed() - started));
            }
            self.sim.step()?;
            self.check_election_safety();
        }
        Ok(condition(self).then(|| self.sim.elapsed() - started))
    }

    /// Starts a client script on its own host, `name`.
    pub fn script(&mut self, name: &str, script: impl Future<Output = SimResult> + 'static) {
        self.sim.turmoil().client(name, script);
        self.scripts.push(name.to_owned());
    }

    /// Runs until every script has finished, at most `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> SimResult {
        let started = self.sim.elapsed();
        loop {
            let done = self.sim.step()?;
            self.check_election_safety();
            if done {
                return Ok(());
            }
            if self.sim.elapsed() - started > timeout {
                return Err(format!("the client scripts did not finish within {timeout:?}").into());
            }
        }
    }

    /// Writes `count` keys `prefix-0…` (value = key) from a script, through
    /// any node that answers; returns the keys acknowledged.
    pub fn write(&mut self, prefix: &str, count: usize) -> SimResult<Vec<String>> {
        let (written, result) = shared::<Vec<String>>();
        let hosts = self.slots.len();
        let prefix = prefix.to_owned();
        self.script(&format!("write-{prefix}"), async move {
            *written.borrow_mut() = write_keys(&prefix, count, hosts).await;
            Ok(())
        });
        self.finish(Duration::from_secs(120))?;
        let acknowledged = result.borrow().clone();
        Ok(acknowledged)
    }

    /// Reads every key from every running member (linearizably, retrying
    /// while the cluster settles) and asserts each holds its own name.
    pub fn assert_readable(&mut self, keys: &[String]) -> SimResult {
        let running: Vec<usize> = (1..=self.slots.len())
            .filter(|&i| {
                self.status(i)
                    .is_some_and(|s| s.cluster_id != 0 && !s.removed)
            })
            .collect();
        let keys = keys.to_vec();
        let name = format!("read-{}", self.sim.elapsed().as_millis());
        self.script(&name, async move {
            for i in running {
                let mut kv = client(i);
                for key in &keys {
                    let mut found = None;
                    for _ in 0..50 {
                        match kv.range(get(key)).await {
                            Ok(response) => {
                                found = Some(response.into_inner().kvs);
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    let kvs =
                        found.ok_or_else(|| format!("node {i} never answered a read of {key}"))?;
                    let values: Vec<&[u8]> = kvs.iter().map(|kv| kv.value.as_slice()).collect();
                    assert_eq!(
                        values,
                        vec![key.as_bytes()],
                        "node {i} lost acknowledged write {key}"
                    );
                }
            }
            Ok(())
        });
        self.finish(Duration::from_secs(120))
    }

    /// Until exactly one leader is known to a majority (or `timeout`).
    pub fn await_leader(&mut self, timeout: Duration) -> SimResult<Option<usize>> {
        let found = self.run_until(timeout, |cluster| cluster.stable_leader().is_some())?;
        Ok(found.and_then(|_| self.stable_leader()))
    }

    /// Until a majority agrees on a leader other than `old`.
    pub fn await_new_leader(&mut self, old: usize, timeout: Duration) -> SimResult<Option<usize>> {
        let found = self.run_until(timeout, |cluster| {
            cluster.stable_leader().is_some_and(|leader| leader != old)
        })?;
        Ok(found.and_then(|_| self.stable_leader()))
    }

    /// The leader every running voter agrees on, if any.
    pub fn stable_leader(&self) -> Option<usize> {
        let leaders = self.leaders();
        let [leader] = leaders.as_slice() else {
            return None;
        };
        let term = self.status(*leader)?.term;
        let agree = (1..=self.slots.len())
            .filter_map(|i| self.status(i))
            .filter(|s| s.term == term && s.leader == *leader as u64)
            .count();
        let voters = self.status(*leader)?.voters.len();
        (agree > voters / 2).then_some(*leader)
    }

    /// Crashes host `i` (its disk survives).
    pub fn crash(&mut self, i: usize) {
        self.sim.crash(&host(i));
        *self.slots[i - 1].node.borrow_mut() = None;
    }

    /// Restarts host `i` from its disk, and steps until its node runs.
    pub fn restart(&mut self, i: usize) -> SimResult {
        *self.slots[i - 1].node.borrow_mut() = None;
        self.sim.restart(&host(i));
        self.run_until(Duration::from_secs(1), |c| c.status(i).is_some())?
            .map(drop)
            .ok_or_else(|| format!("node {i} did not start again").into())
    }

    /// Cuts host `i` off from every other node and every script started
    /// so far.
    pub fn isolate(&mut self, i: usize) {
        let others = (1..=self.slots.len())
            .filter(|&j| j != i)
            .map(host)
            .chain(self.scripts.iter().cloned());
        for other in others.collect::<Vec<_>>() {
            self.sim.partition(&host(i), &other);
        }
    }

    /// Splits the nodes into `side` and the rest; the client still reaches
    /// every node.
    pub fn split(&mut self, side: &[usize]) {
        for &a in side {
            for b in (1..=self.slots.len()).filter(|b| !side.contains(b)) {
                self.sim.partition(&host(a), &host(b));
            }
        }
    }

    /// Restores every link between nodes and scripts.
    pub fn heal(&mut self) {
        let all: Vec<String> = (1..=self.slots.len())
            .map(host)
            .chain(self.scripts.iter().cloned())
            .collect();
        for (n, a) in all.iter().enumerate() {
            for b in &all[n + 1..] {
                self.sim.heal(a, b);
            }
        }
    }

    /// Every running node's applied state, as (revision, contents) — equal
    /// on every replica that applied the same log.
    pub fn states(&self) -> Vec<Replica> {
        (1..=self.slots.len())
            .filter_map(|i| {
                let node = self.node(i)?;
                let status = node.status();
                // Removed members, and new ones not yet in the cluster.
                if status.removed || status.cluster_id == 0 {
                    return None;
                }
                Some(node.read_state(|state| {
                    let everything = state
                        .mvcc
                        .range(&RangeRequest {
                            key: vec![0],
                            range_end: vec![0],
                            ..RangeRequest::default()
                        })
                        .map(|r| r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect())
                        .unwrap_or_default();
                    (i, state.mvcc.revision(), everything)
                }))
            })
            .collect()
    }

    /// Runs until every running node has applied the same state, or
    /// `timeout`; returns whether they converged.
    pub fn converge(&mut self, timeout: Duration) -> SimResult<bool> {
        let converged = self.run_until(timeout, |cluster| {
            let states = cluster.states();
            states
                .windows(2)
                .all(|pair| pair[0].1 == pair[1].1 && pair[0].2 == pair[1].2)
                && !states.is_empty()
        })?;
        Ok(converged.is_some())
    }
}

/// A channel to host `i`, through the simulated network.
pub(crate) fn channel(i: usize) -> RpcChannel {
    ClientBuilder::new(Net::Sim)
        .default_deadline(Duration::from_secs(3))
        .connect_lazy(sim::uri(&host(i)))
}

/// A KV client to host `i`.
pub(crate) fn client(i: usize) -> KvClient<RpcChannel> {
    KvClient::new(channel(i))
}

pub(crate) fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

pub(crate) fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..RangeRequest::default()
    }
}

/// Writes `count` keys `prefix-0…` through any node that answers, each
/// retried until acknowledged; returns the keys acknowledged.
pub(crate) async fn write_keys(prefix: &str, count: usize, hosts: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for n in 0..count {
        let key = format!("{prefix}-{n}");
        for attempt in 0..20 {
            let target = (n + attempt) % hosts + 1;
            if client(target).put(put(&key, &key)).await.is_ok() {
                acknowledged.push(key.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    acknowledged
}

/// Log matching across every pair of disks: an index both have committed
/// holds the same entry (term and data) on both.
pub(crate) fn assert_logs_match(disks: &[MemDisk]) {
    let logs: Vec<_> = disks.iter().map(MemDisk::committed_log).collect();
    for (a, log_a) in logs.iter().enumerate() {
        for (b, log_b) in logs.iter().enumerate().skip(a + 1) {
            for (index, entry) in log_a {
                if let Some(other) = log_b.get(index) {
                    assert_eq!(
                        entry,
                        other,
                        "nodes {} and {} committed different entries at index {index}",
                        a + 1,
                        b + 1
                    );
                }
            }
        }
    }
}

/// The seeds a test sweeps: `DSLAB_SEEDS` of them if set, else `default`.
pub(crate) fn seeds_or(default: u64) -> Vec<u64> {
    if std::env::var_os("DSLAB_SEEDS").is_some() {
        sim::seeds()
    } else {
        let first = sim::seeds()[0];
        (0..default).map(|i| first.wrapping_add(i)).collect()
    }
}

/// Shares a value between a simulated client and the test around it.
pub(crate) fn shared<T: Default>() -> (Rc<RefCell<T>>, Rc<RefCell<T>>) {
    let value = Rc::new(RefCell::new(T::default()));
    (value.clone(), value)
}
