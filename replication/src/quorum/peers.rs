//! Calls to the other nodes, with a deadline each, the cluster's peer
//! secret attached, and the message loss a test injects.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use observability::rpc::RpcChannel;
use observability::rpc::peer_secret::PeerSecret;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::MessageFaults;
use crate::clock::ReplicaId;
use crate::crdt_replica::LinkCuts;
use crate::proto::quorum_kv_client::QuorumKvClient;

pub(super) type Client = QuorumKvClient<RpcChannel>;

/// Every other member's client.
#[derive(Debug)]
pub(super) struct Peers {
    id: ReplicaId,
    cuts: LinkCuts,
    clients: BTreeMap<ReplicaId, Client>,
    faults: MessageFaults,
    rng: Mutex<SmallRng>,
    timeout: Duration,
    secret: Option<PeerSecret>,
}

enum Fate {
    Deliver,
    LoseRequest,
    LoseReply,
}

impl Peers {
    pub fn new(
        id: ReplicaId,
        cuts: LinkCuts,
        clients: BTreeMap<ReplicaId, Client>,
        faults: MessageFaults,
        seed: u64,
        timeout: Duration,
        secret: Option<PeerSecret>,
    ) -> Self {
        Self {
            id,
            cuts,
            clients,
            faults,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            timeout,
            secret,
        }
    }

    fn fate(&self) -> Fate {
        if self.faults.drop <= 0.0 {
            return Fate::Deliver;
        }
        let draw: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random();
        if draw < self.faults.drop / 2.0 {
            Fate::LoseRequest
        } else if draw < self.faults.drop {
            Fate::LoseReply
        } else {
            Fate::Deliver
        }
    }

    /// Calls `to` through `call`, failing after the peer timeout. A lost
    /// message looks exactly like a slow peer: the caller waits out its
    /// deadline and learns nothing — in particular not whether a lost
    /// reply's request took effect.
    pub async fn call<Req, Rep, F, Fut>(
        &self,
        to: ReplicaId,
        request: Req,
        call: F,
    ) -> Result<Rep, Status>
    where
        F: FnOnce(Client, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Rep>, Status>>,
    {
        let client = self
            .clients
            .get(&to)
            .cloned()
            .ok_or_else(|| Status::internal(format!("{to} has no client")))?;
        let mut request = Request::new(request);
        if let Some(secret) = &self.secret {
            secret.attach(&mut request);
        }
        let deadline = Instant::now() + self.timeout;
        let lost = || Status::deadline_exceeded(format!("no answer from {to} (message lost)"));
        let fate = if self.cuts.is_cut(self.id, to) {
            Fate::LoseRequest
        } else {
            self.fate()
        };
        match fate {
            Fate::LoseRequest => {
                tokio::time::sleep_until(deadline).await;
                Err(lost())
            }
            fate => {
                let reply = tokio::time::timeout_at(deadline, call(client, request))
                    .await
                    .map_err(|_| Status::deadline_exceeded(format!("no answer from {to}")))??;
                if matches!(fate, Fate::LoseReply) {
                    tokio::time::sleep_until(deadline).await;
                    return Err(lost());
                }
                Ok(reply.into_inner())
            }
        }
    }
}
