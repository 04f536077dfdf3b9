//! The gRPC shell of a ledger: `Accounts`, `Inventory` and
//! `TransactionParticipant` on one state, one log, and a background task
//! that expires holds and resolves transactions left in doubt.
//!
//! In doubt (two-phase commit): a participant that voted yes may neither
//! commit nor abort on its own — the coordinator may have decided either
//! way. It keeps its locks and asks: the coordinator (`Outcome`), then
//! the other participants (`Status`; one that committed or aborted knows
//! the decision). If nobody who knows can be reached, it waits: 2PC
//! blocks.
//!
//! Three-phase commit adds a state that says "everyone voted yes": a
//! participant that times out *pre-committed* commits, one that times out
//! merely *prepared* asks its peers and aborts unless one of them
//! pre-committed. That never blocks — and when a partition separates a
//! pre-committed participant from prepared ones, each side decides on its
//! own, differently.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel};
use replication::clock::physical::PhysicalClock;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::{Decision, Ledger};
use crate::proto::v1::accounts_server::{Accounts, AccountsServer};
use crate::proto::v1::inventory_server::{Inventory, InventoryServer};
use crate::proto::v1::transaction_coordinator_client::TransactionCoordinatorClient;
use crate::proto::v1::transaction_participant_client::TransactionParticipantClient;
use crate::proto::v1::transaction_participant_server::{
    TransactionParticipant, TransactionParticipantServer,
};
use crate::proto::v1::{
    CreditReply, CreditRequest, HoldRef, HoldReply, HoldRequest, KeyRequest, LedgerEntry,
    OpenRequest, PrepareRequest, Protocol, TxnPhase, TxnRef, TxnStatus, Vote,
};
use crate::transaction::faults::LinkCuts;
use crate::transaction::journal::{Disk, Journal};
use crate::transaction::{Error, Result};

/// The peer name under which a ledger finds its transaction coordinator.
pub const COORDINATOR: &str = "coordinator";

/// How a ledger runs.
pub struct LedgerConfig {
    /// This ledger's name, as peers and coordinators call it.
    pub name: String,
    /// Peers by name: [`COORDINATOR`] and the other participants.
    pub peers: BTreeMap<String, String>,
    pub net: Net,
    pub disk: Disk,
    /// Reads hold deadlines (milliseconds since the Unix epoch).
    pub clock: Arc<dyn PhysicalClock>,
    /// How often holds are expired and doubts resolved.
    pub tick: Duration,
    /// How long a prepared two-phase transaction waits before asking.
    pub in_doubt_after: Duration,
    /// How long a three-phase participant waits before deciding alone.
    pub three_phase_timeout: Duration,
    /// Links cut at the message layer (demos on TCP).
    pub cuts: LinkCuts,
    /// Log records after which the log is rewritten as a snapshot (once it
    /// has also grown to twice the last snapshot).
    pub compact_every: u64,
}

impl std::fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("name", &self.name)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl LedgerConfig {
    pub fn new(name: &str, disk: Disk, net: Net) -> Self {
        Self {
            name: name.to_owned(),
            peers: BTreeMap::new(),
            net,
            disk,
            clock: Arc::new(replication::clock::physical::SystemClock),
            tick: Duration::from_millis(200),
            in_doubt_after: Duration::from_secs(1),
            three_phase_timeout: Duration::from_secs(1),
            cuts: LinkCuts::default(),
            compact_every: 100_000,
        }
    }
}

/// One ledger; clones share it. Its background task stops when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub struct LedgerServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    ledger: Mutex<Ledger>,
    journal: Journal,
    clock: Arc<dyn PhysicalClock>,
    coordinator: Option<RpcChannel>,
    peers: BTreeMap<String, RpcChannel>,
    cuts: LinkCuts,
    /// When each open transaction was last heard of, on this run.
    heard: Mutex<HashMap<String, Instant>>,
    compact_every: u64,
    /// Records appended since the log was last rewritten, and how many the
    /// rewrite wrote (both changed under the ledger lock).
    records_since_compaction: AtomicU64,
    snapshot_records: AtomicU64,
}

impl LedgerServer {
    /// Opens the log, replays it, and starts the background task.
    pub fn start(config: LedgerConfig) -> Result<Self> {
        let (journal, records) = Journal::open(config.disk)?;
        let ledger = Ledger::replay(&records)?;
        let client = ClientBuilder::new(config.net).default_deadline(Duration::from_secs(1));
        let mut peers = BTreeMap::new();
        let mut coordinator = None;
        for (name, address) in &config.peers {
            let channel = client.dial(address).map_err(|err| Error::Invalid {
                field: "peer",
                reason: format!("{name}={address}: {err}"),
            })?;
            if name == COORDINATOR {
                coordinator = Some(channel);
            } else if *name != config.name {
                peers.insert(name.clone(), channel);
            }
        }
        let inner = Arc::new(Inner {
            name: config.name,
            ledger: Mutex::new(ledger),
            journal,
            clock: config.clock,
            coordinator,
            peers,
            cuts: config.cuts,
            heard: Mutex::new(HashMap::new()),
            compact_every: config.compact_every.max(1),
            records_since_compaction: AtomicU64::new(records.len() as u64),
            snapshot_records: AtomicU64::new(0),
        });
        tokio::spawn(background(
            Arc::downgrade(&inner),
            config.tick,
            config.in_doubt_after,
            config.three_phase_timeout,
        ));
        Ok(Self { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A copy of the state, for tests and demos.
    pub fn snapshot(&self) -> Ledger {
        self.inner.lock().clone()
    }

    pub fn accounts(&self) -> AccountsServer<Self> {
        AccountsServer::new(self.clone())
    }

    pub fn inventory(&self) -> InventoryServer<Self> {
        InventoryServer::new(self.clone())
    }

    pub fn participant(&self) -> TransactionParticipantServer<Self> {
        TransactionParticipantServer::new(self.clone())
    }

    /// Decides under the lock, applies and queues the record (expiring
    /// due holds first), then waits for the disk outside the lock.
    async fn execute<T>(
        &self,
        decide: impl FnOnce(&Ledger, u64) -> Result<Decision<T>>,
        answer: impl FnOnce(&Ledger) -> Option<T>,
    ) -> Result<T> {
        let now_ms = self.inner.now_ms();
        // The log's place first: once the state changes, its record must
        // not be refused.
        let slot = self.inner.journal.reserve()?;
        let (written, rewritten, result) = {
            let mut ledger = self.inner.lock();
            let mut records = ledger.due_expiries(now_ms);
            for record in &records {
                ledger.apply(record);
            }
            let result = match decide(&ledger, now_ms) {
                Ok(Decision::Known(value)) => Ok(value),
                Ok(Decision::Apply(record)) => {
                    ledger.apply(&record);
                    records.push(record);
                    answer(&ledger)
                        .ok_or_else(|| Error::Log("a logged change left no trace".into()))
                }
                Err(err) => Err(err),
            };
            // Even an answer that changes nothing waits for the log: it
            // may repeat a change still on its way to disk.
            let appended = records.len() as u64;
            let written = slot.write(records.into_iter().map(Ledger::encode).collect());
            (written, self.compact_if_due(&ledger, appended), result)
        };
        written.await?;
        if let Some(rewritten) = rewritten {
            // Off this call: a large snapshot must not delay its answer.
            tokio::spawn(async move {
                if let Err(err) = rewritten.await {
                    tracing::error!(%err, "compacting the ledger log failed");
                }
            });
        }
        result
    }
}

impl LedgerServer {
    /// Once the log has grown past `compact_every` records and twice its
    /// last snapshot, queues its replacement by a snapshot of `ledger` —
    /// under the ledger lock, so no record can fall between the two.
    fn compact_if_due(
        &self,
        ledger: &Ledger,
        appended: u64,
    ) -> Option<impl Future<Output = Result<()>> + Send + 'static + use<>> {
        let inner = &self.inner;
        let since = inner
            .records_since_compaction
            .fetch_add(appended, Ordering::Relaxed)
            + appended;
        let due = inner
            .compact_every
            .max(2 * inner.snapshot_records.load(Ordering::Relaxed));
        if since < due {
            return None;
        }
        let slot = inner.journal.reserve().ok()?;
        let records = ledger.snapshot_records();
        inner.records_since_compaction.store(0, Ordering::Relaxed);
        inner
            .snapshot_records
            .store(records.len() as u64, Ordering::Relaxed);
        Some(slot.rewrite(records))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ns() / 1_000_000
    }
}

fn held(reply: HoldReply) -> Response<HoldReply> {
    Response::new(reply)
}

impl LedgerServer {
    async fn open_entry(&self, request: OpenRequest) -> Result<LedgerEntry> {
        let key = request.key.clone();
        self.execute(
            |ledger, _| ledger.open(&request),
            |ledger| ledger.entry(&key).ok(),
        )
        .await
    }

    async fn place_hold(&self, request: HoldRequest) -> Result<HoldReply> {
        let hold_id = request.hold_id.clone();
        self.execute(
            |ledger, now_ms| ledger.hold(&request, now_ms),
            |ledger| ledger.hold_reply(&hold_id),
        )
        .await
    }

    async fn capture_hold(&self, hold_id: String) -> Result<HoldReply> {
        self.execute(
            |ledger, _| ledger.capture(&hold_id),
            |ledger| ledger.hold_reply(&hold_id),
        )
        .await
    }

    async fn release_hold(&self, hold_id: String) -> Result<HoldReply> {
        self.execute(
            |ledger, _| ledger.release(&hold_id),
            |ledger| ledger.hold_reply(&hold_id),
        )
        .await
    }

    async fn decide_txn(
        &self,
        txn_id: String,
        decide: impl FnOnce(&Ledger, &str) -> Result<Decision<TxnPhase>>,
    ) -> Result<TxnStatus> {
        let phase = self
            .execute(
                |ledger, _| decide(ledger, &txn_id),
                |ledger| Some(ledger.phase(&txn_id)),
            )
            .await?;
        self.inner
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(txn_id.clone(), Instant::now());
        Ok(TxnStatus {
            txn_id,
            phase: phase.into(),
        })
    }
}

#[tonic::async_trait]
impl Accounts for LedgerServer {
    async fn open(&self, request: Request<OpenRequest>) -> Result<Response<LedgerEntry>, Status> {
        Ok(Response::new(self.open_entry(request.into_inner()).await?))
    }

    async fn balance(&self, request: Request<KeyRequest>) -> Result<Response<LedgerEntry>, Status> {
        Ok(Response::new(
            self.inner.lock().entry(&request.get_ref().key)?,
        ))
    }

    async fn hold(&self, request: Request<HoldRequest>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.place_hold(request.into_inner()).await?))
    }

    async fn capture(&self, request: Request<HoldRef>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.capture_hold(request.into_inner().hold_id).await?))
    }

    async fn release(&self, request: Request<HoldRef>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.release_hold(request.into_inner().hold_id).await?))
    }

    async fn credit(
        &self,
        request: Request<CreditRequest>,
    ) -> Result<Response<CreditReply>, Status> {
        let request = request.into_inner();
        let credit_id = request.credit_id.clone();
        let reply = self
            .execute(
                |ledger, _| ledger.credit(&request),
                |ledger| ledger.credit_reply(&credit_id),
            )
            .await?;
        Ok(Response::new(reply))
    }
}

#[tonic::async_trait]
impl Inventory for LedgerServer {
    async fn add_item(
        &self,
        request: Request<OpenRequest>,
    ) -> Result<Response<LedgerEntry>, Status> {
        Ok(Response::new(self.open_entry(request.into_inner()).await?))
    }

    async fn item(&self, request: Request<KeyRequest>) -> Result<Response<LedgerEntry>, Status> {
        Ok(Response::new(
            self.inner.lock().entry(&request.get_ref().key)?,
        ))
    }

    async fn reserve(&self, request: Request<HoldRequest>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.place_hold(request.into_inner()).await?))
    }

    async fn confirm(&self, request: Request<HoldRef>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.capture_hold(request.into_inner().hold_id).await?))
    }

    async fn cancel(&self, request: Request<HoldRef>) -> Result<Response<HoldReply>, Status> {
        Ok(held(self.release_hold(request.into_inner().hold_id).await?))
    }
}

#[tonic::async_trait]
impl TransactionParticipant for LedgerServer {
    async fn prepare(&self, request: Request<PrepareRequest>) -> Result<Response<Vote>, Status> {
        // A participant that could never ask anyone the outcome would stay
        // locked for good after a yes vote: refuse to vote at all.
        if self.inner.coordinator.is_none() {
            return Err(Status::failed_precondition(format!(
                "ledger {:?} has no coordinator (--peer {COORDINATOR}=ADDR); it takes no part in commits",
                self.inner.name
            )));
        }
        let request = request.into_inner();
        let txn_id = request.txn_id.clone();
        let (yes, reason) = self
            .execute(
                |ledger, _| ledger.prepare(&request),
                |_| Some((true, String::new())),
            )
            .await?;
        if yes {
            self.inner
                .heard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(txn_id.clone(), Instant::now());
        }
        Ok(Response::new(Vote {
            txn_id,
            yes,
            reason,
        }))
    }

    async fn pre_commit(&self, request: Request<TxnRef>) -> Result<Response<TxnStatus>, Status> {
        let txn_id = request.into_inner().txn_id;
        Ok(Response::new(
            self.decide_txn(txn_id, |ledger, id| ledger.pre_commit(id))
                .await?,
        ))
    }

    async fn commit(&self, request: Request<TxnRef>) -> Result<Response<TxnStatus>, Status> {
        let txn_id = request.into_inner().txn_id;
        Ok(Response::new(
            self.decide_txn(txn_id, |ledger, id| ledger.commit(id))
                .await?,
        ))
    }

    async fn abort(&self, request: Request<TxnRef>) -> Result<Response<TxnStatus>, Status> {
        let txn_id = request.into_inner().txn_id;
        Ok(Response::new(
            self.decide_txn(txn_id, |ledger, id| ledger.abort(id))
                .await?,
        ))
    }

    async fn status(&self, request: Request<TxnRef>) -> Result<Response<TxnStatus>, Status> {
        let txn_id = request.into_inner().txn_id;
        crate::transaction::check_id("txn_id", &txn_id)?;
        let phase = self.inner.lock().phase(&txn_id);
        Ok(Response::new(TxnStatus {
            txn_id,
            phase: phase.into(),
        }))
    }
}

/// Expires holds and resolves doubts every `tick`, until the ledger is
/// dropped.
async fn background(
    inner: Weak<Inner>,
    tick: Duration,
    in_doubt_after: Duration,
    three_phase_timeout: Duration,
) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let server = LedgerServer { inner };
        // An expiry sweep: a no-op decision runs the expiries first.
        let _ = server
            .execute(|_, _| Ok(Decision::Known(())), |_| Some(()))
            .await;
        let in_doubt = server.inner.lock().in_doubt();
        for (txn_id, protocol, phase, participants) in in_doubt {
            let waited = {
                let mut heard = server
                    .inner
                    .heard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                heard
                    .entry(txn_id.clone())
                    .or_insert_with(Instant::now)
                    .elapsed()
            };
            let patience = match protocol {
                Protocol::TwoPhase => in_doubt_after,
                Protocol::ThreePhase => three_phase_timeout,
            };
            if waited < patience {
                continue;
            }
            if let Some(decision) = server
                .resolve(&txn_id, protocol, phase, &participants)
                .await
            {
                let outcome = match decision {
                    TxnPhase::Committed => {
                        server
                            .decide_txn(txn_id.clone(), |ledger, id| ledger.commit(id))
                            .await
                    }
                    _ => {
                        server
                            .decide_txn(txn_id.clone(), |ledger, id| ledger.abort(id))
                            .await
                    }
                };
                match outcome {
                    Ok(status) => tracing::info!(
                        ledger = %server.inner.name,
                        txn = %txn_id,
                        phase = TxnPhase::try_from(status.phase).unwrap_or_default().as_str_name(),
                        "resolved a transaction in doubt"
                    ),
                    Err(err) => tracing::warn!(txn = %txn_id, %err, "could not resolve"),
                }
            }
        }
        server
            .inner
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, heard| heard.elapsed() < in_doubt_after.max(three_phase_timeout) * 10);
    }
}

impl LedgerServer {
    /// The decision for a transaction in doubt, if it can be learned (2PC)
    /// or taken (3PC); `None`: keep waiting.
    async fn resolve(
        &self,
        txn_id: &str,
        protocol: Protocol,
        phase: TxnPhase,
        participants: &[String],
    ) -> Option<TxnPhase> {
        let txn = || TxnRef {
            txn_id: txn_id.to_owned(),
        };
        if let Some(channel) = &self.inner.coordinator
            && !self.inner.cuts.is_cut(&self.inner.name, COORDINATOR)
        {
            let answer = TransactionCoordinatorClient::new(channel.clone())
                .outcome(txn())
                .await;
            match answer.map(|reply| TxnPhase::try_from(reply.into_inner().phase)) {
                // A pre-commit record means the coordinator will commit.
                Ok(Ok(TxnPhase::Committed | TxnPhase::PreCommitted)) => {
                    return Some(TxnPhase::Committed);
                }
                // Alive and still collecting votes: it will tell us.
                Ok(Ok(TxnPhase::Active)) => return None,
                // Presumed abort: no commit record means aborted.
                Ok(Ok(TxnPhase::Aborted | TxnPhase::Unknown)) => return Some(TxnPhase::Aborted),
                _ => {}
            }
        }
        let mut peer_phases = Vec::new();
        for name in participants.iter().filter(|name| **name != self.inner.name) {
            let Some(channel) = self.inner.peers.get(name) else {
                continue;
            };
            if self.inner.cuts.is_cut(&self.inner.name, name) {
                continue;
            }
            if let Ok(reply) = TransactionParticipantClient::new(channel.clone())
                .status(txn())
                .await
            {
                peer_phases.push(TxnPhase::try_from(reply.into_inner().phase).unwrap_or_default());
            }
        }
        if peer_phases.contains(&TxnPhase::Committed) {
            return Some(TxnPhase::Committed);
        }
        if peer_phases.contains(&TxnPhase::Aborted) {
            return Some(TxnPhase::Aborted);
        }
        match (protocol, phase) {
            // 2PC: nobody who knows answered. Block, holding the locks.
            (Protocol::TwoPhase, _) => None,
            // 3PC: everyone voted yes if anyone pre-committed.
            (Protocol::ThreePhase, TxnPhase::PreCommitted) => Some(TxnPhase::Committed),
            (Protocol::ThreePhase, _) if peer_phases.contains(&TxnPhase::PreCommitted) => {
                Some(TxnPhase::Committed)
            }
            (Protocol::ThreePhase, _) => Some(TxnPhase::Aborted),
        }
    }
}
