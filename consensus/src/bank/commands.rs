//! The write side: commands load an account, decide, and append if the
//! stream is still where they read it.

use std::sync::Arc;
use std::time::Duration;

use replication::event_sourcing::{
    EventStore, ExpectedVersion, Position, RecordedEvent, SnapshotPolicy, StoreError, Upcaster,
    Version, load_aggregate,
};

use super::core::{Account, check_credit};
use super::events::{BankEvent, check_account_id, check_amount, check_request_id, stream_of};
use super::read_side::ReadSide;
use super::{BankError, MAX_COMMAND_ATTEMPTS, SNAPSHOT_EVERY, upcaster};
use crate::proto::v1::bank_ledger_server::BankLedgerServer;
use crate::proto::v1::{BankReply, ImportRequest, TransferRequest};

/// How long a command's reply waits for the read side to apply it.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(10);

/// What a command did to one account.
#[derive(Clone, Debug)]
pub(super) struct Outcome {
    account: Account,
    version: Version,
    /// `None` for a retry that appended nothing.
    position: Option<Position>,
}

/// The ledger on an event store `S`.
#[derive(Debug)]
pub struct BankLedger<S> {
    pub(super) store: Arc<S>,
    pub(super) upcaster: Upcaster,
    pub(super) read: ReadSide,
}

impl<S> Clone for BankLedger<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            upcaster: self.upcaster.clone(),
            read: self.read.clone(),
        }
    }
}

impl<S: EventStore + 'static> BankLedger<S> {
    /// Starts the read side (a replay of the whole log) and, once it has
    /// caught up, completes every transfer left in flight.
    pub fn start(store: Arc<S>) -> Self {
        let upcaster = upcaster();
        let read = ReadSide::start(store.clone(), upcaster.clone());
        let ledger = Self {
            store,
            upcaster,
            read,
        };
        let recovering = ledger.clone();
        tokio::spawn(async move { recovering.complete_in_flight().await });
        ledger
    }

    pub fn into_service(self) -> BankLedgerServer<Self> {
        BankLedgerServer::new(self)
    }

    pub fn read_side(&self) -> &ReadSide {
        &self.read
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Load, decide, append if the stream is still where it was read;
    /// on a conflict, again.
    pub(super) async fn execute(
        &self,
        account: &str,
        event: BankEvent,
    ) -> Result<Outcome, BankError> {
        let stream = stream_of(account)?;
        let mut conflict = None;
        for _ in 0..MAX_COMMAND_ATTEMPTS {
            let loaded =
                load_aggregate::<S, Account>(self.store.as_ref(), &stream, &self.upcaster).await?;
            let mut state = loaded.aggregate.clone();
            if let Some(applied) = state.decide(account, &event)? {
                return Ok(Outcome {
                    account: state,
                    version: applied.version,
                    position: None,
                });
            }
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .store
                .append(&stream, expected, vec![event.to_new_event()])
                .await
            {
                Ok(appended) => {
                    state.fold(&event, appended.last_version)?;
                    // A cache: failing to write one costs the next load a
                    // longer replay, nothing else.
                    let policy = SnapshotPolicy {
                        every: SNAPSHOT_EVERY as usize,
                    };
                    let _ = policy
                        .maybe_snapshot(self.store.as_ref(), &stream, &loaded)
                        .await;
                    return Ok(Outcome {
                        account: state,
                        version: appended.last_version,
                        position: Some(appended.last_position),
                    });
                }
                // Another command on this account won the race: decide
                // again against what it did.
                Err(err @ StoreError::WrongExpectedVersion { .. }) => conflict = Some(err),
                Err(err) => return Err(err.into()),
            }
        }
        Err(conflict.map_or(BankError::ProjectionLagging, BankError::Store))
    }

    /// The reply to a command, once the read side has applied it.
    pub(super) async fn reply(
        &self,
        account: &str,
        outcome: Outcome,
    ) -> Result<BankReply, BankError> {
        if let Some(position) = outcome.position
            && !self.read.wait_for(position, READ_YOUR_WRITES_WAIT).await
        {
            return Err(BankError::ProjectionLagging);
        }
        Ok(BankReply {
            account: account.to_owned(),
            balance_cents: outcome.account.balance_cents,
            version: outcome.version.0,
            position: outcome.position.map_or(0, |p| p.0),
            duplicate: outcome.position.is_none(),
        })
    }

    /// A transfer: debit the payer (where the funds are checked), then
    /// credit the payee. Both steps are idempotent on the request id, so
    /// a retry after any failure completes it exactly once.
    pub(super) async fn transfer(&self, request: &TransferRequest) -> Result<BankReply, BankError> {
        check_account_id(&request.from)?;
        check_account_id(&request.to)?;
        check_amount(request.amount_cents)?;
        check_request_id(&request.request_id)?;
        if request.from == request.to {
            return Err(BankError::InvalidArgument {
                what: "to",
                reason: "a transfer needs two different accounts".into(),
            });
        }
        // The payee must exist before money leaves the payer.
        let payee = load_aggregate::<S, Account>(
            self.store.as_ref(),
            &stream_of(&request.to)?,
            &self.upcaster,
        )
        .await?;
        if !payee.aggregate.is_open() {
            return Err(BankError::UnknownAccount {
                account: request.to.clone(),
            });
        }
        // And able to take the money: a credit refused after the debit
        // would strand it in flight.
        check_credit(&request.to, &payee.aggregate, request.amount_cents)?;
        let sent = self
            .execute(
                &request.from,
                BankEvent::TransferSent {
                    to: request.to.clone(),
                    amount_cents: request.amount_cents,
                    request_id: request.request_id.clone(),
                },
            )
            .await?;
        // Pitfall: answering between the two appends. The payer is
        // debited; until the credit lands the money is "in flight", and a
        // crash here is repaired by a retry or by the next start.
        // Pitfall: a retry whose debit was already done must not credit
        // blindly; the payee may have forgotten the key (its window moved
        // on) and would credit twice. Credit only what is still in flight.
        if sent.position.is_none() && !self.in_flight(&request.from, &request.request_id).await? {
            return self.reply(&request.from, sent).await;
        }
        let received = self
            .execute(
                &request.to,
                BankEvent::TransferReceived {
                    from: request.from.clone(),
                    amount_cents: request.amount_cents,
                    request_id: request.request_id.clone(),
                },
            )
            .await?;
        if let Some(position) = received.position {
            self.read.wait_for(position, READ_YOUR_WRITES_WAIT).await;
        }
        self.reply(&request.from, sent).await
    }

    /// Whether the read side, caught up with the store, still shows the
    /// transfer debited and not credited.
    async fn in_flight(&self, from: &str, request_id: &str) -> Result<bool, BankError> {
        let head = self.store.head().await?;
        if !self.read.wait_for(head, READ_YOUR_WRITES_WAIT).await {
            return Err(BankError::ProjectionLagging);
        }
        let key = format!("{from}/{request_id}");
        Ok(self
            .read
            .read(|models| models.balances.in_flight.contains_key(&key)))
    }

    /// Credits every transfer the read side shows debited but not
    /// credited (after a crash between a transfer's two appends).
    async fn complete_in_flight(&self) {
        let Ok(head) = self.store.head().await else {
            return;
        };
        if !self.read.wait_for(head, READ_YOUR_WRITES_WAIT).await {
            return;
        }
        let in_flight: Vec<_> = self
            .read
            .read(|models| models.balances.in_flight.values().cloned().collect());
        for transfer in in_flight {
            let credit = BankEvent::TransferReceived {
                from: transfer.from.clone(),
                amount_cents: transfer.amount_cents,
                request_id: transfer.request_id.clone(),
            };
            if let Err(err) = self.execute(&transfer.to, credit).await {
                tracing::warn!(%err, from = %transfer.from, to = %transfer.to, "completing a transfer");
            }
        }
    }

    /// Checks an imported batch against the account as it is, event by
    /// event, without writing anything.
    pub(super) async fn import(&self, request: &ImportRequest) -> Result<BankReply, BankError> {
        let stream = stream_of(&request.account)?;
        replication::event_sourcing::validate_append(
            &request
                .events
                .iter()
                .map(|e| replication::event_sourcing::NewEvent {
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload_json.clone().into_bytes(),
                })
                .collect::<Vec<_>>(),
        )?;
        let loaded =
            load_aggregate::<S, Account>(self.store.as_ref(), &stream, &self.upcaster).await?;
        let expected = Version(request.expected_version);
        if expected > loaded.version {
            return Err(BankError::VersionAhead {
                account: request.account.clone(),
                requested: expected.0,
                current: loaded.version.0,
            });
        }
        let mut state = loaded.aggregate.clone();
        let mut events = Vec::new();
        for (index, raw) in request.events.iter().enumerate() {
            let malformed = |reason: String| BankError::InvalidArgument {
                what: "events",
                reason: format!("event #{index}: {reason}"),
            };
            let upcast = self
                .upcaster
                .upcast(RecordedEvent {
                    stream: stream.clone(),
                    version: Version(expected.0 + index as u64 + 1),
                    position: Position::START,
                    event_type: raw.event_type.clone(),
                    schema_version: raw.schema_version,
                    payload: raw.payload_json.clone().into_bytes(),
                })
                .map_err(|err| malformed(err.to_string()))?;
            let event = BankEvent::from_recorded(&upcast).map_err(malformed)?;
            if matches!(
                event,
                BankEvent::TransferSent { .. } | BankEvent::TransferReceived { .. }
            ) {
                return Err(malformed(
                    "transfers touch two accounts and cannot be imported into one".into(),
                ));
            }
            if !state.is_open() != matches!(event, BankEvent::AccountOpened { .. }) {
                return Err(malformed(
                    "an account's history starts with AccountOpened, once".into(),
                ));
            }
            if state.decide(&request.account, &event)?.is_some() {
                return Err(malformed("it repeats a request already applied".into()));
            }
            state.fold(&event, upcast.version)?;
            events.push(event.to_new_event());
        }
        let appended = self
            .store
            .append(&stream, ExpectedVersion::Exact(expected), events)
            .await?;
        let outcome = Outcome {
            account: state,
            version: appended.last_version,
            position: Some(appended.last_position),
        };
        self.reply(&request.account, outcome).await
    }

    pub(super) fn open_accounts(&self) -> usize {
        self.read.read(|models| models.balances.accounts.len())
    }
}
