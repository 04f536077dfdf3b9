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

mod demo;
pub mod stale;

pub use demo::linearizability_demo;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use observability::rpc::RpcChannel;
use tonic::{Request, Response, Status};

use crate::consistency::recorder::{ClientError, KvClient};
use crate::{Error, Result};

/// Generated protobuf types and gRPC stubs for `replication.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("replication.v1");

    /// Encoded `FileDescriptorSet` of the protos, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

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

/// A linearizable register: one copy, one lock.
#[derive(Clone, Debug, Default)]
pub struct Register {
    values: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Register {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn into_service(self) -> RegisterServer<Self> {
        RegisterServer::new(self)
    }

    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // Each operation completes its single map update before releasing.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl proto::register_server::Register for Register {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let key = request.into_inner().key;
        validate(&key, "")?;
        let value = self.values().get(&key).cloned().unwrap_or_default();
        Ok(Response::new(GetReply { value }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        let PutRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        self.values().insert(key, value);
        Ok(Response::new(PutReply {}))
    }

    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendReply>, Status> {
        let AppendRequest { key, value } = request.into_inner();
        validate(&key, &value)?;
        let mut values = self.values();
        let current = values.entry(key).or_default();
        if current.len() + value.len() > MAX_VALUE_BYTES {
            return Err(Error::TooLarge {
                what: "value",
                bytes: current.len() + value.len(),
                max: MAX_VALUE_BYTES,
            }
            .into());
        }
        current.push_str(&value);
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
