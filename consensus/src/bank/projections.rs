//! The read side: balances and the audit trail, folded from the global
//! order of every account's events.
//!
//! Both are pure folds ([`Projection`]): given the same events they build
//! the same state, so a read model can be thrown away and rebuilt by
//! replay. Redelivery is the projector's problem (it skips positions it
//! has applied), not theirs.

use std::collections::{BTreeMap, VecDeque};

use replication::event_sourcing::{Projection, RecordedEvent, Result, StoreError};
use serde::{Deserialize, Serialize};

use super::MAX_AUDIT_ENTRIES;
use super::events::BankEvent;

/// The account an event belongs to: its stream without `account-`;
/// `None` for streams that are not the ledger's.
pub fn account_of(event: &RecordedEvent) -> Option<&str> {
    event.stream.as_str().strip_prefix("account-")
}

fn parse(event: &RecordedEvent) -> Result<BankEvent> {
    BankEvent::from_recorded(event).map_err(|reason| StoreError::MalformedEvent {
        index: 0,
        reason: format!(
            "{} {} at {}: {reason}",
            event.stream, event.version, event.position
        ),
    })
}

/// One account's row in the balance read model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRow {
    pub owner: String,
    pub balance_cents: i64,
    /// The account stream's version this row has applied.
    pub version: u64,
}

/// A transfer debited from its payer and not yet credited to its payee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub from: String,
    pub to: String,
    pub amount_cents: i64,
    pub request_id: String,
}

/// The balance read model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub accounts: BTreeMap<String, BalanceRow>,
    /// Transfers in flight, by `from/request_id`.
    pub in_flight: BTreeMap<String, InFlight>,
}

impl Balances {
    /// Money on every account plus money in flight: changed only by
    /// deposits and withdrawals, whatever transfers do.
    pub fn total_cents(&self) -> i128 {
        let held: i128 = self
            .accounts
            .values()
            .map(|row| i128::from(row.balance_cents))
            .sum();
        let moving: i128 = self
            .in_flight
            .values()
            .map(|t| i128::from(t.amount_cents))
            .sum();
        held + moving
    }
}

/// Balances per account, and the transfers in flight.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalanceProjection;

impl Projection for BalanceProjection {
    type State = Balances;

    fn apply(&self, state: &mut Balances, event: &RecordedEvent) -> Result<()> {
        let Some(account) = account_of(event) else {
            return Ok(());
        };
        let bank_event = parse(event)?;
        let row = state.accounts.entry(account.to_owned()).or_default();
        row.version = event.version.0;
        match bank_event {
            BankEvent::AccountOpened { owner } => row.owner = owner,
            BankEvent::Deposited { amount_cents, .. } => row.balance_cents += amount_cents,
            BankEvent::Withdrawn { amount_cents, .. } => row.balance_cents -= amount_cents,
            BankEvent::TransferSent {
                to,
                amount_cents,
                request_id,
            } => {
                row.balance_cents -= amount_cents;
                state.in_flight.insert(
                    format!("{account}/{request_id}"),
                    InFlight {
                        from: account.to_owned(),
                        to,
                        amount_cents,
                        request_id,
                    },
                );
            }
            BankEvent::TransferReceived {
                from,
                amount_cents,
                request_id,
            } => {
                row.balance_cents += amount_cents;
                state.in_flight.remove(&format!("{from}/{request_id}"));
            }
        }
        Ok(())
    }
}

/// One line of an account's audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub version: u64,
    pub position: u64,
    pub kind: String,
    pub amount_cents: i64,
    pub counterparty: String,
    pub request_id: String,
    pub balance_after_cents: i64,
}

/// Each account's recent entries (at most [`MAX_AUDIT_ENTRIES`]), oldest
/// first, with the running balance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTrail {
    pub accounts: BTreeMap<String, VecDeque<AuditRow>>,
    /// Running balances (the audit trail does not read the other model).
    balances: BTreeMap<String, i64>,
}

/// The audit trail.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditProjection;

impl Projection for AuditProjection {
    type State = AuditTrail;

    fn apply(&self, state: &mut AuditTrail, event: &RecordedEvent) -> Result<()> {
        let Some(account) = account_of(event) else {
            return Ok(());
        };
        let (kind, amount, counterparty, request_id) = match parse(event)? {
            BankEvent::AccountOpened { .. } => ("opened", 0, String::new(), String::new()),
            BankEvent::Deposited {
                amount_cents,
                request_id,
            } => ("deposited", amount_cents, String::new(), request_id),
            BankEvent::Withdrawn {
                amount_cents,
                request_id,
            } => ("withdrawn", -amount_cents, String::new(), request_id),
            BankEvent::TransferSent {
                to,
                amount_cents,
                request_id,
            } => ("transfer-sent", -amount_cents, to, request_id),
            BankEvent::TransferReceived {
                from,
                amount_cents,
                request_id,
            } => ("transfer-received", amount_cents, from, request_id),
        };
        let balance = state.balances.entry(account.to_owned()).or_default();
        *balance += amount;
        let rows = state.accounts.entry(account.to_owned()).or_default();
        rows.push_back(AuditRow {
            version: event.version.0,
            position: event.position.0,
            kind: kind.to_owned(),
            amount_cents: amount.abs(),
            counterparty,
            request_id,
            balance_after_cents: *balance,
        });
        // Simplified: the trail in memory keeps the newest entries; the
        // full history is the stream itself (the History call).
        while rows.len() > MAX_AUDIT_ENTRIES {
            rows.pop_front();
        }
        Ok(())
    }
}
