//! A durable, linearizable key-value store replicated with Raft.
//!
//! Episode: 13, "FLP Impossibility & Practical Consensus" (also 17, 14, 19)
//! Pattern: consensus / replicated state machine
//! Try it:  cargo run -- demo raft-failover
//! Test it: cargo test -p consensus raft_
//!
//! Raft turns a handful of unreliable machines into one reliable log: a
//! leader, elected by a majority, appends every write to its log, sends it
//! to the others, and declares it committed once a majority has it on
//! disk. Any majority overlaps every other, so a committed entry survives
//! any minority of failures and a new leader always has it. Every node
//! applies the committed log, in order, to the same deterministic state
//! machine — here etcd's MVCC store ([`crate::mvcc`]) — and serves etcd's
//! v3 API ([`crate::etcd`]).
//!
//! The consensus algorithm itself is raft-rs, the Raft of TiKV; this module
//! is everything raft-rs leaves to its user, which is where real systems
//! get Raft wrong:
//!
//! - `node`: the Ready loop, and the order its steps must happen in;
//! - [`storage`] and [`disk`]: the log, hard state and snapshots on disk
//!   (raft-engine), with group commit — one fsync per Ready;
//! - [`transport`]: peer messages over gRPC, batched per peer; snapshots
//!   in chunks; loss, duplication and reordering injected for tests;
//! - [`wire`]: peer input decoded safely;
//! - [`state_machine`]: the MVCC store and the membership it carries.
//!
//! Reads are linearizable by ReadIndex: the leader confirms with a
//! heartbeat round that it still leads, notes its commit index, and the
//! read is served once that index is applied — on any node. Serializable
//! reads (`--consistency=s`) skip that and read the local state. A leader
//! lease ([`ReadMode::LeaderLease`]) lets the leader skip the round for a
//! while after each confirmation — safe only within a bound on clock
//! drift, which its broken twin leaves out.
//!
//! Bounds: at most [`MAX_PENDING_PROPOSALS`] writes and
//! [`MAX_PENDING_READS`] reads wait on the Raft loop (beyond them:
//! "etcdserver: too many requests"); raft-rs refuses proposals past 256 MiB
//! of uncommitted log; the transport's queues are bounded
//! ([`transport`]); the store refuses writes past its quota
//! ([`NodeConfig::quota_bytes`]); the log is cut to a snapshot every
//! [`NodeConfig::snapshot_entries`] entries or [`NodeConfig::max_log_bytes`].
//!
//! Simplified: one Raft group (no sharding, no multi-raft); the state
//! machine lives in memory and is rebuilt from the last snapshot and the
//! log at start-up.

pub(crate) mod demo;
pub mod disk;
pub mod metrics;
pub(crate) mod node;
pub mod state_machine;
pub mod storage;
pub mod transport;
pub mod wire;

mod logger;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use observability::rpc::Net;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use demo::raft_failover_demo;
pub use disk::{Disk, EngineDisk, MemDisk};
pub use node::{MAX_PENDING_PROPOSALS, MAX_PENDING_READS};
pub use state_machine::{Applied, StateMachine};
pub use transport::{PeerSecret, TransportFaults, TransportService};

use crate::proto::v1::{Member, command};
use crate::{Error, Result};
use node::{Event, Loop, Settings};
use storage::RaftStorage;
use transport::{INBOX, Peers};

/// The most learners a cluster may have at once, as etcd allows.
pub const MAX_LEARNERS: usize = 1;

/// How a node keeps time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// One Raft tick.
    pub tick: Duration,
    /// Ticks without a heartbeat before a follower campaigns (raft-rs picks
    /// a random timeout between this and twice this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// How long a request may wait for its entry or its read index.
    pub request_timeout: Duration,
}

impl Default for Timing {
    /// etcd's defaults: 100 ms heartbeats, elections after 1–2 s.
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// How "linearizable" reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: confirmed with a majority before serving.
    ReadIndex,
    /// The broken twin: read the local state, leader or not. Fast — and a
    /// partitioned old leader or a lagging follower serves stale data.
    UnsafeLocal,
    /// A leader lease (Raft thesis §6.4.1): once a majority has confirmed
    /// this leader with a heartbeat sent at `t`, none of them will help
    /// elect another before an election timeout has passed *on its own
    /// clock*; so until `t` plus that timeout — shortened for clocks that
    /// may run up to `max_drift_percent` faster than this one — the leader
    /// serves reads from its state without asking anyone. Leader transfers
    /// and membership changes end the lease (a transfer's candidate is
    /// allowed to ignore it).
    ///
    /// `max_drift_percent: 0` is the broken twin: a lease that trusts
    /// every clock to run at its own rate, which serves stale reads when a
    /// follower's clock runs fast ([`ReadMode::UNBOUNDED_LEASE`]).
    LeaderLease { max_drift_percent: u32 },
}

impl ReadMode {
    /// The broken twin of [`ReadMode::LeaderLease`]: no allowance for
    /// clock drift.
    pub const UNBOUNDED_LEASE: ReadMode = ReadMode::LeaderLease {
        max_drift_percent: 0,
    };
}

/// Where a node keeps its state.
#[derive(Clone, Debug)]
pub enum Storage {
    /// A data directory (raft-engine log and snapshot files); created if
    /// absent.
    Dir(PathBuf),
    /// In memory, surviving restarts of the node that shares it
    /// (simulations).
    Memory(MemDisk),
}

/// One node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id (non-zero).
    pub id: u64,
    /// The founding members, this one included: id → address (`host:port`).
    /// A member joining an existing cluster lists the members it knows.
    pub peers: BTreeMap<u64, String>,
    pub storage: Storage,
    /// Join an existing cluster (after `MemberAdd`) instead of founding one.
    pub join: bool,
    pub timing: Timing,
    pub read_mode: ReadMode,
    /// Snapshot after this many applied entries…
    pub snapshot_entries: u64,
    /// …keeping this many entries behind the snapshot for lagging followers.
    pub keep_entries: u64,
    /// Snapshot sooner if the log grows past this many bytes.
    pub max_log_bytes: usize,
    /// Writes that would grow the store past this many bytes are refused.
    pub quota_bytes: usize,
    pub faults: TransportFaults,
    /// Shared by every member; peers without it are refused. `None`
    /// believes any caller (see [`transport`]).
    pub peer_secret: Option<PeerSecret>,
    pub net: Net,
}

impl NodeConfig {
    /// A founding member with etcd-like defaults.
    pub fn new(id: u64, peers: BTreeMap<u64, String>, storage: Storage, net: Net) -> Self {
        Self {
            id,
            peers,
            storage,
            join: false,
            timing: Timing::default(),
            read_mode: ReadMode::ReadIndex,
            // etcd's --snapshot-count and its catch-up entries.
            snapshot_entries: 100_000,
            keep_entries: 5_000,
            max_log_bytes: 64 * 1024 * 1024,
            quota_bytes: 512 * 1024 * 1024,
            faults: TransportFaults::none(),
            peer_secret: None,
            net,
        }
    }
}

/// A node's role, as raft-rs names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// What a node knows about itself, published after every step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub cluster_id: u64,
    /// The leader this node believes in; 0 if none.
    pub leader: u64,
    pub term: u64,
    /// Whom it voted for in this term; 0 if nobody.
    pub vote: u64,
    pub role: Role,
    pub commit: u64,
    pub applied: u64,
    pub first_index: u64,
    pub last_index: u64,
    /// Entries held in the log (not yet folded into a snapshot).
    pub log_entries: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub is_learner: bool,
    /// Removed from the cluster: its API answers "server stopped".
    pub removed: bool,
    /// The Raft loop has stopped (shut down, or its disk failed).
    pub stopped: bool,
    pub disk_bytes: u64,
    /// The store's revision.
    pub revision: i64,
}

/// A membership change, as the Cluster API asks for it.
#[derive(Clone, Debug, PartialEq)]
pub enum MembershipChange {
    Add { member: Member, learner: bool },
    Remove { id: u64 },
    Promote { id: u64 },
}

/// A running node: a cheap handle to its Raft loop and its state.
#[derive(Clone, Debug)]
pub struct RaftNode {
    id: u64,
    events: mpsc::Sender<Event>,
    state: Arc<RwLock<StateMachine>>,
    status: watch::Receiver<NodeStatus>,
    cluster_id: Arc<AtomicU64>,
    quota_bytes: usize,
    timing: Timing,
    peer_secret: Option<PeerSecret>,
    controls: transport::Controls,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Event")
    }
}

/// A stable 64-bit id for a new cluster, from its founding members
/// (FNV-1a over their ids and addresses).
pub fn cluster_id_of(peers: &BTreeMap<u64, String>) -> u64 {
    let mut hash = crate::fnv::Fnv1a::new();
    for (id, address) in peers {
        hash.mix(&id.to_be_bytes());
        hash.mix(address.as_bytes());
    }
    hash.finish()
}

/// The peer URL of an address (`http://host:port`).
pub fn peer_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl RaftNode {
    /// Opens the node's storage and starts its Raft loop. A founding member
    /// on an empty disk writes the cluster's first snapshot; a restarting
    /// one loads its last snapshot and the log after it; a joining one
    /// waits for the leader's snapshot.
    pub async fn start(config: NodeConfig) -> Result<Self> {
        if config.id == 0 {
            return Err(Error::Config("a member id must not be 0".into()));
        }
        if !config.join && !config.peers.contains_key(&config.id) {
            return Err(Error::Config(format!(
                "the founding members must include this one ({})",
                config.id
            )));
        }
        let disk: Box<dyn Disk> = match &config.storage {
            Storage::Dir(dir) => Box::new(EngineDisk::open(dir)?),
            Storage::Memory(disk) => Box::new(disk.clone()),
        };
        let mut storage = RaftStorage::open(disk)?;
        let state = if storage.is_empty() && !config.join {
            let cluster_id = cluster_id_of(&config.peers);
            let members = config
                .peers
                .iter()
                .map(|(id, address)| Member {
                    id: *id,
                    name: format!("node-{id}"),
                    peer_urls: vec![peer_url(address)],
                    client_urls: vec![peer_url(address)],
                    is_learner: false,
                })
                .collect();
            let mut state = StateMachine::founding(cluster_id, members);
            storage.bootstrap(config.peers.keys().copied().collect(), state.encode())?;
            state.applied = 1;
            state
        } else {
            match (
                storage.snapshot_metadata().cloned(),
                storage.snapshot_data()?,
            ) {
                (Some(meta), Some(data)) => StateMachine::decode(&data, meta.index)?,
                _ => StateMachine::default(),
            }
        };
        let mut raft_config = raft::Config {
            id: config.id,
            election_tick: config.timing.election_ticks,
            heartbeat_tick: config.timing.heartbeat_ticks,
            // Entries up to the snapshot are in the state machine already.
            applied: state.applied,
            // raft-rs's default of 0 sends one entry per append message.
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            // Pre-vote: a node cut off from the others does not bump the
            // term and depose a healthy leader when it comes back.
            pre_vote: true,
            // Check quorum: a leader that cannot reach a majority steps
            // down, so a partitioned old leader stops acting as one.
            check_quorum: true,
            max_uncommitted_size: 256 * 1024 * 1024,
            ..raft::Config::default()
        };
        raft_config.read_only_option = raft::ReadOnlyOption::Safe;
        raft_config
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        let raw = raft::RawNode::new(&raft_config, storage, &logger::logger())
            .map_err(|e| Error::Config(e.to_string()))?;
        let cluster_id = Arc::new(AtomicU64::new(state.cluster_id));
        let state = Arc::new(RwLock::new(state));
        let (events, inbox) = mpsc::channel(INBOX);
        let (status_tx, status) = watch::channel(NodeStatus {
            id: config.id,
            ..NodeStatus::default()
        });
        let controls = transport::Controls::default();
        let peers = Peers::new(
            config.id,
            cluster_id.clone(),
            config.net,
            events.clone(),
            config.faults,
            config.peer_secret.clone(),
            controls.clone(),
        );
        let settings = Settings {
            timing: config.timing,
            read_mode: config.read_mode,
            snapshot_entries: config.snapshot_entries.max(1),
            keep_entries: config.keep_entries,
            max_log_bytes: config.max_log_bytes,
            initial_peers: config.peers.clone(),
        };
        let node_loop = Loop::new(
            config.id,
            raw,
            state.clone(),
            cluster_id.clone(),
            (events.clone(), inbox),
            peers,
            status_tx,
            settings,
        );
        let task = tokio::spawn(node_loop.run());
        Ok(Self {
            id: config.id,
            events,
            state,
            status,
            cluster_id,
            quota_bytes: config.quota_bytes,
            timing: config.timing,
            peer_secret: config.peer_secret,
            controls,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn quota_bytes(&self) -> usize {
        self.quota_bytes
    }

    pub fn request_timeout(&self) -> Duration {
        self.timing.request_timeout
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Stops (`true`) or resumes sending to `peers`. Done on both sides of
    /// a line, it partitions a cluster on real TCP (demos; tests partition
    /// turmoil's network instead).
    pub fn cut(&self, peers: &[u64], cut: bool) {
        let mut set = self
            .controls
            .cut
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for peer in peers {
            if cut {
                set.insert(*peer);
            } else {
                set.remove(peer);
            }
        }
    }

    /// Delays every message this node sends to `peer` by `one_way`: a
    /// wide-area link emulated on one machine (demos; set it on both ends
    /// for a symmetric link). Zero removes it. Changed while traffic flows,
    /// a later message can overtake an earlier, still-delayed one — the
    /// reordering Raft is built to survive.
    pub fn set_link_delay(&self, peer: u64, one_way: Duration) {
        let mut delays = self
            .controls
            .delays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if one_way.is_zero() {
            delays.remove(&peer);
        } else {
            delays.insert(peer, one_way);
        }
    }

    /// Votes and pre-votes this node has sent, requests and answers.
    pub fn election_messages_sent(&self) -> u64 {
        self.controls
            .election_messages
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The peer transport service to host beside the client API.
    pub fn transport(&self) -> TransportService {
        TransportService::new(
            self.id,
            self.cluster_id.clone(),
            self.events.clone(),
            self.state.clone(),
            self.peer_secret.clone(),
        )
    }

    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// Status updates, as they happen.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// Completes when the Raft loop has stopped, for whatever reason.
    pub async fn stopped(&self) {
        let mut status = self.status.clone();
        let _ = status.wait_for(|s| s.stopped).await;
    }

    /// Reads the applied state (briefly: the Raft loop waits to apply).
    pub fn read_state<T>(&self, read: impl FnOnce(&StateMachine) -> T) -> T {
        read(
            &self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Waits until a leader is known, up to `timeout`; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut status = self.status.clone();
        let found = tokio::time::timeout(timeout, status.wait_for(|s| s.leader != 0 || s.stopped))
            .await
            .ok()?
            .ok()?
            .leader;
        (found != 0).then_some(found)
    }

    async fn ask<T>(&self, event: impl FnOnce(oneshot::Sender<Result<T>>) -> Event) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(event(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Proposes a write; answers once it is applied here (this node must
    /// be the leader).
    pub async fn propose(&self, op: command::Op) -> Result<Applied> {
        self.ask(|reply| Event::Propose { op, reply }).await
    }

    /// Waits until this node has applied everything committed before the
    /// call, as confirmed by the leader (ReadIndex): a read of the local
    /// state after this is linearizable.
    pub async fn linearizable_read(&self) -> Result<()> {
        self.ask(|reply| Event::Read { reply }).await
    }

    /// Adds, removes or promotes a member (this node must be the leader);
    /// answers with the members after the change.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Vec<Member>> {
        match self
            .ask(|reply| Event::Membership { change, reply })
            .await?
        {
            Applied::Members(members) => Ok(members),
            _ => Err(Error::Storage(
                "a membership change applied as a write".into(),
            )),
        }
    }

    /// Hands leadership to `target` and waits until it has it.
    pub async fn transfer_leader(&self, target: u64) -> Result<()> {
        self.ask(|reply| Event::TransferLeader { target, reply })
            .await
    }

    /// Stops the Raft loop and waits for it.
    pub async fn stop(&self) {
        let _ = self.events.send(Event::Stop).await;
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
