//! The crate's errors, and their one mapping onto gRPC status codes.

use tonic::Status;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A history line that cannot be read.
    #[error("line {line}: {reason}")]
    BadHistory { line: usize, reason: String },
    #[error(
        "unknown model {name:?}; choose kv, register or etcd-register (operations), or list-append or rw-register (transactions)"
    )]
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
    /// The causal checker needs each value written at most once per key.
    #[error(
        "operations #{first} and #{second} both write {value} to {key}: causal checking needs a differentiated history (each value written at most once per key)"
    )]
    NotDifferentiated {
        key: String,
        value: String,
        first: usize,
        second: usize,
    },
    /// A write of the value reads return before any write: a read of it
    /// could not tell the initial state from this write.
    #[error(
        "operation #{operation} writes the initial value {value}; causal checking needs writes that differ from it"
    )]
    WritesInitialValue { operation: usize, value: String },
    /// A client called an operation before its previous one returned:
    /// program order, which the sequential and causal checkers keep, is
    /// then undefined.
    #[error(
        "client {client} called operation #{second} before its operation #{first} returned; a client's operations must not overlap"
    )]
    OverlappingClientOperations {
        client: u64,
        first: usize,
        second: usize,
    },
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
    /// More items of one kind than a message or state may hold.
    #[error("{count} {what}, more than the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
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
    /// A causal replica holds as many writes waiting for their causal
    /// dependencies as it may.
    #[error("{max} writes already wait for their causal dependencies; the buffer is full")]
    CausalBufferFull { max: usize },
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
    #[error(
        "session position {token} is past the primary's log position {primary}: not a token this primary issued"
    )]
    PositionAhead { token: u64, primary: u64 },
    /// A write's context claims more of this coordinator's own writes to
    /// a key than it ever made: not a context it handed out.
    #[error(
        "the context claims {claimed} writes of {actor} to this key; it made {made}: not a context this node issued"
    )]
    ContextAhead {
        actor: crate::clock::ReplicaId,
        claimed: u64,
        made: u64,
    },

    #[error("a read/write split needs at least one replica")]
    NoReplicas,

    #[error("replica {replica}'s count would pass its maximum of {max}")]
    CounterOverflow {
        replica: crate::clock::ReplicaId,
        max: u64,
    },
    /// An object type the request does not name, or names wrongly.
    #[error(
        "unknown object type {value}; choose G_COUNTER, PN_COUNTER, OR_SET, MV_REGISTER or LWW_REGISTER"
    )]
    UnknownObjectType { value: i32 },
    /// An operation another type has.
    #[error("a {kind} has no {operation} operation")]
    OperationMismatch {
        kind: String,
        operation: &'static str,
    },
    /// A required field left out.
    #[error("the request has no {field}")]
    MissingField { field: &'static str },
    /// A state or delta that cannot be a CRDT state.
    #[error("malformed state: {reason}")]
    MalformedState { reason: String },
    /// A replica id outside the cluster.
    #[error("replica {replica} is not a member of this cluster")]
    UnknownReplica { replica: crate::clock::ReplicaId },
    /// A member id outside 1..2^24 (the rest of an actor id counts runs).
    #[error("member id {replica} is outside 1..16777216")]
    InvalidMemberId { replica: crate::clock::ReplicaId },
    /// A cluster larger than the replica supports.
    #[error("{members} members; a cluster has at most {max}")]
    TooManyMembers { members: usize, max: usize },
    /// A `--peer` address that does not parse.
    #[error("peer {peer}: {reason}")]
    BadPeerAddress {
        peer: crate::clock::ReplicaId,
        reason: String,
    },
    /// The replica hosts as many objects as its own updates may create.
    #[error("this replica hosts its maximum of {max} objects")]
    TooManyObjects { max: usize },
    /// An object at its size limit.
    #[error("the object holds its maximum of {max_bytes} bytes")]
    ObjectFull { max_bytes: usize },
    /// A replica at its size limit.
    #[error("the replica holds its maximum of {max_bytes} bytes")]
    ReplicaFull { max_bytes: usize },
    /// The disk under a durable log failed.
    #[error("durable log: {doing}: {reason}")]
    LogIo { doing: &'static str, reason: String },
    /// A damaged record with intact records after it.
    #[error(
        "durable log: the record at byte {offset} is damaged and records follow it; refusing to drop them"
    )]
    LogCorrupt { offset: u64 },
    /// A hybrid clock's counter ran out while physical time stood still.
    #[error(
        "the hybrid clock's logical counter is exhausted at wall time {wall_ns} ns; the physical clock is stuck"
    )]
    LogicalClockExhausted { wall_ns: u64 },
    /// An N, R or W outside what the cluster can give.
    #[error("{what} = {value} is out of range: it must be between 1 and {max}")]
    QuorumOutOfRange {
        what: &'static str,
        value: usize,
        max: usize,
    },
    /// Fewer replicas answered than the request's R or W.
    #[error("{what} quorum not reached: {got} of the {needed} replicas needed answered")]
    QuorumNotReached {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// A sibling-resolution policy the request does not name.
    #[error(
        "unknown resolution {value}; choose RESOLUTION_SIBLINGS or RESOLUTION_LAST_WRITER_WINS"
    )]
    UnknownResolution { value: i32 },
    /// A key whose concurrent versions reached the bound.
    #[error(
        "key {key:?} would hold more than {max} siblings; read it and write back with the read's context to resolve them"
    )]
    TooManySiblings { key: String, max: usize },
    /// A stand-in holds as many hints as it may.
    #[error("this node holds its maximum of {max} hints for nodes that are down")]
    HintsFull { max: usize },
    /// A quorum node at its size limit.
    #[error("the store holds its maximum of {max} {what}")]
    StoreFull { what: &'static str, max: usize },
    /// A Merkle level, node or leaf outside the tree.
    #[error("Merkle {what} {value} is outside the tree (at most {max})")]
    MerkleOutOfRange {
        what: &'static str,
        value: u64,
        max: u64,
    },
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
            | Error::OverlappingClientOperations { .. }
            | Error::NotDifferentiated { .. }
            | Error::WritesInitialValue { .. }
            | Error::UnparseableRead { .. }
            | Error::DuplicateInRead { .. }
            | Error::AmbiguousTokens { .. }
            | Error::TooLarge { .. }
            | Error::TooMany { .. }
            | Error::UnknownObjectType { .. }
            | Error::OperationMismatch { .. }
            | Error::MissingField { .. }
            | Error::MalformedState { .. }
            | Error::UnknownReplica { .. }
            | Error::TooManyMembers { .. }
            | Error::InvalidMemberId { .. }
            | Error::BadPeerAddress { .. }
            | Error::PositionAhead { .. }
            | Error::ContextAhead { .. }
            | Error::NoReplicas
            | Error::QuorumOutOfRange { .. }
            | Error::UnknownResolution { .. }
            | Error::MerkleOutOfRange { .. } => Status::invalid_argument(message),
            // Too few replicas reachable: retrying later may succeed.
            Error::QuorumNotReached { .. } => Status::unavailable(message),
            // The key must be resolved before it takes another version.
            Error::TooManySiblings { .. } => Status::failed_precondition(message),
            // The request is well formed; the clocks are not in a state
            // to accept it.
            Error::ValueFull { .. } | Error::ClockTooFarAhead { .. } => {
                Status::failed_precondition(message)
            }
            Error::CounterOverflow { .. } => Status::out_of_range(message),
            // The server's own disk failed: nothing the caller did.
            Error::LogIo { .. } | Error::LogCorrupt { .. } => Status::internal(message),
            Error::RegisterFull { .. }
            | Error::BacklogFull { .. }
            | Error::CausalBufferFull { .. }
            | Error::LogicalClockExhausted { .. }
            | Error::TooManyObjects { .. }
            | Error::ObjectFull { .. }
            | Error::ReplicaFull { .. }
            | Error::HintsFull { .. }
            | Error::StoreFull { .. } => Status::resource_exhausted(message),
        }
    }
}
