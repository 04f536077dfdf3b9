//! A resource that protects itself with fencing tokens.
//!
//! Every write carries the token of the lock its writer believes it
//! holds. The store remembers, per key, the largest token it has accepted
//! and refuses any write with a smaller one: a holder that paused past its
//! lease, woke up and wrote is turned away, because someone with a larger
//! token got there first. Equal tokens are accepted — the current holder
//! writes many times. The check happens at the resource, the one place
//! that sees every writer; no amount of care in the clients can replace it.
//!
//! `Fencing::Off` is the broken twin: a store that trusts the lock alone
//! and accepts whatever arrives.
//!
//! Bounds: at most [`MAX_KEYS`] keys of at most [`MAX_KEY_BYTES`], values
//! of at most [`MAX_VALUE_BYTES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tonic::{Request, Response, Status};

use crate::proto::v1::fenced_store_server::{FencedStore as FencedStoreApi, FencedStoreServer};
use crate::proto::v1::{
    FencedReadRequest, FencedReadResponse, FencedWriteRequest, FencedWriteResponse,
};

pub const MAX_KEYS: usize = 10_000;
pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Whether the store checks tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    Enforced,
    /// The broken twin: every write is accepted.
    Off,
}

#[derive(Debug, Default)]
struct Entry {
    value: Vec<u8>,
    /// The token of the write that stored `value`.
    token: i64,
    highest: i64,
}

/// The store: a map of keys to values, guarded by tokens.
#[derive(Clone, Debug)]
pub struct FencedStore {
    fencing: Fencing,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl FencedStore {
    pub fn new(fencing: Fencing) -> Self {
        Self {
            fencing,
            entries: Arc::default(),
        }
    }

    pub fn into_service(self) -> FencedStoreServer<Self> {
        FencedStoreServer::new(self)
    }

    /// Applies one write; the gRPC method and in-process callers share it.
    pub fn write(&self, key: &str, value: &[u8], token: i64) -> Result<i64, Status> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Status::invalid_argument(format!(
                "a key must have 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(Status::invalid_argument(format!(
                "a value may have at most {MAX_VALUE_BYTES} bytes"
            )));
        }
        if token <= 0 {
            return Err(Status::invalid_argument(
                "a fencing token is a lock key's creation revision: positive",
            ));
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(key) && entries.len() >= MAX_KEYS {
            return Err(Status::resource_exhausted(format!(
                "the store holds {MAX_KEYS} keys already"
            )));
        }
        let entry = entries.entry(key.to_owned()).or_default();
        if self.fencing == Fencing::Enforced && token < entry.highest {
            return Err(Status::failed_precondition(format!(
                "stale fencing token {token}: {key:?} has seen {}",
                entry.highest
            )));
        }
        entry.highest = entry.highest.max(token);
        entry.value = value.to_vec();
        entry.token = token;
        Ok(entry.highest)
    }

    /// The value of `key` and the token that wrote it.
    pub fn read(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).map(|e| (e.value.clone(), e.token))
    }
}

#[tonic::async_trait]
impl FencedStoreApi for FencedStore {
    async fn write(
        &self,
        request: Request<FencedWriteRequest>,
    ) -> Result<Response<FencedWriteResponse>, Status> {
        let write = request.into_inner();
        let highest_token = FencedStore::write(self, &write.key, &write.value, write.token)?;
        Ok(Response::new(FencedWriteResponse { highest_token }))
    }

    async fn read(
        &self,
        request: Request<FencedReadRequest>,
    ) -> Result<Response<FencedReadResponse>, Status> {
        let key = request.into_inner().key;
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Response::new(match entries.get(&key) {
            Some(entry) => FencedReadResponse {
                found: true,
                value: entry.value.clone(),
                token: entry.token,
                highest_token: entry.highest,
            },
            None => FencedReadResponse::default(),
        }))
    }
}
