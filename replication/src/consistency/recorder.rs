//! Recording histories from real clients.
//!
//! Wrap any key-value client in a [`Recording`] and every call is logged
//! with when it started, when it ended (on a monotonic clock — tokio's,
//! so simulated time works too; events at the same instant are ordered as
//! the recorder saw them, so a call made after another returned never
//! looks concurrent with it) and what it returned. The one subtle part
//! is failure. A call that failed *definitely* (the request was refused
//! before doing anything: `InvalidArgument`, `NotFound`, …) is left out:
//! it never happened. A call whose fate is unknown (`DeadlineExceeded`,
//! `Unavailable`, a dropped connection) may have taken effect, so it is
//! recorded with an unknown reply — dropping it would let the checker
//! condemn a correct store, counting it as done would let it excuse a
//! broken one.
//!
//! Pitfall: a call cancelled mid-flight — by a timeout around it, by the
//! losing branch of a `select!`, by its task being aborted — never
//! completes, yet its request may already have reached the store. So the
//! invocation is logged *before* the call is awaited, with an unknown
//! outcome that only a completion replaces.

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
    /// The last timestamp handed out.
    last: u64,
    /// In invocation order; `None` once a definite failure voids a call.
    operations: Vec<Option<Operation>>,
}

impl Log {
    /// A timestamp later than every one before it. Clocks tick coarsely
    /// (a simulated clock stands still within a step), and a call made
    /// right after another returned must not look concurrent with it: the
    /// lock orders events as they happened, so ties are broken that way.
    fn stamp(&mut self) -> u64 {
        let now = (self.origin.elapsed().as_micros() as u64).max(self.last + 1);
        self.last = now;
        now
    }
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
                last: 0,
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

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        // Each update is a single push or slot write: never torn.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs an invocation now, with an outcome still unknown.
    fn invoke(&self, client: u64, key: &str, command: Command) -> Pending {
        let mut log = self.log();
        let call = log.stamp();
        let slot = log.operations.len();
        log.operations.push(Some(Operation {
            // Renumbered densely by `history`.
            id: slot,
            client,
            key: Some(key.into()),
            command,
            reply: Reply::Unknown,
            call,
            ret: u64::MAX,
        }));
        Pending {
            recorder: self.clone(),
            slot,
        }
    }

    /// Everything recorded so far; calls still in flight (or abandoned)
    /// appear with an unknown outcome.
    pub fn history(&self) -> History {
        let operations = self
            .log()
            .operations
            .iter()
            .flatten()
            .cloned()
            .enumerate()
            .map(|(id, op)| Operation { id, ..op })
            .collect();
        History::new(operations)
    }
}

/// An invocation whose outcome is not known yet. Dropped without
/// [`complete`](Self::complete), it stays unknown — the call may have
/// taken effect.
struct Pending {
    recorder: Recorder,
    slot: usize,
}

impl Pending {
    fn complete(self, reply: Option<Reply>) {
        let mut log = self.recorder.log();
        match reply {
            // Refused before taking effect: it never happened.
            None => log.operations[self.slot] = None,
            Some(reply) => {
                let now = log.stamp();
                if let Some(op) = &mut log.operations[self.slot] {
                    op.ret = now;
                    op.reply = reply;
                }
            }
        }
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
    let pending = recorder.invoke(client, key, command);
    let result = call.await;
    match &result {
        Ok(value) => pending.complete(Some(reply(value))),
        Err(ClientError::Indeterminate(_)) => drop(pending),
        Err(ClientError::Definite(_)) => pending.complete(None),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A store that takes every write and answers after `delay`; `put` of
    /// an empty key is refused up front.
    struct Slow {
        delay: Duration,
    }

    impl KvClient for Slow {
        async fn get(&mut self, _key: &str) -> Result<String, ClientError> {
            tokio::time::sleep(self.delay).await;
            Ok(String::new())
        }

        async fn put(&mut self, key: &str, _value: &str) -> Result<(), ClientError> {
            if key.is_empty() {
                return Err(ClientError::Definite("empty key".into()));
            }
            tokio::time::sleep(self.delay).await;
            Ok(())
        }

        async fn append(&mut self, _key: &str, _value: &str) -> Result<(), ClientError> {
            tokio::time::sleep(self.delay).await;
            Err(ClientError::Indeterminate("connection reset".into()))
        }
    }

    /// Episode 19. A call abandoned by a timeout is in the history with an
    /// unknown outcome (it may have landed); a definite refusal is not;
    /// completed calls carry their reply; ids stay dense.
    #[tokio::test(start_paused = true)]
    async fn recorder_keeps_abandoned_calls_as_unknown() {
        let recorder = Recorder::new();
        let mut client = recorder.client(
            7,
            Slow {
                delay: Duration::from_secs(1),
            },
        );
        let abandoned =
            tokio::time::timeout(Duration::from_millis(10), client.put("k", "lost?")).await;
        assert!(abandoned.is_err(), "the timeout fired first");
        assert!(client.put("", "refused").await.is_err());
        client.put("k", "v").await.expect("acknowledged");
        let _ = client.append("k", "w").await;

        let history = recorder.history();
        let summary: Vec<(usize, String, Reply)> = history
            .operations
            .iter()
            .map(|op| (op.id, op.describe(), op.reply.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (0, "put(\"k\", \"lost?\") → ?".to_owned(), Reply::Unknown),
                (1, "put(\"k\", \"v\") → ok".to_owned(), Reply::Ok),
                (2, "append(\"k\", \"w\") → ?".to_owned(), Reply::Unknown),
            ]
        );
        assert_eq!(history.operations[0].ret, u64::MAX);
        let (abandoned, completed) = (&history.operations[0], &history.operations[1]);
        assert!(abandoned.call < completed.call && completed.call < completed.ret);
    }

    /// A clock that stands still (simulated time within one step) must not
    /// make a call issued after another returned look concurrent with it.
    #[tokio::test(start_paused = true)]
    async fn recorder_orders_events_at_the_same_instant() {
        let recorder = Recorder::new();
        let mut first = recorder.client(
            1,
            Slow {
                delay: Duration::ZERO,
            },
        );
        let mut second = recorder.client(
            2,
            Slow {
                delay: Duration::ZERO,
            },
        );
        first.put("k", "a").await.expect("acknowledged");
        second.get("k").await.expect("answered");
        let history = recorder.history();
        let (put, get) = (&history.operations[0], &history.operations[1]);
        assert!(put.call < put.ret, "{put:?}");
        assert!(
            put.ret < get.call,
            "the get looks concurrent with the put: {put:?} {get:?}"
        );
    }
}
