//! The saga orchestrator: runs definitions, logs them, resumes them.
//!
//! Episode: 18, "Distributed Transactions" (also 40: retries, 23: the log)
//! Pattern: saga orchestration / saga log
//!
//! `Start` forces a START record to the saga log, then runs the steps.
//! A step that fails for a business reason (FailedPrecondition, NotFound,
//! InvalidArgument, …) turns the saga back: a COMPENSATING record is
//! forced, and the compensations of every step up to the failed one run in
//! reverse order, each retried until it succeeds. A transient failure
//! (Unavailable, a deadline, a lock held by a transaction in doubt) is
//! retried with backoff — through `resilience`'s retry layer on the
//! channel, then this loop — up to `max_attempts` for a compensatable
//! step, then treated as a failure; the pivot and the steps after it are
//! retried until they succeed, because there is no way back past the
//! pivot.
//!
//! On restart the orchestrator replays its log and resumes every saga
//! that had not ended: forward from the start (steps done answer with
//! their first result, by idempotency key) or backward if it had turned.
//!
//! Tracing: one span per saga, a child span per step attempt and per
//! compensation; the RPC stack carries the trace into every participant,
//! so one trace shows the whole saga, compensations included.
//!
//! Bounds: [`MAX_RUNNING`] sagas at once (ResourceExhausted beyond);
//! [`MAX_REMEMBERED`] ended sagas kept for `Get` and duplicate starts;
//! step timeouts at most [`MAX_STEP_TIMEOUT`]; the log is compacted to
//! the sagas remembered once it has grown by [`COMPACT_EVERY`] records and
//! twice the last snapshot — O(sagas remembered) under the state lock,
//! so amortized over at least as many records as it writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel};
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use resilience::retry::{Idempotency, RetryLayer, RetryPolicy, RetryService};
use tokio::sync::watch;
use tonic::{Code, Request, Response, Status};
use tower_layer::Layer as _;
use tracing::Instrument as _;

use super::{Call, Keys, SagaDefinition, StepKind, define};
use crate::proto::v1::accounts_client::AccountsClient;
use crate::proto::v1::inventory_client::InventoryClient;
use crate::proto::v1::saga_orchestrator_server::{SagaOrchestrator, SagaOrchestratorServer};
use crate::proto::v1::saga_record::Record;
use crate::proto::v1::shipping_client::ShippingClient;
use crate::proto::v1::{
    CreditRequest, HoldRef, HoldRequest, HoldState, Saga, SagaCompensating, SagaRecord, SagaRef,
    SagaState, SagaStepDone, ShipRequest, ShipmentRef, ShipmentState, StartSagaRequest, StepReport,
    StepState,
};
use crate::transaction::faults::{FaultInjector, MessageFaults};
use crate::transaction::journal::{Disk, Journal};
use crate::transaction::{Error, Result};

/// Sagas running at once, at most.
pub const MAX_RUNNING: usize = 4096;
/// Ended sagas remembered: with [`super::MAX_PARAMS`] params of at most
/// [`crate::transaction::MAX_ID_BYTES`] each, at most ~2.5 KiB apiece, so
/// ~125 MiB in all.
pub const MAX_REMEMBERED: usize = 50_000;
/// The longest per-attempt step timeout a request may ask for.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Log records between compactions.
pub const COMPACT_EVERY: u64 = 50_000;

type Channel = RetryService<RpcChannel>;

pub struct OrchestratorConfig {
    /// Participants by name.
    pub participants: BTreeMap<String, String>,
    pub net: Net,
    pub disk: Disk,
    /// Per attempt, unless a request names its own.
    pub step_timeout: Duration,
    /// Attempts of a compensatable step before it counts as failed.
    pub max_attempts: u32,
    /// The first retry's backoff; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub keys: Keys,
    /// Faults injected into every participant call.
    pub faults: MessageFaults,
    pub seed: u64,
}

impl std::fmt::Debug for OrchestratorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorConfig")
            .field("participants", &self.participants)
            .field("keys", &self.keys)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl OrchestratorConfig {
    pub fn new(participants: BTreeMap<String, String>, disk: Disk, net: Net) -> Self {
        Self {
            participants,
            net,
            disk,
            step_timeout: Duration::from_secs(2),
            max_attempts: 5,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            keys: Keys::PerStep,
            faults: MessageFaults::default(),
            seed: 0,
        }
    }
}

/// The orchestrator; clones share it.
#[derive(Clone, Debug)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    participants: BTreeMap<String, Channel>,
    journal: Journal,
    step_timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    keys: Keys,
    faults: FaultInjector,
    rng: Mutex<SmallRng>,
    state: Mutex<State>,
}

/// One saga as the orchestrator knows it.
#[derive(Clone, Debug)]
struct Entry {
    start: StartSagaRequest,
    definition: SagaDefinition,
    report: Saga,
    /// Announces every change of the report.
    changed: watch::Sender<Saga>,
}

#[derive(Debug, Default)]
struct State {
    sagas: HashMap<String, Entry>,
    ended: VecDeque<String>,
    running: usize,
    /// Records appended since the log was last rewritten, and how many the
    /// rewrite wrote.
    records_since_compaction: u64,
    snapshot_records: u64,
}

fn encode(record: Record) -> Vec<u8> {
    SagaRecord {
        record: Some(record),
    }
    .encode_to_vec()
}

fn is_final(state: i32) -> bool {
    state == SagaState::Completed as i32 || state == SagaState::Compensated as i32
}

/// Whether a failure is worth another attempt.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown
            | Code::Internal
    )
}

impl Orchestrator {
    /// Opens the saga log, and resumes every saga it finds unfinished.
    pub fn start(config: OrchestratorConfig) -> Result<Self> {
        let (journal, records) = Journal::open(config.disk)?;
        let client = ClientBuilder::new(config.net);
        let mut policy = RetryPolicy::new(Idempotency::AllMethods);
        policy.seed = config.seed;
        let retry = RetryLayer::new(policy).map_err(|err| Error::Invalid {
            field: "retry policy",
            reason: err.to_string(),
        })?;
        let mut participants = BTreeMap::new();
        for (name, address) in &config.participants {
            let channel = client.dial(address).map_err(|err| Error::Invalid {
                field: "participant",
                reason: format!("{name}={address}: {err}"),
            })?;
            participants.insert(name.clone(), retry.layer(channel));
        }
        let orchestrator = Self {
            inner: Arc::new(Inner {
                participants,
                journal,
                step_timeout: config.step_timeout,
                max_attempts: config.max_attempts.max(1),
                backoff: config.backoff,
                max_backoff: config.max_backoff.max(config.backoff),
                keys: config.keys,
                faults: FaultInjector::new(config.faults, config.seed ^ 0x5a6a),
                rng: Mutex::new(SmallRng::seed_from_u64(config.seed)),
                state: Mutex::new(State::default()),
            }),
        };
        let unfinished = orchestrator.recover(&records)?;
        for saga_id in unfinished {
            let span = tracing::info_span!("saga.resume", saga = %saga_id);
            let resumed = orchestrator.clone();
            tokio::spawn(async move { resumed.run(saga_id).await }.instrument(span));
        }
        Ok(orchestrator)
    }

    pub fn into_service(self) -> SagaOrchestratorServer<Self> {
        SagaOrchestratorServer::new(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds the sagas from the log; the ids of those unfinished.
    fn recover(&self, records: &[Vec<u8>]) -> Result<Vec<String>> {
        let mut state = self.lock();
        for bytes in records {
            let record = SagaRecord::decode(bytes.as_slice())
                .map_err(|err| Error::Log(format!("undecodable saga record: {err}")))?;
            match record.record {
                // A START written again by a compaction racing its own
                // append is the same saga.
                Some(Record::Start(start)) if state.sagas.contains_key(&start.saga_id) => {}
                Some(Record::Start(start)) => {
                    let definition = define(&start.saga_id, &start.saga_type, &start.params)?;
                    let entry = new_entry(start, definition, true);
                    state.running += 1;
                    state.sagas.insert(entry.report.saga_id.clone(), entry);
                }
                Some(Record::StepDone(done)) => {
                    if let Some(entry) = state.sagas.get_mut(&done.saga_id)
                        && let Some(step) = entry.report.steps.get_mut(done.step as usize)
                    {
                        step.state = StepState::Done.into();
                    }
                }
                Some(Record::Compensating(turn)) => {
                    if let Some(entry) = state.sagas.get_mut(&turn.saga_id) {
                        entry.report.state = SagaState::Compensating.into();
                        entry.report.failure_code = turn.failure_code;
                        entry.report.failure = turn.failure;
                        if let Some(step) = entry.report.steps.get_mut(turn.failed_step as usize) {
                            step.state = StepState::Failed.into();
                        }
                    }
                }
                Some(Record::Completed(saga)) => {
                    end(&mut state, &saga.saga_id, SagaState::Completed)
                }
                Some(Record::Compensated(saga)) => {
                    if let Some(entry) = state.sagas.get_mut(&saga.saga_id) {
                        for step in &mut entry.report.steps {
                            if step.state == StepState::Done as i32 {
                                step.state = StepState::Compensated.into();
                            }
                        }
                    }
                    end(&mut state, &saga.saga_id, SagaState::Compensated);
                }
                None => {}
            }
        }
        state.snapshot_records = records.len() as u64;
        let mut unfinished: Vec<String> = state
            .sagas
            .iter()
            .filter(|(_, entry)| !is_final(entry.report.state))
            .map(|(id, _)| id.clone())
            .collect();
        unfinished.sort();
        Ok(unfinished)
    }

    /// Starts a saga (or finds the one started under this id).
    pub async fn start_saga(&self, request: StartSagaRequest) -> Result<Saga, Status> {
        if request.step_timeout_ms < 0 {
            return Err(Status::invalid_argument(format!(
                "step_timeout_ms must not be negative, got {}",
                request.step_timeout_ms
            )));
        }
        if request.step_timeout_ms as u128 > MAX_STEP_TIMEOUT.as_millis() {
            return Err(Status::invalid_argument(format!(
                "step_timeout_ms is at most {}",
                MAX_STEP_TIMEOUT.as_millis()
            )));
        }
        let definition = define(&request.saga_id, &request.saga_type, &request.params)?;
        for step in &definition.steps {
            if !self
                .inner
                .participants
                .contains_key(step.action.participant())
            {
                return Err(Status::invalid_argument(format!(
                    "participant {:?} is not configured",
                    step.action.participant()
                )));
            }
        }
        let saga_id = request.saga_id.clone();
        let wait = request.wait;
        let existing = {
            let state = self.lock();
            state.sagas.get(&saga_id).map(|entry| {
                (
                    entry.start.saga_type == request.saga_type
                        && entry.start.params == request.params,
                    entry.changed.subscribe(),
                )
            })
        };
        let mut changes = match existing {
            Some((false, _)) => {
                return Err(Status::already_exists(format!(
                    "saga {saga_id:?} was started with another type or params"
                )));
            }
            Some((true, changes)) => changes,
            None => {
                let fresh = {
                    let mut state = self.lock();
                    if let Some(entry) = state.sagas.get(&saga_id) {
                        // Started by a concurrent call while we validated.
                        Err(entry.changed.subscribe())
                    } else if state.running >= MAX_RUNNING {
                        return Err(Error::Full {
                            table: "running sagas",
                            max: MAX_RUNNING,
                        }
                        .into());
                    } else {
                        let entry = new_entry(request.clone(), definition, false);
                        let changes = entry.changed.subscribe();
                        state.sagas.insert(saga_id.clone(), entry);
                        state.running += 1;
                        Ok(changes)
                    }
                };
                match fresh {
                    Err(changes) => changes,
                    Ok(changes) => {
                        // Forced: a saga must never run without its START
                        // on disk, or a crash would orphan its first hold.
                        if let Err(err) = self.log(Record::Start(request)).await {
                            let mut state = self.lock();
                            state.sagas.remove(&saga_id);
                            state.running -= 1;
                            return Err(err.into());
                        }
                        // Only now may anyone be told it runs.
                        self.update(&saga_id, |saga| saga.state = SagaState::Running.into());
                        let span = tracing::info_span!("saga", saga = %saga_id);
                        let runner = self.clone();
                        let id = saga_id.clone();
                        tokio::spawn(async move { runner.run(id).await }.instrument(span));
                        changes
                    }
                }
            }
        };
        if wait {
            let report = changes
                .wait_for(|saga| is_final(saga.state))
                .await
                .map_err(|_| Status::unavailable("the orchestrator stopped"))?;
            return Ok(report.clone());
        }
        // A duplicate start waits, like the first, for the START record.
        let report = changes
            .wait_for(|saga| saga.state != SagaState::Unspecified as i32)
            .await
            .map_err(|_| Status::unavailable("the orchestrator could not log the saga"))?;
        Ok(report.clone())
    }

    pub fn get(&self, saga_id: &str) -> Result<Saga, Status> {
        crate::transaction::check_id("saga_id", saga_id)?;
        self.lock()
            .sagas
            .get(saga_id)
            .map(|entry| entry.report.clone())
            .ok_or_else(|| Status::not_found(format!("saga {saga_id:?} not found")))
    }

    /// Runs (or resumes) a saga to its end.
    async fn run(self, saga_id: String) {
        let Some((definition, timeout, compensating)) = self.lock().sagas.get(&saga_id).map(|e| {
            let timeout = match e.start.step_timeout_ms {
                0 => self.inner.step_timeout,
                ms => Duration::from_millis(ms as u64),
            };
            (
                e.definition.clone(),
                timeout,
                e.report.state == SagaState::Compensating as i32,
            )
        }) else {
            return;
        };
        let failed_step = if compensating {
            self.failed_step(&saga_id)
        } else {
            self.forward(&saga_id, &definition, timeout).await
        };
        if let Some(failed) = failed_step {
            self.backward(&saga_id, &definition, timeout, failed).await;
            self.finish(
                &saga_id,
                Record::Compensated(SagaRef {
                    saga_id: saga_id.clone(),
                }),
                SagaState::Compensated,
            )
            .await;
        } else {
            self.finish(
                &saga_id,
                Record::Completed(SagaRef {
                    saga_id: saga_id.clone(),
                }),
                SagaState::Completed,
            )
            .await;
        }
    }

    /// Runs the steps in order; the index of the step that failed for
    /// good, if one did.
    async fn forward(
        &self,
        saga_id: &str,
        definition: &SagaDefinition,
        timeout: Duration,
    ) -> Option<usize> {
        for (index, step) in definition.steps.iter().enumerate() {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                self.update(saga_id, |saga| saga.steps[index].attempts += 1);
                let call = match (self.inner.keys, &step.action) {
                    (Keys::FreshPerAttempt, Call::Credit { .. }) => {
                        step.action.with_id_suffix(&format!("#{attempt}"))
                    }
                    _ => step.action.clone(),
                };
                let span = tracing::info_span!("saga.step", step = step.name, attempt);
                let outcome = self.call(&call, timeout).instrument(span).await;
                match outcome {
                    Ok(()) => {
                        self.update(saga_id, |saga| {
                            saga.steps[index].state = StepState::Done.into()
                        });
                        break;
                    }
                    Err(status) => {
                        let gives_up = step.kind == StepKind::Compensatable
                            && attempt >= self.inner.max_attempts;
                        let business = !transient(status.code());
                        if step.kind != StepKind::Retriable && (business || gives_up) {
                            tracing::info!(step = step.name, %status, "step failed; compensating");
                            let turn = SagaCompensating {
                                saga_id: saga_id.to_owned(),
                                failed_step: index as u32,
                                failure_code: status.code() as i32,
                                failure: status.message().to_owned(),
                            };
                            self.update(saga_id, |saga| {
                                saga.state = SagaState::Compensating.into();
                                saga.failure_code = turn.failure_code;
                                saga.failure = turn.failure.clone();
                                saga.steps[index].state = StepState::Failed.into();
                            });
                            while let Err(err) = self.log(Record::Compensating(turn.clone())).await
                            {
                                tracing::error!(%err, "cannot log the saga's turn; retrying");
                                tokio::time::sleep(self.inner.max_backoff).await;
                            }
                            return Some(index);
                        }
                        if business {
                            tracing::error!(step = step.name, %status, "a step past the pivot failed; retrying");
                        }
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
            }
        }
        None
    }

    /// Compensates every step up to `failed`, newest first, each until it
    /// succeeds. The failed step is compensated too: its outcome may be
    /// unknown (a lost reply), and compensating what never ran is a no-op
    /// that also stops it from running late.
    async fn backward(
        &self,
        saga_id: &str,
        definition: &SagaDefinition,
        timeout: Duration,
        failed: usize,
    ) {
        for index in (0..=failed).rev() {
            let step = &definition.steps[index];
            let Some(compensation) = &step.compensation else {
                continue;
            };
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                self.update(saga_id, |saga| saga.steps[index].attempts += 1);
                let span = tracing::info_span!("saga.compensate", step = step.name, attempt);
                match self.call(compensation, timeout).instrument(span).await {
                    Ok(()) => break,
                    Err(status) => {
                        tracing::warn!(step = step.name, %status, "compensation failed; retrying");
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
            }
            self.update(saga_id, |saga| {
                if saga.steps[index].state == StepState::Done as i32 {
                    saga.steps[index].state = StepState::Compensated.into();
                }
            });
        }
    }

    fn failed_step(&self, saga_id: &str) -> Option<usize> {
        let state = self.lock();
        let steps = &state.sagas.get(saga_id)?.report.steps;
        steps
            .iter()
            .position(|step| step.state == StepState::Failed as i32)
            .or(Some(steps.len().saturating_sub(1)))
    }

    async fn finish(&self, saga_id: &str, record: Record, final_state: SagaState) {
        let compact = {
            let mut state = self.lock();
            // Which steps ran, then the end — lazily, in one batch: without
            // them, recovery runs the saga once more (every step answers as
            // before) and reaches the same end.
            let mut records: Vec<Vec<u8>> = state
                .sagas
                .get(saga_id)
                .map(|entry| done_steps(saga_id, &entry.report))
                .unwrap_or_default();
            records.push(encode(record));
            self.inner.journal.queue_lazy(records);
            end(&mut state, saga_id, final_state);
            state.records_since_compaction += 1;
            // Compacting costs a snapshot of every saga remembered: only
            // once the log has grown well past the last snapshot.
            let due = COMPACT_EVERY.max(2 * state.snapshot_records);
            (state.records_since_compaction >= due).then(|| self.compact(&mut state))
        };
        if let Some(Some(rewritten)) = compact
            && let Err(err) = rewritten.await
        {
            tracing::error!(%err, "compacting the saga log failed");
        }
    }

    /// Rewrites the log as the records of the sagas remembered. The
    /// snapshot is queued under the state lock, so no record written
    /// meanwhile can be erased by it (a saga is in the map before its
    /// START is logged, so a START in flight is in the snapshot too).
    fn compact(
        &self,
        state: &mut State,
    ) -> Option<impl Future<Output = crate::transaction::Result<()>> + use<>> {
        let slot = self.inner.journal.reserve().ok()?;
        let mut records = Vec::new();
        let mut ids: Vec<&String> = state.sagas.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &state.sagas[id];
            records.push(encode(Record::Start(entry.start.clone())));
            records.extend(done_steps(id, &entry.report));
            if let Some(failed) = entry
                .report
                .steps
                .iter()
                .position(|s| s.state == StepState::Failed as i32)
            {
                records.push(encode(Record::Compensating(SagaCompensating {
                    saga_id: id.clone(),
                    failed_step: failed as u32,
                    failure_code: entry.report.failure_code,
                    failure: entry.report.failure.clone(),
                })));
            }
            let saga = SagaRef {
                saga_id: id.clone(),
            };
            if entry.report.state == SagaState::Completed as i32 {
                records.push(encode(Record::Completed(saga)));
            } else if entry.report.state == SagaState::Compensated as i32 {
                records.push(encode(Record::Compensated(saga)));
            }
        }
        state.records_since_compaction = 0;
        state.snapshot_records = records.len() as u64;
        Some(slot.rewrite(records))
    }

    async fn log(&self, record: Record) -> Result<()> {
        self.inner.journal.append(vec![encode(record)]).await?;
        self.lock().records_since_compaction += 1;
        Ok(())
    }

    fn update(&self, saga_id: &str, change: impl FnOnce(&mut Saga)) {
        let mut state = self.lock();
        if let Some(entry) = state.sagas.get_mut(saga_id) {
            change(&mut entry.report);
            entry.changed.send_replace(entry.report.clone());
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .inner
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.inner.max_backoff);
        // Full jitter: retries from many sagas spread out.
        let jitter: f64 = self
            .inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random();
        cap.mul_f64(jitter).max(Duration::from_millis(1))
    }

    /// Makes one call; `Ok` only if it did what the step needs.
    async fn call(&self, call: &Call, timeout: Duration) -> Result<(), Status> {
        let channel = self
            .inner
            .participants
            .get(call.participant())
            .cloned()
            .ok_or_else(|| {
                Status::invalid_argument(format!("unknown participant {:?}", call.participant()))
            })?;
        let faults = &self.inner.faults;
        // A hold that is already captured was placed by an earlier run of
        // this saga, which went on past it: the step is done.
        let held = |state: i32, wanted: HoldState| {
            if state == wanted as i32 || state == HoldState::Captured as i32 {
                Ok(())
            } else {
                Err(Status::failed_precondition(format!(
                    "the hold is {}",
                    HoldState::try_from(state).unwrap_or_default().as_str_name()
                )))
            }
        };
        // One RPC of `Client::method` with `message`, through the faults;
        // the reply's message.
        macro_rules! send {
            ($client:ident, $method:ident, $message:expr) => {{
                let message = $message;
                faults
                    .send(|| {
                        let mut client = $client::new(channel.clone());
                        let request = timed(message.clone(), timeout);
                        async move { client.$method(request).await }
                    })
                    .await?
                    .into_inner()
            }};
        }
        let hold_ref = |id: &String| HoldRef {
            hold_id: id.clone(),
        };
        match call {
            Call::Hold {
                id, key, amount, ..
            } => {
                let reply = send!(
                    AccountsClient,
                    hold,
                    HoldRequest {
                        hold_id: id.clone(),
                        key: key.clone(),
                        amount: *amount,
                        ttl_ms: 0,
                    }
                );
                held(reply.state, HoldState::Held)
            }
            Call::Capture { id, .. } => {
                let reply = send!(AccountsClient, capture, hold_ref(id));
                held(reply.state, HoldState::Captured)
            }
            Call::Release { id, .. } => {
                send!(AccountsClient, release, hold_ref(id));
                Ok(())
            }
            Call::Credit {
                id, key, amount, ..
            } => {
                send!(
                    AccountsClient,
                    credit,
                    CreditRequest {
                        credit_id: id.clone(),
                        key: key.clone(),
                        amount: *amount,
                    }
                );
                Ok(())
            }
            Call::Reserve {
                id, sku, quantity, ..
            } => {
                let reply = send!(
                    InventoryClient,
                    reserve,
                    HoldRequest {
                        hold_id: id.clone(),
                        key: sku.clone(),
                        amount: *quantity,
                        ttl_ms: 0,
                    }
                );
                held(reply.state, HoldState::Held)
            }
            Call::Confirm { id, .. } => {
                let reply = send!(InventoryClient, confirm, hold_ref(id));
                held(reply.state, HoldState::Captured)
            }
            Call::Cancel { id, .. } => {
                send!(InventoryClient, cancel, hold_ref(id));
                Ok(())
            }
            Call::Ship {
                id,
                order_id,
                destination,
                ..
            } => {
                let shipment = send!(
                    ShippingClient,
                    ship,
                    ShipRequest {
                        shipment_id: id.clone(),
                        order_id: order_id.clone(),
                        destination: destination.clone(),
                    }
                );
                if shipment.state == ShipmentState::Scheduled as i32 {
                    Ok(())
                } else {
                    Err(Status::failed_precondition("the shipment was cancelled"))
                }
            }
            Call::CancelShipment { id, .. } => {
                send!(
                    ShippingClient,
                    cancel_shipment,
                    ShipmentRef {
                        shipment_id: id.clone(),
                    }
                );
                Ok(())
            }
        }
    }
}

/// A STEP-DONE record for every step of `saga` that ran forward.
fn done_steps(saga_id: &str, saga: &Saga) -> Vec<Vec<u8>> {
    saga.steps
        .iter()
        .enumerate()
        .filter(|(_, step)| {
            step.state == StepState::Done as i32 || step.state == StepState::Compensated as i32
        })
        .map(|(step, _)| {
            encode(Record::StepDone(SagaStepDone {
                saga_id: saga_id.to_owned(),
                step: step as u32,
            }))
        })
        .collect()
}

fn timed<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A saga as first known: UNSPECIFIED until its START is on disk
/// (`logged: false`), RUNNING once it is.
fn new_entry(start: StartSagaRequest, definition: SagaDefinition, logged: bool) -> Entry {
    let state = if logged {
        SagaState::Running
    } else {
        SagaState::Unspecified
    };
    let report = Saga {
        saga_id: start.saga_id.clone(),
        saga_type: start.saga_type.clone(),
        state: state.into(),
        steps: definition
            .steps
            .iter()
            .map(|step| StepReport {
                name: step.name.to_owned(),
                state: StepState::Pending.into(),
                attempts: 0,
            })
            .collect(),
        failure_code: 0,
        failure: String::new(),
    };
    let (changed, _) = watch::channel(report.clone());
    Entry {
        start,
        definition,
        report,
        changed,
    }
}

/// Marks a saga ended and forgets the oldest ended ones past the window.
fn end(state: &mut State, saga_id: &str, final_state: SagaState) {
    let Some(entry) = state.sagas.get_mut(saga_id) else {
        return;
    };
    if is_final(entry.report.state) && entry.report.state == final_state as i32 {
        return;
    }
    entry.report.state = final_state.into();
    entry.changed.send_replace(entry.report.clone());
    state.running = state.running.saturating_sub(1);
    state.ended.push_back(saga_id.to_owned());
    while state.ended.len() > MAX_REMEMBERED {
        if let Some(old) = state.ended.pop_front() {
            state.sagas.remove(&old);
        }
    }
}

#[tonic::async_trait]
impl SagaOrchestrator for Orchestrator {
    async fn start(&self, request: Request<StartSagaRequest>) -> Result<Response<Saga>, Status> {
        Ok(Response::new(self.start_saga(request.into_inner()).await?))
    }

    async fn get(&self, request: Request<SagaRef>) -> Result<Response<Saga>, Status> {
        Ok(Response::new(Orchestrator::get(
            self,
            &request.get_ref().saga_id,
        )?))
    }
}
