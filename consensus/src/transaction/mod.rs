//! Distributed transactions: money moves between services, something fails
//! halfway, and the system must still end consistent.
//!
//! Episode: 18, "Distributed Transactions" (also 14, 23, 40)
//! Pattern: atomic commitment (2PC, 3PC) / sagas / TCC
//! Try it:  cargo run -- demo saga
//! Test it: cargo test -p consensus transaction_ && cargo test --test bank_transfer_saga
//!
//! Every participant is a small gRPC service that writes what it promised
//! to its own durable log ([`replication::log`], with group commit and
//! compaction in [`journal`]) before it answers; [`faults`] loses and
//! duplicates their messages on demand:
//!
//! - [`ledger`]: `Accounts` (balances, holds) and `Inventory` (stock,
//!   reservations) — the same ledger of non-negative amounts under each
//!   domain's words — and the participant side of two- and three-phase
//!   commit;
//! - [`shipping`]: the step that fails for reasons of its own;
//! - [`two_phase`]: the commit coordinator — two-phase commit with presumed
//!   abort and recovery from its log, and three-phase commit, which does not
//!   block when the coordinator dies and decides both ways when the network
//!   splits;
//! - [`saga`]: the orchestrator — ordered steps, each an action and a
//!   compensation, a saga log, idempotency keys on every call — and the
//!   same saga choreographed, for comparison;
//! - TCC (try / confirm / cancel) is the ledger's hold with a TTL: a
//!   reservation nobody confirms frees itself ([`ledger`]).
//!
//! Which to pick: 2PC gives atomicity and isolation (locks held while in
//! doubt) and blocks when its coordinator is gone; a saga never blocks and
//! never locks, and pays with visible intermediate states and the duty to
//! write a compensation for every step.
//!
//! Bounds: every id and key at most [`MAX_ID_BYTES`]; amounts in
//! 1..=[`MAX_AMOUNT`]; each service's tables have fixed caps (documented
//! on each), and what they remember for deduplication is a bounded window.

mod demo;
pub mod faults;
pub mod journal;
pub mod ledger;
pub mod saga;
pub mod shipping;
pub mod two_phase;

pub use demo::{saga_demo, three_phase_commit_partition_demo, two_phase_commit_demo};

use tonic::{Code, Status};

/// The longest id (hold, credit, transaction, saga) or ledger key.
pub const MAX_ID_BYTES: usize = 128;
/// The largest amount one call may move, and the largest balance.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// What a transaction service refuses, each with its gRPC code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    #[error("{what} {key:?} already exists")]
    AlreadyExists { what: &'static str, key: String },
    /// The request conflicts with the state it finds (funds short, a hold
    /// already captured, a destination not served).
    #[error("{0}")]
    Precondition(String),
    /// Locked by a transaction in doubt: retry once it is decided.
    #[error("{key:?} is locked by transaction {txn:?}, in doubt")]
    Locked { key: String, txn: String },
    #[error("{table} is full ({max} entries)")]
    Full { table: &'static str, max: usize },
    #[error("balance of {key:?} would exceed {max}")]
    Overflow { key: String, max: i64 },
    /// The durable log failed: the service stops accepting changes.
    #[error("log: {0}")]
    Log(String),
    /// A peer could not be reached or answered with an error.
    #[error("{peer}: {status}")]
    Peer { peer: String, status: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid { .. } => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::Precondition(_) => Code::FailedPrecondition,
            // Aborted: gRPC's code for "a concurrency conflict; retry the
            // whole operation".
            Error::Locked { .. } => Code::Aborted,
            Error::Full { .. } => Code::ResourceExhausted,
            Error::Overflow { .. } => Code::OutOfRange,
            Error::Log(_) => Code::Internal,
            Error::Peer { .. } => Code::Unavailable,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

impl From<replication::Error> for Error {
    fn from(err: replication::Error) -> Self {
        Error::Log(err.to_string())
    }
}

/// Checks an id or key: non-empty, at most [`MAX_ID_BYTES`].
pub fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::Invalid {
            field,
            reason: format!("is {} bytes; at most {MAX_ID_BYTES}", id.len()),
        });
    }
    Ok(())
}

/// Checks an amount moved by one call: 1..=[`MAX_AMOUNT`].
pub fn check_amount(field: &'static str, amount: i64) -> Result<()> {
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(Error::Invalid {
            field,
            reason: format!("must be in 1..={MAX_AMOUNT}, got {amount}"),
        });
    }
    Ok(())
}

/// Checks a signed change: non-zero, at most [`MAX_AMOUNT`] either way.
pub fn check_delta(delta: i64) -> Result<()> {
    if delta == 0 || delta.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
        return Err(Error::Invalid {
            field: "changes.delta",
            reason: format!("must be non-zero and within ±{MAX_AMOUNT}, got {delta}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
