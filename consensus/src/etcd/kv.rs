//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::{Api, Route, forwarded};
use crate::mvcc::{MAX_REQUEST_BYTES, validate};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::v1::command;
use crate::raft::Applied;
use crate::{Error, Result};

/// The KV service of one node.
#[derive(Clone, Debug)]
pub struct KvService {
    api: Api,
}

impl KvService {
    pub(crate) fn new(api: Api) -> Self {
        Self { api }
    }

    pub fn into_service(self) -> KvServer<Self> {
        KvServer::new(self)
    }

    /// etcd's `--max-request-bytes`: the whole request, not just the value.
    fn check_size(request: &impl prost::Message) -> Result<()> {
        if request.encoded_len() > MAX_REQUEST_BYTES {
            return Err(Error::RequestTooLarge);
        }
        Ok(())
    }

    /// The quota: a write that would grow the store past it is refused
    /// before it is proposed (the store's size counts its history, which a
    /// compaction frees).
    fn check_quota(&self, request_bytes: usize) -> Result<()> {
        let after = self
            .api
            .node
            .read_state(|state| state.mvcc.bytes_after(request_bytes));
        if after > self.api.node.quota_bytes() {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Proposes `op` here, or forwards the request to the leader.
    async fn write(&self, request: &Request<impl Sized>, op: command::Op) -> Result<Written> {
        match self.api.route(request.metadata()).await? {
            Route::Here => Ok(Written::Applied(self.api.node.propose(op).await?)),
            Route::Leader(channel) => Ok(Written::Forwarded(KvClient::new(channel))),
        }
    }
}

/// Where a write went.
enum Written {
    Applied(Applied),
    Forwarded(KvClient<observability::rpc::RpcChannel>),
}

fn unexpected(applied: &Applied) -> Status {
    Status::internal(format!("a write applied as {applied:?}"))
}

/// Whether a transaction only reads (no writes, no nested transactions):
/// etcd serves those without going through the log.
fn read_only(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| matches!(op.request, Some(Op::RequestRange(_))))
}

fn serializable(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| matches!(&op.request, Some(Op::RequestRange(range)) if range.serializable))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let range = request.into_inner();
        self.api.check_serving(range.serializable)?;
        validate::range(&range)?;
        if !range.serializable {
            self.api.node.linearizable_read().await?;
        }
        let mut response = self.api.node.read_state(|state| state.mvcc.range(&range))?;
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.api.check_serving(false)?;
        validate::put(request.get_ref())?;
        Self::check_size(request.get_ref())?;
        self.check_quota(request.get_ref().encoded_len())?;
        let put = request.get_ref().clone();
        let mut response = match self.write(&request, command::Op::Put(put.clone())).await? {
            Written::Applied(Applied::Put(response)) => response,
            Written::Applied(other) => return Err(unexpected(&other)),
            Written::Forwarded(mut leader) => leader.put(forwarded(put)).await?.into_inner(),
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.api.check_serving(false)?;
        validate::delete_range(request.get_ref())?;
        Self::check_size(request.get_ref())?;
        let delete = request.get_ref().clone();
        let mut response = match self
            .write(&request, command::Op::DeleteRange(delete.clone()))
            .await?
        {
            Written::Applied(Applied::DeleteRange(response)) => response,
            Written::Applied(other) => return Err(unexpected(&other)),
            Written::Forwarded(mut leader) => {
                leader.delete_range(forwarded(delete)).await?.into_inner()
            }
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let txn = request.get_ref();
        self.api.check_serving(false)?;
        // Size first: the rules walk every nested operation.
        Self::check_size(txn)?;
        validate::txn(txn)?;
        if read_only(txn) {
            if !serializable(txn) {
                self.api.node.linearizable_read().await?;
            }
            let mut response = self
                .api
                .node
                .read_state(|state| state.mvcc.read_only_txn(txn))?;
            response.header = self.api.fill(response.header);
            return Ok(Response::new(response));
        }
        self.check_quota(txn.encoded_len())?;
        let txn = txn.clone();
        let mut response = match self.write(&request, command::Op::Txn(txn.clone())).await? {
            Written::Applied(Applied::Txn(response)) => response,
            Written::Applied(other) => return Err(unexpected(&other)),
            Written::Forwarded(mut leader) => leader.txn(forwarded(txn)).await?.into_inner(),
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.api.check_serving(false)?;
        let compact = *request.get_ref();
        let mut response = match self.write(&request, command::Op::Compact(compact)).await? {
            Written::Applied(Applied::Compact(response)) => response,
            Written::Applied(other) => return Err(unexpected(&other)),
            Written::Forwarded(mut leader) => {
                leader.compact(forwarded(compact)).await?.into_inner()
            }
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }
}
