//! `v3lockpb.Lock`: etcd's lock service — the recipe of [`crate::lock`]
//! run inside the node, for clients that would rather make one call than
//! run it themselves.
//!
//! `Lock` waits (as long as the caller's deadline allows) until the
//! caller's lease holds the lock, and answers the ownership key; the
//! fencing token is that key's creation revision (a `Range` of the key
//! returns it). A lease of 0 asks for a new 60-second lease that nobody
//! keeps alive, as etcd's server does; an unknown lease is refused with
//! etcd's "requested lease not found".

use tonic::{Request, Response, Status};

use super::Api;
use super::kv::KvService;
use super::lease::LeaseService;
use crate::lock::recipe::{self, Etcd};
use crate::proto::etcdserverpb::kv_server::Kv as _;
use crate::proto::etcdserverpb::lease_server::Lease as _;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::v3lockpb::lock_server::{Lock, LockServer};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

/// The TTL of the lease etcd's server grants for a lease-less request.
const DEFAULT_SESSION_TTL: i64 = 60;

/// The node's own API as the recipe sees it: writes go through the KV
/// service (to the leader), and waiting for a deletion watches this node's
/// applied state.
#[derive(Clone, Debug)]
pub(crate) struct Local {
    pub api: Api,
    pub kv: KvService,
    pub lease: LeaseService,
}

impl Local {
    /// The caller's lease, or a new one for a caller that gave none.
    pub async fn lease_or_new(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let granted = self
            .lease
            .lease_grant(Request::new(LeaseGrantRequest {
                ttl: DEFAULT_SESSION_TTL,
                id: 0,
            }))
            .await?;
        Ok(granted.into_inner().id)
    }
}

#[tonic::async_trait]
impl Etcd for Local {
    fn release_later(&self, held: recipe::Held) {
        let local = self.clone();
        // A runtime shutting down drops its tasks; nothing is left to
        // release then but the lease's own expiry.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = recipe::release(&local, &held).await;
        });
    }

    async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(self.kv.txn(Request::new(txn)).await?.into_inner())
    }

    async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(self.kv.range(Request::new(range)).await?.into_inner())
    }

    async fn wait_deleted(&self, key: &[u8], after: i64) -> Result<(), Status> {
        let mut status = self.api.node.watch_status();
        loop {
            // The same key created again after `after` is another
            // incarnation (its owner unlocked and queued anew): the one
            // waited for is gone.
            let present = self.api.node.read_state(|state| {
                state
                    .mvcc
                    .range(&RangeRequest {
                        key: key.to_vec(),
                        keys_only: true,
                        ..RangeRequest::default()
                    })
                    .is_ok_and(|r| r.kvs.first().is_some_and(|kv| kv.create_revision <= after))
            });
            if !present {
                return Ok(());
            }
            if status.changed().await.is_err() || status.borrow().stopped {
                return Err(crate::Error::Stopped.into());
            }
        }
    }
}

/// The Lock service of one node.
#[derive(Clone, Debug)]
pub struct LockService {
    local: Local,
}

impl LockService {
    pub(crate) fn new(local: Local) -> Self {
        Self { local }
    }

    pub fn into_service(self) -> LockServer<Self> {
        LockServer::new(self)
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        self.local.api.check_serving(false)?;
        let LockRequest { name, lease } = request.into_inner();
        if name.is_empty() {
            return Err(Status::invalid_argument("a lock needs a name"));
        }
        let lease = self.local.lease_or_new(lease).await?;
        let held = recipe::acquire(&self.local, &name, lease, &[]).await?;
        Ok(Response::new(LockResponse {
            header: Some(self.local.api.header(held.header_revision)),
            key: held.key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.local.api.check_serving(false)?;
        let key = request.into_inner().key;
        if key.is_empty() {
            return Err(crate::Error::EmptyKey.into());
        }
        let deleted = self
            .local
            .kv
            .delete_range(Request::new(DeleteRangeRequest {
                key,
                ..DeleteRangeRequest::default()
            }))
            .await?
            .into_inner();
        Ok(Response::new(UnlockResponse {
            header: self.local.api.fill(deleted.header),
        }))
    }
}
