//! `ShardRouter`: the gRPC service that tells clients where a key lives.
//!
//! Episode: 24, "Database Sharding Strategies" (also 28)
//! Pattern: placement / request routing
//! Try it:  cargo run -- serve shard-router --strategy maglev --nodes a,b,c
//! Test it: cargo test -p patterns shard_router
//!
//! A thin service over [`crate::hashing`]: one strategy, chosen at start,
//! and a membership that operators change with `AddNode` / `RemoveNode`.
//! Every answer carries the membership version, so a client caching routes
//! can tell when its cache went stale.
//!
//! With the `bounded` strategy, a key's node depends on what arrived
//! before it, so the router remembers each key it routed and answers the
//! same node again: assignments are sticky until their node leaves.
//!
//! Bounds: keys of at most [`MAX_KEY_BYTES`]; remembered assignments of
//! at most [`MAX_TRACKED_BYTES`] in all (key, node name and the map's own
//! [`ENTRY_OVERHEAD_BYTES`] per entry), beyond which new keys are refused
//! with `ResourceExhausted`; at most [`MAX_CONCURRENT_STATS`] `Stats`
//! measurements at once (a slot held until the measurement ends, even if
//! its caller gave up), each capped at [`MAX_STATS_WORK`] key-to-node
//! evaluations — rendezvous hashing scores every node for every key, so
//! its sample shrinks as the membership grows (the reply says how many
//! keys it used). Routing takes the read lock; only a `bounded` key seen
//! for the first time takes the write lock. The lock is tokio's; copying
//! the placement for `Stats`, measuring it, and rebuilding it after a
//! membership change all run through [`observability::offload`], off the
//! async workers: routes may wait for a rebuild (at most a ring of
//! [`crate::hashing::ring::MAX_RING_POINTS`]), but health checks and everything
//! else the server does carry on.
//!
//! Simplified: membership lives in one process; a production router keeps
//! it in a consensus store (etcd, ZooKeeper) and pushes changes to clients.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use observability::offload;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore};
use tonic::{Request, Response, Status};

use crate::hashing::analysis::{load, sample_keys};
use crate::hashing::{Placement, Strategy, StrategyConfig};
use crate::{Error, Result};

/// Generated protobuf types and gRPC stubs for `patterns.v1`.
pub mod proto {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("patterns.v1");

    /// Encoded `FileDescriptorSet` of the protos, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}

use proto::shard_router_server::ShardRouterServer;
use proto::{
    AddNodeRequest, Membership, Node, NodeLoad, RemoveNodeRequest, RouteReply, RouteRequest,
    StatsReply, StatsRequest,
};

/// The most copies `Route` returns.
pub const MAX_REPLICATION_FACTOR: u32 = 16;
/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Bytes of remembered `bounded` assignments before new keys are refused.
pub const MAX_TRACKED_BYTES: usize = 64 * 1024 * 1024;
/// What one remembered assignment costs beyond its key and node name:
/// the two heap headers and the hash table's slot.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;
/// Sample size `Stats` uses by default, and its ceiling.
pub const DEFAULT_SAMPLE_KEYS: u64 = 100_000;
pub const MAX_SAMPLE_KEYS: u64 = 1_000_000;
/// `Stats` measurements that may run at once.
pub const MAX_CONCURRENT_STATS: usize = 2;
/// Key-to-node evaluations one `Stats` may spend (keys × nodes for
/// rendezvous, keys for the others).
pub const MAX_STATS_WORK: u64 = 20_000_000;

#[derive(Debug)]
struct RouterState {
    placement: Box<dyn Placement>,
    /// Members and weights, in join order (the placement keeps names only).
    weights: Vec<(String, u32)>,
    version: u64,
    /// Sticky assignments of the `bounded` strategy, and their bytes.
    assigned: HashMap<Box<[u8]>, Box<str>>,
    assigned_bytes: usize,
}

/// The router: one placement behind a lock.
#[derive(Clone, Debug)]
pub struct ShardRouter {
    strategy: Strategy,
    state: Arc<RwLock<RouterState>>,
    stats_slots: Arc<Semaphore>,
    max_tracked_bytes: usize,
}

impl ShardRouter {
    /// A router using `config`, starting with `nodes` (weight 1 each).
    pub fn new<S: AsRef<str>>(config: StrategyConfig, nodes: &[S]) -> Result<Self> {
        let placement = config.build_with(nodes)?;
        Ok(Self {
            strategy: config.strategy,
            state: Arc::new(RwLock::new(RouterState {
                placement,
                weights: nodes.iter().map(|n| (n.as_ref().to_owned(), 1)).collect(),
                version: 1,
                assigned: HashMap::new(),
                assigned_bytes: 0,
            })),
            stats_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_STATS)),
            max_tracked_bytes: MAX_TRACKED_BYTES,
        })
    }

    /// Remembers at most `bytes` of `bounded` assignments (default
    /// [`MAX_TRACKED_BYTES`]).
    pub fn with_max_tracked_bytes(mut self, bytes: usize) -> Self {
        self.max_tracked_bytes = bytes;
        self
    }

    pub fn into_service(self) -> ShardRouterServer<Self> {
        ShardRouterServer::new(self)
    }

    async fn read(&self) -> RwLockReadGuard<'_, RouterState> {
        self.state.read().await
    }

    async fn write(&self) -> RwLockWriteGuard<'_, RouterState> {
        self.state.write().await
    }

    /// Routes `key` to its owner and `factor - 1` further replicas.
    pub async fn route(&self, key: &[u8], factor: u32) -> Result<RouteReply> {
        let factor = if factor == 0 { 1 } else { factor };
        if factor > MAX_REPLICATION_FACTOR {
            return Err(Error::InvalidReplicas {
                requested: factor,
                max: MAX_REPLICATION_FACTOR,
            });
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::KeyTooLong {
                bytes: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        if self.strategy == Strategy::Bounded {
            return self.route_sticky(key, factor).await;
        }
        let state = self.read().await;
        let replicas: Vec<String> = state
            .placement
            .replicas(key, factor as usize)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let owner = replicas.first().cloned().ok_or(Error::EmptyMembership)?;
        Ok(RouteReply {
            owner,
            replicas,
            membership_version: state.version,
        })
    }

    async fn route_sticky(&self, key: &[u8], factor: u32) -> Result<RouteReply> {
        // The common case, a key routed before, only reads.
        {
            let state = self.read().await;
            if let Some(owner) = state.assigned.get(key) {
                return Self::sticky_reply(&state, key, owner, factor);
            }
        }
        let mut state = self.write().await;
        // Another caller may have assigned it between the two locks.
        if let Some(owner) = state.assigned.get(key) {
            return Self::sticky_reply(&state, key, owner, factor);
        }
        let owner: Box<str> = state.placement.assign(key)?.into();
        let cost = key.len() + owner.len() + ENTRY_OVERHEAD_BYTES;
        if state.assigned_bytes + cost > self.max_tracked_bytes {
            // Take the assignment back: the placement must not count a
            // key the router will not remember.
            state.placement.release(&owner)?;
            return Err(Error::CapacityExceeded {
                what: "remembered key assignments (bytes)",
                limit: self.max_tracked_bytes as u64,
            });
        }
        state.assigned_bytes += cost;
        state.assigned.insert(key.into(), owner.clone());
        Self::sticky_reply(&state, key, &owner, factor)
    }

    /// The owner first, then distinct replicas in ring order.
    fn sticky_reply(
        state: &RouterState,
        key: &[u8],
        owner: &str,
        factor: u32,
    ) -> Result<RouteReply> {
        let mut replicas = vec![owner.to_owned()];
        for node in state
            .placement
            .replicas(key, MAX_REPLICATION_FACTOR as usize)?
        {
            if replicas.len() == factor as usize {
                break;
            }
            if node != owner {
                replicas.push(node.to_owned());
            }
        }
        Ok(RouteReply {
            owner: owner.to_owned(),
            replicas,
            membership_version: state.version,
        })
    }

    /// Adds a member. The placement is rebuilt on a blocking thread.
    pub async fn add_node(&self, name: &str, weight: u32) -> Result<Membership> {
        let weight = if weight == 0 { 1 } else { weight };
        let name = name.to_owned();
        self.change(move |state| {
            state.placement.add_node(&name, weight)?;
            state.weights.push((name, weight));
            Ok(())
        })
        .await
    }

    /// Removes a member. The placement is rebuilt on a blocking thread.
    pub async fn remove_node(&self, name: &str) -> Result<Membership> {
        let name = name.to_owned();
        self.change(move |state| {
            state.placement.remove_node(&name)?;
            state.weights.retain(|(member, _)| *member != name);
            // Keys assigned to the departed node are routed afresh next time.
            let mut freed = 0;
            state.assigned.retain(|key, owner| {
                let keep = **owner != *name;
                if !keep {
                    freed += key.len() + owner.len() + ENTRY_OVERHEAD_BYTES;
                }
                keep
            });
            state.assigned_bytes -= freed;
            Ok(())
        })
        .await
    }

    /// Runs a membership change under the write lock, off the async
    /// workers: rebuilding a large ring is CPU work.
    async fn change(
        &self,
        apply: impl FnOnce(&mut RouterState) -> Result<()> + Send + 'static,
    ) -> Result<Membership> {
        let mut state = self.state.clone().write_owned().await;
        let strategy = self.strategy;
        offload::cpu(move || {
            apply(&mut state)?;
            state.version += 1;
            Ok(membership(strategy, &state))
        })
        .await
        .map_err(|err| Error::Offload(err.to_string()))?
    }

    /// Places `sample` keys on a copy of the current placement, off the
    /// async workers (placing a million keys is CPU work), at most
    /// [`MAX_CONCURRENT_STATS`] at a time.
    pub async fn stats(&self, sample: u64) -> Result<StatsReply> {
        let sample = if sample == 0 {
            DEFAULT_SAMPLE_KEYS
        } else {
            sample
        };
        if sample > MAX_SAMPLE_KEYS {
            return Err(Error::InvalidSampleSize {
                requested: sample,
                max: MAX_SAMPLE_KEYS,
            });
        }
        // The slot goes with the work: a caller that gives up does not
        // free it while the measurement still runs.
        let slot =
            self.stats_slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| Error::CapacityExceeded {
                    what: "concurrent Stats measurements",
                    limit: MAX_CONCURRENT_STATS as u64,
                })?;
        // Copy under the read lock (routing continues), measure without it.
        let state = self.state.clone().read_owned().await;
        let strategy = self.strategy;
        offload::cpu(move || {
            let _slot = slot;
            let (mut copy, memory, assigned) = (
                state.placement.fresh_copy(),
                state.placement.memory_bytes(),
                state.assigned.len(),
            );
            drop(state);
            measure(strategy, copy.as_mut(), sample, memory, assigned)
        })
        .await
        .map_err(|err| Error::Offload(err.to_string()))?
    }
}

/// Places the sample keys on `copy` and reports the spread.
fn measure(
    strategy: Strategy,
    copy: &mut dyn Placement,
    sample: u64,
    memory: usize,
    assigned: usize,
) -> Result<StatsReply> {
    // Rendezvous scores every node per key: fewer keys for more nodes.
    let cost_per_key = match strategy {
        Strategy::Rendezvous => copy.nodes().len().max(1) as u64,
        _ => 1,
    };
    let sample = sample.min((MAX_STATS_WORK / cost_per_key).max(1));
    let report = load(copy, sample_keys(sample))?;
    Ok(StatsReply {
        strategy: strategy.name().to_owned(),
        sample_keys: report.keys,
        nodes: report
            .per_node
            .into_iter()
            .map(|(name, keys)| NodeLoad { name, keys })
            .collect(),
        max_over_mean: report.max_over_mean,
        stddev_over_mean: report.stddev_over_mean,
        memory_bytes: memory as u64,
        assigned_keys: assigned as u64,
    })
}

/// The members, their weights and the version, as the API reports them.
fn membership(strategy: Strategy, state: &RouterState) -> Membership {
    Membership {
        nodes: state
            .weights
            .iter()
            .map(|(name, weight)| Node {
                name: name.clone(),
                weight: *weight,
            })
            .collect(),
        version: state.version,
        strategy: strategy.name().to_owned(),
    }
}

#[tonic::async_trait]
impl proto::shard_router_server::ShardRouter for ShardRouter {
    async fn route(&self, request: Request<RouteRequest>) -> Result<Response<RouteReply>, Status> {
        let RouteRequest {
            key,
            replication_factor,
        } = request.into_inner();
        Ok(Response::new(
            ShardRouter::route(self, &key, replication_factor).await?,
        ))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<Membership>, Status> {
        let AddNodeRequest { name, weight } = request.into_inner();
        let membership = ShardRouter::add_node(self, &name, weight).await?;
        tracing::info!(node = %name, weight, version = membership.version, "node added");
        Ok(Response::new(membership))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<Membership>, Status> {
        let name = request.into_inner().name;
        let membership = ShardRouter::remove_node(self, &name).await?;
        tracing::info!(node = %name, version = membership.version, "node removed");
        Ok(Response::new(membership))
    }

    /// Pitfall: placing a million keys takes a CPU for a while. On an
    /// async worker it would stall every other call that worker serves.
    async fn stats(&self, request: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        let sample = request.into_inner().sample_keys;
        Ok(Response::new(ShardRouter::stats(self, sample).await?))
    }
}
