//! The broken twin: writes to a primary, reads from a lagging replica.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::proto::register_server::RegisterServer;
use super::proto::{AppendReply, AppendRequest, GetReply, GetRequest, PutReply, PutRequest};
use super::validate;

type Values = Arc<Mutex<BTreeMap<String, String>>>;

fn lock(values: &Values) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
    values.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Acknowledges writes from the primary, answers reads from a replica
/// that applies each write `lag` later. Deliberately not linearizable.
#[derive(Clone, Debug)]
pub struct StaleRegister {
    primary: Values,
    replica: Values,
    lag: Duration,
    /// (when the replica applies it, key, the key's new value)
    log: mpsc::UnboundedSender<(Instant, String, String)>,
}

impl StaleRegister {
    /// Starts the replication task; call inside a tokio runtime.
    pub fn new(lag: Duration) -> Self {
        let replica: Values = Arc::default();
        let (log, mut pending) = mpsc::unbounded_channel::<(Instant, String, String)>();
        let applying = replica.clone();
        tokio::spawn(async move {
            // One task applies the log in order, each entry `lag` after it
            // was written: a replica that is consistent, just late.
            while let Some((due, key, value)) = pending.recv().await {
                tokio::time::sleep_until(due).await;
                lock(&applying).insert(key, value);
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

    /// Ships the key's new value to the replica, to land `lag` from now.
    fn replicate(&self, key: String, value: String) {
        // Fails only once the replication task is gone with the runtime.
        let _ = self.log.send((Instant::now() + self.lag, key, value));
    }
}

#[tonic::async_trait]
impl super::proto::register_server::Register for StaleRegister {
    /// Pitfall: the read goes to the replica, which may not have this
    /// client's own last write yet.
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let key = request.into_inner().key;
        validate(&key, "")?;
        let value = lock(&self.replica).get(&key).cloned().unwrap_or_default();
        Ok(Response::new(GetReply { value }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        let PutRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        lock(&self.primary).insert(key.clone(), value.clone());
        self.replicate(key, value);
        Ok(Response::new(PutReply {}))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendReply>, Status> {
        let AppendRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        let updated = {
            let mut primary = lock(&self.primary);
            let current = primary.entry(key.clone()).or_default();
            current.push_str(&value);
            current.clone()
        };
        self.replicate(key, updated);
        Ok(Response::new(AppendReply {}))
    }
}
