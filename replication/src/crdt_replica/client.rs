//! A typed client for one replica: what demos, tests and the CLI call.

use observability::rpc::RpcChannel;
use tonic::Status;

use super::object::Kind;
use crate::proto::crdt_replica_client::CrdtReplicaClient;
use crate::proto::{self, update_request::Operation};

/// Calls one replica.
#[derive(Clone, Debug)]
pub struct ReplicaClient {
    client: CrdtReplicaClient<RpcChannel>,
}

fn object(kind: Kind, name: &str) -> Option<proto::ObjectId> {
    Some(proto::ObjectId {
        r#type: kind.to_proto().into(),
        name: name.to_owned(),
    })
}

impl ReplicaClient {
    pub fn new(channel: RpcChannel) -> Self {
        Self {
            client: CrdtReplicaClient::new(channel),
        }
    }

    /// Sends one update; the object's value after it.
    pub async fn update(
        &mut self,
        kind: Kind,
        name: &str,
        operation: Operation,
    ) -> Result<proto::Value, Status> {
        Ok(self
            .update_reply(kind, name, operation)
            .await?
            .value
            .unwrap_or_default())
    }

    /// Sends one update; the whole reply (value, and whether it changed
    /// anything).
    pub async fn update_reply(
        &mut self,
        kind: Kind,
        name: &str,
        operation: Operation,
    ) -> Result<proto::UpdateReply, Status> {
        let reply = self
            .client
            .update(proto::UpdateRequest {
                object: object(kind, name),
                operation: Some(operation),
            })
            .await?;
        Ok(reply.into_inner())
    }

    pub async fn read(&mut self, kind: Kind, name: &str) -> Result<proto::Value, Status> {
        let reply = self
            .client
            .read(proto::ReadRequest {
                object: object(kind, name),
            })
            .await?;
        Ok(reply.into_inner().value.unwrap_or_default())
    }

    pub async fn increment(&mut self, name: &str, amount: u64) -> Result<proto::Value, Status> {
        self.update(Kind::GCounter, name, Operation::Increment(amount))
            .await
    }

    pub async fn insert(&mut self, name: &str, element: &str) -> Result<proto::Value, Status> {
        self.update(Kind::OrSet, name, Operation::Insert(element.to_owned()))
            .await
    }

    pub async fn remove(&mut self, name: &str, element: &str) -> Result<proto::Value, Status> {
        self.update(Kind::OrSet, name, Operation::Remove(element.to_owned()))
            .await
    }

    /// Writes an MV register; `read` is the value the writer saw (its
    /// siblings are replaced), `None` to replace what the replica holds.
    pub async fn write(
        &mut self,
        name: &str,
        value: &str,
        read: Option<&proto::Value>,
    ) -> Result<proto::Value, Status> {
        let write = proto::RegisterWrite {
            value: value.to_owned(),
            context: read.map(|read| read.context.clone()).unwrap_or_default(),
            has_context: read.is_some(),
        };
        self.update(Kind::MvRegister, name, Operation::Write(write))
            .await
    }

    pub async fn status(&mut self) -> Result<proto::StatusReply, Status> {
        Ok(self
            .client
            .status(proto::StatusRequest {})
            .await?
            .into_inner())
    }
}
