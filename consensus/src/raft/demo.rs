//! `dslab demo raft-failover`: kill the leader of a three-node cluster,
//! watch the election, keep writing, bring the old leader back.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::rpc::{ClientBuilder, Net, RpcChannel, ServerHandle};
use observability::telemetry::SpanCapture;
use tokio::time::Instant;

use super::{NodeConfig, NodeStatus, RaftNode, Role, Storage};
use crate::etcd::Services;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest};

const NODES: u64 = 3;
const WRITES: usize = 50;

/// One running member.
struct Member {
    node: RaftNode,
    server: ServerHandle,
}

/// Starts member `id` on `listener` (its address in `peers`), keeping
/// its log in `dir`.
async fn start(
    id: u64,
    peers: &BTreeMap<u64, String>,
    listener: std::net::TcpListener,
    dir: &std::path::Path,
) -> Result<Member, Box<dyn std::error::Error + Send + Sync>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let config = NodeConfig::new(id, peers.clone(), Storage::Dir(dir.to_owned()), Net::Tcp);
    let node = RaftNode::start(config).await?;
    let server = Services::new(&node, Net::Tcp)
        .into_server()
        .bind_tcp(listener)?
        .spawn();
    Ok(Member { node, server })
}

fn kv(address: &str) -> Result<KvClient<RpcChannel>, observability::Error> {
    Ok(KvClient::new(
        ClientBuilder::new(Net::Tcp)
            .default_deadline(Duration::from_secs(5))
            .dial(address)?,
    ))
}

/// Writes `keys` through `address`; returns how many were acknowledged.
async fn write(address: &str, keys: std::ops::Range<usize>) -> Result<usize, observability::Error> {
    let mut client = kv(address)?;
    let mut acknowledged = 0;
    for n in keys {
        let key = format!("failover-{n:03}");
        let put = PutRequest {
            key: key.clone().into_bytes(),
            value: key.into_bytes(),
            ..PutRequest::default()
        };
        if client.put(put).await.is_ok() {
            acknowledged += 1;
        }
    }
    Ok(acknowledged)
}

fn role(status: &NodeStatus) -> &'static str {
    match status.role {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
        Role::Follower => "follower",
    }
}

fn rows(members: &BTreeMap<u64, Member>) -> Vec<Vec<String>> {
    members
        .values()
        .map(|member| {
            let s = member.node.status();
            vec![
                s.id.to_string(),
                role(&s).to_owned(),
                s.term.to_string(),
                if s.vote == 0 {
                    "—".into()
                } else {
                    s.vote.to_string()
                },
                s.commit.to_string(),
                s.applied.to_string(),
            ]
        })
        .collect()
}

const HEADER: &[&str] = &["member", "role", "term", "voted for", "commit", "applied"];

/// A cluster of `nodes` members on 127.0.0.1 for a demo, state in memory,
/// ticking every `tick` (elections after 10–20 ticks): each member's id,
/// node and server.
pub(crate) async fn loopback_cluster(
    nodes: u64,
    tick: Duration,
) -> Result<Vec<(u64, RaftNode, ServerHandle)>, Box<dyn std::error::Error + Send + Sync>> {
    let mut peers = BTreeMap::new();
    let mut listeners = Vec::new();
    for id in 1..=nodes {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        peers.insert(id, listener.local_addr()?.to_string());
        listener.set_nonblocking(true)?;
        listeners.push(listener);
    }
    let mut members = Vec::new();
    for (id, listener) in (1..=nodes).zip(listeners) {
        let mut config = NodeConfig::new(
            id,
            peers.clone(),
            Storage::Memory(super::MemDisk::new()),
            Net::Tcp,
        );
        config.timing = super::Timing {
            tick,
            ..super::Timing::default()
        };
        let node = RaftNode::start(config).await?;
        let server = Services::new(&node, Net::Tcp)
            .into_server()
            .bind_tcp(tokio::net::TcpListener::from_std(listener)?)?
            .spawn();
        members.push((id, node, server));
    }
    Ok(members)
}

/// Episodes 17 and 13: failover in a real three-process-style cluster on
/// 127.0.0.1, each member with its own raft-engine directory.
pub async fn raft_failover_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 17: the leader dies; the cluster elects another and keeps every write");
    out.say(
        "Three Raft members on 127.0.0.1, each with its own log on disk (raft-engine, fsync on),",
    );
    out.say("etcd's timing: a heartbeat every 100 ms, an election after 1-2 s of silence.");

    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let mut peers = BTreeMap::new();
    let mut listeners = Vec::new();
    for id in 1..=NODES {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        peers.insert(id, listener.local_addr()?.to_string());
        listeners.push(listener);
    }
    let mut members = BTreeMap::new();
    for (id, listener) in (1..=NODES).zip(listeners) {
        let member = start(id, &peers, listener, dirs[(id - 1) as usize].path()).await?;
        members.insert(id, member);
    }
    let old = members[&1]
        .node
        .wait_for_leader(Duration::from_secs(10))
        .await
        .ok_or("no leader was elected")?;
    // The leader's own view, so the table shows it leading.
    let mut leader_status = members[&old].node.watch_status();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        leader_status.wait_for(|s| s.role == Role::Leader),
    )
    .await;
    let old_term = members[&old].node.status().term;
    out.say(&format!(
        "Member {old} won the first election, in term {old_term}:"
    ));
    out.table(HEADER, &rows(&members));

    let acknowledged_before = write(&peers[&old], 0..WRITES).await?;
    out.say(&format!(
        "{acknowledged_before} of {WRITES} writes acknowledged: each is on a majority's disk."
    ));

    out.section(&format!("Killing the leader, member {old}"));
    let dead = members.remove(&old).ok_or("the leader vanished")?;
    dead.node.stop().await;
    dead.server.shutdown().await?;
    let killed = Instant::now();
    let survivor = members.values().next().ok_or("no survivor")?.node.clone();
    let mut status = survivor.watch_status();
    let elected = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.leader != 0 && s.leader != old && s.term > old_term),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|s| (s.leader, s.term));
    let election = killed.elapsed();
    let (new, new_term) = elected.ok_or("no new leader within 10 s")?;
    out.say("The followers heard nothing for an election timeout, asked each other for pre-votes, then voted:");
    out.table(HEADER, &rows(&members));
    out.say(&format!(
        "Member {new} leads term {new_term}, {:.2} s after the kill.",
        election.as_secs_f64()
    ));
    let acknowledged_during = write(&peers[&new], WRITES..2 * WRITES).await?;
    out.say(&format!(
        "With two of three members up, writes go on: {acknowledged_during} of {WRITES} more acknowledged."
    ));

    out.section(&format!("Member {old} comes back from its disk"));
    // The same address: the others still know it by that.
    let address: SocketAddr = peers[&old].parse()?;
    let listener = std::net::TcpListener::bind(address)?;
    let restarted = start(old, &peers, listener, dirs[(old - 1) as usize].path()).await?;
    let rejoined = Instant::now();
    let mut watch = restarted.node.watch_status();
    let target = members[&new].node.status().commit;
    let mut progress = Vec::new();
    let caught_up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = watch.borrow_and_update().clone();
            if progress.last() != Some(&s.applied) {
                progress.push(s.applied);
            }
            if s.applied >= target && s.leader == new {
                return s;
            }
            if watch.changed().await.is_err() {
                return s;
            }
        }
    })
    .await
    .ok();
    members.insert(old, restarted);
    out.say(&format!(
        "It replays its own log, then learns the rest from member {new}: applied index {}.",
        progress
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    out.table(HEADER, &rows(&members));

    // Every acknowledged write, read from the member that missed half of them.
    let readable = members[&old].node.read_state(|state| {
        (0..2 * WRITES)
            .filter(|n| {
                let key = format!("failover-{n:03}");
                state
                    .mvcc
                    .range(&RangeRequest {
                        key: key.clone().into_bytes(),
                        ..RangeRequest::default()
                    })
                    .is_ok_and(|r| r.kvs.first().is_some_and(|kv| kv.value == key.as_bytes()))
            })
            .count()
    });
    let still_leader = members[&new].node.status();

    out.check(
        "a new leader was elected in a higher term",
        new != old && new_term > old_term,
        format!("member {new}, term {new_term} (was member {old}, term {old_term})"),
    );
    out.check(
        "the election took less than 5 s",
        election < Duration::from_secs(5),
        format!("{:.2} s", election.as_secs_f64()),
    );
    out.check(
        "writes went on with a majority up",
        acknowledged_during == WRITES,
        format!("{acknowledged_during} of {WRITES}"),
    );
    out.check(
        "the old leader caught up as a follower",
        caught_up.is_some_and(|s| s.role == Role::Follower && s.term == new_term),
        format!("in {:.2} s", rejoined.elapsed().as_secs_f64()),
    );
    out.check(
        "its return did not disrupt the new leader",
        still_leader.role == Role::Leader && still_leader.term == new_term,
        format!("member {new} still leads term {}", still_leader.term),
    );
    out.check(
        "every acknowledged write is on the restarted member",
        readable == acknowledged_before + acknowledged_during,
        format!(
            "{readable} of {} keys",
            acknowledged_before + acknowledged_during
        ),
    );
    for member in members.into_values() {
        member.node.stop().await;
        member.server.shutdown().await?;
    }
    Ok(())
}
