//! Merkle-tree anti-entropy: two replicas find the keys they disagree on
//! by walking their hash trees top-down, then swap just those keys.
//!
//! Read repair fixes only keys someone reads, and hinted handoff only
//! writes a stand-in saw; a replica that missed writes while nobody was
//! looking (a lost message, a crash before the hint) is fixed here. Every
//! interval a node picks a random peer and:
//!
//! 1. compares root hashes over the keys both replicate — equal roots end
//!    the exchange after one hash each way;
//! 2. descends level by level into the children whose hashes differ;
//! 3. at the leaves, compares (key, digest) lists and fetches the states
//!    the peer has and this node lacks or holds differently;
//! 4. merges them, and pushes the merged states back.
//!
//! Both ends then hold the join of the two states for every differing
//! key. Every request and reply is counted in bytes (their protobuf
//! encoding), so a test can assert the cost follows the difference.
//!
//! Bounds: each side lists at most [`MAX_KEYS_PER_EXCHANGE`] keys per
//! exchange, whole leaves only (the leaves past the cut wait for the next
//! exchange, which finds the repaired ones equal), [`MAX_BATCH_KEYS`] per
//! message; Merkle requests carry at most `merkle::MAX_INDICES` indices.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use tonic::Status;

use super::MAX_BATCH_KEYS;
use super::merkle::{DEPTH, leaf_of};
use super::node::Inner;
use super::peers::Client;
use super::version;
use crate::clock::ReplicaId;
use crate::proto;

/// Differing keys one exchange moves.
pub const MAX_KEYS_PER_EXCHANGE: usize = 4 * MAX_BATCH_KEYS;

/// Runs an exchange with a random peer every `interval` until the node is
/// dropped.
pub(super) async fn run(node: Weak<Inner>, interval: Duration) {
    let mut rng = match node.upgrade() {
        Some(inner) => SmallRng::seed_from_u64(inner.config.seed ^ 0xae),
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = node.upgrade() else {
            return;
        };
        let Some(peer) = inner
            .placement
            .members()
            .filter(|&m| m != inner.id)
            .choose(&mut rng)
        else {
            return;
        };
        // A failed exchange is retried with another peer next round.
        let _ = exchange(&inner, peer).await;
    }
}

/// One exchange with `peer`; the bytes it put on the wire both ways.
pub(super) async fn exchange(inner: &Inner, peer: ReplicaId) -> Result<u64, Status> {
    let mut bytes = 0u64;
    let result = walk(inner, peer, &mut bytes).await;
    inner
        .counters
        .anti_entropy_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    result.map(|()| bytes)
}

async fn walk(inner: &Inner, peer: ReplicaId, bytes: &mut u64) -> Result<(), Status> {
    let mine = inner.tree_for(peer);
    let mut level = 0;
    let mut indices = vec![0u32];
    let leaves = loop {
        let request = proto::MerkleNodesRequest {
            from: inner.id.0,
            level,
            indices: indices.clone(),
        };
        *bytes += request.encoded_len() as u64;
        let reply = inner
            .peers
            .call(peer, request, |mut client: Client, request| async move {
                client.merkle_nodes(request).await
            })
            .await?;
        *bytes += reply.encoded_len() as u64;
        if reply.depth != DEPTH || reply.hashes.len() != indices.len() {
            return Err(Status::internal(format!(
                "{peer} answered a Merkle request of another shape"
            )));
        }
        let differing = mine.differing(level, &indices, &reply.hashes);
        if differing.is_empty() {
            return Ok(());
        }
        if level == DEPTH {
            break differing;
        }
        indices = differing.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect();
        level += 1;
    };

    let request = proto::MerkleLeavesRequest {
        from: inner.id.0,
        leaves: leaves.clone(),
    };
    *bytes += request.encoded_len() as u64;
    let reply = inner
        .peers
        .call(peer, request, |mut client: Client, request| async move {
            client.merkle_leaves(request).await
        })
        .await?;
    *bytes += reply.encoded_len() as u64;
    // Compare only the leaves both sides listed whole: each of them is
    // fully repaired, so the next exchange moves on past them.
    let (ours, covered) =
        inner
            .store
            .lock()
            .leaf_entries(&leaves, inner.shared_with(peer), MAX_KEYS_PER_EXCHANGE);
    let sorted: BTreeSet<u32> = leaves.iter().copied().collect();
    let compared: BTreeSet<u32> = sorted
        .into_iter()
        .take(covered.min(reply.complete_leaves as usize))
        .collect();
    let theirs: BTreeMap<String, u64> = reply
        .entries
        .into_iter()
        .filter(|entry| compared.contains(&leaf_of(&entry.key)))
        .take(MAX_KEYS_PER_EXCHANGE)
        .map(|entry| (entry.key, entry.digest))
        .collect();
    let ours: BTreeMap<String, u64> = ours
        .into_iter()
        .filter(|(key, _)| compared.contains(&leaf_of(key)))
        .collect();
    let to_fetch: Vec<String> = theirs
        .iter()
        .filter(|(key, digest)| ours.get(*key) != Some(digest))
        .map(|(key, _)| key.clone())
        .collect();

    for batch in to_fetch.chunks(MAX_BATCH_KEYS) {
        let request = proto::FetchRequest {
            from: inner.id.0,
            keys: batch.to_vec(),
        };
        *bytes += request.encoded_len() as u64;
        let reply = inner
            .peers
            .call(peer, request, |mut client: Client, request| async move {
                client.fetch(request).await
            })
            .await?;
        *bytes += reply.encoded_len() as u64;
        // A key the peer holds a refused state for stays different; the
        // rest merge.
        let _ = inner.merge_entries(&reply.entries);
    }
    // Push every key whose merged state here still differs from the
    // peer's: values only this node had, or keys the peer lacks.
    let to_push: Vec<String> = {
        let store = inner.store.lock();
        ours.keys()
            .chain(&to_fetch)
            .filter(|key| {
                store
                    .get(key)
                    .is_some_and(|state| theirs.get(*key) != Some(&version::digest(key, state)))
            })
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect()
    };
    for batch in to_push.chunks(MAX_BATCH_KEYS) {
        let request = inner.replicate_request(batch.iter().map(String::as_str));
        *bytes += request.encoded_len() as u64;
        let reply = inner.send_replicate(peer, request).await?;
        *bytes += reply.encoded_len() as u64;
    }
    Ok(())
}
