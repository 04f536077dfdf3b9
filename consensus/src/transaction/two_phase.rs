//! The commit coordinator: two-phase commit with presumed abort, and
//! three-phase commit.
//!
//! Episode: 18, "Distributed Transactions" (also 14: blocking under partitions)
//! Pattern: atomic commitment
//! Try it:  cargo run -- demo two-phase-commit
//! Test it: cargo test -p consensus transaction_commit
//!
//! **Two-phase commit.** Phase one asks every participant to *prepare*:
//! validate, lock, write "yes" to its log, vote. If all vote yes, the
//! coordinator writes COMMIT to its own log — that write *is* the decision
//! — and phase two tells everyone; once all have acknowledged it writes
//! END and may forget. Any "no", error or timeout aborts.
//!
//! *Presumed abort*: an abort is never logged. A coordinator asked about a
//! transaction it has no COMMIT record of answers "aborted" — whether it
//! crashed before deciding or decided to abort. That saves a forced write
//! on every abort, and it is why a coordinator must force COMMIT before
//! sending a single commit message.
//!
//! *Recovery*: on restart the coordinator replays its log and delivers
//! every COMMIT without an END again (participants treat a repeated commit
//! as a no-op).
//!
//! *Blocking*: between its yes vote and the decision a participant is in
//! doubt — holding its locks — and nothing it can learn from other
//! participants that are also in doubt lets it decide. While the
//! coordinator is down, those locks stay held.
//!
//! **Three-phase commit** adds a round between the vote and the commit:
//! PRE-COMMIT says "everyone voted yes". A participant that times out
//! while pre-committed commits; one that times out merely prepared aborts
//! unless a peer it can reach pre-committed. No blocking on a coordinator
//! crash — but the rules assume that a participant you cannot reach has
//! crashed. When it has merely been partitioned away, the two sides of the
//! partition decide on their own, one commit and one abort: the
//! split decision that the transaction tests catch, and the reason real
//! systems use consensus (Paxos Commit, or a Raft group as coordinator)
//! instead.
//!
//! Bounds: [`MAX_ACTIVE`] transactions collecting votes or awaiting
//! delivery at once, each with at most [`MAX_CHANGES`] changes in all
//! (~10 KiB, so ~40 MiB in all); decided
//! transactions remembered in a window of [`MAX_DECIDED`]; the log is
//! compacted to the commits not yet delivered once it has grown by
//! [`COMPACT_EVERY`] records and twice the last snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use observability::rpc::{ClientBuilder, Net, RpcChannel};
use prost::Message as _;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::faults::LinkCuts;
use super::journal::{Disk, Journal};
use super::ledger::{MAX_CHANGES, MAX_PARTICIPANTS};
use super::{Error, Result, check_delta, check_id};
use crate::proto::v1::coordinator_record::Record;
use crate::proto::v1::transaction_coordinator_server::{
    TransactionCoordinator, TransactionCoordinatorServer,
};
use crate::proto::v1::transaction_participant_client::TransactionParticipantClient;
use crate::proto::v1::{
    CoordinatorRecord, PrepareRequest, Protocol, TxnPhase, TxnRef, TxnRequest, TxnStatus,
};

/// Transactions collecting votes at once, at most.
pub const MAX_ACTIVE: usize = 4096;
/// Decided transactions remembered for `Outcome` and repeated `Execute`s.
pub const MAX_DECIDED: usize = 100_000;
/// Log records between compactions.
pub const COMPACT_EVERY: u64 = 20_000;

/// Where a coordinator stops, as if it crashed: for tests and demos of
/// what participants do without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltPoint {
    /// Every participant voted yes; nothing decided.
    AfterVotes,
    /// COMMIT is on disk; no participant has heard.
    AfterDecision,
    /// Three-phase: PRE-COMMIT reached the first `delivered` participants.
    AfterPreCommit { delivered: usize },
}

pub struct CoordinatorConfig {
    /// Participants by name.
    pub participants: BTreeMap<String, String>,
    pub net: Net,
    pub disk: Disk,
    /// Each prepare (and pre-commit) call's deadline.
    pub vote_timeout: Duration,
    /// How often undelivered commits are sent again.
    pub redeliver_every: Duration,
    pub halt_at: Option<HaltPoint>,
    /// This coordinator's name on the links (see [`LinkCuts`]).
    pub name: String,
    pub cuts: LinkCuts,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("participants", &self.participants)
            .field("halt_at", &self.halt_at)
            .finish_non_exhaustive()
    }
}

impl CoordinatorConfig {
    pub fn new(participants: BTreeMap<String, String>, disk: Disk, net: Net) -> Self {
        Self {
            participants,
            net,
            disk,
            vote_timeout: Duration::from_secs(1),
            redeliver_every: Duration::from_millis(500),
            halt_at: None,
            name: super::ledger::service::COORDINATOR.to_owned(),
            cuts: LinkCuts::default(),
        }
    }
}

/// The coordinator; clones share it.
#[derive(Clone, Debug)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    participants: BTreeMap<String, RpcChannel>,
    journal: Journal,
    halt_at: Option<HaltPoint>,
    halted: AtomicBool,
    cuts: LinkCuts,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Collecting votes (or pre-commits): the request's fingerprint and a
    /// channel that announces the decision.
    active: HashMap<String, (u64, watch::Receiver<Option<TxnPhase>>)>,
    /// Pre-committed, not yet committed (three-phase).
    pre_committed: BTreeSet<String>,
    /// Decisions, with the fingerprint of the request they answer.
    decided: HashMap<String, (TxnPhase, u64)>,
    decided_order: VecDeque<String>,
    /// A COMMIT (or PRE-COMMIT) record on its way to disk: not yet to be
    /// delivered, but in every snapshot a compaction takes meanwhile.
    committing: BTreeMap<String, TxnRequest>,
    /// COMMIT logged, END not yet: still to deliver.
    undelivered: BTreeMap<String, TxnRequest>,
    /// Records appended since the log was last rewritten, and how many the
    /// rewrite wrote.
    records_since_compaction: u64,
    snapshot_records: u64,
}

/// What identifies a request's content, so that an id reused for another
/// transaction is refused.
fn fingerprint(request: &TxnRequest) -> u64 {
    let mut hash = crate::fnv::Fnv1a::new();
    hash.mix(&request.encode_to_vec());
    hash.finish()
}

impl State {
    fn decide(&mut self, txn_id: &str, phase: TxnPhase, fingerprint: u64) {
        self.active.remove(txn_id);
        self.pre_committed.remove(txn_id);
        if self
            .decided
            .insert(txn_id.to_owned(), (phase, fingerprint))
            .is_none()
        {
            self.decided_order.push_back(txn_id.to_owned());
        }
        while self.decided_order.len() > MAX_DECIDED {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
    }
}

fn encode(record: Record) -> Vec<u8> {
    CoordinatorRecord {
        record: Some(record),
    }
    .encode_to_vec()
}

impl Coordinator {
    /// Opens the log, recovers from it, and starts delivering what is
    /// undelivered.
    pub fn start(config: CoordinatorConfig) -> Result<Self> {
        let (journal, records) = Journal::open(config.disk)?;
        let mut state = State::default();
        for bytes in &records {
            let record = CoordinatorRecord::decode(bytes.as_slice())
                .map_err(|err| Error::Log(format!("undecodable coordinator record: {err}")))?;
            match record.record {
                Some(Record::Commit(txn)) => {
                    state.decide(&txn.txn_id, TxnPhase::Committed, fingerprint(&txn));
                    state.undelivered.insert(txn.txn_id.clone(), txn);
                }
                // Pre-committed and then crashed: everyone voted yes, so
                // recovery commits.
                Some(Record::PreCommit(txn)) => {
                    state.decide(&txn.txn_id, TxnPhase::Committed, fingerprint(&txn));
                    state.undelivered.insert(txn.txn_id.clone(), txn);
                }
                Some(Record::End(txn)) => {
                    state.undelivered.remove(&txn.txn_id);
                }
                None => {}
            }
        }
        state.snapshot_records = records.len() as u64;
        let client = ClientBuilder::new(config.net).default_deadline(config.vote_timeout);
        let mut participants = BTreeMap::new();
        for (name, address) in &config.participants {
            check_id("participant", name)?;
            let channel = client.dial(address).map_err(|err| Error::Invalid {
                field: "participant",
                reason: format!("{name}={address}: {err}"),
            })?;
            participants.insert(name.clone(), channel);
        }
        let inner = Arc::new(Inner {
            name: config.name,
            participants,
            journal,
            halt_at: config.halt_at,
            halted: AtomicBool::new(false),
            cuts: config.cuts,
            state: Mutex::new(state),
        });
        tokio::spawn(redeliver(Arc::downgrade(&inner), config.redeliver_every));
        Ok(Self { inner })
    }

    pub fn into_service(self) -> TransactionCoordinatorServer<Self> {
        TransactionCoordinatorServer::new(self)
    }

    /// Whether the coordinator stopped at its [`HaltPoint`].
    pub fn halted(&self) -> bool {
        self.inner.halted.load(Ordering::SeqCst)
    }

    /// Stops as if crashed: answers nothing, sends nothing more.
    pub fn halt(&self) {
        self.inner.halted.store(true, Ordering::SeqCst);
    }

    /// Runs a transaction to its decision. The protocol runs in a task of
    /// its own: a caller that gives up (a deadline, a cancelled call) does
    /// not abandon the transaction half way, holding locks everywhere.
    pub async fn execute(&self, request: TxnRequest) -> Result<TxnPhase, Status> {
        self.refuse_if_halted()?;
        self.validate(&request)?;
        let txn_id = request.txn_id.clone();
        let print = fingerprint(&request);
        let reused = || {
            Status::already_exists(format!(
                "transaction {txn_id:?} was started with other branches"
            ))
        };
        let mut decision = {
            let mut state = self.inner.lock();
            if let Some(&(phase, decided)) = state.decided.get(&txn_id) {
                return if decided == print {
                    Ok(phase)
                } else {
                    Err(reused())
                };
            }
            if let Some((active, existing)) = state.active.get(&txn_id) {
                if *active != print {
                    return Err(reused());
                }
                existing.clone()
            } else {
                // Undelivered commits count too: a participant that never
                // comes back must not let them pile up without end.
                let open = state.active.len() + state.committing.len() + state.undelivered.len();
                if open >= MAX_ACTIVE {
                    return Err(Error::Full {
                        table: "active transactions",
                        max: MAX_ACTIVE,
                    }
                    .into());
                }
                let (announce, decision) = watch::channel(None);
                state
                    .active
                    .insert(txn_id.clone(), (print, decision.clone()));
                let coordinator = self.clone();
                tokio::spawn(
                    async move {
                        match coordinator.run(request).await {
                            Ok(phase) => {
                                announce.send_replace(Some(phase));
                            }
                            // Only a halt or a failed log write end a run
                            // early, and either leaves this coordinator
                            // unable to know what its log holds: it stops,
                            // as a crash would, until restarted on its log.
                            Err(status) => {
                                tracing::error!(%status, "stopping the coordinator");
                                coordinator.halt();
                            }
                        }
                    }
                    .instrument(tracing::Span::current()),
                );
                decision
            }
        };
        let decided = decision
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::unavailable("the coordinator is down"))?;
        Ok(decided.unwrap_or_default())
    }

    async fn run(&self, request: TxnRequest) -> Result<TxnPhase, Status> {
        let txn_id = request.txn_id.clone();
        let protocol = Protocol::try_from(request.protocol).unwrap_or_default();
        let participants: Vec<String> = request
            .branches
            .iter()
            .map(|branch| branch.participant.clone())
            .collect();
        let votes = join_all(request.branches.iter().map(|branch| {
            let prepare = PrepareRequest {
                txn_id: txn_id.clone(),
                protocol: protocol.into(),
                changes: branch.changes.clone(),
                participants: participants.clone(),
            };
            async move {
                let mut client = self.client(&branch.participant)?;
                let vote = client.prepare(prepare).await?.into_inner();
                if vote.yes {
                    Ok(())
                } else {
                    Err(Status::aborted(format!(
                        "{} voted no: {}",
                        branch.participant, vote.reason
                    )))
                }
            }
        }))
        .await;
        if let Some(refusal) = votes.into_iter().find_map(Result::err) {
            tracing::info!(txn = %txn_id, reason = %refusal.message(), "aborting");
            // Presumed abort: nothing to log. Tell whoever may have voted yes.
            self.inner
                .lock()
                .decide(&txn_id, TxnPhase::Aborted, fingerprint(&request));
            self.broadcast(&participants, &txn_id, Broadcast::Abort)
                .await;
            return Ok(TxnPhase::Aborted);
        }
        self.halt_if(HaltPoint::AfterVotes).await?;
        // From here the transaction may commit: every snapshot must keep it.
        self.inner
            .lock()
            .committing
            .insert(txn_id.clone(), request.clone());
        if protocol == Protocol::ThreePhase {
            self.log(Record::PreCommit(request.clone())).await?;
            self.inner.lock().pre_committed.insert(txn_id.clone());
            for (delivered, name) in participants.iter().enumerate() {
                self.halt_if(HaltPoint::AfterPreCommit { delivered })
                    .await?;
                if let Ok(mut client) = self.client(name) {
                    // A participant that misses it times out and decides alone.
                    let _ = client
                        .pre_commit(TxnRef {
                            txn_id: txn_id.clone(),
                        })
                        .await;
                }
            }
            self.halt_if(HaltPoint::AfterPreCommit {
                delivered: participants.len(),
            })
            .await?;
        }
        // The decision: once this record is on disk, the transaction commits.
        self.log(Record::Commit(request.clone())).await?;
        {
            let mut state = self.inner.lock();
            state.decide(&txn_id, TxnPhase::Committed, fingerprint(&request));
            state.committing.remove(&txn_id);
            state.undelivered.insert(txn_id.clone(), request.clone());
        }
        self.halt_if(HaltPoint::AfterDecision).await?;
        self.deliver(request).await;
        Ok(TxnPhase::Committed)
    }

    /// Sends COMMIT to everyone; once all acknowledged, logs END.
    async fn deliver(&self, request: TxnRequest) {
        let participants: Vec<String> = request
            .branches
            .iter()
            .map(|branch| branch.participant.clone())
            .collect();
        if self
            .broadcast(&participants, &request.txn_id, Broadcast::Commit)
            .await
        {
            let delivered = self
                .inner
                .lock()
                .undelivered
                .remove(&request.txn_id)
                .is_some();
            if delivered {
                let end = Record::End(TxnRef {
                    txn_id: request.txn_id.clone(),
                });
                // END need not be forced: losing it only means one more
                // (harmless) delivery after a restart.
                self.inner.journal.queue_lazy(vec![encode(end)]);
                self.compact_if_due().await;
            }
        }
    }

    /// Sends a decision to `participants`; whether all acknowledged.
    async fn broadcast(&self, participants: &[String], txn_id: &str, what: Broadcast) -> bool {
        let acks = join_all(participants.iter().map(|name| async move {
            let mut client = self.client(name)?;
            let txn = TxnRef {
                txn_id: txn_id.to_owned(),
            };
            match what {
                Broadcast::Commit => client.commit(txn).await,
                Broadcast::Abort => client.abort(txn).await,
            }
            .map(drop)
            .or_else(|status| {
                if status.code() == tonic::Code::FailedPrecondition {
                    // The participant decided otherwise on its own — only
                    // three-phase commit's timeouts can do that. Sending
                    // again would not change its mind.
                    tracing::error!(participant = %name, txn = %txn_id, %status, "atomicity violated");
                    Ok(())
                } else {
                    Err(status)
                }
            })
        }))
        .await;
        acks.iter().all(Result::is_ok)
    }

    fn client(&self, name: &str) -> Result<TransactionParticipantClient<RpcChannel>, Status> {
        if self.inner.cuts.is_cut(&self.inner.name, name) {
            return Err(Status::unavailable(format!("link to {name} is cut")));
        }
        let channel = self
            .inner
            .participants
            .get(name)
            .ok_or_else(|| Status::invalid_argument(format!("unknown participant {name:?}")))?;
        Ok(TransactionParticipantClient::new(channel.clone()))
    }

    async fn log(&self, record: Record) -> Result<(), Status> {
        self.inner.journal.append(vec![encode(record)]).await?;
        self.inner.lock().records_since_compaction += 1;
        Ok(())
    }

    /// Rewrites the log as the commits still undelivered (and those on
    /// their way to disk): everything else in it is either ENDed or
    /// presumed aborted. The snapshot is taken and queued under the state
    /// lock, so no COMMIT can slip between the two and be erased.
    async fn compact_if_due(&self) {
        let rewritten = {
            let mut state = self.inner.lock();
            state.records_since_compaction += 1;
            let due = COMPACT_EVERY.max(2 * state.snapshot_records);
            if state.records_since_compaction < due {
                return;
            }
            let Ok(slot) = self.inner.journal.reserve() else {
                return; // The queue is full: compact next time.
            };
            let records: Vec<Vec<u8>> = state
                .committing
                .values()
                .chain(state.undelivered.values())
                .map(|txn| encode(Record::Commit(txn.clone())))
                .collect();
            state.records_since_compaction = 0;
            state.snapshot_records = records.len() as u64;
            slot.rewrite(records)
        };
        if let Err(err) = rewritten.await {
            tracing::error!(%err, "compacting the coordinator log failed");
        }
    }

    async fn halt_if(&self, point: HaltPoint) -> Result<(), Status> {
        if self.inner.halt_at == Some(point) {
            tracing::info!(?point, "coordinator halting, as configured");
            self.halt();
        }
        self.refuse_if_halted()
    }

    fn refuse_if_halted(&self) -> Result<(), Status> {
        if self.halted() {
            return Err(Status::unavailable("the coordinator is down"));
        }
        Ok(())
    }

    fn validate(&self, request: &TxnRequest) -> Result<()> {
        check_id("txn_id", &request.txn_id)?;
        Protocol::try_from(request.protocol).map_err(|_| Error::Invalid {
            field: "protocol",
            reason: format!("unknown protocol {}", request.protocol),
        })?;
        if request.branches.is_empty() || request.branches.len() > MAX_PARTICIPANTS {
            return Err(Error::Invalid {
                field: "branches",
                reason: format!("must name 1..={MAX_PARTICIPANTS} participants"),
            });
        }
        let changes: usize = request.branches.iter().map(|b| b.changes.len()).sum();
        if changes > MAX_CHANGES {
            return Err(Error::Invalid {
                field: "branches.changes",
                reason: format!("{changes} changes in all; at most {MAX_CHANGES}"),
            });
        }
        let mut seen = BTreeSet::new();
        for branch in &request.branches {
            if !self.inner.participants.contains_key(&branch.participant) {
                return Err(Error::Invalid {
                    field: "branches.participant",
                    reason: format!("{:?} is not a known participant", branch.participant),
                });
            }
            if !seen.insert(branch.participant.as_str()) {
                return Err(Error::Invalid {
                    field: "branches",
                    reason: format!("{:?} appears twice", branch.participant),
                });
            }
            if branch.changes.is_empty() || branch.changes.len() > MAX_CHANGES {
                return Err(Error::Invalid {
                    field: "branches.changes",
                    reason: format!("must hold 1..={MAX_CHANGES} changes"),
                });
            }
            for change in &branch.changes {
                check_id("changes.key", &change.key)?;
                check_delta(change.delta)?;
            }
        }
        Ok(())
    }

    /// What the coordinator knows, under presumed abort.
    pub fn outcome(&self, txn_id: &str) -> Result<TxnPhase, Status> {
        self.refuse_if_halted()?;
        check_id("txn_id", txn_id)?;
        let state = self.inner.lock();
        Ok(if state.undelivered.contains_key(txn_id) {
            TxnPhase::Committed
        } else if let Some(&(phase, _)) = state.decided.get(txn_id) {
            phase
        } else if state.pre_committed.contains(txn_id) {
            TxnPhase::PreCommitted
        } else if state.active.contains_key(txn_id) || state.committing.contains_key(txn_id) {
            TxnPhase::Active
        } else {
            TxnPhase::Aborted
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Broadcast {
    Commit,
    Abort,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Delivers logged commits that some participant has not acknowledged,
/// until the coordinator is dropped.
async fn redeliver(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let coordinator = Coordinator { inner };
        if coordinator.halted() {
            continue;
        }
        let pending: Vec<TxnRequest> = coordinator
            .inner
            .lock()
            .undelivered
            .values()
            .cloned()
            .collect();
        for request in pending {
            coordinator.deliver(request).await;
        }
    }
}

#[tonic::async_trait]
impl TransactionCoordinator for Coordinator {
    async fn execute(&self, request: Request<TxnRequest>) -> Result<Response<TxnStatus>, Status> {
        let request = request.into_inner();
        let txn_id = request.txn_id.clone();
        let phase = Coordinator::execute(self, request).await?;
        Ok(Response::new(TxnStatus {
            txn_id,
            phase: phase.into(),
        }))
    }

    async fn outcome(&self, request: Request<TxnRef>) -> Result<Response<TxnStatus>, Status> {
        let txn_id = request.into_inner().txn_id;
        let phase = Coordinator::outcome(self, &txn_id)?;
        Ok(Response::new(TxnStatus {
            txn_id,
            phase: phase.into(),
        }))
    }
}
