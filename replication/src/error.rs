//! The crate's errors, and their one mapping onto gRPC status codes.

use tonic::Status;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A history line that cannot be read.
    #[error("line {line}: {reason}")]
    BadHistory { line: usize, reason: String },
    #[error("unknown model {name:?}; choose kv, register or etcd-register")]
    UnknownModel { name: String },
    /// An operation the chosen model does not have.
    #[error("operation #{operation} ({found}) is not part of the {model} model")]
    ModelMismatch {
        model: &'static str,
        operation: usize,
        found: String,
    },
    /// Two operations of a history share an id.
    #[error("two operations share id {id}; ids must be unique")]
    DuplicateOperationId { id: usize },
    /// A read returned text that is not a sequence of appended tokens.
    #[error(
        "operation #{operation} read {value:?}, which is not a sequence of tokens appended to its key"
    )]
    UnparseableRead { operation: usize, value: String },
    /// A read showed one append twice: the store applied it twice.
    #[error("operation #{operation} read append #{append} twice")]
    DuplicateInRead { operation: usize, append: usize },
    /// Session checks need each appended token to be told apart.
    #[error("appended tokens must be non-empty, unique and none a prefix of another: {reason}")]
    AmbiguousTokens { reason: String },
    /// A key or value longer than the register accepts.
    #[error("{what} of {bytes} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        max: usize,
    },
    /// An append that would grow a value past the limit: the request is
    /// fine, the key's state refuses it.
    #[error("appending would grow the value to {bytes} bytes, over the limit of {max}")]
    ValueFull { bytes: usize, max: usize },
    /// The register holds as many bytes as it may.
    #[error("the register is full: it stores at most {max_bytes} bytes of keys and values")]
    RegisterFull { max_bytes: usize },
    /// The stale twin's replica is too far behind to take more writes.
    #[error("the replication backlog is full ({max} writes waiting for the replica)")]
    BacklogFull { max: usize },
    /// A remote hybrid timestamp further ahead of the local physical
    /// clock than the configured maximum offset.
    #[error(
        "a remote clock is {ahead:?} ahead of this one, more than the maximum offset of {max_offset:?}"
    )]
    ClockTooFarAhead {
        ahead: std::time::Duration,
        max_offset: std::time::Duration,
    },
    /// An increment that would overflow a replica's 64-bit count.
    #[error("replica {replica}'s count would overflow 64 bits")]
    CounterOverflow { replica: crate::clock::ReplicaId },
    /// A hybrid clock's counter ran out while physical time stood still.
    #[error(
        "the hybrid clock's logical counter is exhausted at wall time {wall_ns} ns; the physical clock is stuck"
    )]
    LogicalClockExhausted { wall_ns: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::BadHistory { .. }
            | Error::UnknownModel { .. }
            | Error::ModelMismatch { .. }
            | Error::DuplicateOperationId { .. }
            | Error::UnparseableRead { .. }
            | Error::DuplicateInRead { .. }
            | Error::AmbiguousTokens { .. }
            | Error::TooLarge { .. } => Status::invalid_argument(message),
            // The request is well formed; the clocks are not in a state
            // to accept it.
            Error::ValueFull { .. } | Error::ClockTooFarAhead { .. } => {
                Status::failed_precondition(message)
            }
            Error::RegisterFull { .. }
            | Error::BacklogFull { .. }
            | Error::LogicalClockExhausted { .. }
            | Error::CounterOverflow { .. } => Status::resource_exhausted(message),
        }
    }
}
