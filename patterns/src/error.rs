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
    /// A load balancer with no endpoints to send a request to.
    #[error("no endpoints: the balancer's endpoint set is empty")]
    NoEndpoints,
    /// A load-balancing experiment that cannot run as configured.
    #[error("invalid experiment: {reason}")]
    InvalidExperiment { reason: String },
    /// A cache setting that cannot work.
    #[error("invalid cache configuration: {reason}")]
    InvalidCacheConfig { reason: String },
    /// A structure would outgrow the limit that keeps it in memory.
    #[error("{what} would exceed its limit of {limit}")]
    CapacityExceeded { what: &'static str, limit: u64 },
    /// A rate (arrivals, services, throughput) that is not a positive,
    /// finite number of events per second.
    #[error("{name} must be positive and finite, got {value}")]
    InvalidRate { name: &'static str, value: f64 },
    /// A squared coefficient of variation that is negative or not finite.
    #[error("{name} (squared coefficient of variation) must be ≥ 0 and finite, got {value}")]
    InvalidVariability { name: &'static str, value: f64 },
    /// A count (items in a system) that is negative or not finite.
    #[error("{name} must be ≥ 0 and finite, got {value}")]
    InvalidCount { name: &'static str, value: f64 },
    /// A queueing model with no servers.
    #[error("a queue needs at least one server")]
    NoServers,
    /// The model has no steady state: work arrives at least as fast as
    /// it can be served, so the queue grows without bound.
    #[error(
        "utilisation {utilisation:.3} ≥ 1: the queue grows without bound and has no steady state"
    )]
    Unstable { utilisation: f64 },
    #[error("invalid queue simulation: {reason}")]
    InvalidQueueConfig { reason: String },
    /// A pool sized to hold nothing.
    #[error("a pool needs a capacity of at least one")]
    ZeroCapacity,
    #[error("invalid pool sizing: {reason}")]
    InvalidPoolSizing { reason: String },
    /// Every connection stayed in use for the whole acquire timeout.
    #[error("all {size} connections stayed in use for {waited:?}")]
    PoolExhausted {
        size: usize,
        waited: std::time::Duration,
    },
    /// The pool was closed while waiting.
    #[error("the pool is closed")]
    PoolClosed,
    /// A chaos experiment definition that cannot run: `field` is the path
    /// in the definition (`faults[1].at_ms`), or `definition` for syntax.
    #[error("chaos experiment: {field}: {reason}")]
    InvalidChaosExperiment { field: String, reason: String },
    /// A site name missing from the table of cities.
    #[error("unknown site {name:?}; known sites: {known}")]
    UnknownSite { name: String, known: String },
    #[error("invalid placement: {reason}")]
    InvalidPlacement { reason: String },
    /// Series that cannot be correlated (different lengths, too short,
    /// constant).
    #[error("cannot correlate: {reason}")]
    InvalidSeries { reason: String },
    /// A failure simulation or rollout that cannot run as configured.
    #[error("invalid fleet: {reason}")]
    InvalidFleet { reason: String },
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
            Error::CapacityExceeded { .. } | Error::PoolExhausted { .. } => {
                Status::resource_exhausted(message)
            }
            Error::Unstable { .. } => Status::failed_precondition(message),
            Error::PoolClosed | Error::Offload(_) | Error::NoEndpoints => {
                Status::unavailable(message)
            }
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
            | Error::InvalidRate { .. }
            | Error::InvalidVariability { .. }
            | Error::InvalidCount { .. }
            | Error::NoServers
            | Error::InvalidQueueConfig { .. }
            | Error::ZeroCapacity
            | Error::InvalidPoolSizing { .. }
            | Error::InvalidExperiment { .. }
            | Error::InvalidChaosExperiment { .. }
            | Error::InvalidCacheConfig { .. }
            | Error::UnknownSite { .. }
            | Error::InvalidPlacement { .. }
            | Error::InvalidSeries { .. }
            | Error::InvalidFleet { .. } => Status::invalid_argument(message),
        }
    }
}
