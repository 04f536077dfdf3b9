//! Raft's messages between nodes, over the same RPC stack as everything
//! else.
//!
//! Each node serves `consensus.v1.RaftTransport` on its one listen address.
//! Towards each peer it keeps one long-lived client stream and sends
//! batches: whatever raft produced since the last batch goes in one gRPC
//! message, so a busy leader pays one network write per batch, not per
//! append. Snapshots, which can be large, go separately, in chunks.
//!
//! Raft assumes nothing of the network: messages may be lost, duplicated
//! or reordered, and it recovers. So the transport never blocks raft and
//! never retries: a full queue drops the message, a broken stream is
//! reported (`report_unreachable`, and raft-rs probes that peer gently)
//! and reopened after a pause. Snapshot outcomes go back to raft-rs
//! (`report_snapshot`), which otherwise waits for one forever.
//!
//! [`TransportFaults`] injects loss, duplication and reordering at this
//! layer, for simulations (turmoil's network does not retransmit after a
//! random loss, so loss must be injected above TCP).
//!
//! Bounds: [`PEER_QUEUE`] messages waiting per peer, [`INBOX`] messages
//! waiting for the Raft loop, [`MAX_SNAPSHOT_BYTES`] per received snapshot,
//! one snapshot in flight per peer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use observability::rpc::{ClientBuilder, Net, RpcChannel, peer_uri};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::StateMachine;
use super::node::Event;
use super::wire::decode_message;
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use crate::proto::v1::{MessageBatch, SnapshotChunk, SnapshotInstalled, StreamClosed};

/// What a node tells a member that was removed from the cluster (etcd's
/// words), which then stops: it may have missed the entry that removed it.
pub const REMOVED: &str = "the member has been permanently removed from the cluster";

/// Messages waiting to be sent to one peer.
pub const PEER_QUEUE: usize = 4096;
/// Messages from peers waiting for the Raft loop.
pub const INBOX: usize = 8192;
/// The largest snapshot a node accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;
/// Snapshot chunk size.
const CHUNK_BYTES: usize = 1 << 20;
/// Messages in one batch at most.
const MAX_BATCH: usize = 512;
/// How long a broken stream waits before it is reopened.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// How long a snapshot may take to send.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(120);

/// Faults injected into outgoing messages (simulations only).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TransportFaults {
    /// Probability a message is dropped.
    pub loss: f64,
    /// Probability a message is sent twice.
    pub duplicate: f64,
    /// Probability a message is held back and sent after the next batch.
    pub reorder: f64,
    pub seed: u64,
}

impl TransportFaults {
    pub fn none() -> Self {
        Self::default()
    }

    fn any(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }
}

/// The receiving side: hands decoded messages to the Raft loop.
#[derive(Clone, Debug)]
pub struct TransportService {
    id: u64,
    /// 0 until a joining node learns it from the leader's snapshot.
    cluster_id: Arc<AtomicU64>,
    inbox: mpsc::Sender<Event>,
    /// To refuse members that were removed.
    state: Arc<RwLock<StateMachine>>,
}

impl TransportService {
    pub(crate) fn new(
        id: u64,
        cluster_id: Arc<AtomicU64>,
        inbox: mpsc::Sender<Event>,
        state: Arc<RwLock<StateMachine>>,
    ) -> Self {
        Self {
            id,
            cluster_id,
            inbox,
            state,
        }
    }

    pub fn into_service(self) -> RaftTransportServer<Self> {
        RaftTransportServer::new(self).max_decoding_message_size(2 * CHUNK_BYTES)
    }

    /// Refuses peers of another cluster (a misconfigured address). A
    /// joining node does not know its cluster's id until the leader's
    /// snapshot arrives, so an unknown id (0) on either side passes.
    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        let ours = self.cluster_id.load(Ordering::Acquire);
        if cluster_id != ours && cluster_id != 0 && ours != 0 {
            return Err(Status::failed_precondition(format!(
                "peer belongs to cluster {cluster_id:x}, this node to {ours:x}"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn stream(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<StreamClosed>, Status> {
        let mut batches = request.into_inner();
        loop {
            // A stream lives as long as both nodes do; when this one
            // stops, so do its streams, or a server draining before exit
            // would wait for them.
            let batch = tokio::select! {
                batch = batches.message() => batch?,
                () = self.inbox.closed() => {
                    return Err(Status::unavailable("etcdserver: server stopped"));
                }
            };
            let Some(batch) = batch else { break };
            self.check_cluster(batch.cluster_id)?;
            for bytes in &batch.messages {
                let message = decode_message(bytes).map_err(Status::from)?;
                if message.to != self.id {
                    continue;
                }
                // A removed member never hears of the entry that removed it
                // once the others stop talking to it; it learns here, when
                // it calls them.
                let removed = self
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .removed
                    .contains(&message.from);
                if removed {
                    return Err(Status::failed_precondition(REMOVED));
                }
                // A full inbox drops the message: raft retransmits.
                let _ = self.inbox.try_send(Event::Step(message));
            }
        }
        Ok(Response::new(StreamClosed {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotInstalled>, Status> {
        let mut chunks = request.into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            self.check_cluster(chunk.cluster_id)?;
            if data.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let message = decode_message(&data).map_err(Status::from)?;
        if message.get_msg_type() != MessageType::MsgSnapshot || message.to != self.id {
            return Err(Status::invalid_argument("not a snapshot for this node"));
        }
        self.inbox
            .send(Event::Step(message))
            .await
            .map_err(|_| Status::unavailable("the node is stopping"))?;
        Ok(Response::new(SnapshotInstalled {}))
    }
}

/// One peer's outgoing side.
#[derive(Debug)]
struct Peer {
    address: String,
    queue: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    snapshot_in_flight: Arc<AtomicBool>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sending side: a stream per peer.
#[derive(Debug)]
pub struct Peers {
    id: u64,
    cluster_id: Arc<AtomicU64>,
    net: Net,
    inbox: mpsc::Sender<Event>,
    faults: TransportFaults,
    peers: HashMap<u64, Peer>,
}

impl Peers {
    pub(crate) fn new(
        id: u64,
        cluster_id: Arc<AtomicU64>,
        net: Net,
        inbox: mpsc::Sender<Event>,
        faults: TransportFaults,
    ) -> Self {
        Self {
            id,
            cluster_id,
            net,
            inbox,
            faults,
            peers: HashMap::new(),
        }
    }

    /// Keeps one sender per member other than this node, at the member's
    /// first peer URL.
    pub fn set_members<'a>(&mut self, members: impl Iterator<Item = (u64, &'a str)>) {
        let wanted: HashMap<u64, String> = members
            .filter(|(id, _)| *id != self.id)
            .map(|(id, address)| (id, address.to_owned()))
            .collect();
        self.peers
            .retain(|id, peer| wanted.get(id).is_some_and(|a| *a == peer.address));
        for (id, address) in wanted {
            if self.peers.contains_key(&id) {
                continue;
            }
            let Ok(uri) = peer_uri(&address) else {
                tracing::warn!(peer = id, %address, "unusable peer address; not connecting");
                continue;
            };
            // Streams live as long as the peer does; a dead one is noticed
            // by HTTP/2 keepalive, not by a deadline.
            let channel = ClientBuilder::new(self.net)
                .default_deadline(Duration::from_secs(365 * 24 * 3600))
                .connect_lazy(uri);
            let (queue, outgoing) = mpsc::channel(PEER_QUEUE);
            let faults = TransportFaults {
                seed: self.faults.seed ^ (self.id << 32) ^ id,
                ..self.faults
            };
            let task = tokio::spawn(stream_to_peer(
                id,
                self.cluster_id.clone(),
                channel,
                outgoing,
                self.inbox.clone(),
                faults,
            ));
            self.peers.insert(
                id,
                Peer {
                    address,
                    queue,
                    task,
                    snapshot_in_flight: Arc::default(),
                },
            );
        }
    }

    /// Sends raft's messages, never waiting: what cannot be queued is lost,
    /// as on any network.
    pub fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let Some(peer) = self.peers.get(&message.to) else {
                continue;
            };
            if message.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(message);
                continue;
            }
            if peer.queue.try_send(message).is_err() {
                tracing::debug!("a peer queue is full; dropping a raft message");
            }
        }
    }

    fn send_snapshot(&mut self, message: Message) {
        let to = message.to;
        let Some(peer) = self.peers.get(&to) else {
            return;
        };
        let inbox = self.inbox.clone();
        if peer.snapshot_in_flight.swap(true, Ordering::AcqRel) {
            // One at a time; raft-rs asks again after this one.
            let _ = inbox.try_send(Event::SnapshotSent { to, ok: false });
            return;
        }
        let in_flight = peer.snapshot_in_flight.clone();
        let Ok(uri) = peer_uri(&peer.address) else {
            in_flight.store(false, Ordering::Release);
            return;
        };
        let channel = ClientBuilder::new(self.net)
            .default_deadline(SNAPSHOT_DEADLINE)
            .connect_lazy(uri);
        let cluster_id = self.cluster_id.load(Ordering::Acquire);
        tokio::spawn(async move {
            let ok = send_snapshot(channel, cluster_id, &message).await;
            if let Err(err) = &ok {
                tracing::warn!(peer = to, %err, "sending a snapshot failed");
            }
            in_flight.store(false, Ordering::Release);
            let _ = inbox.send(Event::SnapshotSent { to, ok: ok.is_ok() }).await;
        });
    }
}

async fn send_snapshot(
    channel: RpcChannel,
    cluster_id: u64,
    message: &Message,
) -> Result<(), Status> {
    let bytes = Bytes::from(
        message
            .write_to_bytes()
            .map_err(|e| Status::internal(e.to_string()))?,
    );
    let chunks: Vec<SnapshotChunk> = (0..bytes.len())
        .step_by(CHUNK_BYTES)
        .map(|at| SnapshotChunk {
            cluster_id,
            data: bytes
                .slice(at..(at + CHUNK_BYTES).min(bytes.len()))
                .to_vec(),
        })
        .collect();
    RaftTransportClient::new(channel)
        .snapshot(futures_util::stream::iter(chunks))
        .await
        .map(drop)
}

/// Feeds one peer's stream until the peer is removed, reopening it after
/// failures.
async fn stream_to_peer(
    to: u64,
    cluster_id: Arc<AtomicU64>,
    channel: RpcChannel,
    mut outgoing: mpsc::Receiver<Message>,
    inbox: mpsc::Sender<Event>,
    faults: TransportFaults,
) {
    let mut rng = SmallRng::seed_from_u64(faults.seed);
    let mut held_back: Vec<Vec<u8>> = Vec::new();
    loop {
        let (batches, stream) = mpsc::channel::<MessageBatch>(16);
        let mut client = RaftTransportClient::new(channel.clone());
        let mut call = Box::pin(async move { client.stream(ReceiverStream::new(stream)).await });
        loop {
            let first = tokio::select! {
                result = &mut call => {
                    if result.is_err_and(|s| s.code() == Code::FailedPrecondition && s.message() == REMOVED) {
                        let _ = inbox.send(Event::Removed).await;
                    }
                    break;
                }
                next = outgoing.recv() => match next {
                    Some(message) => message,
                    None => return,
                },
            };
            let mut messages = vec![first];
            while messages.len() < MAX_BATCH {
                match outgoing.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
            let mut encoded: Vec<Vec<u8>> = std::mem::take(&mut held_back);
            for message in messages {
                let Ok(bytes) = message.write_to_bytes() else {
                    continue;
                };
                if faults.any() {
                    if rng.random_bool(faults.loss.clamp(0.0, 1.0)) {
                        continue;
                    }
                    if rng.random_bool(faults.reorder.clamp(0.0, 1.0)) {
                        held_back.push(bytes);
                        continue;
                    }
                    if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
                        encoded.push(bytes.clone());
                    }
                }
                encoded.push(bytes);
            }
            let batch = MessageBatch {
                cluster_id: cluster_id.load(Ordering::Acquire),
                messages: encoded,
            };
            if batches.send(batch).await.is_err() {
                break;
            }
        }
        // The stream broke (or was refused): raft-rs slows its probing of
        // this peer until it answers again.
        let _ = inbox.try_send(Event::Unreachable(to));
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}
