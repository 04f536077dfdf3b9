//! `dslab demo crdt-partition`: five replicas split in two, updated on
//! both sides, healed — and what it cost to converge, by deltas and by
//! full state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net, RpcServer, ServerHandle};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::client::ReplicaClient;
use super::object::Kind;
use super::{AntiEntropy, CrdtReplica, LinkCuts, ReplicaConfig};
use crate::clock::ReplicaId;
use crate::crdt::{Crdt, NaiveOrSet, NaiveSumCounter, OrSet};
use crate::proto::{self, FILE_DESCRIPTOR_SET};

const REPLICAS: u64 = 5;
const GOSSIP_INTERVAL: Duration = Duration::from_millis(20);
const PRELOADED: usize = 300;

/// Five replicas on 127.0.0.1 and a client for each.
struct LocalCluster {
    ids: Vec<ReplicaId>,
    servers: Vec<ServerHandle>,
    clients: Vec<ReplicaClient>,
    cuts: LinkCuts,
}

impl LocalCluster {
    async fn start(mode: AntiEntropy) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let ids: Vec<ReplicaId> = (1..=REPLICAS).map(ReplicaId).collect();
        let mut listeners = Vec::new();
        for _ in &ids {
            listeners.push(
                tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?,
            );
        }
        let addresses: BTreeMap<ReplicaId, String> = ids
            .iter()
            .zip(&listeners)
            .map(|(&id, listener)| Ok((id, listener.local_addr()?.to_string())))
            .collect::<std::io::Result<_>>()?;
        let cuts = LinkCuts::default();
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        for (&id, listener) in ids.iter().zip(listeners) {
            let mut config = ReplicaConfig::new(id, addresses.clone(), Net::Tcp);
            config.gossip_interval = GOSSIP_INTERVAL;
            config.mode = mode;
            config.cuts = cuts.clone();
            let replica = CrdtReplica::start(config)?;
            let server = RpcServer::new()
                .add_service(replica.into_service(), FILE_DESCRIPTOR_SET)
                .bind_tcp(listener)?
                .spawn();
            clients.push(ReplicaClient::new(
                ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()),
            ));
            servers.push(server);
        }
        Ok(Self {
            ids,
            servers,
            clients,
            cuts,
        })
    }

    /// Every replica's (likes, tags, title).
    async fn snapshot(&mut self) -> Result<Vec<(String, Vec<String>, Vec<String>)>, tonic::Status> {
        let mut views = Vec::new();
        for client in &mut self.clients {
            let likes = client.read(Kind::GCounter, "likes").await?.count;
            let tags = client.read(Kind::OrSet, "tags").await?.elements;
            let title = client.read(Kind::MvRegister, "title").await?.siblings;
            views.push((likes, tags, title));
        }
        Ok(views)
    }

    /// Polls until all replicas agree; how long it took.
    async fn converge(&mut self) -> Result<Option<Duration>, tonic::Status> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let views = self.snapshot().await?;
            if views.windows(2).all(|pair| pair[0] == pair[1]) {
                return Ok(Some(started.elapsed()));
            }
            tokio::time::sleep(GOSSIP_INTERVAL / 2).await;
        }
        Ok(None)
    }

    /// Anti-entropy so far: bytes and messages shipped by all replicas,
    /// and the most gossip rounds any replica has run.
    async fn shipped(&mut self) -> Result<(u64, u64, u64), tonic::Status> {
        let (mut bytes, mut messages, mut rounds) = (0, 0, 0);
        for client in &mut self.clients {
            let status: proto::StatusReply = client.status().await?;
            bytes += status.delta_bytes + status.full_state_bytes;
            messages += status.delta_messages + status.full_state_messages;
            rounds = rounds.max(status.gossip_rounds);
        }
        Ok((bytes, messages, rounds))
    }

    async fn shutdown(self) -> DemoResult {
        for server in self.servers {
            server.shutdown().await?;
        }
        Ok(())
    }
}

/// What one run of the scenario measured.
struct Run {
    converged_after: Option<Duration>,
    bytes_after_heal: u64,
    messages_after_heal: u64,
    rounds_after_heal: u64,
    final_view: (String, Vec<String>, Vec<String>),
    acknowledged_likes: u64,
    resolved_title: Vec<String>,
}

/// Preload, partition, update both sides, heal, converge.
async fn scenario(
    mode: AntiEntropy,
    out: &mut Narrator,
    narrate: bool,
) -> Result<Run, Box<dyn std::error::Error + Send + Sync>> {
    let mut cluster = LocalCluster::start(mode).await?;
    for i in 0..PRELOADED {
        cluster.clients[0]
            .insert("tags", &format!("item-{i:03}"))
            .await?;
    }
    cluster.clients[0].insert("tags", "contested").await?;
    cluster.clients[0]
        .write("title", "Distributed Systems", None)
        .await?;
    cluster.converge().await?;

    cluster.cuts.partition(&cluster.ids[..2], &cluster.ids);
    let mut acknowledged_likes = 0;
    for (replica, amount) in [(0, 5), (1, 3), (2, 7), (3, 2), (4, 1)] {
        cluster.clients[replica].increment("likes", amount).await?;
        acknowledged_likes += amount;
    }
    cluster.clients[0].remove("tags", "item-000").await?;
    cluster.clients[1].remove("tags", "item-001").await?;
    cluster.clients[0].insert("tags", "left-1").await?;
    cluster.clients[0].remove("tags", "contested").await?;
    cluster.clients[2].insert("tags", "right-1").await?;
    // Concurrent with the remove on the other side: add wins.
    cluster.clients[3].insert("tags", "contested").await?;
    cluster.clients[1]
        .write("title", "Distributed Systems, 2nd ed.", None)
        .await?;
    cluster.clients[4]
        .write("title", "Distributed Systems (draft)", None)
        .await?;
    tokio::time::sleep(GOSSIP_INTERVAL * 10).await;
    if narrate {
        let views = cluster.snapshot().await?;
        out.say(
            "During the partition {r1, r2} | {r3, r4, r5}, each side sees only its own updates:",
        );
        let rows: Vec<Vec<String>> = cluster
            .ids
            .iter()
            .zip(&views)
            .map(|(id, (likes, tags, title))| {
                vec![
                    id.to_string(),
                    likes.clone(),
                    tags.len().to_string(),
                    tags.contains(&"contested".to_owned()).to_string(),
                    title.join(" | "),
                ]
            })
            .collect();
        out.table(
            &["replica", "likes", "tags", "has \"contested\"", "title"],
            &rows,
        );
    }

    let (bytes_before, messages_before, rounds_before) = cluster.shipped().await?;
    cluster.cuts.heal();
    let converged_after = cluster.converge().await?;
    let (bytes_after, messages_after, rounds_after) = cluster.shipped().await?;
    let final_view = cluster.snapshot().await?.swap_remove(0);

    // A client that read both siblings resolves them with one write.
    let read = cluster.clients[2].read(Kind::MvRegister, "title").await?;
    cluster.clients[2]
        .write("title", "Distributed Systems, 2nd ed.", Some(&read))
        .await?;
    cluster.converge().await?;
    let resolved_title = cluster.clients[0]
        .read(Kind::MvRegister, "title")
        .await?
        .siblings;
    cluster.shutdown().await?;
    Ok(Run {
        converged_after,
        bytes_after_heal: bytes_after - bytes_before,
        messages_after_heal: messages_after - messages_before,
        rounds_after_heal: rounds_after.saturating_sub(rounds_before),
        final_view,
        acknowledged_likes,
        resolved_title,
    })
}

/// Episodes 21 and 22: a partition, concurrent updates, convergence.
pub async fn crdt_partition_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episodes 21-22: five CRDT replicas, a partition, and a heal");
    out.say(&format!(
        "Five CrdtReplica services on 127.0.0.1 gossip every {GOSSIP_INTERVAL:?} with two random peers. A set \
         \"tags\" holds {PRELOADED} items"
    ));
    out.say("and \"contested\"; then {r1, r2} are cut off from {r3, r4, r5} and both sides take updates:");
    out.say("likes +5 +3 | +7 +2 +1, removes and adds on \"tags\" (r1 removes \"contested\" while r4 adds it");
    out.say("again), and two concurrent writes to the MV register \"title\".");
    let delta = scenario(AntiEntropy::Delta, out, true).await?;
    let full = scenario(AntiEntropy::FullState, out, false).await?;

    let (likes, tags, title) = &delta.final_view;
    out.say("After the heal, every replica reads:");
    out.say(&format!(
        "  likes = {likes}; tags: {} elements, \"contested\" present: {}",
        tags.len(),
        tags.contains(&"contested".to_owned())
    ));
    out.say(&format!(
        "  title siblings: {title:?} — a client resolves them: {:?}",
        delta.resolved_title
    ));
    let rows: Vec<Vec<String>> = [("deltas", &delta), ("full state", &full)]
        .iter()
        .map(|(name, run)| {
            vec![
                (*name).to_owned(),
                run.converged_after
                    .map_or("no".to_owned(), |after| format!("{after:.0?}")),
                run.rounds_after_heal.to_string(),
                run.messages_after_heal.to_string(),
                run.bytes_after_heal.to_string(),
            ]
        })
        .collect();
    out.table(
        &[
            "anti-entropy",
            "converged after heal",
            "gossip rounds",
            "messages",
            "bytes shipped",
        ],
        &rows,
    );

    let expected_tags: BTreeSet<String> = (2..PRELOADED)
        .map(|i| format!("item-{i:03}"))
        .chain(["left-1", "right-1", "contested"].map(str::to_owned))
        .collect();
    out.check(
        "all five replicas converge after the heal, in both modes",
        delta.converged_after.is_some()
            && full.converged_after.is_some()
            && delta.final_view == full.final_view,
        format!("{likes} likes, {} tags on every replica", tags.len()),
    );
    out.check(
        "the counter equals the sum of every acknowledged increment",
        *likes == delta.acknowledged_likes.to_string(),
        format!("{likes} = 5 + 3 + 7 + 2 + 1"),
    );
    out.check(
        "the set holds exactly what the operations imply (a concurrent add beats the remove)",
        tags.iter().cloned().collect::<BTreeSet<_>>() == expected_tags,
        "2 removed, 3 added, \"contested\" kept",
    );
    out.check(
        "concurrent register writes surface as siblings, and one write resolves them",
        title.len() == 2 && delta.resolved_title == ["Distributed Systems, 2nd ed."],
        format!("{} siblings, then 1", title.len()),
    );
    out.check(
        "deltas ship at most 10% of the bytes full-state anti-entropy ships",
        delta.bytes_after_heal * 10 <= full.bytes_after_heal,
        format!(
            "{} vs {} bytes ({:.1}%)",
            delta.bytes_after_heal,
            full.bytes_after_heal,
            100.0 * delta.bytes_after_heal as f64 / full.bytes_after_heal.max(1) as f64
        ),
    );

    out.section("Episode 21's memory overhead: 10,000 add/remove cycles");
    let (mut naive, mut optimized) = (NaiveOrSet::new(), OrSet::new());
    for cycle in 0..10_000u32 {
        let replica = ReplicaId(u64::from(cycle % 2) + 1);
        naive.insert(replica, cycle % 50);
        naive.remove(&(cycle % 50));
        optimized.insert(replica, cycle % 50);
        optimized.remove(&(cycle % 50));
    }
    out.table(
        &["OR-Set", "elements", "stored entries", "tombstones"],
        &[
            vec![
                "with tombstones".into(),
                naive.value().len().to_string(),
                naive.stored_entries().to_string(),
                naive.tombstones().to_string(),
            ],
            vec![
                "optimized (causal context)".into(),
                optimized.len().to_string(),
                optimized.stored_entries().to_string(),
                "0".into(),
            ],
        ],
    );
    out.check(
        "the tombstone OR-Set remembers every removal; the optimized one only its replicas",
        naive.tombstones() == 10_000 && optimized.stored_entries() == 2,
        format!(
            "{} vs {} entries for an empty set",
            naive.stored_entries(),
            optimized.stored_entries()
        ),
    );

    out.section("The broken twin: a counter merged by sum");
    let mut sender = NaiveSumCounter::new();
    let delta_state = sender.increment(ReplicaId(1), 5);
    let mut receiver = NaiveSumCounter::new();
    receiver.merge(&delta_state);
    receiver.merge(&delta_state);
    out.say("Replica 1 increments by 5 and gossips its delta; the message is delivered twice (a retry).");
    out.check(
        "the sum-merged counter double counts a redelivered delta",
        receiver.value() == 10,
        format!(
            "reads {} after one increment of 5; a G-Counter reads 5",
            receiver.value()
        ),
    );
    Ok(())
}
