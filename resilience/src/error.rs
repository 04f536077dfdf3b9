//! The crate's errors, and their one mapping onto gRPC status codes.

use std::time::Duration;

use tonic::Status;

use crate::circuit_breaker::State;

/// What the resilience layers refuse, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// A layer was configured with a value it cannot honour. Caught when
    /// the layer is built, never at call time.
    #[error("invalid {pattern} configuration: {field} {reason}")]
    InvalidConfig {
        pattern: &'static str,
        field: &'static str,
        reason: String,
    },
    /// The breaker is open (or forced open): the call was not attempted.
    #[error("circuit breaker {breaker:?} is {state} and does not permit calls")]
    CallNotPermitted { breaker: String, state: State },
    /// A manual transition the state machine does not allow.
    #[error("circuit breaker {breaker:?} cannot go from {from} to {to}")]
    IllegalTransition {
        breaker: String,
        from: State,
        to: State,
    },
    /// Every slot of the bulkhead is taken (and waiting did not help).
    #[error("bulkhead {bulkhead:?} is full ({max_concurrent} calls in flight)")]
    BulkheadFull {
        bulkhead: String,
        max_concurrent: usize,
    },
    /// Over the rate limit; a caller may retry after `retry_after`.
    #[error("rate limit exceeded; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The adaptive concurrency limit is reached: the call is shed.
    #[error("concurrency limit of {limit} reached; call shed")]
    ConcurrencyLimited { limit: usize },
    /// Client-side throttling rejected the call locally.
    #[error("throttled locally: the backend has been rejecting {reject_probability:.0}% of calls")]
    Throttled { reject_probability: f64 },
    /// The deadline passed while waiting.
    #[error("deadline expired: {0}")]
    DeadlineExpired(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidConfig { .. } => Status::invalid_argument(message),
            Error::IllegalTransition { .. } => Status::failed_precondition(message),
            // Unavailable: the condition is transient and says nothing about
            // the request itself; retrying later (with backoff) is right.
            Error::CallNotPermitted { .. } | Error::Throttled { .. } => {
                Status::unavailable(message)
            }
            Error::BulkheadFull { .. }
            | Error::RateLimited { .. }
            | Error::ConcurrencyLimited { .. } => Status::resource_exhausted(message),
            Error::DeadlineExpired(_) => Status::deadline_exceeded(message),
        }
    }
}

impl Error {
    /// The response a layer answers with when it refuses a call itself:
    /// the error's status, marked as a [`LocalRefusal`] so that the layers
    /// around it never mistake it for the backend failing.
    ///
    /// [`LocalRefusal`]: observability::rpc::outcome::LocalRefusal
    pub fn into_refusal<B: Default>(self) -> http::Response<B> {
        let layer = match &self {
            Error::CallNotPermitted { .. } => "circuit_breaker",
            Error::BulkheadFull { .. } => "bulkhead",
            Error::RateLimited { .. } => "rate_limit",
            Error::ConcurrencyLimited { .. } => "adaptive_concurrency",
            Error::Throttled { .. } => "throttle",
            Error::InvalidConfig { .. }
            | Error::IllegalTransition { .. }
            | Error::DeadlineExpired(_) => "resilience",
        };
        observability::rpc::outcome::local_refusal(&Status::from(self), layer)
    }
}

/// Shorthand for a configuration error.
pub(crate) fn invalid(
    pattern: &'static str,
    field: &'static str,
    reason: impl Into<String>,
) -> Error {
    Error::InvalidConfig {
        pattern,
        field,
        reason: reason.into(),
    }
}
