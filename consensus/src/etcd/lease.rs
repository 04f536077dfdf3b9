//! `etcdserverpb.Lease`: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
//! LeaseTimeToLive, LeaseLeases (see [`crate::lease`] for the idea).
//!
//! Grants and revokes go through the log, on the leader; keep-alives and
//! time-to-live questions are answered by the leader's clock, so a
//! follower forwards them. Each keep-alive stream handles one request at a
//! time and holds at most a few answers for a slow reader, so a flood of
//! keep-alives backs up into its own stream and nowhere else.

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, Route, forwarded};
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::v1::command;
use crate::raft::Applied;
use crate::{Error, Result};

/// Answers a keep-alive stream may hold for a slow reader.
const KEEP_ALIVE_BACKLOG: usize = 4;

/// The Lease service of one node.
#[derive(Clone, Debug)]
pub struct LeaseService {
    api: Api,
    lessor: Lessor,
}

impl LeaseService {
    pub(crate) fn new(api: Api, lessor: Lessor) -> Self {
        Self { api, lessor }
    }

    pub fn into_service(self) -> LeaseServer<Self> {
        LeaseServer::new(self)
    }

    /// Renews `id` here if this node leads, or on the leader.
    async fn keep_alive_once(&self, id: i64, forwarded_here: bool) -> Result<i64, Status> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        if forwarded_here {
            metadata.insert(
                super::FORWARDED,
                tonic::metadata::MetadataValue::from_static("1"),
            );
        }
        match self.api.route(&metadata).await? {
            Route::Here => {
                // The leader must know every grant committed before this
                // renewal, or it would answer "unknown" for a live lease;
                // and a deposed leader cannot complete this round.
                self.api.node.linearizable_read().await?;
                Ok(self.lessor.renew(id)?)
            }
            Route::Leader(channel) => {
                let mut leader = LeaseClient::new(channel);
                let request = forwarded(tokio_stream::once(LeaseKeepAliveRequest { id }));
                let mut answers = leader.lease_keep_alive(request).await?.into_inner();
                match answers.message().await? {
                    Some(answer) => Ok(answer.ttl),
                    None => Err(Error::LeaderChanged.into()),
                }
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.api.check_serving(false)?;
        let asked = *request.get_ref();
        if asked.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        if asked.id < 0 {
            return Err(Error::NegativeLeaseId.into());
        }
        let mut response = match self.api.route(request.metadata()).await? {
            Route::Here => {
                // The leader chooses what the log records, so that every
                // replica applies the same id and TTL.
                let id = if asked.id == 0 {
                    rand::random::<i64>().checked_abs().unwrap_or(1).max(1)
                } else {
                    asked.id
                };
                let ttl = asked.ttl.max(self.lessor.min_ttl());
                let grant = command::Op::LeaseGrant(LeaseGrantRequest { ttl, id });
                match self.api.node.propose(grant).await? {
                    Applied::LeaseGrant(response) => {
                        self.lessor.granted(response.id, response.ttl);
                        response
                    }
                    other => return Err(Status::internal(format!("a grant applied as {other:?}"))),
                }
            }
            Route::Leader(channel) => LeaseClient::new(channel)
                .lease_grant(forwarded(asked))
                .await?
                .into_inner(),
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.api.check_serving(false)?;
        let revoke = *request.get_ref();
        if revoke.id <= 0 {
            return Err(Error::LeaseNotFound.into());
        }
        let mut response = match self.api.route(request.metadata()).await? {
            Route::Here => match self
                .api
                .node
                .propose(command::Op::LeaseRevoke(revoke))
                .await?
            {
                Applied::LeaseRevoke(response) => response,
                other => return Err(Status::internal(format!("a revoke applied as {other:?}"))),
            },
            Route::Leader(channel) => LeaseClient::new(channel)
                .lease_revoke(forwarded(revoke))
                .await?
                .into_inner(),
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.api.check_serving(false)?;
        let forwarded_here = request.metadata().contains_key(super::FORWARDED);
        let mut requests = request.into_inner();
        let (answers, stream) = mpsc::channel(KEEP_ALIVE_BACKLOG);
        let service = self.clone();
        tokio::spawn(async move {
            while let Some(next) = requests.next().await {
                let answer = match next {
                    // An unknown or expired lease answers TTL 0, not an
                    // error: that is how a client learns it lost it.
                    Ok(LeaseKeepAliveRequest { id }) => service
                        .keep_alive_once(id, forwarded_here)
                        .await
                        .map(|ttl| LeaseKeepAliveResponse {
                            header: Some(service.api.header(0)),
                            id,
                            ttl,
                        }),
                    Err(status) => Err(status),
                };
                let failed = answer.is_err();
                if answers.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.api.check_serving(false)?;
        let asked = *request.get_ref();
        let mut response = match self.api.route(request.metadata()).await? {
            Route::Here => {
                self.api.node.linearizable_read().await?;
                let lease = self.api.node.read_state(|state| {
                    state.mvcc.leases().get(asked.id).map(|lease| {
                        let keys = if asked.keys {
                            lease.keys.iter().cloned().collect()
                        } else {
                            Vec::new()
                        };
                        (lease.ttl, keys)
                    })
                });
                match lease {
                    // etcd answers an unknown lease with TTL -1, not an
                    // error (`etcdctl` prints "already expired").
                    None => LeaseTimeToLiveResponse {
                        id: asked.id,
                        ttl: -1,
                        ..LeaseTimeToLiveResponse::default()
                    },
                    Some((granted, keys)) => {
                        let remaining = self
                            .lessor
                            .remaining(asked.id)
                            .map_or(granted, |left| left.as_secs() as i64);
                        LeaseTimeToLiveResponse {
                            header: None,
                            id: asked.id,
                            ttl: remaining,
                            granted_ttl: granted,
                            keys,
                        }
                    }
                }
            }
            Route::Leader(channel) => LeaseClient::new(channel)
                .lease_time_to_live(forwarded(asked))
                .await?
                .into_inner(),
        };
        response.header = self.api.fill(response.header);
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.api.check_serving(false)?;
        self.api.node.linearizable_read().await?;
        let leases = self.api.node.read_state(|state| {
            state
                .mvcc
                .leases()
                .ttls()
                .map(|(id, _)| LeaseStatus { id })
                .collect()
        });
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.api.header(0)),
            leases,
        }))
    }
}
