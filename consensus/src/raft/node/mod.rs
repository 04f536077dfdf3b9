//! The Ready loop: one task that owns the raft-rs node and drives it.
//!
//! raft-rs is a pure state machine: it never touches a clock, a disk or a
//! socket. It is ticked, fed messages and proposals, and asked for a
//! `Ready` — what it needs done: messages to send, entries and a hard
//! state to persist, a snapshot to install, entries to apply. Doing those
//! in the right order is the whole art, and every rule below prevents a
//! specific failure:
//!
//! 1. A leader sends its messages *before* persisting its own entries
//!    (Raft thesis §10.2.1): followers write in parallel with the leader,
//!    and an entry still commits only once a majority has it on disk.
//! 2. A received snapshot replaces the log and the state machine before
//!    anything else, so the entries that follow apply on top of it.
//! 3. Committed entries are applied; raft-rs only hands out entries that
//!    are already durable here.
//! 4. New entries and the hard state (term, vote, commit) are written in
//!    one batch, with one fsync per Ready however many entries it holds —
//!    group commit.
//! 5. Only then go the *persisted* messages — a follower's votes and
//!    append acknowledgements. A vote sent before it is on disk lets a
//!    node that crashes and restarts vote twice in one term, and two
//!    leaders can win it; an acknowledgement sent early lets the leader
//!    count an entry as replicated on a node that then loses it.
//! 6. `advance`, then the light ready (a newer commit index, more
//!    messages, more entries to apply), then `advance_apply`.
//!
//! raft-rs also drops some requests without a word: a proposal when no
//! leader is known or a transfer is under way, a ReadIndex before the new
//! leader has committed an entry of its own term. So every request waits
//! here with a deadline, reads are re-asked until answered, and proposals
//! whose log slot went to someone else's entry fail instead of hanging.

mod membership;
mod reads;
mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt as _;

use prost::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, EntryType, Message};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::state_machine::{Applied, StateMachine, decode_command};
use super::storage::RaftStorage;
use super::transport::Peers;
use super::wire;
use super::{MembershipChange, NodeStatus, ReadMode, Role, Timing};
use crate::proto::v1::{Command, ConfChangeContext, Member, command};
use crate::{Error, Result};
use reads::{ReadBatch, WaitingReads};

/// What the loop is asked to do.
pub(crate) enum Event {
    /// A message from a peer.
    Step(Message),
    /// A peer's stream broke.
    Unreachable(u64),
    /// A peer says this member was removed from the cluster.
    Removed,
    /// A snapshot of the state machine, encoded off the loop (`None`: it
    /// failed, and the next one is due at once).
    SnapshotEncoded(Option<(raft::eraftpb::SnapshotMetadata, Vec<u8>)>),
    /// A snapshot was (or was not) delivered.
    SnapshotSent {
        to: u64,
        ok: bool,
    },
    Propose {
        op: command::Op,
        reply: oneshot::Sender<Result<Applied>>,
    },
    /// Wait until a linearizable read may be served here.
    Read {
        reply: oneshot::Sender<Result<()>>,
    },
    Membership {
        change: MembershipChange,
        reply: oneshot::Sender<Result<Applied>>,
    },
    TransferLeader {
        target: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Stop,
}

/// A step of the Raft loop slower than this is logged: every request
/// waits for the loop.
const SLOW_STEP: Duration = Duration::from_millis(100);

/// The most proposals waiting for their entries to apply.
pub const MAX_PENDING_PROPOSALS: usize = 10_000;
/// The most reads waiting for a read index.
pub const MAX_PENDING_READS: usize = 100_000;
/// Events handled before the loop looks at raft's Ready again.
const EVENTS_PER_ROUND: usize = 1024;

/// A proposal waiting for its entry.
struct Proposal {
    index: u64,
    deadline: Instant,
    reply: oneshot::Sender<Result<Applied>>,
}

pub(crate) struct Settings {
    pub timing: Timing,
    pub read_mode: ReadMode,
    pub snapshot_entries: u64,
    pub keep_entries: u64,
    pub max_log_bytes: usize,
    /// Addresses from the command line, used until the state machine knows
    /// the members (a joining node, before the leader's snapshot: without
    /// them it could not answer the leader at all).
    pub initial_peers: BTreeMap<u64, String>,
}

pub(crate) struct Loop {
    pub id: u64,
    pub raw: RawNode<RaftStorage>,
    pub state: Arc<RwLock<StateMachine>>,
    pub cluster_id: Arc<AtomicU64>,
    pub events: mpsc::Receiver<Event>,
    pub peers: Peers,
    pub status: watch::Sender<NodeStatus>,
    pub settings: Settings,
    proposals: HashMap<u64, Proposal>,
    next_proposal: u64,
    /// Reads not yet given a read index.
    waiting_reads: WaitingReads,
    /// ReadIndex requests in flight, by context.
    read_batches: HashMap<u64, ReadBatch>,
    next_read: u64,
    /// Reads that know their index, waiting for it to be applied.
    indexed_reads: Vec<(u64, WaitingReads)>,
    transfers: Vec<(u64, Instant, oneshot::Sender<Result<()>>)>,
    /// The leader lease, as (term, until), for `ReadMode::LeaderLease`.
    lease: Option<(u64, Instant)>,
    ticks: u64,
    snapshot_index: u64,
    /// A snapshot being encoded off the loop.
    encoding: bool,
    /// To hand this loop an encoded snapshot.
    own_events: mpsc::Sender<Event>,
    removed: bool,
    /// Bytes on disk, refreshed every ten ticks (listing files is not
    /// free).
    disk_bytes: u64,
}

fn lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    // The loop is the only writer and completes each update before it
    // releases the lock.
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Loop {
    /// However the loop ends — stopped, failed, or a panic inside raft-rs
    /// — the node reports itself stopped, so the API refuses requests
    /// instead of serving a frozen state.
    fn drop(&mut self) {
        self.status.send_modify(|status| status.stopped = true);
    }
}

impl Loop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        raw: RawNode<RaftStorage>,
        state: Arc<RwLock<StateMachine>>,
        cluster_id: Arc<AtomicU64>,
        events: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
        peers: Peers,
        status: watch::Sender<NodeStatus>,
        settings: Settings,
    ) -> Self {
        let (own_events, events) = events;
        let snapshot_index = raw.store().snapshot_metadata().map_or(0, |meta| meta.index);
        Self {
            id,
            raw,
            state,
            cluster_id,
            events,
            peers,
            status,
            settings,
            proposals: HashMap::new(),
            // Proposal ids start at random, so that entries replayed from
            // an earlier run are unlikely to carry one this run hands out
            // (and completion checks the index too).
            next_proposal: std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                id,
            ),
            waiting_reads: Vec::new(),
            read_batches: HashMap::new(),
            next_read: 0,
            indexed_reads: Vec::new(),
            transfers: Vec::new(),
            lease: None,
            ticks: 0,
            snapshot_index,
            encoding: false,
            own_events,
            removed: false,
            disk_bytes: 0,
        }
    }

    pub async fn run(mut self) {
        self.sync_peers();
        self.publish();
        let mut ticker = tokio::time::interval(self.settings.timing.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick(),
                event = self.events.recv() => {
                    let Some(event) = event else { break };
                    if !self.handle(event) {
                        break;
                    }
                    for _ in 0..EVENTS_PER_ROUND {
                        match self.events.try_recv() {
                            Ok(event) => {
                                if !self.handle(event) {
                                    self.stop(Error::Stopped);
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            self.issue_reads();
            let started = Instant::now();
            let ready = self.on_ready();
            let took = started.elapsed();
            if took > SLOW_STEP {
                // etcd warns the same way ("apply request took too long"):
                // every request waits for this loop.
                tracing::warn!(node = self.id, ?took, "a Ready took too long");
            }
            if let Err(err) = ready {
                // A node that cannot write its log must not go on: it
                // would acknowledge what it may lose.
                tracing::error!(node = self.id, %err, "the Raft loop stops");
                self.stop(err);
                return;
            }
            self.publish();
        }
        self.stop(Error::Stopped);
    }

    /// Fails everything still waiting and marks the node stopped.
    fn stop(&mut self, reason: Error) {
        for (_, proposal) in self.proposals.drain() {
            let _ = proposal.reply.send(Err(reason.clone()));
        }
        for (_, reply) in self.waiting_reads.drain(..) {
            let _ = reply.send(Err(reason.clone()));
        }
        for (_, batch) in self.read_batches.drain() {
            for (_, reply) in batch.replies {
                let _ = reply.send(Err(reason.clone()));
            }
        }
        for (_, replies) in self.indexed_reads.drain(..) {
            for (_, reply) in replies {
                let _ = reply.send(Err(reason.clone()));
            }
        }
        self.status.send_modify(|status| status.stopped = true);
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Why a request that needs the leader cannot be served here.
    fn not_leader(&self) -> Error {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            Error::NoLeader
        } else {
            Error::LeaderChanged
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.settings.timing.request_timeout
    }

    /// Parks a proposal's reply until entry `index` applies (or the
    /// request times out).
    pub(super) fn await_entry(
        &mut self,
        id: u64,
        index: u64,
        reply: oneshot::Sender<Result<Applied>>,
    ) {
        let deadline = self.deadline();
        self.proposals.insert(
            id,
            Proposal {
                index,
                deadline,
                reply,
            },
        );
    }

    /// Handles one event; false means stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Stop => return false,
            Event::Step(message) => {
                if !self.removed
                    && let Err(err) = self.raw.step(message)
                {
                    tracing::debug!(node = self.id, %err, "message not stepped");
                }
            }
            Event::Unreachable(peer) => self.raw.report_unreachable(peer),
            Event::Removed => {
                if !self.removed {
                    tracing::info!(
                        node = self.id,
                        "a peer says this member was removed; stopping"
                    );
                    self.removed = true;
                }
            }
            Event::SnapshotEncoded(None) => {
                tracing::warn!(node = self.id, "encoding a snapshot failed; will try again");
                self.encoding = false;
            }
            Event::SnapshotEncoded(Some((meta, data))) => {
                if let Err(err) = self.record_snapshot(meta, data) {
                    tracing::error!(node = self.id, %err, "the Raft loop stops: a snapshot could not be written");
                    return false;
                }
            }
            Event::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Event::Propose { op, reply } => self.propose(op, reply),
            Event::Read { reply } => self.read(reply),
            Event::Membership { change, reply } => self.propose_membership(change, reply),
            Event::TransferLeader { target, reply } => self.transfer(target, reply),
        }
        true
    }

    fn next_id(&mut self) -> u64 {
        // 0 means "nobody waits for this entry".
        self.next_proposal = self.next_proposal.wrapping_add(1).max(1);
        self.next_proposal
    }

    fn propose(&mut self, op: command::Op, reply: oneshot::Sender<Result<Applied>>) {
        if self.removed {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        if !self.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if self.proposals.len() >= MAX_PENDING_PROPOSALS {
            let _ = reply.send(Err(Error::TooManyRequests));
            return;
        }
        let id = self.next_id();
        let data = Command { id, op: Some(op) }.encode_to_vec();
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.await_entry(id, index, reply);
            }
            // Dropped: a leader transfer is under way, or the node was
            // removed, or the uncommitted log is full.
            _ => {
                let _ = reply.send(Err(Error::LeaderChanged));
            }
        }
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks % 10 == 1 {
            self.disk_bytes = self.raw.store().disk_bytes();
        }
        if !self.removed {
            self.raw.tick();
            if self.ticks.is_multiple_of(10) {
                self.publish_self();
            }
        }
        let now = Instant::now();
        // Requests past their deadline.
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(proposal) = self.proposals.remove(&id) {
                let _ = proposal.reply.send(Err(Error::Timeout));
            }
        }
        let timeout = if self.raw.raft.leader_id == raft::INVALID_ID {
            Error::NoLeader
        } else {
            Error::Timeout
        };
        let expire = |replies: &mut WaitingReads| {
            let (late, on_time): (Vec<_>, Vec<_>) = std::mem::take(replies)
                .into_iter()
                .partition(|(d, _)| *d <= now);
            *replies = on_time;
            for (_, reply) in late {
                let _ = reply.send(Err(timeout.clone()));
            }
        };
        expire(&mut self.waiting_reads);
        for (_, replies) in &mut self.indexed_reads {
            expire(replies);
        }
        // raft-rs drops ReadIndex requests it cannot serve yet (no leader,
        // or a leader without an entry of its term) without a word; ask
        // again after a few heartbeats' time.
        let retry_after = 3 * self.settings.timing.heartbeat_ticks.max(1) as u64;
        let stale: Vec<u64> = self
            .read_batches
            .iter()
            .filter(|(_, b)| self.ticks - b.issued_tick >= retry_after)
            .map(|(context, _)| *context)
            .collect();
        for context in stale {
            if let Some(mut batch) = self.read_batches.remove(&context) {
                expire(&mut batch.replies);
                self.waiting_reads.extend(batch.replies);
            }
        }
        // Leader transfers: done, or too slow.
        let leader = self.raw.raft.leader_id;
        for (target, deadline, reply) in std::mem::take(&mut self.transfers) {
            if leader == target {
                let _ = reply.send(Ok(()));
            } else if deadline <= now {
                let _ = reply.send(Err(Error::LeaderTransferTimeout));
            } else {
                self.transfers.push((target, deadline, reply));
            }
        }
        self.leave_joint_if_needed();
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            // Nothing new, but a follower may be waiting for a snapshot.
            return self.maybe_snapshot();
        }
        let mut ready = self.raw.ready();
        // 1. A leader's messages go out before its own fsync.
        self.peers.send(ready.take_messages());
        // 2. A snapshot from the leader replaces everything.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        // 3. Apply what is committed (and already durable here).
        self.apply(ready.take_committed_entries())?;
        // 4. Persist new entries and the hard state: one batch, one fsync.
        let must_sync = ready.must_sync();
        let entries = ready.take_entries();
        self.raw
            .mut_store()
            .persist(entries, ready.hs(), must_sync)?;
        // 5. Votes and acknowledgements only now that they are durable.
        self.peers.send(ready.take_persisted_messages());
        self.handle_read_states(ready.take_read_states());
        // A read index at or below what is already applied can be served
        // now; later ones wait for `apply`.
        self.serve_reads();
        // 6. Advance, then the light ready.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        self.peers.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_snapshot()
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // (proposal id, entry index, result)
        let mut completed: Vec<(u64, u64, Result<Applied>)> = Vec::new();
        for entry in entries {
            let index = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    // An empty entry is a new leader's no-op.
                    if !entry.data.is_empty() {
                        match decode_command(&entry.data) {
                            Ok(Command { id, op: Some(op) }) => {
                                let result = lock(&self.state).apply(&op);
                                completed.push((id, index, result));
                            }
                            Ok(Command { op: None, .. }) => {}
                            Err(err) => {
                                tracing::error!(node = self.id, index, %err, "skipping an entry")
                            }
                        }
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    if let Some((id, result)) = self.apply_conf_change(&entry)? {
                        completed.push((id, index, result));
                    }
                }
            }
            lock(&self.state).applied = index;
        }
        for (id, index, result) in completed {
            // The id and the index must both match: an entry replayed from
            // before a restart may carry an id this run handed out again.
            if self.proposals.get(&id).is_some_and(|p| p.index == index)
                && let Some(proposal) = self.proposals.remove(&id)
            {
                let _ = proposal.reply.send(result);
            }
        }
        let applied = read(&self.state).applied;
        // A proposal whose slot is applied but was not its entry lost its
        // place to another leader's: it will never apply.
        let lost: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.index <= applied)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(proposal) = self.proposals.remove(&id) {
                let _ = proposal.reply.send(Err(Error::LeaderChanged));
            }
        }
        self.serve_reads();
        Ok(())
    }

    fn publish(&mut self) {
        let raft = &self.raw.raft;
        let conf = raft.prs().conf().to_conf_state();
        let role = match raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Follower => Role::Follower,
        };
        let state = read(&self.state);
        let status = NodeStatus {
            id: self.id,
            cluster_id: self.cluster_id.load(Ordering::Acquire),
            // A removed member follows nobody, whatever it last believed.
            leader: if self.removed { 0 } else { raft.leader_id },
            term: raft.term,
            vote: raft.vote,
            role: if self.removed { Role::Follower } else { role },
            commit: raft.raft_log.committed,
            applied: state.applied,
            last_index: raft.raft_log.last_index(),
            first_index: raft.raft_log.first_index(),
            log_entries: (raft.raft_log.last_index() + 1)
                .saturating_sub(raft.raft_log.first_index()),
            snapshot_index: self.snapshot_index,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            is_learner: conf.learners.contains(&self.id),
            removed: self.removed,
            stopped: false,
            disk_bytes: self.disk_bytes,
            revision: state.mvcc.revision(),
        };
        drop(state);
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}
