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
//! before it, so the router remembers each key it routed (up to
//! [`MAX_TRACKED_KEYS`]) and answers the same node again: assignments are
//! sticky until their node leaves.
//!
//! Simplified: membership lives in one process; a production router keeps
//! it in a consensus store (etcd, ZooKeeper) and pushes changes to clients.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
/// Keys a `bounded` router remembers before refusing new ones.
pub const MAX_TRACKED_KEYS: usize = 1_000_000;
/// Sample size `Stats` uses by default, and its ceiling.
pub const DEFAULT_SAMPLE_KEYS: u64 = 100_000;
pub const MAX_SAMPLE_KEYS: u64 = 1_000_000;

#[derive(Debug)]
struct RouterState {
    placement: Box<dyn Placement>,
    /// Members and weights, in join order (the placement keeps names only).
    weights: Vec<(String, u32)>,
    version: u64,
    /// Sticky assignments of the `bounded` strategy.
    assigned: HashMap<Vec<u8>, String>,
}

/// The router: one placement behind a lock.
#[derive(Clone, Debug)]
pub struct ShardRouter {
    strategy: Strategy,
    state: Arc<RwLock<RouterState>>,
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
            })),
        })
    }

    pub fn into_service(self) -> ShardRouterServer<Self> {
        ShardRouterServer::new(self)
    }

    // A panic while holding the lock leaves the placement as consistent as
    // before it (every mutation validates first), so keep serving.
    fn read(&self) -> RwLockReadGuard<'_, RouterState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, RouterState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn membership(&self, state: &RouterState) -> Membership {
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
            strategy: self.strategy.name().to_owned(),
        }
    }

    /// Routes `key` to its owner and `factor - 1` further replicas.
    pub fn route(&self, key: &[u8], factor: u32) -> Result<RouteReply> {
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
            return self.route_sticky(key, factor);
        }
        let state = self.read();
        let replicas: Vec<String> = state
            .placement
            .replicas(key, factor as usize)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(RouteReply {
            owner: replicas[0].clone(),
            replicas,
            membership_version: state.version,
        })
    }

    fn route_sticky(&self, key: &[u8], factor: u32) -> Result<RouteReply> {
        let mut state = self.write();
        let owner = match state.assigned.get(key) {
            Some(owner) => owner.clone(),
            None => {
                if state.assigned.len() >= MAX_TRACKED_KEYS {
                    return Err(Error::CapacityExceeded {
                        what: "tracked key assignments",
                        limit: MAX_TRACKED_KEYS as u64,
                    });
                }
                let owner = state.placement.assign(key)?.to_owned();
                state.assigned.insert(key.to_vec(), owner.clone());
                owner
            }
        };
        let mut replicas = vec![owner.clone()];
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
            owner,
            replicas,
            membership_version: state.version,
        })
    }

    pub fn add_node(&self, name: &str, weight: u32) -> Result<Membership> {
        let weight = if weight == 0 { 1 } else { weight };
        let mut state = self.write();
        state.placement.add_node(name, weight)?;
        state.weights.push((name.to_owned(), weight));
        state.version += 1;
        Ok(self.membership(&state))
    }

    pub fn remove_node(&self, name: &str) -> Result<Membership> {
        let mut state = self.write();
        state.placement.remove_node(name)?;
        state.weights.retain(|(member, _)| member != name);
        // Keys assigned to the departed node are routed afresh next time.
        state.assigned.retain(|_, owner| owner != name);
        state.version += 1;
        Ok(self.membership(&state))
    }

    /// Places `sample` keys on a copy of the current placement.
    pub fn stats(&self, sample: u64) -> Result<StatsReply> {
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
        // Copy under the lock, measure without it: routing continues.
        let (mut copy, memory, assigned) = {
            let state = self.read();
            (
                state.placement.fresh_copy(),
                state.placement.memory_bytes(),
                state.assigned.len(),
            )
        };
        let report = load(copy.as_mut(), sample_keys(sample))?;
        Ok(StatsReply {
            strategy: self.strategy.name().to_owned(),
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
}

#[tonic::async_trait]
impl proto::shard_router_server::ShardRouter for ShardRouter {
    async fn route(&self, request: Request<RouteRequest>) -> Result<Response<RouteReply>, Status> {
        let RouteRequest {
            key,
            replication_factor,
        } = request.into_inner();
        Ok(Response::new(ShardRouter::route(
            self,
            &key,
            replication_factor,
        )?))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<Membership>, Status> {
        let AddNodeRequest { name, weight } = request.into_inner();
        let membership = ShardRouter::add_node(self, &name, weight)?;
        tracing::info!(node = %name, weight, version = membership.version, "node added");
        Ok(Response::new(membership))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<Membership>, Status> {
        let name = request.into_inner().name;
        let membership = ShardRouter::remove_node(self, &name)?;
        tracing::info!(node = %name, version = membership.version, "node removed");
        Ok(Response::new(membership))
    }

    async fn stats(&self, request: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        Ok(Response::new(ShardRouter::stats(
            self,
            request.into_inner().sample_keys,
        )?))
    }
}
