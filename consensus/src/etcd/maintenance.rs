//! `etcdserverpb.Maintenance`: Status and MoveLeader, and the rest in the
//! simplest form that is true for this store. Like etcd 3.4, a learner
//! answers only `Status`.
//!
//! Bounds: one `Hash`/`HashKV` at a time per member (more: "too many
//! requests"), computed off the async workers.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::{Api, VERSION};
use crate::proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::{Error, Result};

/// The Maintenance service of one node.
#[derive(Clone, Debug)]
pub struct MaintenanceService {
    api: Api,
    /// One `Hash` or `HashKV` at a time.
    hashing: Arc<Semaphore>,
}

impl MaintenanceService {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            api,
            hashing: Arc::new(Semaphore::new(1)),
        }
    }

    pub fn into_service(self) -> MaintenanceServer<Self> {
        MaintenanceServer::new(self)
    }

    /// The store's digest up to `revision` (0: now), with the revision and
    /// compaction it was taken at. One hash at a time per member, off the
    /// async workers: it is a pass over the whole store, and the Raft loop
    /// must not wait for it — only the copy it hashes is taken under the
    /// state's lock.
    async fn hash_at(&self, revision: i64) -> Result<(u32, i64, i64)> {
        self.api.check_serving(false)?;
        let Ok(_hashing) = self.hashing.clone().try_acquire_owned() else {
            return Err(Error::TooManyRequests);
        };
        let (store, at) = self.api.node.read_state(|state| {
            let store = &state.mvcc;
            let at = if revision <= 0 {
                store.revision()
            } else {
                revision
            };
            if at > store.revision() {
                return Err(Error::FutureRevision);
            }
            if revision > 0 && revision <= store.compact_revision() {
                return Err(Error::Compacted);
            }
            // Values are shared buffers: the copy is the index, not the data.
            Ok((store.clone(), at))
        })?;
        let (current, compacted) = (store.revision(), store.compact_revision());
        let hash = observability::offload::cpu(move || store.hash(at))
            .await
            .map_err(|_| Error::Stopped)?;
        Ok((hash, current, compacted))
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// This store raises no alarms: its quota refuses writes instead.
    async fn alarm(
        &self,
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        self.api.check_serving(false)?;
        Ok(Response::new(AlarmResponse {
            header: Some(self.api.header(0)),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        // A removed or failed member answers as a stopped etcd would not
        // at all: it reports nothing it might still believe.
        self.api.check_serving(true)?;
        let status = self.api.node.status();
        let in_use = self.api.node.read_state(|state| state.mvcc.bytes()) as i64;
        let mut errors = Vec::new();
        if status.leader == 0 {
            errors.push(Error::NoLeader.to_string());
        }
        Ok(Response::new(StatusResponse {
            header: Some(self.api.header(status.revision)),
            version: VERSION.to_owned(),
            db_size: in_use + status.disk_bytes as i64,
            leader: status.leader,
            raft_index: status.commit,
            raft_term: status.term,
            raft_applied_index: status.applied,
            errors,
            db_size_in_use: in_use,
            is_learner: status.is_learner,
        }))
    }

    /// Nothing to defragment: the store is in memory and its log files are
    /// reclaimed as snapshots cover them.
    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.api.check_serving(false)?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.api.header(0)),
        }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (hash, revision, _) = self.hash_at(0).await?;
        Ok(Response::new(HashResponse {
            header: Some(self.api.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let (hash, revision, compact_revision) = self.hash_at(request.get_ref().revision).await?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.api.header(revision)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream =
        Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send + 'static>>;

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Error::Unsupported("Maintenance.Snapshot (etcd streams a bbolt file)").into())
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.api.check_serving(false)?;
        self.api
            .node
            .transfer_leader(request.get_ref().target_id)
            .await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.api.header(0)),
        }))
    }
}
