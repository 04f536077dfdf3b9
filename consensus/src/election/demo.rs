//! `dslab demo leader-election`: bully, ring and Raft through the same
//! four phases — start, the leader's crash, a partition, the heal — with
//! the messages each spends, the time each takes, and how many leaders
//! each side of the partition ends up with.

use std::collections::BTreeMap;
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::ServerHandle;
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::compare::{REPORT_HEADER, compare};
use crate::raft::demo::loopback_cluster;
use crate::raft::{RaftNode, Role};

const NODES: u64 = 5;

/// A five-member Raft cluster on 127.0.0.1 whose elections take 100–200
/// ms, like the bully and ring timing.
struct RaftCluster {
    nodes: BTreeMap<u64, (RaftNode, ServerHandle)>,
}

impl RaftCluster {
    async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let members = loopback_cluster(NODES, Duration::from_millis(10)).await?;
        Ok(Self {
            nodes: members
                .into_iter()
                .map(|(id, node, server)| (id, (node, server)))
                .collect(),
        })
    }

    fn messages(&self) -> u64 {
        self.nodes
            .values()
            .map(|(node, _)| node.election_messages_sent())
            .sum()
    }

    /// The members of `side` that believe they lead.
    fn leaders(&self, side: &[u64]) -> Vec<u64> {
        side.iter()
            .filter(|id| {
                self.nodes
                    .get(id)
                    .is_some_and(|(node, _)| node.status().role == Role::Leader)
            })
            .copied()
            .collect()
    }

    /// Waits until the members of `side` agree on one leader among them
    /// (a majority of the cluster following it); answers it and how long.
    async fn agreed(&self, side: &[u64], since: Instant) -> Option<(u64, Duration)> {
        let deadline = since + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let [leader] = self.leaders(side)[..] {
                let followers = side
                    .iter()
                    .filter_map(|id| self.nodes.get(id))
                    .filter(|(node, _)| node.status().leader == leader)
                    .count();
                if followers == side.len() && followers as u64 > NODES / 2 {
                    return Some((leader, since.elapsed()));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    async fn stop(self) {
        for (node, server) in self.nodes.into_values() {
            node.stop().await;
            let _ = server.shutdown().await;
        }
    }
}

fn row(phase: &str, messages: u64, took: Option<Duration>, sides: &[Vec<u64>]) -> Vec<String> {
    let sides: Vec<String> = sides
        .iter()
        .map(|side| {
            let ids: Vec<String> = side.iter().map(u64::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    vec![
        "raft".into(),
        phase.into(),
        NODES.to_string(),
        messages.to_string(),
        took.map_or_else(|| "none".into(), |t| format!("{} ms", t.as_millis())),
        sides.join(" | "),
    ]
}

/// Episode 17 (and 4): the classic elections against Raft's.
pub async fn leader_election_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 17: three ways to pick a leader — bully, ring, Raft");
    out.say("Five nodes each. Bully and ring run on their pure cores in simulated time (seed 1),");
    out.say("with 1–5 ms links; Raft runs five real members on 127.0.0.1 whose elections");
    out.say("take 100–200 ms. Messages count votes and election traffic, not heartbeats.");
    let classic = compare(1);
    let mut rows: Vec<Vec<String>> = classic.iter().map(|r| r.cells()).collect();

    let raft = RaftCluster::start().await?;
    let started = Instant::now();
    let all: Vec<u64> = (1..=NODES).collect();
    let (first, took) = raft
        .agreed(&all, started)
        .await
        .ok_or("Raft elected nobody")?;
    rows.push(row(
        "start",
        raft.messages(),
        Some(took),
        &[raft.leaders(&all)],
    ));

    let before = raft.messages();
    let mut raft = raft;
    if let Some((node, server)) = raft.nodes.remove(&first) {
        node.stop().await;
        server.shutdown().await?;
    }
    let crashed = Instant::now();
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != first).collect();
    let after_crash = raft.agreed(&survivors, crashed).await;
    rows.push(row(
        "leader crash",
        raft.messages() - before,
        after_crash.map(|(_, took)| took),
        &[raft.leaders(&survivors)],
    ));
    raft.stop().await;

    // A fresh cluster; its leader and one other on the small side.
    let raft = RaftCluster::start().await?;
    let (leader, _) = raft
        .agreed(&all, Instant::now())
        .await
        .ok_or("Raft elected nobody")?;
    let partner = all
        .iter()
        .copied()
        .find(|id| *id != leader)
        .unwrap_or(leader);
    let small: Vec<u64> = vec![leader.min(partner), leader.max(partner)];
    let large: Vec<u64> = all
        .iter()
        .copied()
        .filter(|id| !small.contains(id))
        .collect();
    let before = raft.messages();
    for (side, other) in [(&small, &large), (&large, &small)] {
        for id in side {
            if let Some((node, _)) = raft.nodes.get(id) {
                node.cut(other, true);
            }
        }
    }
    let split = Instant::now();
    let elected = raft.agreed(&large, split).await;
    // Give the old leader its election timeout to notice it lost its
    // majority (check quorum) and step down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let partition_sides = [raft.leaders(&large), raft.leaders(&small)];
    rows.push(row(
        "partition",
        raft.messages() - before,
        elected.map(|(_, took)| took),
        &partition_sides,
    ));
    let before = raft.messages();
    for (node, _) in raft.nodes.values() {
        node.cut(&all, false);
    }
    let healed = Instant::now();
    let rejoined = raft.agreed(&all, healed).await;
    rows.push(row(
        "heal",
        raft.messages() - before,
        rejoined.map(|(_, took)| took),
        &[raft.leaders(&all)],
    ));
    raft.stop().await;

    out.table(&REPORT_HEADER, &rows);
    out.say("Bully and ring trust silence: the side without the leader elects its own, and");
    out.say("for the length of the partition the group has two. Raft's leader needs a");
    out.say("majority's votes, which only one side has; the other side's old leader steps");
    out.say("down when it can no longer hear a majority.");

    let split_brain = |algorithm: &str| {
        classic
            .iter()
            .filter(|r| r.algorithm.name() == algorithm && r.phase.name() == "partition")
            .any(|r| r.leaders.iter().filter(|side| !side.is_empty()).count() > 1)
    };
    let cost = |algorithm: &str| {
        classic
            .iter()
            .find(|r| r.algorithm.name() == algorithm && r.phase.name() == "start")
            .map_or(0, |r| r.messages)
    };
    out.check(
        "bully ends the partition with a leader on each side (split brain)",
        split_brain("bully"),
        "both sides elected".to_owned(),
    );
    out.check(
        "ring does too",
        split_brain("ring"),
        "both sides elected".to_owned(),
    );
    out.check(
        "Raft elects on the majority side only",
        elected.is_some() && partition_sides[1].is_empty() && partition_sides[0].len() == 1,
        format!(
            "majority side {:?}, minority side {:?}",
            partition_sides[0], partition_sides[1]
        ),
    );
    out.check(
        "bully spends more messages than ring to elect from a cold start",
        cost("bully") > cost("ring"),
        format!("{} vs {}", cost("bully"), cost("ring")),
    );
    out.check(
        "Raft elects a new leader after the crash",
        after_crash.is_some(),
        after_crash.map_or_else(
            || "nobody".to_owned(),
            |(leader, took)| format!("member {leader} in {} ms", took.as_millis()),
        ),
    );
    Ok(())
}
