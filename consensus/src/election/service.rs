//! An election node as a gRPC service: the IO around a [`Node`].
//!
//! Everything the algorithms decide happens in the cores ([`super::bully`],
//! [`super::ring`]); this file only moves their messages and their clock.
//! A ticker calls the core every [`Timing::tick`]; a peer's message is
//! handed to the core as it arrives; each message the core sends is one
//! `Deliver` call with its own deadline, and a call that fails is reported
//! back to the core as undeliverable (the ring skips that successor).
//!
//! Runs unchanged on TCP and in turmoil: peers are dialed through
//! [`ClientBuilder`] with the node's [`Net`], and time is `tokio::time`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tonic::{Request, Response, Status};

use super::{
    Algorithm, Error, Kind, MAX_IN_FLIGHT, MAX_MESSAGE_BYTES, Message, Node, NodeId, Outgoing,
    Result, Timing, View,
};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::leader_election_client::LeaderElectionClient;
use crate::proto::v1::leader_election_server::{LeaderElection, LeaderElectionServer};
use crate::proto::v1::{
    CampaignRequest, Delivered, ElectionKind, ElectionMessage, ElectionView, GetViewRequest,
    MessageCount,
};

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Every member's address (`host:port`), this node's included.
    pub peers: BTreeMap<NodeId, String>,
    pub algorithm: Algorithm,
    pub timing: Timing,
    pub net: Net,
    /// Draws the node's timeouts, so that a simulation replays.
    pub seed: u64,
}

impl NodeConfig {
    pub fn new(
        id: NodeId,
        peers: BTreeMap<NodeId, String>,
        algorithm: Algorithm,
        net: Net,
    ) -> Self {
        Self {
            id,
            peers,
            algorithm,
            timing: Timing::default(),
            net,
            seed: 0,
        }
    }
}

/// A running election node; clones share it. It stops (ticker and all)
/// once every clone, and the server holding one, is gone.
#[derive(Clone, Debug)]
pub struct ElectionNode {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node: Mutex<Node>,
    peers: BTreeMap<NodeId, LeaderElectionClient<RpcChannel>>,
    in_flight: Arc<Semaphore>,
    /// Messages not sent because [`MAX_IN_FLIGHT`] were in flight.
    dropped: AtomicU64,
}

impl ElectionNode {
    /// Starts the node's clock. Call inside a tokio runtime.
    pub fn start(config: NodeConfig) -> Result<Self> {
        let node = Node::new(
            config.algorithm,
            config.id,
            config.peers.keys().copied(),
            config.timing,
            config.seed,
        )?;
        // A message that cannot be delivered within its deadline counts as
        // lost: the connect attempt gets no longer than that either.
        // Pitfall: after a partition heals, a connection whose packets were
        // lost can stay wedged, every message on it timing out, until a
        // keepalive ping goes unanswered. With the stack's default (1 s) a
        // healed split brain lives on for that long; ping at the pace of
        // the messages instead.
        let dialer = ClientBuilder::new(config.net)
            .connect_timeout(config.timing.deliver_timeout)
            .default_deadline(config.timing.deliver_timeout)
            .keepalive(config.timing.deliver_timeout * 2);
        let mut peers = BTreeMap::new();
        for (&id, address) in config.peers.iter().filter(|(id, _)| **id != config.id) {
            let channel = dialer.dial(address).map_err(|err| Error::PeerAddress {
                id,
                reason: err.to_string(),
            })?;
            peers.insert(id, LeaderElectionClient::new(channel));
        }
        let shared = Arc::new(Shared {
            node: Mutex::new(node),
            peers,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(ticker(Arc::downgrade(&shared), config.timing));
        Ok(Self { shared })
    }

    pub fn id(&self) -> NodeId {
        self.shared.lock().id()
    }

    pub fn view(&self) -> View {
        let mut view = self.shared.lock().view();
        view.dropped = self.shared.dropped.load(Ordering::Relaxed);
        view
    }

    /// Starts an election now, as if the failure detector had fired.
    pub fn campaign(&self) -> View {
        let out = self.shared.lock().campaign();
        self.shared.send(out);
        self.view()
    }

    pub fn into_service(self) -> LeaderElectionServer<Self> {
        LeaderElectionServer::new(self)
    }

    /// A server hosting this node, with the request size bounded to what an
    /// election message can be.
    pub fn into_server(self) -> RpcServer {
        RpcServer::new()
            .service_name(format!("election-{}", self.id()))
            .max_message_bytes(MAX_MESSAGE_BYTES)
            .add_service(self.into_service(), FILE_DESCRIPTOR_SET)
    }
}

/// Ticks the core until the node is dropped.
async fn ticker(shared: Weak<Shared>, timing: Timing) {
    let mut clock = tokio::time::interval(timing.tick);
    // A late tick is not made up for with a burst: the cores count ticks
    // as time, and a burst would expire timeouts early.
    clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        clock.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let out = shared.lock().tick();
        shared.send(out);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Node> {
        // The core is changed only by whole events, so a panic mid-event
        // (a bug) leaves it no worse than the event before.
        self.node.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One `Deliver` call per message, each on its own task; failures go
    /// back to the core.
    fn send(self: &Arc<Self>, outgoing: Vec<Outgoing>) {
        for Outgoing { to, message } in outgoing {
            let Some(client) = self.peers.get(&to) else {
                continue;
            };
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                // Dropped, not queued: the algorithms' timeouts recover a
                // lost message, but nothing recovers a node whose queue of
                // sends to dead peers grows without bound.
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(%to, kind = ?message.kind, dropped, "too many election messages in flight; dropping");
                }
                continue;
            };
            let mut client = client.clone();
            let node = Arc::downgrade(self);
            tokio::spawn(async move {
                let delivered = client.deliver(wire(message)).await;
                drop(permit);
                if delivered.is_err() {
                    let Some(node) = node.upgrade() else {
                        return;
                    };
                    let out = node.lock().undeliverable(to, message);
                    node.send(out);
                }
            });
        }
    }
}

#[tonic::async_trait]
impl LeaderElection for ElectionNode {
    async fn deliver(
        &self,
        request: Request<ElectionMessage>,
    ) -> Result<Response<Delivered>, Status> {
        let message = parse(request.get_ref())?;
        let out = self.shared.lock().receive(message)?;
        self.shared.send(out);
        Ok(Response::new(Delivered {}))
    }

    async fn get_view(
        &self,
        _request: Request<GetViewRequest>,
    ) -> Result<Response<ElectionView>, Status> {
        Ok(Response::new(view_to_wire(&self.view())))
    }

    async fn campaign(
        &self,
        _request: Request<CampaignRequest>,
    ) -> Result<Response<ElectionView>, Status> {
        Ok(Response::new(view_to_wire(&ElectionNode::campaign(self))))
    }
}

fn kind_to_wire(kind: Kind) -> ElectionKind {
    match kind {
        Kind::Election => ElectionKind::Election,
        Kind::Answer => ElectionKind::Answer,
        Kind::Coordinator => ElectionKind::Coordinator,
        Kind::Elected => ElectionKind::Elected,
        Kind::Heartbeat => ElectionKind::Heartbeat,
    }
}

fn wire(message: Message) -> ElectionMessage {
    ElectionMessage {
        from: message.from.0,
        kind: kind_to_wire(message.kind).into(),
        epoch: message.epoch,
        candidate: message.candidate.0,
    }
}

/// A peer's message, checked as far as the wire allows; membership is
/// the node's to check.
fn parse(message: &ElectionMessage) -> Result<Message> {
    let kind = match ElectionKind::try_from(message.kind) {
        Ok(ElectionKind::Election) => Kind::Election,
        Ok(ElectionKind::Answer) => Kind::Answer,
        Ok(ElectionKind::Coordinator) => Kind::Coordinator,
        Ok(ElectionKind::Elected) => Kind::Elected,
        Ok(ElectionKind::Heartbeat) => Kind::Heartbeat,
        Ok(ElectionKind::Unspecified) | Err(_) => {
            return Err(Error::Invalid {
                field: "kind",
                reason: format!("{} is not a message kind", message.kind),
            });
        }
    };
    Ok(Message {
        from: NodeId(message.from),
        kind,
        epoch: message.epoch,
        candidate: NodeId(message.candidate),
    })
}

fn view_to_wire(view: &View) -> ElectionView {
    ElectionView {
        id: view.id.0,
        algorithm: view.algorithm.name().to_owned(),
        leader: view.leader.map_or(0, |leader| leader.0),
        epoch: view.epoch,
        sent: view
            .sent
            .iter()
            .map(|(&kind, &count)| MessageCount {
                kind: kind_to_wire(kind).into(),
                count,
            })
            .collect(),
        undelivered: view.undelivered,
        dropped: view.dropped,
    }
}
