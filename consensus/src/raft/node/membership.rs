//! Membership changes and leadership transfer, as the Ready loop makes
//! them.
//!
//! One change at a time, each a raft-rs `ConfChangeV2` whose context
//! names the member (its id and URLs, so that every replica's member list
//! agrees). A new member joins as a learner and is promoted once it has
//! caught up (etcd's rule: within 90 % of the leader's log), so that it
//! never slows commits while it copies the log. After a joint change the
//! leader leaves the joint configuration explicitly, also after a leader
//! change. A removed member stops; a member added by `MemberAdd`
//! publishes its own name and client URL once it runs.

use super::*;

impl Loop {
    /// A member added by `MemberAdd` is nameless in the cluster's records
    /// until it runs; once it knows the leader, it proposes its name and
    /// client URL (raft-rs forwards a follower's proposal to the leader),
    /// and again every ten ticks until the record shows them.
    pub(super) fn publish_self(&mut self) {
        let nameless = read(&self.state)
            .members
            .get(&self.id)
            .is_some_and(|member| member.name.is_empty());
        let Some(address) = self.settings.initial_peers.get(&self.id) else {
            return;
        };
        if !nameless || self.raw.raft.leader_id == raft::INVALID_ID {
            return;
        }
        let url = crate::raft::peer_url(address);
        let op = command::Op::Publish(Member {
            id: self.id,
            name: format!("node-{}", self.id),
            client_urls: vec![url],
            ..Member::default()
        });
        // Nobody waits for this entry: id 0.
        let data = Command {
            id: 0,
            op: Some(op),
        }
        .encode_to_vec();
        if let Err(err) = self.raw.propose(Vec::new(), data) {
            tracing::debug!(node = self.id, %err, "publishing this member's name failed; will retry");
        }
    }

    pub(super) fn propose_membership(
        &mut self,
        change: MembershipChange,
        reply: oneshot::Sender<Result<Applied>>,
    ) {
        // A new configuration has new majorities; the lease was granted by
        // an old one.
        self.lease = None;
        if !self.is_leader() {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        match self.membership_change(change) {
            Ok((id, index)) => {
                self.await_entry(id, index, reply);
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Checks a membership change against the cluster as it is, and
    /// proposes it; returns the proposal id and its log index.
    pub(super) fn membership_change(&mut self, change: MembershipChange) -> Result<(u64, u64)> {
        if self.raw.raft.has_pending_conf() {
            // One change at a time: raft-rs would silently turn a second
            // one into an empty entry.
            return Err(Error::Unhealthy);
        }
        let (change_type, member) = {
            let state = read(&self.state);
            match change {
                MembershipChange::Add { member, learner } => {
                    if state.members.contains_key(&member.id) || state.removed.contains(&member.id)
                    {
                        return Err(Error::MemberExists);
                    }
                    let taken = state
                        .members
                        .values()
                        .any(|m| m.peer_urls.iter().any(|url| member.peer_urls.contains(url)));
                    if taken {
                        return Err(Error::PeerUrlExists);
                    }
                    let learners = state.members.values().filter(|m| m.is_learner).count();
                    if learner && learners >= crate::raft::MAX_LEARNERS {
                        return Err(Error::TooManyLearners);
                    }
                    let kind = if learner {
                        ConfChangeType::AddLearnerNode
                    } else {
                        ConfChangeType::AddNode
                    };
                    (kind, member)
                }
                MembershipChange::Remove { id } => {
                    let member = state
                        .members
                        .get(&id)
                        .cloned()
                        .ok_or(Error::MemberNotFound)?;
                    let voters = state.members.values().filter(|m| !m.is_learner).count();
                    if !member.is_learner && voters <= 1 {
                        return Err(Error::NotEnoughStartedMembers);
                    }
                    (ConfChangeType::RemoveNode, member)
                }
                MembershipChange::Promote { id } => {
                    let member = state
                        .members
                        .get(&id)
                        .cloned()
                        .ok_or(Error::MemberNotFound)?;
                    if !member.is_learner {
                        return Err(Error::MemberNotLearner);
                    }
                    // etcd's rule: a learner whose log is within 90 % of the
                    // leader's may vote; one further behind would only slow
                    // every commit down while it catches up.
                    let leader_match = self.raw.raft.raft_log.last_index();
                    let ready = self
                        .raw
                        .raft
                        .prs()
                        .get(id)
                        .is_some_and(|p| p.matched as f64 >= leader_match as f64 * 0.9);
                    if !ready {
                        return Err(Error::LearnerNotReady);
                    }
                    (ConfChangeType::AddNode, member)
                }
            }
        };
        let id = self.next_id();
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = member.id;
        let mut change = ConfChangeV2::default();
        change.set_changes(vec![single].into());
        change.context = ConfChangeContext {
            proposal_id: id,
            member: Some(member),
        }
        .encode_to_vec()
        .into();
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose_conf_change(Vec::new(), change) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                Ok((id, self.raw.raft.raft_log.last_index()))
            }
            _ => Err(Error::LeaderChanged),
        }
    }

    pub(super) fn transfer(&mut self, target: u64, reply: oneshot::Sender<Result<()>>) {
        // The transferee campaigns at once, and voters grant it whatever
        // lease they honour: this leader's lease ends now.
        self.lease = None;
        if !self.is_leader() {
            let _ = reply.send(Err(Error::NotLeader));
            return;
        }
        let voter = self
            .raw
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .any(|id| id == target);
        if !voter {
            let _ = reply.send(Err(Error::BadLeaderTransferee));
            return;
        }
        if target == self.id {
            let _ = reply.send(Ok(()));
            return;
        }
        self.raw.transfer_leader(target);
        let deadline = self.deadline();
        self.transfers.push((target, deadline, reply));
    }

    /// raft-rs leaves a joint configuration by itself only if the leader
    /// that entered it is still leading when it applies; a new leader
    /// must propose the (empty) leaving change itself.
    pub(super) fn leave_joint_if_needed(&mut self) {
        if !self.is_leader() || self.raw.raft.has_pending_conf() {
            return;
        }
        let joint = !self
            .raw
            .raft
            .prs()
            .conf()
            .to_conf_state()
            .voters_outgoing
            .is_empty();
        if joint
            && let Err(err) = self
                .raw
                .propose_conf_change(Vec::new(), ConfChangeV2::default())
        {
            tracing::debug!(node = self.id, %err, "leaving the joint configuration");
        }
    }

    /// Applies a membership change; returns the waiting proposal's result.
    pub(super) fn apply_conf_change(
        &mut self,
        entry: &raft::eraftpb::Entry,
    ) -> Result<Option<(u64, Result<Applied>)>> {
        let change = match wire::decode_conf_change(entry) {
            Ok(change) => change,
            Err(err) => {
                tracing::error!(node = self.id, index = entry.index, %err, "a malformed membership change");
                return Ok(None);
            }
        };
        let context = ConfChangeContext::decode(change.get_context()).unwrap_or_default();
        if let Err(err) = self.raw.apply_conf_change(&change) {
            tracing::warn!(node = self.id, %err, "raft refused a membership change");
            return Ok(Some((
                context.proposal_id,
                Err(Error::Config(err.to_string())),
            )));
        }
        let mut removed_self = false;
        {
            let mut state = lock(&self.state);
            for single in change.get_changes() {
                let id = single.node_id;
                match single.get_change_type() {
                    ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                        let learner = single.get_change_type() == ConfChangeType::AddLearnerNode;
                        let mut member = state.members.get(&id).cloned().unwrap_or_else(|| {
                            context
                                .member
                                .clone()
                                .filter(|m| m.id == id)
                                .unwrap_or(Member {
                                    id,
                                    ..Member::default()
                                })
                        });
                        member.is_learner = learner;
                        state.members.insert(id, member);
                    }
                    ConfChangeType::RemoveNode => {
                        state.members.remove(&id);
                        state.removed.insert(id);
                        removed_self |= id == self.id;
                    }
                }
            }
        }
        self.sync_peers();
        if removed_self {
            // A removed member must stop: it is no longer part of any
            // majority, and it would campaign forever, disrupting the rest.
            tracing::info!(node = self.id, "removed from the cluster; stopping");
            self.removed = true;
        }
        let members = read(&self.state).member_list();
        Ok(Some((context.proposal_id, Ok(Applied::Members(members)))))
    }

    /// Points the transport at the members' current addresses.
    pub(super) fn sync_peers(&mut self) {
        let state = read(&self.state);
        let addresses: Vec<(u64, String)> = if state.members.is_empty() {
            self.settings
                .initial_peers
                .iter()
                .map(|(id, address)| (*id, crate::raft::peer_url(address)))
                .collect()
        } else {
            state
                .members
                .values()
                .filter_map(|m| m.peer_urls.first().map(|url| (m.id, url.clone())))
                .collect()
        };
        drop(state);
        self.peers
            .set_members(addresses.iter().map(|(id, url)| (*id, url.as_str())));
    }
}
