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
//! Peers prove they belong with a [`PeerSecret`] every member shares,
//! sent with every call: the transport shares the client port, and a
//! forged Raft message can do anything a leader can, stopping a node
//! included. Without one (the default, as etcd's peer port without TLS)
//! any caller is believed. The secret travels in the clear to whatever
//! address the membership names; without TLS and client authentication it
//! keeps out strangers, not someone who can change the membership.
//!
//! Bounds: [`PEER_QUEUE`] messages waiting per peer (and as many more held
//! in its delay line, when a link delay is set), [`INBOX`] messages
//! waiting for the Raft loop, [`MAX_BATCH_BYTES`] per batch sent (one
//! message may be larger), [`MAX_SNAPSHOT_BYTES`] per received snapshot,
//! one snapshot sent per peer and one received at a time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use observability::rpc::{ClientBuilder, Net, RpcChannel, peer_uri};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
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
/// A batch stops growing past this many bytes. One append carries at most
/// 1 MiB of entries, or a single larger entry (≤ 1.5 MiB), so no batch a
/// peer sends exceeds the receiver's limit, [`MAX_RECEIVED_BATCH_BYTES`]
/// (injected duplicates aside, in simulations).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// The largest batch (or snapshot chunk) a node decodes.
pub const MAX_RECEIVED_BATCH_BYTES: usize = 8 << 20;
pub use observability::rpc::peer_secret::PeerSecret;

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
    secret: Option<PeerSecret>,
    /// One snapshot received at a time.
    receiving: Arc<Semaphore>,
}

impl TransportService {
    pub(crate) fn new(
        id: u64,
        cluster_id: Arc<AtomicU64>,
        inbox: mpsc::Sender<Event>,
        state: Arc<RwLock<StateMachine>>,
        secret: Option<PeerSecret>,
    ) -> Self {
        Self {
            id,
            cluster_id,
            inbox,
            state,
            secret,
            receiving: Arc::new(Semaphore::new(1)),
        }
    }

    pub fn into_service(self) -> RaftTransportServer<Self> {
        RaftTransportServer::new(self).max_decoding_message_size(MAX_RECEIVED_BATCH_BYTES)
    }

    /// Refuses callers without the cluster's peer secret, if it has one.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        PeerSecret::authenticate(self.secret.as_ref(), request)
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
        self.authenticate(&request)?;
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
        self.authenticate(&request)?;
        let Ok(_receiving) = self.receiving.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(
                "a snapshot is already being received",
            ));
        };
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
    /// Messages held for the link's delay ([`Controls::delays`]).
    delay_line: mpsc::Sender<(Instant, Message)>,
    delay_task: JoinHandle<()>,
    snapshot_in_flight: Arc<AtomicBool>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
        self.delay_task.abort();
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
    secret: Option<PeerSecret>,
    peers: HashMap<u64, Peer>,
    controls: Controls,
}

/// What a node's handle shares with its sending side.
#[derive(Clone, Debug, Default)]
pub(crate) struct Controls {
    /// Votes and pre-votes, asked and answered: what an election costs.
    pub election_messages: Arc<AtomicU64>,
    /// Peers this node sends nothing to: a partition on real TCP, for
    /// demos (cut on both sides, it is a two-way partition).
    pub cut: Arc<RwLock<HashSet<u64>>>,
    /// One-way delay added to messages to a peer: a wide-area link on one
    /// machine, for demos (turmoil sets link latency itself in tests).
    pub delays: Arc<RwLock<HashMap<u64, Duration>>>,
}

impl Peers {
    pub(crate) fn new(
        id: u64,
        cluster_id: Arc<AtomicU64>,
        net: Net,
        inbox: mpsc::Sender<Event>,
        faults: TransportFaults,
        secret: Option<PeerSecret>,
        controls: Controls,
    ) -> Self {
        Self {
            id,
            cluster_id,
            net,
            inbox,
            faults,
            secret,
            peers: HashMap::new(),
            controls,
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
                self.secret.clone(),
                outgoing,
                self.inbox.clone(),
                faults,
            ));
            let (delay_line, delayed) = mpsc::channel(PEER_QUEUE);
            let delay_task = tokio::spawn(hold_for_delay(delayed, queue.clone()));
            self.peers.insert(
                id,
                Peer {
                    address,
                    queue,
                    task,
                    delay_line,
                    delay_task,
                    snapshot_in_flight: Arc::default(),
                },
            );
        }
    }

    /// Sends raft's messages, never waiting: what cannot be queued is lost,
    /// as on any network.
    pub fn send(&mut self, messages: Vec<Message>) {
        let cut = self
            .controls
            .cut
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let delays = self
            .controls
            .delays
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for message in messages {
            let Some(peer) = self.peers.get(&message.to) else {
                continue;
            };
            if cut.contains(&message.to) {
                continue;
            }
            if matches!(
                message.get_msg_type(),
                MessageType::MsgRequestVote
                    | MessageType::MsgRequestVoteResponse
                    | MessageType::MsgRequestPreVote
                    | MessageType::MsgRequestPreVoteResponse
            ) {
                self.controls
                    .election_messages
                    .fetch_add(1, Ordering::Relaxed);
            }
            if message.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(message);
                continue;
            }
            let delay = delays.get(&message.to).copied().unwrap_or_default();
            let queued = if delay.is_zero() {
                peer.queue.try_send(message).is_ok()
            } else {
                peer.delay_line
                    .try_send((Instant::now() + delay, message))
                    .is_ok()
            };
            if !queued {
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
        let secret = self.secret.clone();
        tokio::spawn(async move {
            let ok = send_snapshot(channel, cluster_id, secret, &message).await;
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
    secret: Option<PeerSecret>,
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
    let mut request = Request::new(futures_util::stream::iter(chunks));
    if let Some(secret) = &secret {
        secret.attach(&mut request);
    }
    RaftTransportClient::new(channel)
        .snapshot(request)
        .await
        .map(drop)
}

/// Holds each message until it is due, in order, then queues it for the
/// peer: a fixed delay is a long fibre, so messages keep their order and
/// many are in flight at once (a sleep before each send would instead
/// serialise them).
///
/// Simplified: lowering a delay lets new messages overtake held ones; a
/// demo sets delays once, before traffic starts.
async fn hold_for_delay(
    mut delayed: mpsc::Receiver<(Instant, Message)>,
    queue: mpsc::Sender<Message>,
) {
    while let Some((due, message)) = delayed.recv().await {
        tokio::time::sleep_until(due).await;
        if queue.send(message).await.is_err() {
            return;
        }
    }
}

/// Feeds one peer's stream until the peer is removed, reopening it after
/// failures.
async fn stream_to_peer(
    to: u64,
    cluster_id: Arc<AtomicU64>,
    channel: RpcChannel,
    secret: Option<PeerSecret>,
    mut outgoing: mpsc::Receiver<Message>,
    inbox: mpsc::Sender<Event>,
    faults: TransportFaults,
) {
    let mut rng = SmallRng::seed_from_u64(faults.seed);
    let mut held_back: Vec<Vec<u8>> = Vec::new();
    // Why the stream last failed, so a lasting refusal is logged once.
    let mut last_failure = String::new();
    loop {
        let (batches, stream) = mpsc::channel::<MessageBatch>(16);
        let mut client = RaftTransportClient::new(channel.clone());
        let mut request = Request::new(ReceiverStream::new(stream));
        if let Some(secret) = &secret {
            secret.attach(&mut request);
        }
        let mut call = Box::pin(async move { client.stream(request).await });
        loop {
            let first = tokio::select! {
                result = &mut call => {
                    if let Err(status) = result {
                        if status.code() == Code::FailedPrecondition && status.message() == REMOVED {
                            let _ = inbox.send(Event::Removed).await;
                        }
                        let failure = format!("{:?}: {}", status.code(), status.message());
                        if status.code() != Code::Unavailable && failure != last_failure {
                            tracing::warn!(peer = to, %failure, "a peer refused this node's messages");
                        }
                        last_failure = failure;
                    }
                    break;
                }
                next = outgoing.recv() => match next {
                    Some(message) => message,
                    None => return,
                },
            };
            let encoded = fill_batch(first, &mut outgoing, &mut held_back, &faults, &mut rng);
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

/// `first` and whatever else is waiting, encoded, up to [`MAX_BATCH`]
/// messages and about [`MAX_BATCH_BYTES`]: a backlog (after a slow or
/// broken link) must not become one message larger than the peer accepts.
fn fill_batch(
    first: Message,
    outgoing: &mut mpsc::Receiver<Message>,
    held_back: &mut Vec<Vec<u8>>,
    faults: &TransportFaults,
    rng: &mut SmallRng,
) -> Vec<Vec<u8>> {
    let mut batch: Vec<Vec<u8>> = std::mem::take(held_back);
    let mut bytes: usize = batch.iter().map(Vec::len).sum();
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(message) = next.take() {
        taken += 1;
        if let Ok(encoded) = message.write_to_bytes() {
            bytes += encoded.len();
            push_with_faults(&mut batch, held_back, encoded, faults, rng);
        }
        if taken < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            next = outgoing.try_recv().ok();
        }
    }
    batch
}

/// Adds one encoded message to the batch, or loses, holds back or
/// duplicates it as the injected faults say.
fn push_with_faults(
    batch: &mut Vec<Vec<u8>>,
    held_back: &mut Vec<Vec<u8>>,
    bytes: Vec<u8>,
    faults: &TransportFaults,
    rng: &mut SmallRng,
) {
    if faults.any() {
        if rng.random_bool(faults.loss.clamp(0.0, 1.0)) {
            return;
        }
        if rng.random_bool(faults.reorder.clamp(0.0, 1.0)) {
            held_back.push(bytes);
            return;
        }
        if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            batch.push(bytes.clone());
        }
    }
    batch.push(bytes);
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::Entry;

    use super::*;

    /// A backlog of large appends leaves in batches the receiver accepts,
    /// the rest staying queued for the next.
    #[test]
    fn raft_transport_batches_stay_under_the_receivers_limit() {
        let append = || {
            let entry = Entry {
                data: vec![7; 1400 * 1024].into(),
                ..Entry::default()
            };
            let mut message = Message::default();
            message.set_msg_type(MessageType::MsgAppend);
            message.set_entries(vec![entry].into());
            message
        };
        let (queue, mut outgoing) = mpsc::channel(64);
        for _ in 0..20 {
            queue.try_send(append()).expect("room in the queue");
        }
        let mut rng = SmallRng::seed_from_u64(1);
        let mut held_back = Vec::new();
        let mut sizes = Vec::new();
        while let Ok(first) = outgoing.try_recv() {
            let batch = fill_batch(
                first,
                &mut outgoing,
                &mut held_back,
                &TransportFaults::none(),
                &mut rng,
            );
            let bytes: usize = batch.iter().map(Vec::len).sum();
            assert!(
                bytes <= MAX_RECEIVED_BATCH_BYTES,
                "a batch of {bytes} bytes"
            );
            sizes.push(batch.len());
        }
        // Three 1.4 MiB appends pass 4 MiB: batches of three, then the rest.
        assert_eq!(sizes, [3, 3, 3, 3, 3, 3, 2]);
    }
}
