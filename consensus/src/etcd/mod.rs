//! etcd's v3 API over the Raft KV, wire compatible with etcd 3.4.
//!
//! Episode: 13, "FLP Impossibility & Practical Consensus" (also 14)
//! Pattern: consensus / client API of a replicated store
//! Try it:  cargo run -- serve raft-kv --listen 127.0.0.1:2379, then `etcdctl put k v`
//! Test it: cargo test -p consensus etcd_
//!
//! The same packages, services, messages and field numbers as etcd's own
//! protos, so `etcdctl` and etcd's client libraries talk to a dslab node as
//! to an etcd member: `KV` (Range, Put, DeleteRange, Txn, Compact),
//! `Watch`, `Lease` (see [`crate::lease`]), `Cluster`
//! (MemberAdd/Remove/Update/List/Promote), `Maintenance` (Status,
//! MoveLeader; Alarm, Defragment, Hash and HashKV in their simplest honest
//! form), and etcd's `Lock` and `Election` services (see [`crate::lock`]). Every response header carries the cluster id,
//! this member's id, the store's revision and the Raft term; every error
//! carries etcd's exact text, which is what clients match on.
//!
//! Writes sent to a follower are forwarded to the leader (once: a node
//! that receives a forwarded write and is no longer the leader answers
//! "leader changed" rather than forwarding again). Linearizable reads are
//! served on any node after a ReadIndex round; serializable ones from the
//! local state.
//!
//! Simplified: no Auth service (it answers `Unimplemented`);
//! `Maintenance.Snapshot` is unsupported (etcd streams a bbolt file, which
//! this store does not have).

mod cluster;
mod election;
mod kv;
mod lease;
mod lock;
mod maintenance;
#[cfg(test)]
mod tests;
pub mod watch;
mod watch_hub;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use observability::rpc::{ClientBuilder, Net, RpcChannel, peer_uri};
use tonic::metadata::MetadataMap;

pub use cluster::ClusterService;
pub use election::ElectionService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use lock::LockService;
pub use maintenance::MaintenanceService;
pub use watch::{MAX_EVENTS_PER_RESPONSE, MAX_WATCHERS_PER_STREAM, WatchService};

use crate::proto::etcdserverpb::ResponseHeader;
use crate::raft::{RaftNode, Role};
use crate::{Error, Result};

/// The version `Maintenance.Status` reports: the etcd API it speaks, and
/// who speaks it.
pub const VERSION: &str = concat!("3.4.0-dslab.", env!("CARGO_PKG_VERSION"));

/// How long a call that waits by design may wait or stay silent.
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Metadata marking a request a follower forwarded to the leader.
const FORWARDED: &str = "dslab-forwarded";

/// What every etcd service of one node shares.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    node: RaftNode,
    net: Net,
    /// Channels to leaders, by URL.
    channels: Arc<Mutex<HashMap<String, RpcChannel>>>,
}

/// Where a request that must reach the leader goes.
pub(crate) enum Route {
    Here,
    Leader(RpcChannel),
}

impl Api {
    pub(crate) fn new(node: RaftNode, net: Net) -> Self {
        Self {
            node,
            net,
            channels: Arc::default(),
        }
    }

    /// A full response header at `revision`.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        let status = self.node.status();
        ResponseHeader {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.id(),
            // etcd fills in the store's revision when a reply has none of
            // its own (Cluster and Maintenance replies).
            revision: if revision == 0 {
                status.revision
            } else {
                revision
            },
            raft_term: status.term,
        }
    }

    /// Completes a header the state machine filled with a revision only.
    pub(crate) fn fill(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.header(header.map_or(0, |h| h.revision)))
    }

    /// Refuses requests a learner or a removed member must not serve.
    pub(crate) fn check_serving(&self, learner_ok: bool) -> Result<()> {
        let status = self.node.status();
        if status.removed || status.stopped {
            return Err(Error::Stopped);
        }
        if status.is_learner && !learner_ok {
            return Err(Error::NotSupportedForLearner);
        }
        Ok(())
    }

    /// Decides where a request for the leader goes, waiting (up to the
    /// request timeout) for a leader to be known.
    pub(crate) async fn route(&self, metadata: &MetadataMap) -> Result<Route> {
        let status = self.node.status();
        if status.role == Role::Leader {
            return Ok(Route::Here);
        }
        if metadata.contains_key(FORWARDED) {
            // Forwarded here by a node that thought we lead; we do not any
            // more. One hop only: two nodes with stale views must not pass
            // a request back and forth.
            return Err(Error::LeaderChanged);
        }
        let leader = match status.leader {
            0 => self
                .node
                .wait_for_leader(self.node.request_timeout())
                .await
                .ok_or(Error::NoLeader)?,
            leader => leader,
        };
        if leader == self.node.id() {
            return Ok(Route::Here);
        }
        let url = self
            .node
            .read_state(|state| {
                state.members.get(&leader).and_then(|m| {
                    m.client_urls
                        .first()
                        .or_else(|| m.peer_urls.first())
                        .cloned()
                })
            })
            .ok_or(Error::NoLeader)?;
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(&url) {
            return Ok(Route::Leader(channel.clone()));
        }
        let uri = peer_uri(&url).map_err(|_| Error::NoLeader)?;
        let channel = ClientBuilder::new(self.net)
            .default_deadline(self.node.request_timeout())
            .connect_lazy(uri);
        channels.insert(url, channel.clone());
        Ok(Route::Leader(channel))
    }
}

/// `request`, marked as forwarded to the leader.
pub(crate) fn forwarded<T>(request: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}

/// Everything a Raft KV node serves, ready to add to an `RpcServer`.
#[derive(Debug)]
pub struct Services {
    pub kv: crate::proto::etcdserverpb::kv_server::KvServer<KvService>,
    pub watch: crate::proto::etcdserverpb::watch_server::WatchServer<WatchService>,
    pub lease: crate::proto::etcdserverpb::lease_server::LeaseServer<LeaseService>,
    pub lock: crate::proto::v3lockpb::lock_server::LockServer<LockService>,
    pub election: crate::proto::v3electionpb::election_server::ElectionServer<ElectionService>,
    pub cluster: crate::proto::etcdserverpb::cluster_server::ClusterServer<ClusterService>,
    pub maintenance:
        crate::proto::etcdserverpb::maintenance_server::MaintenanceServer<MaintenanceService>,
    pub transport:
        crate::proto::v1::raft_transport_server::RaftTransportServer<crate::raft::TransportService>,
}

impl Services {
    /// The etcd API and the peer transport of `node`; forwarded requests
    /// travel over `net`. Starts the node's lease clock.
    pub fn new(node: &RaftNode, net: Net) -> Self {
        Self::with_watch(node, net, |watch| watch)
    }

    /// [`Services::new`], its Watch service set up by `configure` (tests
    /// shorten the progress interval).
    pub fn with_watch(
        node: &RaftNode,
        net: Net,
        configure: impl FnOnce(WatchService) -> WatchService,
    ) -> Self {
        let api = Api::new(node.clone(), net);
        let kv = KvService::new(api.clone());
        let lease = LeaseService::new(api.clone(), crate::lease::Lessor::start(node.clone()));
        let local = lock::Local {
            api: api.clone(),
            kv: kv.clone(),
            lease: lease.clone(),
        };
        Self {
            kv: kv.into_service(),
            watch: configure(WatchService::new(api.clone())).into_service(),
            lease: lease.into_service(),
            lock: LockService::new(local.clone()).into_service(),
            election: ElectionService::new(local).into_service(),
            cluster: ClusterService::new(api.clone()).into_service(),
            maintenance: MaintenanceService::new(api).into_service(),
            transport: node.transport().into_service(),
        }
    }

    /// An `RpcServer` hosting them all. The calls that wait by design — a
    /// watch or an Observe stream with nothing to say, a keep-alive stream
    /// between beats, a Lock or Campaign queued behind others — are exempt
    /// from the server's idle and duration caps (up to [`WAIT_LIMIT`]), as
    /// they are on etcd; HTTP/2 keepalive still ends them when the client
    /// is gone.
    pub fn into_server(self) -> observability::rpc::RpcServer {
        use crate::proto::FILE_DESCRIPTOR_SET;
        observability::rpc::RpcServer::new()
            .route_idle_timeout("/etcdserverpb.Watch/Watch", WAIT_LIMIT)
            .route_idle_timeout("/etcdserverpb.Lease/LeaseKeepAlive", WAIT_LIMIT)
            .route_idle_timeout("/v3electionpb.Election/Observe", WAIT_LIMIT)
            .route_max_duration("/v3lockpb.Lock/Lock", WAIT_LIMIT)
            .route_max_duration("/v3electionpb.Election/Campaign", WAIT_LIMIT)
            .add_service(self.kv, FILE_DESCRIPTOR_SET)
            .add_service(self.watch, FILE_DESCRIPTOR_SET)
            .add_service(self.lease, FILE_DESCRIPTOR_SET)
            .add_service(self.lock, FILE_DESCRIPTOR_SET)
            .add_service(self.election, FILE_DESCRIPTOR_SET)
            .add_service(self.cluster, FILE_DESCRIPTOR_SET)
            .add_service(self.maintenance, FILE_DESCRIPTOR_SET)
            .add_service(self.transport, FILE_DESCRIPTOR_SET)
    }
}
