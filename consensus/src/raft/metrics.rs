//! A Raft member's state as Prometheus metrics.
//!
//! Episode: 32, "Metrics & Monitoring" (also 17)
//! Pattern: observability / consensus health
//! Try it:  cargo run -- serve raft-kv --id 1 --listen 127.0.0.1:2379 --metrics-listen 127.0.0.1:9464
//! Test it: cargo test -p consensus raft_metrics
//!
//! What an operator watches on a consensus cluster, and why:
//! - `raft_has_leader` — 0 on any member means writes are failing now;
//! - `raft_leader_changes_seen_total` — a rising rate means elections are
//!   churning (timeouts too tight, a flapping link, a slow disk);
//! - `raft_term` — jumps without leader changes mean a partitioned member
//!   keeps campaigning (pre-vote stops it disturbing the rest);
//! - `raft_commit_index` − `raft_applied_index` — the apply backlog; and
//!   one member's commit index lagging the others' is a slow follower;
//! - `raft_log_entries` — whether snapshots keep the log short.
//!
//! They mirror etcd's `etcd_server_has_leader`,
//! `etcd_server_leader_changes_seen_total` and friends, so the same alert
//! rules carry over with a rename.
//!
//! The gauges are read from the member's published status at scrape time.
//! Leader changes happen between scrapes, so a small task watches the status
//! and counts them. Bound: a fixed set of series, no labels from requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use observability::metrics::MetricsRegistry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;

use super::{NodeStatus, RaftNode, Role};

/// The collector registered for one member.
#[derive(Debug)]
pub struct RaftMetrics {
    status: watch::Receiver<NodeStatus>,
    leader_changes: Arc<AtomicU64>,
}

impl RaftMetrics {
    /// Starts counting `node`'s leader changes and registers its metrics.
    /// Call once per member and process.
    pub fn register(node: &RaftNode, registry: &MetricsRegistry) {
        let leader_changes = Arc::new(AtomicU64::new(0));
        let mut status = node.watch_status();
        let counted = leader_changes.clone();
        tokio::spawn(async move {
            let mut leader = status.borrow_and_update().leader;
            // Ends when the node is dropped and its status sender with it.
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().leader;
                // Losing a leader (→ 0) is not a change of leader; gaining
                // one, or a different one, is.
                if now != 0 && now != leader {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                if now != 0 {
                    leader = now;
                }
            }
        });
        registry.register_collector(Self {
            status: node.watch_status(),
            leader_changes,
        });
    }
}

impl Collector for RaftMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.status.borrow().clone();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "raft_member_id",
            "This member's id.",
            count(status.id),
        )?;
        gauge(
            &mut encoder,
            "raft_term",
            "The current term.",
            count(status.term),
        )?;
        gauge(
            &mut encoder,
            "raft_has_leader",
            "1 if this member knows a leader.",
            i64::from(status.leader != 0),
        )?;
        gauge(
            &mut encoder,
            "raft_leader_id",
            "The leader this member believes in; 0 if none.",
            count(status.leader),
        )?;
        gauge(
            &mut encoder,
            "raft_is_leader",
            "1 if this member is the leader.",
            i64::from(status.role == Role::Leader),
        )?;
        gauge(
            &mut encoder,
            "raft_commit_index",
            "Highest log index known committed.",
            count(status.commit),
        )?;
        gauge(
            &mut encoder,
            "raft_applied_index",
            "Highest log index applied to the store.",
            count(status.applied),
        )?;
        gauge(
            &mut encoder,
            "raft_last_log_index",
            "Highest index in this member's log.",
            count(status.last_index),
        )?;
        gauge(
            &mut encoder,
            "raft_snapshot_index",
            "Index of the latest snapshot.",
            count(status.snapshot_index),
        )?;
        gauge(
            &mut encoder,
            "raft_log_entries",
            "Entries in the log, not yet folded into a snapshot.",
            count(status.log_entries),
        )?;
        gauge(
            &mut encoder,
            "raft_voters",
            "Voting members in the configuration.",
            count(status.voters.len() as u64),
        )?;
        gauge(
            &mut encoder,
            "mvcc_revision",
            "The key-value store's revision.",
            status.revision,
        )?;
        let mut roles = encoder.encode_descriptor(
            "raft_role",
            "1 for the role this member is in, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for (role, name) in [
            (Role::Follower, "follower"),
            (Role::PreCandidate, "pre_candidate"),
            (Role::Candidate, "candidate"),
            (Role::Leader, "leader"),
        ] {
            ConstGauge::new(i64::from(status.role == role))
                .encode(roles.encode_family(&[("role", name)])?)?;
        }
        let changes = ConstCounter::new(self.leader_changes.load(Ordering::Relaxed));
        changes.encode(encoder.encode_descriptor(
            "raft_leader_changes_seen",
            "Times this member saw a new leader.",
            None,
            changes.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::v1::command;
    use crate::raft::demo::loopback_cluster;
    use crate::raft::tests::put;

    /// The value of an unlabelled sample in OpenMetrics text.
    fn sample(text: &str, name: &str) -> Option<i64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raft_metrics_report_leadership_indexes_and_leader_changes() {
        let members = loopback_cluster(3, Duration::from_millis(10))
            .await
            .expect("cluster");
        let registries: Vec<MetricsRegistry> = members
            .iter()
            .map(|(_, node, _)| {
                let registry = MetricsRegistry::new();
                RaftMetrics::register(node, &registry);
                registry
            })
            .collect();
        let leader = members[0]
            .1
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        let (_, leader_node, _) = &members[usize::try_from(leader - 1).expect("small")];
        for i in 0..5 {
            leader_node
                .propose(command::Op::Put(put(&format!("k{i}"), "v")))
                .await
                .expect("committed");
        }
        let target = if leader == 1 { 2 } else { 1 };
        leader_node
            .transfer_leader(target)
            .await
            .expect("transferred");
        // Every member must see the new leader before the scrape.
        for (_, node, _) in &members {
            let mut status = node.watch_status();
            tokio::time::timeout(
                Duration::from_secs(10),
                status.wait_for(|s| s.leader == target),
            )
            .await
            .expect("the transfer is seen in time")
            .expect("node alive");
        }
        let texts: Vec<String> = registries.iter().map(MetricsRegistry::encode).collect();
        for (text, (id, node, _)) in texts.iter().zip(&members) {
            let status = node.status();
            assert_eq!(sample(text, "raft_member_id"), Some(*id as i64));
            assert_eq!(sample(text, "raft_has_leader"), Some(1), "{text}");
            assert_eq!(sample(text, "raft_leader_id"), Some(target as i64));
            assert!(sample(text, "raft_commit_index") >= Some(5), "{text}");
            assert!(
                sample(text, "mvcc_revision") >= Some(6),
                "five puts after revision 1"
            );
            assert!(sample(text, "raft_term") >= Some(status.term as i64 - 1));
            assert_eq!(sample(text, "raft_voters"), Some(3));
            assert!(
                sample(text, "raft_leader_changes_seen_total") >= Some(1),
                "the transfer is a leader change:\n{text}"
            );
            let leading = text.contains("raft_role{role=\"leader\"} 1");
            assert_eq!(leading, *id == target, "{text}");
            assert_eq!(
                sample(text, "raft_is_leader"),
                Some(i64::from(*id == target))
            );
        }
        for (_, node, _) in &members {
            node.stop().await;
        }
    }
}
