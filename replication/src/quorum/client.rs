//! Clients: a typed one for one node, and a session that records
//! histories (it keeps each key's causal context between calls).

use std::collections::BTreeMap;

use observability::rpc::RpcChannel;
use tonic::Status;

use super::version::Resolution;
use crate::consistency::recorder::{ClientError, KvClient};
use crate::proto::{self, quorum_kv_client::QuorumKvClient};

/// Calls one node (any node: it coordinates or forwards).
#[derive(Clone, Debug)]
pub struct QuorumClient {
    client: QuorumKvClient<RpcChannel>,
}

/// A read: the values (one, several siblings, or none) and the context
/// to write back with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    pub values: Vec<Vec<u8>>,
    pub context: Vec<proto::VersionEntry>,
}

impl QuorumClient {
    pub fn new(channel: RpcChannel) -> Self {
        Self {
            client: QuorumKvClient::new(channel),
        }
    }

    pub async fn get(
        &mut self,
        key: &str,
        r: u32,
        sloppy: bool,
        resolution: Resolution,
    ) -> Result<ReadResult, Status> {
        let reply = self
            .client
            .get(proto::QuorumGetRequest {
                key: key.to_owned(),
                r,
                sloppy,
                resolution: resolution.to_proto().into(),
            })
            .await?
            .into_inner();
        Ok(ReadResult {
            values: reply.values,
            context: reply.context,
        })
    }

    /// Writes `value` after a read whose context is `context` (empty: a
    /// blind write, which leaves what is there as siblings).
    pub async fn put(
        &mut self,
        key: &str,
        value: &[u8],
        context: Vec<proto::VersionEntry>,
        w: u32,
        sloppy: bool,
    ) -> Result<proto::QuorumPutReply, Status> {
        Ok(self
            .client
            .put(proto::QuorumPutRequest {
                key: key.to_owned(),
                value: value.to_vec(),
                context,
                w,
                sloppy,
            })
            .await?
            .into_inner())
    }

    pub async fn status(&mut self) -> Result<proto::QuorumStatusReply, Status> {
        Ok(self
            .client
            .status(proto::QuorumStatusRequest {})
            .await?
            .into_inner())
    }
}

/// One client session with fixed R, W and resolution, for recorded
/// histories: it keeps the last context it saw per key and writes with
/// it, as a Dynamo client library does.
#[derive(Clone, Debug)]
pub struct QuorumSession {
    client: QuorumClient,
    pub r: u32,
    pub w: u32,
    pub sloppy: bool,
    pub resolution: Resolution,
    contexts: BTreeMap<String, Vec<proto::VersionEntry>>,
}

/// Contexts a session remembers; past it, the oldest key's is forgotten
/// (its next write is blind).
const MAX_SESSION_KEYS: usize = 1024;

impl QuorumSession {
    pub fn new(client: QuorumClient, r: u32, w: u32, sloppy: bool, resolution: Resolution) -> Self {
        Self {
            client,
            r,
            w,
            sloppy,
            resolution,
            contexts: BTreeMap::new(),
        }
    }

    fn remember(&mut self, key: &str, context: Vec<proto::VersionEntry>) {
        if self.contexts.len() >= MAX_SESSION_KEYS && !self.contexts.contains_key(key) {
            self.contexts.pop_first();
        }
        self.contexts.insert(key.to_owned(), context);
    }

    /// The text a read shows: siblings joined by `|` (none: `""`).
    async fn read(&mut self, key: &str) -> Result<String, Status> {
        let read = self
            .client
            .get(key, self.r, self.sloppy, self.resolution)
            .await?;
        self.remember(key, read.context);
        let texts: Vec<String> = read
            .values
            .iter()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect();
        Ok(texts.join("|"))
    }

    async fn write(&mut self, key: &str, value: &str) -> Result<(), Status> {
        let context = self.contexts.get(key).cloned().unwrap_or_default();
        let reply = self
            .client
            .put(key, value.as_bytes(), context, self.w, self.sloppy)
            .await?;
        self.remember(key, reply.context);
        Ok(())
    }
}

impl KvClient for QuorumSession {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        self.read(key)
            .await
            .map_err(|status| ClientError::from_status(&status))
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.write(key, value)
            .await
            .map_err(|status| ClientError::from_status(&status))
    }

    /// Read, then write the value read plus `value` with the read's
    /// context: a read-modify-write, as appends on a Dynamo store are.
    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let current = self
            .read(key)
            .await
            .map_err(|status| ClientError::from_status(&status))?;
        self.write(key, &(current + value))
            .await
            .map_err(|status| ClientError::from_status(&status))
    }
}
