//! A key-value register service, and its stale-reading twin.
//!
//! Episode: 19, "Consistency Models Hierarchy"
//! Pattern: consistency / linearizable register vs replica reads
//! Try it:  cargo run -- demo linearizability
//! Test it: cargo test -p replication register
//!
//! [`Register`] keeps one copy under one lock: every operation takes
//! effect at a single instant while the lock is held, the textbook way to
//! be linearizable. [`stale::StaleRegister`] is the broken twin and the
//! most common real-world mistake: writes go to a primary, reads are
//! served by a replica that catches up a little later. Fast, available —
//! and a client can write, read, and not see its own write. The checker
//! catches it; that is what the demo shows.
//!
//! Bounds (a request cannot make either register hold more): keys of at
//! most [`MAX_KEY_BYTES`], values of at most [`MAX_VALUE_BYTES`] (an
//! append past it is refused with `FailedPrecondition`), and at most
//! [`MAX_STORED_BYTES`] of keys, values and [`ENTRY_OVERHEAD_BYTES`] per
//! key in all (a write past it is refused with `ResourceExhausted`). The stale twin's replication backlog
//! holds at most [`stale::MAX_BACKLOG`] writes; past it, writes are
//! refused with `ResourceExhausted` until the replica catches up.

mod demo;
pub mod stale;

pub use demo::linearizability_demo;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use observability::rpc::RpcChannel;
use tonic::{Request, Response, Status};

use crate::consistency::recorder::{ClientError, KvClient};
use crate::{Error, Result};

pub use crate::proto;

use proto::register_client::RegisterClient;
use proto::register_server::RegisterServer;
use proto::{AppendReply, AppendRequest, GetReply, GetRequest, PutReply, PutRequest};

/// The longest key and value a register accepts.
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Refuses keys and values over the limits.
pub(crate) fn validate(key: &str, value: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge {
            what: "key",
            bytes: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::TooLarge {
            what: "value",
            bytes: value.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// What the map spends per key beyond its bytes (two `String` headers and
/// its share of a B-tree node), charged so that many tiny keys cannot hold
/// far more memory than [`MAX_STORED_BYTES`] says.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// The most bytes of keys and values one register stores.
pub const MAX_STORED_BYTES: usize = 64 * 1024 * 1024;

/// Keys and values with their total size kept, so a write that would
/// outgrow `max_bytes` is refused before anything changes.
#[derive(Debug)]
pub(crate) struct Store {
    values: BTreeMap<String, String>,
    bytes: usize,
    max_bytes: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_max_bytes(MAX_STORED_BYTES)
    }
}

impl Store {
    pub(crate) fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            values: BTreeMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn get(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_default()
    }

    /// Sets `key` to `value`, if the store has room.
    pub(crate) fn put(&mut self, key: String, value: String) -> Result<()> {
        let cost = |value: &str| ENTRY_OVERHEAD_BYTES + key.len() + value.len();
        let old = self.values.get(&key).map_or(0, |v| cost(v));
        let bytes = self.bytes - old + cost(&value);
        if bytes > self.max_bytes {
            return Err(Error::RegisterFull {
                max_bytes: self.max_bytes,
            });
        }
        self.bytes = bytes;
        self.values.insert(key, value);
        Ok(())
    }

    /// Appends `suffix` to `key`'s value and returns the new value's length,
    /// if the value stays under [`MAX_VALUE_BYTES`] and the store has room.
    pub(crate) fn append(&mut self, key: &str, suffix: &str) -> Result<usize> {
        let current = self.values.get(key).map_or(0, String::len);
        if current + suffix.len() > MAX_VALUE_BYTES {
            return Err(Error::ValueFull {
                bytes: current + suffix.len(),
                max: MAX_VALUE_BYTES,
            });
        }
        // The key costs bytes once, when it first appears — not whenever
        // its value happens to be empty.
        let added = suffix.len()
            + if self.values.contains_key(key) {
                0
            } else {
                ENTRY_OVERHEAD_BYTES + key.len()
            };
        if self.bytes + added > self.max_bytes {
            return Err(Error::RegisterFull {
                max_bytes: self.max_bytes,
            });
        }
        self.bytes += added;
        let value = self.values.entry(key.to_owned()).or_default();
        value.push_str(suffix);
        Ok(value.len())
    }
}

/// A write on its way to a replica: the operation, not the whole value,
/// so an append ships only what it appended.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Put(String, String),
    Append(String, String),
}

impl Store {
    /// Applies a write shipped from the primary.
    pub(crate) fn apply(&mut self, change: Change) -> Result<()> {
        match change {
            Change::Put(key, value) => self.put(key, value),
            Change::Append(key, suffix) => self.append(&key, &suffix).map(drop),
        }
    }
}

/// A linearizable register: one copy, one lock.
#[derive(Clone, Debug, Default)]
pub struct Register {
    store: Arc<Mutex<Store>>,
}

impl Register {
    /// A register holding up to [`MAX_STORED_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A register holding up to `max_bytes` of keys and values.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            store: Arc::new(Mutex::new(Store::with_max_bytes(max_bytes))),
        }
    }

    pub fn into_service(self) -> RegisterServer<Self> {
        RegisterServer::new(self)
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Each operation validates before it changes anything.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl proto::register_server::Register for Register {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let key = request.into_inner().key;
        validate(&key, "")?;
        let value = self.store().get(&key);
        Ok(Response::new(GetReply { value }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        let PutRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        self.store().put(key, value)?;
        Ok(Response::new(PutReply {}))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendReply>, Status> {
        let AppendRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        self.store().append(&key, &value)?;
        Ok(Response::new(AppendReply {}))
    }
}

/// A register client, as the recorder wants it.
#[derive(Clone, Debug)]
pub struct RegisterKv {
    client: RegisterClient<RpcChannel>,
}

impl RegisterKv {
    pub fn new(channel: RpcChannel) -> Self {
        Self {
            client: RegisterClient::new(channel),
        }
    }
}

impl KvClient for RegisterKv {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        let request = GetRequest {
            key: key.to_owned(),
        };
        self.client
            .get(request)
            .await
            .map(|r| r.into_inner().value)
            .map_err(|s| ClientError::from_status(&s))
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let request = PutRequest {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.client
            .put(request)
            .await
            .map(drop)
            .map_err(|s| ClientError::from_status(&s))
    }

    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let request = AppendRequest {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.client
            .append(request)
            .await
            .map(drop)
            .map_err(|s| ClientError::from_status(&s))
    }
}

#[cfg(test)]
mod tests;
