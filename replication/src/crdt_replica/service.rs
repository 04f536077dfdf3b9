//! The gRPC shell: handlers for clients and peers, and the gossip loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use observability::offload;
use observability::rpc::peer_secret::PeerSecret;
use observability::rpc::{ClientBuilder, RpcChannel};
use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};

use super::anti_entropy::{Replica, Sent};
use super::codec::Members;
use super::object::{Kind, ObjectKey, Operation};
use super::{INCARNATION_BITS, MAX_MEMBERS, MessageFaults, ReplicaConfig};
use crate::clock::ReplicaId;
use crate::clock::hlc::HybridClock;
use crate::clock::physical::PhysicalClock;
use crate::proto::crdt_replica_client::CrdtReplicaClient;
use crate::proto::crdt_replica_server::CrdtReplicaServer;
use crate::proto::{self, update_request};
use crate::{Error, Result};

type SharedReplica = Arc<Mutex<Replica<Arc<dyn PhysicalClock>>>>;

/// One replica: its state, shared by the handlers and the gossip loop.
/// Gossip stops when the last handle (and the service) is dropped.
#[derive(Clone, Debug)]
pub struct CrdtReplica {
    replica: SharedReplica,
    peer_secret: Option<PeerSecret>,
    /// One gossip message merged at a time, off the async workers.
    merging: Arc<Semaphore>,
}

impl CrdtReplica {
    /// Starts a replica and its gossip loop (on the current runtime).
    pub fn start(config: ReplicaConfig) -> Result<Self> {
        let mut members: std::collections::BTreeSet<ReplicaId> =
            config.peers.keys().copied().collect();
        members.insert(config.id);
        if let Some(&replica) = members
            .iter()
            .find(|member| member.0 == 0 || member.0 >= 1 << (64 - INCARNATION_BITS))
        {
            return Err(Error::InvalidMemberId { replica });
        }
        if members.len() > MAX_MEMBERS {
            return Err(Error::TooManyMembers {
                members: members.len(),
                max: MAX_MEMBERS,
            });
        }
        let clock = HybridClock::new(config.clock.clone(), config.max_clock_offset);
        let replica = Replica::new(
            config.id,
            Members(members),
            config.incarnation,
            config.mode,
            clock,
        );
        let replica = Arc::new(Mutex::new(replica));
        let client = ClientBuilder::new(config.net)
            .default_deadline(config.gossip_interval.max(Duration::from_millis(500)));
        let mut channels = BTreeMap::new();
        for (&peer, address) in &config.peers {
            if peer != config.id {
                let channel = client.dial(address).map_err(|err| Error::BadPeerAddress {
                    peer,
                    reason: err.to_string(),
                })?;
                channels.insert(peer, channel);
            }
        }
        let config_secret = config.peer_secret.clone();
        if !channels.is_empty() {
            tokio::spawn(gossip_loop(Arc::downgrade(&replica), channels, config));
        }
        Ok(Self {
            replica,
            peer_secret: config_secret,
            merging: Arc::new(Semaphore::new(1)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Replica<Arc<dyn PhysicalClock>>> {
        // Every critical section leaves the state consistent before it
        // can panic, so a poisoned lock still guards valid state.
        self.replica.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What this replica has seen and shipped.
    pub fn status(&self) -> proto::StatusReply {
        self.lock().status()
    }

    /// The object's value here.
    pub fn read(&self, key: &ObjectKey) -> (bool, proto::Value) {
        self.lock().read(key)
    }

    pub fn into_service(self) -> CrdtReplicaServer<Self> {
        CrdtReplicaServer::new(self)
    }
}

fn object_key(object: Option<&proto::ObjectId>) -> Result<ObjectKey> {
    let object = object.ok_or(Error::MissingField { field: "object" })?;
    Ok(ObjectKey {
        kind: Kind::from_proto(object.r#type)?,
        name: object.name.clone(),
    })
}

fn operation(members: &Members, operation: Option<update_request::Operation>) -> Result<Operation> {
    use update_request::Operation as Wire;
    Ok(
        match operation.ok_or(Error::MissingField { field: "operation" })? {
            Wire::Increment(amount) => Operation::Increment(amount),
            Wire::Add(amount) => Operation::Add(amount),
            Wire::Insert(element) => Operation::Insert(element),
            Wire::Remove(element) => Operation::Remove(element),
            Wire::Write(write) => Operation::Write {
                value: write.value,
                context: if write.has_context {
                    Some(members.version_vector(&write.context)?)
                } else {
                    None
                },
            },
            Wire::Assign(value) => Operation::Assign(value),
        },
    )
}

#[tonic::async_trait]
impl proto::crdt_replica_server::CrdtReplica for CrdtReplica {
    async fn update(
        &self,
        request: Request<proto::UpdateRequest>,
    ) -> Result<Response<proto::UpdateReply>, Status> {
        let request = request.into_inner();
        let key = object_key(request.object.as_ref())?;
        let mut replica = self.lock();
        let operation = operation(replica.members(), request.operation)?;
        let (value, changed) = replica.update(key, operation)?;
        Ok(Response::new(proto::UpdateReply {
            value: Some(value),
            changed,
        }))
    }

    async fn read(
        &self,
        request: Request<proto::ReadRequest>,
    ) -> Result<Response<proto::ReadReply>, Status> {
        let key = object_key(request.get_ref().object.as_ref())?;
        let (exists, value) = self.read(&key);
        Ok(Response::new(proto::ReadReply {
            exists,
            value: Some(value),
        }))
    }

    async fn gossip(
        &self,
        request: Request<proto::GossipRequest>,
    ) -> Result<Response<proto::GossipReply>, Status> {
        PeerSecret::authenticate(self.peer_secret.as_ref(), &request)?;
        // Merging a message costs up to the size of the objects it
        // touches: it runs on the blocking pool, one message at a time, so
        // gossip never stalls the workers serving reads and updates.
        let _turn = self
            .merging
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the replica is shutting down"))?;
        let replica = self.replica.clone();
        let request = request.into_inner();
        let reply = offload::cpu(move || {
            replica
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .receive(&request)
        })
        .await
        .map_err(|err| Status::unavailable(format!("merging gossip: {err}")))??;
        Ok(Response::new(reply))
    }

    async fn status(
        &self,
        _: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusReply>, Status> {
        Ok(Response::new(self.status()))
    }
}

/// What the injected faults do to one message.
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Reorder,
}

fn fate(faults: &MessageFaults, rng: &mut SmallRng) -> Fate {
    let roll: f64 = rng.random();
    if roll < faults.drop {
        Fate::Drop
    } else if roll < faults.drop + faults.duplicate {
        Fate::Duplicate
    } else if roll < faults.drop + faults.duplicate + faults.reorder {
        Fate::Reorder
    } else {
        Fate::Deliver
    }
}

/// A message on its way: where to, what it carries, how it was built.
struct Outgoing {
    peer: ReplicaId,
    request: proto::GossipRequest,
    sent: Sent,
}

/// Sends `messages` concurrently and applies each reply as it comes.
async fn deliver(
    shared: &SharedReplica,
    channels: &BTreeMap<ReplicaId, RpcChannel>,
    secret: Option<&PeerSecret>,
    messages: Vec<Outgoing>,
) {
    let mut calls = JoinSet::new();
    for message in messages {
        let Some(channel) = channels.get(&message.peer) else {
            continue;
        };
        let mut client = CrdtReplicaClient::new(channel.clone());
        let mut request = Request::new(message.request);
        if let Some(secret) = secret {
            secret.attach(&mut request);
        }
        calls.spawn(async move {
            let reply = client.gossip(request).await;
            (message.peer, message.sent, reply)
        });
    }
    while let Some(joined) = calls.join_next().await {
        // A call task that panicked or was cancelled is a lost message.
        let Ok((peer, sent, reply)) = joined else {
            continue;
        };
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let failure = match reply {
            Ok(reply) => state
                .acknowledge(peer, &sent, reply.get_ref())
                .err()
                .map(Status::from),
            Err(status) => Some(status),
        };
        if let Some(status) = failure {
            state.record_failure();
            tracing::debug!(%peer, code = ?status.code(), "gossip failed");
        }
    }
}

/// Every `gossip_interval`, sends `fanout` random peers what they lack.
/// A message held back for reordering goes out in the next round, after
/// that round's own messages have been delivered and acknowledged: it
/// arrives stale, and so does its acknowledgement.
async fn gossip_loop(
    replica: Weak<Mutex<Replica<Arc<dyn PhysicalClock>>>>,
    channels: BTreeMap<ReplicaId, RpcChannel>,
    config: ReplicaConfig,
) {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut held: Vec<Outgoing> = Vec::new();
    let mut ticker = tokio::time::interval(config.gossip_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(shared) = replica.upgrade() else {
            return;
        };
        let targets: Vec<ReplicaId> = channels
            .keys()
            .copied()
            .choose_multiple(&mut rng, config.fanout.max(1));
        let stale = std::mem::take(&mut held);
        let mut outgoing = Vec::new();
        {
            let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
            state.record_round();
            for peer in targets {
                if config.cuts.is_cut(config.id, peer) {
                    state.record_failure();
                    continue;
                }
                let Ok((request, sent)) = state.gossip_to(peer) else {
                    continue;
                };
                let message = Outgoing {
                    peer,
                    request,
                    sent,
                };
                match fate(&config.faults, &mut rng) {
                    Fate::Deliver => outgoing.push(message),
                    Fate::Drop => state.record_failure(),
                    Fate::Duplicate => {
                        outgoing.push(Outgoing {
                            peer,
                            request: message.request.clone(),
                            sent: message.sent.clone(),
                        });
                        outgoing.push(message);
                    }
                    Fate::Reorder => held.push(message),
                }
            }
        }
        deliver(&shared, &channels, config.peer_secret.as_ref(), outgoing).await;
        let stale: Vec<Outgoing> = stale
            .into_iter()
            .filter(|message| !config.cuts.is_cut(config.id, message.peer))
            .collect();
        deliver(&shared, &channels, config.peer_secret.as_ref(), stale).await;
    }
}
