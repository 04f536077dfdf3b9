//! The broken twin: writes to a primary, reads from a lagging replica.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::proto::register_server::RegisterServer;
use super::proto::{AppendReply, AppendRequest, GetReply, GetRequest, PutReply, PutRequest};
use super::{Change, Store, validate};
use crate::Error;

/// Writes that may wait for the replica at once. Each holds the request's
/// own bytes (a key and at most one value), so the backlog stays below
/// `MAX_BACKLOG × (MAX_KEY_BYTES + MAX_VALUE_BYTES)`.
pub const MAX_BACKLOG: usize = 1024;

type Shared = Arc<Mutex<Store>>;

fn lock(store: &Shared) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Acknowledges writes from the primary, answers reads from a replica
/// that applies each write `lag` later. Deliberately not linearizable.
#[derive(Clone, Debug)]
pub struct StaleRegister {
    primary: Shared,
    replica: Shared,
    lag: Duration,
    /// (when the replica applies it, the write)
    log: mpsc::Sender<(Instant, Change)>,
}

impl StaleRegister {
    /// Starts the replication task; call inside a tokio runtime.
    pub fn new(lag: Duration) -> Self {
        let replica: Shared = Arc::default();
        let (log, mut pending) = mpsc::channel::<(Instant, Change)>(MAX_BACKLOG);
        let applying = replica.clone();
        tokio::spawn(async move {
            // One task applies the log in order, each entry `lag` after it
            // was written: a replica that is consistent, just late. The
            // log holds the primary's writes in the primary's order, so the
            // replica is always a past state of the primary and applying
            // cannot fail.
            while let Some((due, change)) = pending.recv().await {
                tokio::time::sleep_until(due).await;
                let applied = lock(&applying).apply(change);
                debug_assert!(
                    applied.is_ok(),
                    "the replica refused a write the primary took"
                );
            }
        });
        Self {
            primary: Arc::default(),
            replica,
            lag,
            log,
        }
    }

    pub fn into_service(self) -> RegisterServer<Self> {
        RegisterServer::new(self)
    }

    /// Reserves a place in the backlog before the primary changes, so a
    /// refused write leaves both copies as they were.
    fn reserve(&self) -> Result<mpsc::Permit<'_, (Instant, Change)>, Error> {
        self.log
            .try_reserve()
            .map_err(|_| Error::BacklogFull { max: MAX_BACKLOG })
    }
}

#[tonic::async_trait]
impl super::proto::register_server::Register for StaleRegister {
    /// Pitfall: the read goes to the replica, which may not have this
    /// client's own last write yet.
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let key = request.into_inner().key;
        validate(&key, "")?;
        let value = lock(&self.replica).get(&key);
        Ok(Response::new(GetReply { value }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        let PutRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        let slot = self.reserve()?;
        // The primary's lock is held across the send, so the replica
        // receives changes in the order the primary applied them.
        let mut primary = lock(&self.primary);
        primary.put(key.clone(), value.clone())?;
        slot.send((Instant::now() + self.lag, Change::Put(key, value)));
        drop(primary);
        Ok(Response::new(PutReply {}))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendReply>, Status> {
        let AppendRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        let slot = self.reserve()?;
        let mut primary = lock(&self.primary);
        primary.append(&key, &value)?;
        slot.send((Instant::now() + self.lag, Change::Append(key, value)));
        drop(primary);
        Ok(Response::new(AppendReply {}))
    }
}
