//! The write coordinator: what a node does with a client's Put — make the
//! new version, fan it out to the key's N replicas, wait for W of them,
//! and fall back to stand-ins (sloppy quorum). Reads are in
//! [`super::read_repair`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::task::JoinSet;
use tonic::{Code, Status};

use super::node::Inner;
use super::peers::Client;
use super::version::{self, Stored, Versioned};
use crate::clock::ReplicaId;
use crate::clock::vector::VersionVector;
use crate::proto;
use crate::{Error, Result};

/// Codes after which another replica may still succeed; anything else is
/// the request's own fault and is returned as is.
fn worth_another_replica(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

impl Inner {
    /// R or W of a request: 0 means the node's default; at most N.
    pub(super) fn quorum(&self, what: &'static str, asked: u32, default: usize) -> Result<usize> {
        let value = if asked == 0 { default } else { asked as usize };
        if value > self.placement.n() {
            return Err(Error::QuorumOutOfRange {
                what,
                value,
                max: self.placement.n(),
            });
        }
        Ok(value)
    }

    /// Stand-ins for `key`: the members after its preference list, in
    /// ring order.
    pub(super) fn stand_ins(&self, key: &str) -> Vec<ReplicaId> {
        let mut order = self.placement.ring_order(key);
        order.drain(..self.placement.n().min(order.len()));
        order.retain(|&node| node != self.id);
        order
    }

    pub(super) async fn replicate(
        self: &Arc<Self>,
        to: ReplicaId,
        key: &str,
        state: &Versioned,
        hint_for: Option<ReplicaId>,
    ) -> std::result::Result<(), Status> {
        if to == self.id {
            self.store.lock().merge(key, state)?;
            return Ok(());
        }
        let request = proto::ReplicateRequest {
            from: self.id.0,
            entries: vec![version::encode(key, state)],
            hint_for: hint_for.map_or(0, |owner| owner.0),
        };
        self.send_replicate(to, request).await.map(drop)
    }

    /// Sends `state` to the first stand-in (in ring order, not in `used`)
    /// that takes it as a hint for `owner`; that stand-in, if any.
    async fn hand_to_stand_in(
        self: &Arc<Self>,
        key: &str,
        state: &Versioned,
        owner: ReplicaId,
        used: &mut BTreeSet<ReplicaId>,
    ) -> Option<ReplicaId> {
        for stand_in in self.stand_ins(key) {
            if used.contains(&stand_in) {
                continue;
            }
            if self
                .replicate(stand_in, key, state, Some(owner))
                .await
                .is_ok()
            {
                used.insert(stand_in);
                return Some(stand_in);
            }
        }
        None
    }

    pub(super) async fn fetch(
        self: &Arc<Self>,
        from: ReplicaId,
        key: &str,
    ) -> std::result::Result<Option<Versioned>, Status> {
        if from == self.id {
            return Ok(self.store.lock().get(key).cloned());
        }
        let request = proto::FetchRequest {
            from: self.id.0,
            keys: vec![key.to_owned()],
        };
        let reply = self
            .peers
            .call(from, request, |mut client: Client, request| async move {
                client.fetch(request).await
            })
            .await?;
        match reply.entries.iter().find(|entry| entry.key == key) {
            None => Ok(None),
            Some(entry) => {
                let (_, state) = version::decode(entry, |actor| self.is_member_actor(actor))
                    .map_err(|err| Status::internal(format!("{from} sent a bad state: {err}")))?;
                Ok(Some(state))
            }
        }
    }

    /// A client's write: coordinated by a preferred replica (this node,
    /// or the first preferred one that answers a forward), acknowledged
    /// once W replicas stored it.
    pub async fn put(
        self: &Arc<Self>,
        request: proto::QuorumPutRequest,
    ) -> std::result::Result<proto::QuorumPutReply, Status> {
        version::check_key(&request.key)?;
        version::check_value(&request.value)?;
        let w = self.quorum("W", request.w, self.config.default_w)?;
        let context = version::context_from_proto(&request.context, |a| self.is_member_actor(a))?;
        let key = request.key.clone();
        let preferred = self.placement.preference_list(&key);

        // Only a preferred replica coordinates: it stores the key, so it
        // has seen its own earlier dots and never issues one twice.
        let mut stand_in_for = None;
        if !preferred.contains(&self.id) {
            for &node in &preferred {
                let forwarded = self
                    .peers
                    .call(
                        node,
                        request.clone(),
                        |mut client: Client, request| async move { client.put(request).await },
                    )
                    .await;
                match forwarded {
                    Ok(reply) => return Ok(reply),
                    Err(status) if worth_another_replica(&status) => continue,
                    Err(status) => return Err(status),
                }
            }
            if !request.sloppy {
                return Err(Error::QuorumNotReached {
                    what: "write",
                    needed: w,
                    got: 0,
                }
                .into());
            }
            stand_in_for = preferred.first().copied();
        }

        self.catch_up_with_context(&key, &context, &preferred).await;
        let stored = Stored {
            value: request.value,
            stamp_ms: self.config.clock.now_ns() / 1_000_000,
        };
        let state = {
            let mut store = self.store.lock();
            let state = store.coordinate(self.actor, &key, &context, stored)?;
            if let Some(owner) = stand_in_for {
                store.hints.add(owner, &key)?;
            }
            state
        };
        let mut acknowledged = 1;
        let mut hinted = usize::from(stand_in_for.is_some());

        let mut calls = JoinSet::new();
        for &node in preferred.iter().filter(|&&node| node != self.id) {
            let (inner, key, state) = (self.clone(), key.clone(), state.clone());
            calls.spawn(async move { (node, inner.replicate(node, &key, &state, None).await) });
        }
        let mut failed = Vec::new();
        while acknowledged < w {
            let Some(joined) = calls.join_next().await else {
                break;
            };
            match joined {
                Ok((_, Ok(()))) => acknowledged += 1,
                Ok((node, Err(_))) => failed.push(node),
                Err(_) => {}
            }
        }
        let mut used = BTreeSet::new();
        if acknowledged < w && request.sloppy {
            // Sloppy quorum: each replica that failed gets a stand-in,
            // taken in ring order, that holds the write as a hint.
            for owner in std::mem::take(&mut failed) {
                if self
                    .hand_to_stand_in(&key, &state, owner, &mut used)
                    .await
                    .is_some()
                {
                    acknowledged += 1;
                    hinted += 1;
                }
            }
        }
        // The rest finish in the background: the write goes to N nodes,
        // not just W, and with a sloppy quorum a replica that fails late
        // gets a stand-in too (Dynamo's "first N healthy nodes").
        let (inner, late_key, late_state, sloppy) =
            (self.clone(), key.clone(), state.clone(), request.sloppy);
        tokio::spawn(async move {
            while let Some(joined) = calls.join_next().await {
                if let Ok((node, Err(_))) = joined {
                    failed.push(node);
                }
            }
            if sloppy {
                for owner in failed {
                    inner
                        .hand_to_stand_in(&late_key, &late_state, owner, &mut used)
                        .await;
                }
            }
        });
        if acknowledged < w {
            return Err(Error::QuorumNotReached {
                what: "write",
                needed: w,
                got: acknowledged,
            }
            .into());
        }
        Ok(proto::QuorumPutReply {
            context: version::context_to_proto(&version::client_context(&state)),
            acknowledged: acknowledged as u32,
            hinted: hinted as u32,
        })
    }
}

impl Inner {
    /// Before coordinating: if the client's context names dots of another
    /// actor this node has not seen, fetch the key from the other
    /// preferred replicas (best effort) so the clamp in
    /// `Store::coordinate` keeps the dots that exist somewhere — a value
    /// the client read elsewhere is replaced, not left as a sibling — and
    /// drops only the ones no replica holds.
    async fn catch_up_with_context(
        &self,
        key: &str,
        context: &VersionVector,
        preferred: &[ReplicaId],
    ) {
        let behind = {
            let store = self.store.lock();
            let seen = |actor| {
                store
                    .get(key)
                    .map_or(0, |state| state.context().highest(actor))
            };
            context.iter().any(|(actor, count)| count > seen(actor))
        };
        if !behind {
            return;
        }
        for &node in preferred.iter().filter(|&&node| node != self.id) {
            let request = proto::FetchRequest {
                from: self.id.0,
                keys: vec![key.to_owned()],
            };
            let reply = self
                .peers
                .call(node, request, |mut client: Client, request| async move {
                    client.fetch(request).await
                })
                .await;
            if let Ok(reply) = reply {
                // A refused state changes nothing: the clamp still holds.
                let _ = self.merge_entries(&reply.entries);
            }
        }
    }
}
