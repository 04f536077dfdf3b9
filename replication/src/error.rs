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
    /// A key or value longer than the register accepts.
    #[error("{what} of {bytes} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        max: usize,
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
            | Error::TooLarge { .. } => Status::invalid_argument(message),
        }
    }
}
