//! The crate's errors, and their one mapping onto gRPC status codes.

use tonic::Status;

/// What can go wrong placing keys on nodes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// Nothing to place keys on.
    #[error("no nodes: add a node before placing keys")]
    EmptyMembership,
    #[error("node {node:?} is already a member")]
    NodeExists { node: String },
    #[error("node {node:?} is not a member")]
    UnknownNode { node: String },
    #[error("invalid node name: {reason}")]
    InvalidNodeName { reason: String },
    #[error("weight {weight} is outside 1..={max}")]
    InvalidWeight { weight: u32, max: u32 },
    #[error("the {strategy} strategy does not support weights (got {weight})")]
    WeightsUnsupported { strategy: &'static str, weight: u32 },
    #[error("virtual nodes {vnodes} is outside 1..={max}")]
    InvalidVirtualNodes { vnodes: u32, max: u32 },
    #[error("table size {size}: {reason}")]
    InvalidTableSize { size: u64, reason: String },
    #[error("capacity factor {factor} is outside 1.0..={max}")]
    InvalidCapacityFactor { factor: f64, max: f64 },
    #[error("replicas {requested} is outside 1..={max}")]
    InvalidReplicas { requested: u32, max: u32 },
    #[error("sample of {requested} keys is outside 1..={max}")]
    InvalidSampleSize { requested: u64, max: u64 },
    #[error("unknown strategy {name:?}; choose one of: {known}")]
    UnknownStrategy { name: String, known: String },
    #[error("shuffle shard size {shard_size} is outside 1..={workers} (the worker count)")]
    InvalidShardSize { shard_size: usize, workers: usize },
    #[error("invalid range boundaries: {reason}")]
    InvalidRanges { reason: String },
    /// A cell cannot be retired while tenants are pinned to it.
    #[error("cell {cell:?} still has tenant {tenant:?} pinned to it; unpin it first")]
    CellInUse { cell: String, tenant: String },
    /// A key longer than the router accepts.
    #[error("key of {bytes} bytes exceeds the limit of {max}")]
    KeyTooLong { bytes: usize, max: usize },
    /// A rebuild or measurement moved off the async workers did not
    /// finish (the runtime shut down under it).
    #[error("the work was interrupted: {0}")]
    Offload(String),
    /// A cache setting that cannot work.
    #[error("invalid cache configuration: {reason}")]
    InvalidCacheConfig { reason: String },
    /// A structure would outgrow the limit that keeps it in memory.
    #[error("{what} would exceed its limit of {limit}")]
    CapacityExceeded { what: &'static str, limit: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::EmptyMembership | Error::CellInUse { .. } => {
                Status::failed_precondition(message)
            }
            Error::NodeExists { .. } => Status::already_exists(message),
            Error::UnknownNode { .. } => Status::not_found(message),
            Error::CapacityExceeded { .. } => Status::resource_exhausted(message),
            Error::Offload(_) => Status::unavailable(message),
            Error::InvalidNodeName { .. }
            | Error::InvalidWeight { .. }
            | Error::WeightsUnsupported { .. }
            | Error::InvalidVirtualNodes { .. }
            | Error::InvalidTableSize { .. }
            | Error::InvalidCapacityFactor { .. }
            | Error::InvalidReplicas { .. }
            | Error::InvalidSampleSize { .. }
            | Error::UnknownStrategy { .. }
            | Error::InvalidShardSize { .. }
            | Error::InvalidRanges { .. }
            | Error::KeyTooLong { .. }
            | Error::InvalidCacheConfig { .. } => Status::invalid_argument(message),
        }
    }
}
