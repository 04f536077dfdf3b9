//! What the log is applied to: the MVCC store, the membership as etcd
//! reports it (names and URLs beside Raft's ids), and the cluster's id.
//!
//! Applying must be deterministic — every replica applies the same entries
//! in the same order and must reach the same state — so nothing here reads
//! a clock, a random number or a node-local setting.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;

use crate::mvcc::Mvcc;
use crate::proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    TxnResponse,
};
use crate::proto::v1::{Command, Member, StateSnapshot, command};
use crate::{Error, Result};

/// What applying one command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// A membership change or update: the members after it.
    Members(Vec<Member>),
}

/// The replicated state.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    pub cluster_id: u64,
    pub mvcc: Mvcc,
    pub members: BTreeMap<u64, Member>,
    /// Members removed so far: their ids are never given out again.
    pub removed: BTreeSet<u64>,
    /// The last log index applied.
    pub applied: u64,
}

impl StateMachine {
    /// A new cluster's state: an empty store and its founding members.
    pub fn founding(cluster_id: u64, members: Vec<Member>) -> Self {
        Self {
            cluster_id,
            mvcc: Mvcc::new(),
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
            applied: 0,
        }
    }

    /// The id a new member gets: one above every id the cluster ever had.
    pub fn next_member_id(&self) -> Result<u64> {
        let highest = self
            .members
            .keys()
            .chain(&self.removed)
            .max()
            .copied()
            .unwrap_or(0);
        // Ids are the operators' `--id` values: one may be the largest.
        highest
            .checked_add(1)
            .ok_or_else(|| Error::Config("no member id is left above the highest one".into()))
    }

    /// Applies one normal entry's command.
    pub fn apply(&mut self, command: &command::Op) -> Result<Applied> {
        Ok(match command {
            command::Op::Put(put) => Applied::Put(self.mvcc.put(put)?),
            command::Op::DeleteRange(delete) => {
                Applied::DeleteRange(self.mvcc.delete_range(delete)?)
            }
            command::Op::Txn(txn) => Applied::Txn(self.mvcc.txn(txn)?),
            command::Op::Compact(compact) => Applied::Compact(self.mvcc.compact(compact)?),
            command::Op::LeaseGrant(grant) => Applied::LeaseGrant(self.mvcc.grant(grant)?),
            command::Op::LeaseRevoke(revoke) => Applied::LeaseRevoke(self.mvcc.revoke(revoke)?),
            command::Op::UpdateMember(update) => {
                let taken = self.members.values().any(|other| {
                    other.id != update.id
                        && other
                            .peer_urls
                            .iter()
                            .any(|url| update.peer_urls.contains(url))
                });
                let Some(member) = self.members.get_mut(&update.id) else {
                    return Err(Error::MemberNotFound);
                };
                if taken {
                    return Err(Error::PeerUrlExists);
                }
                member.peer_urls = update.peer_urls.clone();
                Applied::Members(self.member_list())
            }
            command::Op::Publish(published) => {
                let Some(member) = self.members.get_mut(&published.id) else {
                    return Err(Error::MemberNotFound);
                };
                member.name = published.name.clone();
                member.client_urls = published.client_urls.clone();
                Applied::Members(self.member_list())
            }
        })
    }

    /// Members in id order, as etcd lists them.
    pub fn member_list(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// The state as snapshot bytes.
    pub fn encode(&self) -> Vec<u8> {
        StateSnapshot {
            cluster_id: self.cluster_id,
            revision: self.mvcc.revision(),
            compact_revision: self.mvcc.compact_revision(),
            keys: self.mvcc.to_histories(),
            members: self.member_list(),
            removed_member_ids: self.removed.iter().copied().collect(),
            leases: self.mvcc.to_lease_entries(),
        }
        .encode_to_vec()
    }

    /// The state snapshot bytes describe, applied up to `applied`.
    pub fn decode(bytes: &[u8], applied: u64) -> Result<Self> {
        let snapshot = StateSnapshot::decode(bytes)
            .map_err(|e| Error::Storage(format!("a corrupt state snapshot: {e}")))?;
        Ok(Self {
            cluster_id: snapshot.cluster_id,
            mvcc: Mvcc::from_histories(
                snapshot.revision,
                snapshot.compact_revision,
                snapshot.keys,
                snapshot.leases,
            ),
            members: snapshot.members.into_iter().map(|m| (m.id, m)).collect(),
            removed: snapshot.removed_member_ids.into_iter().collect(),
            applied,
        })
    }
}

/// Decodes a normal entry's command.
pub fn decode_command(data: &[u8]) -> Result<Command> {
    Command::decode(data).map_err(|e| Error::Transport(format!("a malformed log command: {e}")))
}
