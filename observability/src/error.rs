//! The crate's errors, and their one mapping onto gRPC status codes.

use tonic::Status;

/// What can go wrong while serving or dialing through the RPC stack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A peer address is not a valid `http://host:port` URI.
    #[error("invalid peer address {addr:?}: {reason}")]
    InvalidPeerAddress { addr: String, reason: String },
    /// The gRPC transport failed (serving stopped with an error).
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A relay chain visits the same hop twice.
    #[error("relay chain loops: {path} -> {hop}")]
    RelayLoop { path: String, hop: String },
    /// A relay request carries more hops than any real chain would.
    #[error("relay chain longer than {max} hops")]
    RelayTooLong { max: usize },
    /// A relay request names a hop longer than any hop name.
    #[error("a visited hop name of {bytes} bytes exceeds the limit of {max}")]
    HopNameTooLong { bytes: usize, max: usize },
    /// A failure detector was configured with a value no detector can use
    /// (NaN, negative, infinite, zero, or beyond a stated bound).
    #[error("invalid failure detector setting {setting} = {value}: expected {expected}")]
    InvalidDetectorSetting {
        setting: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A heartbeat or query names a peer the monitor was never told to watch.
    #[error("unknown peer {peer:?}: Declare it before it beats")]
    UnknownPeer { peer: String },
    /// A peer id that is empty, too long, or not visible ASCII.
    #[error("invalid peer id: {reason}")]
    InvalidPeerId { reason: String },
    /// The monitor already watches as many peers as it may.
    #[error("already watching {max} peers, the most this monitor keeps")]
    TooManyPeers { max: usize },
    /// A request names a detector the monitor does not run.
    #[error("unknown detector {0}")]
    UnknownDetector(i32),
    /// A compiled-in protobuf descriptor set could not be published.
    #[error("descriptor set: {0}")]
    Descriptor(String),
    /// A per-route setting names a method the server does not host.
    #[error("no such route: {0} (routes are /package.Service/Method)")]
    UnknownRoute(String),
    /// A background server task panicked or was cancelled.
    #[error("server task ended abnormally: {0}")]
    ServerTask(String),
    /// Exporting telemetry could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// The profiler could not start, or its flame graph be written.
    #[error("profiling: {0}")]
    Profiling(String),
    /// A sampler name or argument (`--trace-sampler`, `OTEL_TRACES_SAMPLER`,
    /// `OTEL_TRACES_SAMPLER_ARG`) that cannot be used.
    #[error("sampler {setting}: {reason}")]
    InvalidSampler { setting: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::RelayLoop { .. }
            | Error::RelayTooLong { .. }
            | Error::HopNameTooLong { .. }
            | Error::InvalidPeerAddress { .. }
            | Error::UnknownRoute(_)
            | Error::InvalidDetectorSetting { .. }
            | Error::InvalidPeerId { .. }
            | Error::UnknownDetector(_)
            | Error::InvalidSampler { .. } => Status::invalid_argument(message),
            // Not PermissionDenied: nothing here authenticates a sender, so
            // the refusal is about a missing entry, not about who asked.
            Error::UnknownPeer { .. } => Status::not_found(message),
            Error::TooManyPeers { .. } => Status::resource_exhausted(message),
            Error::Bind { .. } | Error::Transport(_) => Status::unavailable(message),
            Error::Descriptor(_)
            | Error::ServerTask(_)
            | Error::Telemetry(_)
            | Error::Profiling(_) => Status::internal(message),
        }
    }
}
