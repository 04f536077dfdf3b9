//! The gRPC shell: starting a node (and its handoff and anti-entropy
//! loops), and its handlers for clients and peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use observability::rpc::ClientBuilder;
use observability::rpc::peer_secret::PeerSecret;
use tonic::{Request, Response, Status};

use super::handoff::handoff_loop;
use super::merkle;
use super::node::{Counters, Inner};
use super::peers::Peers;
use super::placement::Placement;
use super::store::SharedStore;
use super::version;
use super::{MAX_BATCH_KEYS, QuorumConfig, anti_entropy};
use crate::clock::ReplicaId;
use crate::crdt_replica::{INCARNATION_BITS, actor_of};
use crate::proto::quorum_kv_server::{QuorumKv, QuorumKvServer};
use crate::proto::{self, quorum_kv_client::QuorumKvClient};
use crate::{Error, Result};

/// One node of the quorum store. Background loops stop when the last
/// handle (and the service) is dropped.
#[derive(Clone, Debug)]
pub struct QuorumNode {
    pub(super) inner: Arc<Inner>,
}

impl QuorumNode {
    /// Starts a node on `store` (a fresh one, or one that outlived a
    /// simulated crash) and its loops, on the current runtime.
    pub fn start(config: QuorumConfig, store: SharedStore) -> Result<Self> {
        let mut members: BTreeSet<ReplicaId> = config.peers.keys().copied().collect();
        members.insert(config.id);
        if let Some(&replica) = members
            .iter()
            .find(|member| member.0 == 0 || member.0 >= 1 << (64 - INCARNATION_BITS))
        {
            return Err(Error::InvalidMemberId { replica });
        }
        let placement = Placement::new(&members, config.n)?;
        for (what, value) in [("R", config.default_r), ("W", config.default_w)] {
            if value == 0 || value > config.n {
                return Err(Error::QuorumOutOfRange {
                    what,
                    value,
                    max: config.n,
                });
            }
        }
        let builder = ClientBuilder::new(config.net).default_deadline(config.peer_timeout);
        let mut clients = BTreeMap::new();
        for (&peer, address) in &config.peers {
            if peer != config.id {
                let channel = builder.dial(address).map_err(|err| Error::BadPeerAddress {
                    peer,
                    reason: err.to_string(),
                })?;
                clients.insert(peer, QuorumKvClient::new(channel));
            }
        }
        let peers = Peers::new(
            config.id,
            config.cuts.clone(),
            clients,
            config.faults,
            config.seed,
            config.peer_timeout,
            config.peer_secret.clone(),
        );
        let inner = Arc::new(Inner {
            id: config.id,
            actor: actor_of(config.id, config.incarnation),
            placement,
            store,
            peers,
            config: config.clone(),
            counters: Counters::default(),
            trees: Mutex::new(BTreeMap::new()),
        });
        if !config.peers.keys().all(|&peer| peer == config.id) {
            tokio::spawn(handoff_loop(Arc::downgrade(&inner)));
            if let Some(interval) = config.anti_entropy_interval {
                tokio::spawn(anti_entropy::run(Arc::downgrade(&inner), interval));
            }
        }
        Ok(Self { inner })
    }

    pub fn id(&self) -> ReplicaId {
        self.inner.id
    }

    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    pub fn status(&self) -> proto::QuorumStatusReply {
        let store = self.inner.store.lock();
        proto::QuorumStatusReply {
            id: self.inner.id.0,
            keys: store.len() as u64,
            hints: store.hints.len() as u64,
            hints_delivered: store.hints.delivered_count(),
            anti_entropy_bytes: self
                .inner
                .counters
                .anti_entropy_bytes
                .load(Ordering::Relaxed),
            read_repairs: self.inner.counters.read_repairs.load(Ordering::Relaxed),
        }
    }

    /// One Merkle exchange with `peer` now; the bytes it shipped.
    pub async fn anti_entropy_with(&self, peer: ReplicaId) -> std::result::Result<u64, Status> {
        anti_entropy::exchange(&self.inner, peer).await
    }

    pub fn into_service(self) -> QuorumKvServer<Self> {
        QuorumKvServer::new(self)
    }
}

#[tonic::async_trait]
impl QuorumKv for QuorumNode {
    async fn get(
        &self,
        request: Request<proto::QuorumGetRequest>,
    ) -> std::result::Result<Response<proto::QuorumGetReply>, Status> {
        Ok(Response::new(self.inner.get(request.into_inner()).await?))
    }

    async fn put(
        &self,
        request: Request<proto::QuorumPutRequest>,
    ) -> std::result::Result<Response<proto::QuorumPutReply>, Status> {
        Ok(Response::new(self.inner.put(request.into_inner()).await?))
    }

    async fn replicate(
        &self,
        request: Request<proto::ReplicateRequest>,
    ) -> std::result::Result<Response<proto::ReplicateReply>, Status> {
        PeerSecret::authenticate(self.inner.config.peer_secret.as_ref(), &request)?;
        let request = request.into_inner();
        self.inner.check_peer(request.from)?;
        tokio::time::sleep(self.inner.config.peer_delay).await;
        let owner = match request.hint_for {
            0 => None,
            id => Some(self.inner.check_peer(id).or_else(|err| {
                // A hint for this node itself is just a write.
                if id == self.inner.id.0 {
                    Ok(self.inner.id)
                } else {
                    Err(err)
                }
            })?),
        };
        self.inner.merge_entries(&request.entries)?;
        if let Some(owner) = owner.filter(|&owner| owner != self.inner.id) {
            let mut store = self.inner.store.lock();
            for entry in &request.entries {
                store.hints.add(owner, &entry.key)?;
            }
        }
        Ok(Response::new(proto::ReplicateReply {}))
    }

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> std::result::Result<Response<proto::FetchReply>, Status> {
        PeerSecret::authenticate(self.inner.config.peer_secret.as_ref(), &request)?;
        let request = request.into_inner();
        self.inner.check_peer(request.from)?;
        if request.keys.len() > MAX_BATCH_KEYS {
            return Err(Error::TooMany {
                what: "keys in one batch",
                count: request.keys.len(),
                max: MAX_BATCH_KEYS,
            }
            .into());
        }
        for key in &request.keys {
            version::check_key(key)?;
        }
        tokio::time::sleep(self.inner.config.peer_delay).await;
        let store = self.inner.store.lock();
        let entries = request
            .keys
            .iter()
            .filter_map(|key| store.get(key).map(|state| version::encode(key, state)))
            .collect();
        Ok(Response::new(proto::FetchReply { entries }))
    }

    async fn merkle_nodes(
        &self,
        request: Request<proto::MerkleNodesRequest>,
    ) -> std::result::Result<Response<proto::MerkleNodesReply>, Status> {
        PeerSecret::authenticate(self.inner.config.peer_secret.as_ref(), &request)?;
        let request = request.into_inner();
        let peer = self.inner.check_peer(request.from)?;
        if request.level > merkle::DEPTH {
            return Err(Error::MerkleOutOfRange {
                what: "level",
                value: u64::from(request.level),
                max: u64::from(merkle::DEPTH),
            }
            .into());
        }
        if request.indices.len() > merkle::MAX_INDICES {
            return Err(Error::TooMany {
                what: "Merkle nodes in one request",
                count: request.indices.len(),
                max: merkle::MAX_INDICES,
            }
            .into());
        }
        let tree = self.inner.tree_for(peer);
        let hashes = request
            .indices
            .iter()
            .map(|&index| {
                tree.node(request.level, index)
                    .ok_or(Error::MerkleOutOfRange {
                        what: "index",
                        value: u64::from(index),
                        max: (1u64 << request.level) - 1,
                    })
            })
            .collect::<Result<Vec<u64>>>()?;
        Ok(Response::new(proto::MerkleNodesReply {
            depth: merkle::DEPTH,
            hashes,
        }))
    }

    async fn merkle_leaves(
        &self,
        request: Request<proto::MerkleLeavesRequest>,
    ) -> std::result::Result<Response<proto::MerkleLeavesReply>, Status> {
        PeerSecret::authenticate(self.inner.config.peer_secret.as_ref(), &request)?;
        let request = request.into_inner();
        let peer = self.inner.check_peer(request.from)?;
        if request.leaves.len() > merkle::MAX_INDICES {
            return Err(Error::TooMany {
                what: "Merkle leaves in one request",
                count: request.leaves.len(),
                max: merkle::MAX_INDICES,
            }
            .into());
        }
        if let Some(&leaf) = request
            .leaves
            .iter()
            .find(|&&leaf| leaf as usize >= merkle::MAX_INDICES)
        {
            return Err(Error::MerkleOutOfRange {
                what: "leaf",
                value: u64::from(leaf),
                max: merkle::MAX_INDICES as u64 - 1,
            }
            .into());
        }
        let (entries, covered) = self.inner.store.lock().leaf_entries(
            &request.leaves,
            self.inner.shared_with(peer),
            anti_entropy::MAX_KEYS_PER_EXCHANGE,
        );
        Ok(Response::new(proto::MerkleLeavesReply {
            entries: entries
                .into_iter()
                .map(|(key, digest)| proto::LeafEntry { key, digest })
                .collect(),
            complete_leaves: covered as u32,
        }))
    }

    async fn status(
        &self,
        _: Request<proto::QuorumStatusRequest>,
    ) -> std::result::Result<Response<proto::QuorumStatusReply>, Status> {
        Ok(Response::new(QuorumNode::status(self)))
    }
}
