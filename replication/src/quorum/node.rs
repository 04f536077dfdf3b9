//! A node's shared state — its store, ring, peers and configuration —
//! and what the handlers and loops ask of it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use super::merkle::MerkleTree;
use super::peers::{Client, Peers};
use super::placement::Placement;
use super::store::SharedStore;
use super::version;
use super::{MAX_BATCH_KEYS, QuorumConfig};
use crate::clock::ReplicaId;
use crate::crdt_replica::member_of;
use crate::proto;
use crate::{Error, Result};

/// What a node counts, for its Status reply and the tests.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub anti_entropy_bytes: AtomicU64,
    pub read_repairs: AtomicU64,
}

/// The node: its store, ring, peers and configuration.
#[derive(Debug)]
pub(super) struct Inner {
    pub id: ReplicaId,
    /// The actor this run's writes are made as (see `actor_of`).
    pub actor: ReplicaId,
    pub placement: Placement,
    pub store: SharedStore,
    pub peers: Peers,
    pub config: QuorumConfig,
    pub counters: Counters,
    /// Merkle trees per peer, valid while the store's version holds.
    pub trees: Mutex<BTreeMap<ReplicaId, (u64, Arc<MerkleTree>)>>,
}

impl Inner {
    /// An actor id from the wire belongs to a member.
    pub fn is_member_actor(&self, actor: ReplicaId) -> bool {
        self.placement.is_member(member_of(actor))
    }

    /// A peer id from the wire: a member, and not this node.
    pub fn check_peer(&self, from: u64) -> Result<ReplicaId> {
        let peer = ReplicaId(from);
        if peer == self.id || !self.placement.is_member(peer) {
            return Err(Error::UnknownReplica { replica: peer });
        }
        Ok(peer)
    }

    /// True when `key` is replicated on both this node and `peer`: the
    /// range the two compare in anti-entropy.
    pub fn shared_with(&self, peer: ReplicaId) -> impl Fn(&str) -> bool + '_ {
        move |key| {
            let list = self.placement.preference_list(key);
            list.contains(&self.id) && list.contains(&peer)
        }
    }

    /// The Merkle tree over the keys shared with `peer`, cached.
    pub fn tree_for(&self, peer: ReplicaId) -> Arc<MerkleTree> {
        let store = self.store.lock();
        let version = store.version();
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((built, tree)) = trees.get(&peer)
            && *built == version
        {
            return tree.clone();
        }
        let tree = Arc::new(store.merkle_tree(self.shared_with(peer)));
        trees.insert(peer, (version, tree.clone()));
        tree
    }

    /// Merges peer-sent states; the first refusal is returned after the
    /// rest are merged (one oversized key does not block the others).
    pub fn merge_entries(&self, entries: &[proto::KeyState]) -> Result<()> {
        if entries.len() > MAX_BATCH_KEYS {
            return Err(Error::TooMany {
                what: "keys in one batch",
                count: entries.len(),
                max: MAX_BATCH_KEYS,
            });
        }
        let decoded = entries
            .iter()
            .map(|entry| version::decode(entry, |actor| self.is_member_actor(actor)))
            .collect::<Result<Vec<_>>>()?;
        let mut store = self.store.lock();
        let mut first_error = None;
        for (key, state) in &decoded {
            if let Err(err) = store.merge(key, state) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A Replicate request carrying this node's states of `keys` (those
    /// it holds), as an owner's copy (no hint).
    pub fn replicate_request<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> proto::ReplicateRequest {
        let store = self.store.lock();
        proto::ReplicateRequest {
            from: self.id.0,
            entries: keys
                .into_iter()
                .filter_map(|key| store.get(key).map(|state| version::encode(key, state)))
                .collect(),
            hint_for: 0,
        }
    }

    /// Sends a Replicate request to `to`.
    pub async fn send_replicate(
        &self,
        to: ReplicaId,
        request: proto::ReplicateRequest,
    ) -> std::result::Result<proto::ReplicateReply, tonic::Status> {
        self.peers
            .call(to, request, |mut client: Client, request| async move {
                client.replicate(request).await
            })
            .await
    }
}
