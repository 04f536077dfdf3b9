//! The read path: a client's Get asks the key's N replicas, waits for R,
//! merges what they hold, and repairs the stale copies it saw.
//!
//! Read repair fixes a key exactly when someone reads it, so hot keys heal
//! fast and cold ones wait for anti-entropy. The repliers inside the
//! quorum are repaired *before* the reply: otherwise a read could return a
//! write still in flight and a later read, meeting other replicas, miss it
//! (R + W > N alone is not linearizable; this is ABD's write-back phase).
//! Repliers that answer after the quorum are repaired in the background,
//! as Dynamo does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;
use tonic::{Code, Status};

use super::ReadRepair;
use super::node::Inner;
use super::version::{self, Resolution, Versioned};
use crate::Error;
use crate::clock::ReplicaId;
use crate::proto;

impl Inner {
    /// A client's read: R replies merged; stale repliers repaired before
    /// the reply (so a later read quorum meets the value returned), late
    /// repliers repaired in the background.
    pub async fn get(
        self: &Arc<Self>,
        request: proto::QuorumGetRequest,
    ) -> std::result::Result<proto::QuorumGetReply, Status> {
        version::check_key(&request.key)?;
        let r = self.quorum("R", request.r, self.config.default_r)?;
        let resolution = Resolution::from_proto(request.resolution)?;
        let key = request.key.clone();
        let preferred = self.placement.preference_list(&key);

        let mut replies: Vec<(ReplicaId, Option<Versioned>)> = Vec::new();
        if preferred.contains(&self.id) {
            replies.push((self.id, self.store.lock().get(&key).cloned()));
        }
        let mut calls = JoinSet::new();
        for &node in preferred.iter().filter(|&&node| node != self.id) {
            let (inner, key) = (self.clone(), key.clone());
            calls.spawn(async move { (node, inner.fetch(node, &key).await) });
        }
        while replies.len() < r {
            let Some(joined) = calls.join_next().await else {
                break;
            };
            if let Ok((node, Ok(state))) = joined {
                replies.push((node, state));
            }
        }
        if replies.len() < r && request.sloppy {
            for stand_in in self.stand_ins(&key) {
                if replies.len() >= r {
                    break;
                }
                if let Ok(state) = self.fetch(stand_in, &key).await {
                    replies.push((stand_in, state));
                }
            }
        }
        if replies.len() < r {
            return Err(Error::QuorumNotReached {
                what: "read",
                needed: r,
                got: replies.len(),
            }
            .into());
        }

        let mut merged = Versioned::default();
        for state in replies.iter().filter_map(|(_, state)| state.as_ref()) {
            merged.merge(state);
        }
        let stale: Vec<ReplicaId> = replies
            .iter()
            .filter(|(_, state)| {
                state
                    .as_ref()
                    .map_or(!merged.is_empty(), |state| *state != merged)
            })
            .map(|(node, _)| *node)
            .collect();
        // The broken twin defers even these repairs to the background.
        let (stale, deferred) = match self.config.read_repair {
            ReadRepair::BeforeReply => (stale, Vec::new()),
            ReadRepair::NaiveAfterReply => (Vec::new(), stale),
        };
        let mut repairs = JoinSet::new();
        for &node in &stale {
            let (inner, key, merged) = (self.clone(), key.clone(), merged.clone());
            repairs.spawn(async move { inner.replicate(node, &key, &merged, None).await });
        }
        let mut repaired = 0u32;
        while let Some(joined) = repairs.join_next().await {
            match joined {
                Ok(Ok(())) => repaired += 1,
                // A key over its sibling bound cannot take the merge; the
                // client still gets the siblings, to resolve them.
                Ok(Err(status)) if status.code() == Code::FailedPrecondition => {}
                Ok(Err(status)) => {
                    return Err(Status::unavailable(format!(
                        "read repair did not reach a stale replica: {}",
                        status.message()
                    )));
                }
                Err(_) => return Err(Status::unavailable("read repair was interrupted")),
            }
        }
        self.counters
            .read_repairs
            .fetch_add(u64::from(repaired), Ordering::Relaxed);

        let (inner, late_key, late_merged) = (self.clone(), key.clone(), merged.clone());
        // Replicas that answer after the quorum are repaired off the
        // request path, once every reply is in (Dynamo's read repair
        // proper); the twin's deferred repliers wait with them.
        tokio::spawn(async move {
            let mut stale_late = deferred;
            while let Some(joined) = calls.join_next().await {
                if let Ok((node, Ok(state))) = joined
                    && state.as_ref() != Some(&late_merged)
                    && !late_merged.is_empty()
                {
                    stale_late.push(node);
                }
            }
            for node in stale_late {
                if inner
                    .replicate(node, &late_key, &late_merged, None)
                    .await
                    .is_ok()
                {
                    inner.counters.read_repairs.fetch_add(1, Ordering::Relaxed);
                }
            }
        });

        Ok(proto::QuorumGetReply {
            values: version::resolve(&merged, resolution),
            context: version::context_to_proto(&version::client_context(&merged)),
            replied: replies.len() as u32,
            repaired,
        })
    }
}
