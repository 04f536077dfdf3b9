//! `v3electionpb.Election`: etcd's election service — leadership as a lock
//! whose key carries the leader's proclamation (its address, say).
//!
//! Campaign queues the candidate exactly as a lock does and returns once
//! it leads; Proclaim and Resign act only while the candidate's key is the
//! one it created (compared by creation revision, so a leader whose lease
//! ran out cannot proclaim over its successor); Leader and Observe read the
//! first-created key. Observe streams each new leader and each new
//! proclamation, from this node's applied state, in log order.
//!
//! Errors as etcd's texts: "election: no leader" (NotFound),
//! "election: not leader" (FailedPrecondition), and `"leader" field must
//! be provided` (InvalidArgument). etcd's server sends the first two with
//! code Unknown; dslab gives them the codes their meaning has.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::lock::Local;
use crate::lock::recipe::{self, Held};
use crate::proto::mvccpb::KeyValue;
use crate::proto::v3electionpb::election_server::{Election, ElectionServer};
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

const MISSING_LEADER: &str = "\"leader\" field must be provided";
/// Leader changes an Observe stream holds for a slow reader.
const OBSERVE_BACKLOG: usize = 8;

/// The Election service of one node.
#[derive(Clone, Debug)]
pub struct ElectionService {
    local: Local,
}

impl ElectionService {
    pub(crate) fn new(local: Local) -> Self {
        Self { local }
    }

    pub fn into_service(self) -> ElectionServer<Self> {
        ElectionServer::new(self)
    }
}

fn held(leader: Option<LeaderKey>) -> Result<Held, Status> {
    let leader = leader.ok_or_else(|| Status::invalid_argument(MISSING_LEADER))?;
    Ok(Held {
        key: leader.key,
        revision: leader.rev,
        lease: leader.lease,
        header_revision: 0,
    })
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        self.local.api.check_serving(false)?;
        let CampaignRequest { name, lease, value } = request.into_inner();
        if name.is_empty() {
            return Err(Status::invalid_argument("an election needs a name"));
        }
        let lease = self.local.lease_or_new(lease).await?;
        let held = recipe::acquire(&self.local, &name, lease, &value).await?;
        Ok(Response::new(CampaignResponse {
            header: Some(self.local.api.header(held.header_revision)),
            leader: Some(LeaderKey {
                name,
                key: held.key,
                rev: held.revision,
                lease: held.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        self.local.api.check_serving(false)?;
        let ProclaimRequest { leader, value } = request.into_inner();
        let held = held(leader)?;
        recipe::proclaim(&self.local, &held.key, held.revision, &value).await?;
        Ok(Response::new(ProclaimResponse {
            header: Some(self.local.api.header(0)),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        self.local.api.check_serving(true)?;
        let (kv, revision) = recipe::leader(&self.local, &request.into_inner().name).await?;
        Ok(Response::new(LeaderResponse {
            header: Some(self.local.api.header(revision)),
            kv: Some(kv),
        }))
    }

    type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.local.api.check_serving(true)?;
        let name = request.into_inner().name;
        let (out, stream) = mpsc::channel(OBSERVE_BACKLOG);
        let api = self.local.api.clone();
        tokio::spawn(async move {
            let prefix = recipe::prefix(&name);
            let end = recipe::prefix_end(&prefix);
            let mut status = api.node.watch_status();
            let mut last: Option<(Vec<u8>, i64)> = None;
            // The first revision not yet looked at: a write elsewhere in
            // the store costs a look at the newest changes, not a pass
            // over the election's keys.
            let mut next = 0;
            loop {
                let current: Option<(KeyValue, i64)> = api.node.read_state(|state| {
                    let revision = state.mvcc.revision();
                    let touched = next == 0
                        || (next <= revision
                            && !state
                                .mvcc
                                .changes_since(&prefix, &end, (next, 0), 1, false)
                                .is_empty());
                    next = revision + 1;
                    if !touched {
                        return None;
                    }
                    state
                        .mvcc
                        .first_created(&prefix, &end)
                        .map(|kv| (kv, revision))
                });
                if let Some((kv, revision)) = current {
                    let seen = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&seen) {
                        last = Some(seen);
                        let response = LeaderResponse {
                            header: Some(api.header(revision)),
                            kv: Some(kv),
                        };
                        if out.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = status.changed() => {
                        if changed.is_err() || status.borrow().stopped {
                            let _ = out.send(Err(crate::Error::Stopped.into())).await;
                            return;
                        }
                    }
                    () = out.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        self.local.api.check_serving(false)?;
        let held = held(request.into_inner().leader)?;
        recipe::release(&self.local, &held).await?;
        Ok(Response::new(ResignResponse {
            header: Some(self.local.api.header(0)),
        }))
    }
}
