//! A bank ledger, event-sourced: commands append events, queries read
//! projections (CQRS), on either event store backend.
//!
//! Episode: 23, "Event Sourcing Architecture" (also 22, 14)
//! Pattern: replication / event sourcing, CQRS
//! Try it:  cargo run -- serve ledger --listen 127.0.0.1:50070 (add --event-store etcd=127.0.0.1:2379 to replicate it)
//! Test it: cargo test -p consensus bank_
//!
//! Each account is one stream (`account-{id}`): `AccountOpened`,
//! `Deposited`, `Withdrawn`, `TransferSent`, `TransferReceived`. A command
//! loads the account (its latest snapshot, then the events after it),
//! decides against it ([`core::Account::decide`] — the overdraft rule
//! lives there and nowhere else), and appends *if the stream is still at
//! the version it read*. A concurrent command that got there first makes
//! the append fail with a version conflict; the command re-reads and
//! decides again, so two withdrawals can never both spend the same money.
//!
//! The read side is two projections over the store's global order: the
//! balances ([`projections::BalanceProjection`]) and the audit trail
//! ([`projections::AuditProjection`]). They are caches: a restart rebuilds
//! them by replaying the log, and a command's reply waits until they have
//! applied its events, so a client reads its own writes.
//!
//! A transfer touches two streams and no store here has multi-stream
//! transactions. It is two appends: `TransferSent` on the payer (the
//! decision: funds checked there), then `TransferReceived` on the payee,
//! both carrying the request id. A crash between them leaves money in
//! flight; a retry of the same request finds the first step done and
//! completes the second, and a restarted service completes every transfer
//! the balance projection shows in flight.
//!
//! Bounds: account ids of [`MAX_ACCOUNT_ID_BYTES`], owners of
//! [`MAX_OWNER_BYTES`], request ids of [`MAX_REQUEST_ID_BYTES`], amounts
//! up to [`MAX_AMOUNT_CENTS`]; [`MAX_ACCOUNTS`] accounts (the projections
//! hold one row each); balances up to [`MAX_BALANCE_CENTS`]; each account
//! answers retries of its last [`MAX_REMEMBERED_REQUESTS`] request ids and
//! refuses (as too old) retries of older ones, keeping eight bytes per
//! forgotten id (a fraction of the event the log holds for it); the audit
//! projection keeps per account its
//! last [`MAX_AUDIT_ENTRIES`] entries; pages of at most [`MAX_PAGE`]; a
//! command makes at most [`MAX_COMMAND_ATTEMPTS`] tries against conflicts.
//!
//! Simplified: one service instance writes (several would each run
//! projections and race on appends, which the version checks make safe but
//! slow); projections live in memory and are rebuilt on start.

#[cfg(test)]
mod bad_input_tests;
mod commands;
pub mod core;
pub mod demo;
pub mod events;
pub mod projections;
pub mod read_side;
pub mod service;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;

use replication::event_sourcing::{StoreError, Upcaster};
use serde_json::Value;
use tonic::Status;

pub use commands::BankLedger;
pub use demo::event_sourcing_demo;

pub const MAX_ACCOUNT_ID_BYTES: usize = 64;
pub const MAX_OWNER_BYTES: usize = 128;
pub const MAX_REQUEST_ID_BYTES: usize = 64;
/// Ten trillion in cents: far above any real amount, far below overflow.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000_000;
/// 2^62 cents: the most an account may hold, so no credit can overflow
/// an `i64` and the sum of two balances never does either.
pub const MAX_BALANCE_CENTS: i64 = 1 << 62;
pub const MAX_ACCOUNTS: usize = 100_000;
pub const MAX_REMEMBERED_REQUESTS: usize = 1024;
pub const MAX_AUDIT_ENTRIES: usize = 1000;
/// The most entries or events one query returns (and its default).
pub const MAX_PAGE: usize = 100;
pub const MAX_COMMAND_ATTEMPTS: usize = 16;
/// Take a snapshot of an account every this many events.
pub const SNAPSHOT_EVERY: u64 = 50;

/// Why the ledger refused a command or a query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("invalid {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    #[error("account {account} does not exist")]
    UnknownAccount { account: String },
    #[error("account {account} is already open under another owner")]
    AlreadyOpen { account: String },
    #[error("account {account} holds {balance_cents} cents; {amount_cents} would overdraw it")]
    Overdraft {
        account: String,
        balance_cents: i64,
        amount_cents: i64,
    },
    #[error("request id {request_id} was already used for a different command")]
    RequestIdReused { request_id: String },
    #[error(
        "request id {request_id} is too old to deduplicate: it left the last {MAX_REMEMBERED_REQUESTS} this account remembers"
    )]
    RequestTooOld { request_id: String },
    #[error("account {account} is at version {current}; {requested} is in its future")]
    VersionAhead {
        account: String,
        requested: u64,
        current: u64,
    },
    #[error("the ledger holds {max} accounts, its limit")]
    TooManyAccounts { max: usize },
    #[error("the read side did not catch up in time; the command was applied")]
    ProjectionLagging,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<BankError> for Status {
    fn from(err: BankError) -> Self {
        let message = err.to_string();
        match err {
            BankError::InvalidArgument { .. } => Status::invalid_argument(message),
            BankError::UnknownAccount { .. } => Status::not_found(message),
            BankError::AlreadyOpen { .. } => Status::already_exists(message),
            // The account's state, not the request, is what refuses it.
            BankError::Overdraft { .. }
            | BankError::RequestIdReused { .. }
            | BankError::RequestTooOld { .. } => Status::failed_precondition(message),
            BankError::VersionAhead { .. } => Status::out_of_range(message),
            BankError::TooManyAccounts { .. } => Status::resource_exhausted(message),
            BankError::ProjectionLagging => Status::unavailable(message),
            BankError::Store(err) => err.into(),
        }
    }
}

/// `Deposited` version 1 → 2: the first release recorded whole currency
/// units (`{"amount": 5}`) and no request id.
fn deposited_v1_to_v2(payload: Value) -> Result<Value, String> {
    let amount = payload
        .get("amount")
        .and_then(Value::as_i64)
        .ok_or("a version-1 Deposited needs an integer \"amount\"")?;
    let cents = amount
        .checked_mul(100)
        .ok_or("the amount overflows in cents")?;
    Ok(serde_json::json!({ "amount_cents": cents, "request_id": "" }))
}

/// The upcasting steps the ledger reads its history with.
pub fn upcaster() -> Upcaster {
    Upcaster::new().with_step("Deposited", 1, deposited_v1_to_v2)
}
