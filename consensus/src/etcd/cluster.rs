//! `etcdserverpb.Cluster`: members, added as learners or voters, promoted,
//! updated, removed — each one Raft membership change.

use tonic::{Request, Response, Status};

use super::{Api, Route, forwarded};
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use crate::proto::etcdserverpb::{
    Member as EtcdMember, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::proto::v1::{Member, command};
use crate::raft::{Applied, MembershipChange, StateMachine};
use crate::{Error, Result};

/// The Cluster service of one node.
#[derive(Clone, Debug)]
pub struct ClusterService {
    api: Api,
}

/// etcd's view of a member.
fn etcd_member(member: &Member) -> EtcdMember {
    EtcdMember {
        id: member.id,
        name: member.name.clone(),
        peer_ur_ls: member.peer_urls.clone(),
        client_ur_ls: member.client_urls.clone(),
        is_learner: member.is_learner,
    }
}

fn etcd_members(members: &[Member]) -> Vec<EtcdMember> {
    members.iter().map(etcd_member).collect()
}

/// etcd's URL rules for members — at least one, each `scheme://host:port`
/// with no path — narrowed to the `http` scheme the transport dials.
/// Returns them trimmed and sorted, as etcd stores them.
pub(crate) fn check_urls(urls: &[String]) -> Result<Vec<String>> {
    if urls.is_empty() {
        return Err(Error::MemberBadUrls);
    }
    let mut checked = Vec::with_capacity(urls.len());
    for url in urls {
        let url = url.trim();
        let uri: http::Uri = url.parse().map_err(|_| Error::MemberBadUrls)?;
        // etcd also takes https and unix sockets; this transport dials
        // plain http only, and a voter it cannot reach costs a quorum.
        let scheme_ok = uri.scheme_str() == Some("http");
        let path_ok = uri
            .path_and_query()
            .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
        if !scheme_ok
            || !path_ok
            || uri.host().is_none()
            || uri.port_u16().is_none()
            || url.ends_with('/')
        {
            return Err(Error::MemberBadUrls);
        }
        checked.push(url.to_owned());
    }
    checked.sort();
    Ok(checked)
}

impl ClusterService {
    pub(crate) fn new(api: Api) -> Self {
        Self { api }
    }

    pub fn into_service(self) -> ClusterServer<Self> {
        ClusterServer::new(self)
    }

    async fn change(&self, change: MembershipChange) -> Result<Vec<Member>> {
        self.api.node.change_membership(change).await
    }

    async fn leader<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<ClusterClient<observability::rpc::RpcChannel>>> {
        match self.api.route(request.metadata()).await? {
            Route::Here => Ok(None),
            Route::Leader(channel) => Ok(Some(ClusterClient::new(channel))),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.api.check_serving(false)?;
        let peer_urls = check_urls(&request.get_ref().peer_ur_ls)?;
        let learner = request.get_ref().is_learner;
        if let Some(mut leader) = self.leader(&request).await? {
            let mut response = leader
                .member_add(forwarded(request.into_inner()))
                .await?
                .into_inner();
            response.header = Some(self.api.header(0));
            return Ok(Response::new(response));
        }
        let member = Member {
            id: self.api.node.read_state(StateMachine::next_member_id)?,
            // etcd names a member when it first starts; until then, none.
            name: String::new(),
            peer_urls: peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: learner,
        };
        let members = self
            .change(MembershipChange::Add {
                member: member.clone(),
                learner,
            })
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.api.header(0)),
            member: Some(etcd_member(&member)),
            members: etcd_members(&members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.api.check_serving(false)?;
        if let Some(mut leader) = self.leader(&request).await? {
            let mut response = leader
                .member_remove(forwarded(request.into_inner()))
                .await?
                .into_inner();
            response.header = Some(self.api.header(0));
            return Ok(Response::new(response));
        }
        let members = self
            .change(MembershipChange::Remove {
                id: request.get_ref().id,
            })
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.api.header(0)),
            members: etcd_members(&members),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.api.check_serving(false)?;
        let peer_urls = check_urls(&request.get_ref().peer_ur_ls)?;
        if let Some(mut leader) = self.leader(&request).await? {
            let mut response = leader
                .member_update(forwarded(request.into_inner()))
                .await?
                .into_inner();
            response.header = Some(self.api.header(0));
            return Ok(Response::new(response));
        }
        let update = Member {
            id: request.get_ref().id,
            peer_urls,
            ..Member::default()
        };
        let members = match self
            .api
            .node
            .propose(command::Op::UpdateMember(update))
            .await?
        {
            Applied::Members(members) => members,
            other => return Err(Status::internal(format!("an update applied as {other:?}"))),
        };
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.api.header(0)),
            members: etcd_members(&members),
        }))
    }

    /// Served from this node's state, as etcd 3.4 serves it (not
    /// linearizable: a member added a moment ago may be missing here).
    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        self.api.check_serving(false)?;
        let members = self.api.node.read_state(|state| state.member_list());
        Ok(Response::new(MemberListResponse {
            header: Some(self.api.header(0)),
            members: etcd_members(&members),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.api.check_serving(false)?;
        if let Some(mut leader) = self.leader(&request).await? {
            let mut response = leader
                .member_promote(forwarded(request.into_inner()))
                .await?
                .into_inner();
            response.header = Some(self.api.header(0));
            return Ok(Response::new(response));
        }
        let members = self
            .change(MembershipChange::Promote {
                id: request.get_ref().id,
            })
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.api.header(0)),
            members: etcd_members(&members),
        }))
    }
}
