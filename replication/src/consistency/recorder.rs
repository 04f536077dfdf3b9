//! Recording histories from real clients.
//!
//! Wrap any key-value client in a [`Recording`] and every call is logged
//! with when it started, when it ended (on a monotonic clock — tokio's,
//! so simulated time works too) and what it returned. The one subtle part
//! is failure. A call that failed *definitely* (the request was refused
//! before doing anything: `InvalidArgument`, `NotFound`, …) is left out:
//! it never happened. A call whose fate is unknown (`DeadlineExceeded`,
//! `Unavailable`, a dropped connection) may have taken effect, so it is
//! recorded with an unknown reply — dropping it would let the checker
//! condemn a correct store, counting it as done would let it excuse a
//! broken one.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;
use tonic::{Code, Status};

use super::history::{Command, Datum, History, Operation, Reply};

/// Why a call did not return a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Refused before taking effect.
    Definite(String),
    /// May or may not have taken effect.
    Indeterminate(String),
}

impl ClientError {
    /// Classifies a gRPC status: only codes that mean "rejected before
    /// execution" are definite.
    pub fn from_status(status: &Status) -> Self {
        let message = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated => ClientError::Definite(message),
            _ => ClientError::Indeterminate(message),
        }
    }
}

/// A key-value client a history can be recorded from.
pub trait KvClient: Send {
    fn get(&mut self, key: &str) -> impl Future<Output = Result<String, ClientError>> + Send;
    fn put(
        &mut self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn append(
        &mut self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

#[derive(Debug)]
struct Log {
    origin: Instant,
    operations: Vec<Operation>,
}

/// Collects the operations of every client it wraps into one history.
#[derive(Clone, Debug)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            log: Arc::new(Mutex::new(Log {
                origin: Instant::now(),
                operations: Vec::new(),
            })),
        }
    }

    /// Wraps `inner` as client number `client`.
    pub fn client<C: KvClient>(&self, client: u64, inner: C) -> Recording<C> {
        Recording {
            inner,
            client,
            recorder: self.clone(),
        }
    }

    /// Microseconds on the recorder's clock.
    fn now(&self) -> u64 {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.origin.elapsed().as_micros() as u64
    }

    fn push(&self, client: u64, key: &str, command: Command, reply: Reply, call: u64, ret: u64) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let id = log.operations.len();
        log.operations.push(Operation {
            id,
            client,
            key: Some(key.into()),
            command,
            reply,
            call,
            ret,
        });
    }

    /// Everything recorded so far.
    pub fn history(&self) -> History {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        History::new(log.operations.clone())
    }
}

/// A client whose calls are recorded.
#[derive(Debug)]
pub struct Recording<C> {
    inner: C,
    client: u64,
    recorder: Recorder,
}

/// Runs `call`, logging it as `command` on `key` with its outcome.
async fn record<T>(
    recorder: &Recorder,
    client: u64,
    key: &str,
    command: Command,
    call: impl Future<Output = Result<T, ClientError>>,
    reply: impl FnOnce(&T) -> Reply,
) -> Result<T, ClientError> {
    let started = recorder.now();
    let result = call.await;
    let ended = recorder.now().max(started);
    match &result {
        Ok(value) => recorder.push(client, key, command, reply(value), started, ended),
        Err(ClientError::Indeterminate(_)) => {
            recorder.push(client, key, command, Reply::Unknown, started, u64::MAX)
        }
        Err(ClientError::Definite(_)) => {}
    }
    result
}

impl<C: KvClient> KvClient for Recording<C> {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        record(
            &self.recorder,
            self.client,
            key,
            Command::Get,
            self.inner.get(key),
            |v| Reply::Value(Datum::text(v)),
        )
        .await
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let command = Command::Put(Datum::text(value));
        record(
            &self.recorder,
            self.client,
            key,
            command,
            self.inner.put(key, value),
            |()| Reply::Ok,
        )
        .await
    }

    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let command = Command::Append(Datum::text(value));
        record(
            &self.recorder,
            self.client,
            key,
            command,
            self.inner.append(key, value),
            |()| Reply::Ok,
        )
        .await
    }
}
