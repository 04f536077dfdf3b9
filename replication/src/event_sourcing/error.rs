//! What can go wrong with an event store, and the gRPC code of each.
//!
//! The event store has its own error type, separate from
//! [`crate::Error`], because backends outside this crate (the etcd one in
//! `consensus`) build these errors too; the mapping onto `tonic::Status`
//! below is the one place their codes are chosen.

use tonic::Status;

use super::{StreamName, Version};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stream name outside the rules of [`StreamName::new`].
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName { name: String, reason: &'static str },
    /// An append of no events: nothing to do, and surely a caller's bug.
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// More events in one append than a batch may hold.
    #[error("{count} events in one append, more than the limit of {max}")]
    TooManyEvents { count: usize, max: usize },
    /// One event's payload over the limit.
    #[error("event #{index}: payload of {bytes} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        index: usize,
        bytes: usize,
        max: usize,
    },
    /// All payloads of one append together over the limit.
    #[error("the append's payloads total {bytes} bytes, more than the limit of {max}")]
    BatchTooLarge { bytes: usize, max: usize },
    /// A snapshot's state over the limit.
    #[error("a snapshot of {bytes} bytes exceeds the limit of {max}")]
    SnapshotTooLarge { bytes: usize, max: usize },
    /// An event that is not one: bad type, schema version 0, payload that
    /// is not JSON. `index` is its place in the append (0 elsewhere).
    #[error("event #{index} is malformed: {reason}")]
    MalformedEvent { index: usize, reason: String },
    /// A read asking for zero events.
    #[error("a read must ask for at least one event")]
    ZeroReadLimit,
    /// The optimistic-concurrency check failed: another writer appended
    /// since the caller read the stream. Nothing was written; re-read and
    /// decide again.
    #[error("stream {stream} is at {actual}, not the expected {expected}")]
    WrongExpectedVersion {
        stream: StreamName,
        expected: Version,
        actual: Version,
    },
    /// A version the stream has not reached: a client that claims to have
    /// seen the future (expecting, reading after, or snapshotting it).
    #[error("stream {stream} is at {current}; {requested} is in its future")]
    VersionAhead {
        stream: StreamName,
        requested: Version,
        current: Version,
    },
    /// A stream with no events, read or appended to at a version > 0.
    #[error("stream {stream} does not exist")]
    StreamNotFound { stream: StreamName },
    /// The store holds as much as it may.
    #[error("the event store is full: {what}")]
    StoreFull { what: String },
    /// Events before `oldest` were compacted away by the backend; a
    /// reader starting earlier must rebuild from a snapshot instead.
    #[error("positions up to {oldest:?} were compacted; cannot read after {after:?}")]
    Compacted {
        after: super::Position,
        oldest: super::Position,
    },
    /// A stored event of a schema version this reader does not know (a
    /// newer writer), or an upcaster that failed.
    #[error("cannot upcast {event_type} from schema version {schema_version}: {reason}")]
    Upcast {
        event_type: String,
        schema_version: u32,
        reason: String,
    },
    /// The backend cannot be reached, or lost its leader mid-request. For
    /// an append the outcome is unknown: retry with the same expected
    /// version — if the first try was applied, the retry fails with
    /// [`StoreError::WrongExpectedVersion`] and a re-read shows the events.
    #[error("the event store is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The backend's own storage failed (disk, corruption, a record it
    /// cannot decode): nothing the caller did. Kept as `INTERNAL`, not
    /// `UNAVAILABLE`: the server is broken until an operator reopens it,
    /// so a blind retry does not help. For a write the outcome is
    /// unknown all the same (a failed `fsync` may have left the record
    /// on disk); see [`super::EventStore::append`].
    #[error("event store storage: {reason}")]
    Storage { reason: String },
}

impl From<crate::Error> for StoreError {
    /// The durable log's errors: all about the server's own disk.
    fn from(err: crate::Error) -> Self {
        StoreError::Storage {
            reason: err.to_string(),
        }
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::InvalidStreamName { .. }
            | StoreError::EmptyAppend
            | StoreError::TooManyEvents { .. }
            | StoreError::PayloadTooLarge { .. }
            | StoreError::BatchTooLarge { .. }
            | StoreError::SnapshotTooLarge { .. }
            | StoreError::MalformedEvent { .. }
            | StoreError::ZeroReadLimit => Status::invalid_argument(message),
            // A lost compare-and-set: gRPC's code for "a concurrency
            // conflict, retry at a higher level (re-read, re-decide)".
            StoreError::WrongExpectedVersion { .. } => Status::aborted(message),
            // Not malformed — the stream may reach that version later.
            StoreError::VersionAhead { .. } | StoreError::Compacted { .. } => {
                Status::out_of_range(message)
            }
            StoreError::StreamNotFound { .. } => Status::not_found(message),
            StoreError::StoreFull { .. } => Status::resource_exhausted(message),
            StoreError::Upcast { .. } => Status::failed_precondition(message),
            StoreError::Unavailable { .. } => Status::unavailable(message),
            StoreError::Storage { .. } => Status::internal(message),
        }
    }
}
