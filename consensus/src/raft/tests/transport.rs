//! The peer transport against callers who are not peers, and under writes
//! as large as etcd allows.

// raft-rs's protobuf-2 messages are built through setters.
#![allow(clippy::field_reassign_with_default)]

use std::time::Duration;

use observability::sim::for_each_seed;
use protobuf::Message as _;
use raft::eraftpb::{Entry, Message, MessageType};
use tonic::{Code, Request};

use super::{Cluster, Options, channel, client, put, shared};
use crate::proto::v1::MessageBatch;
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::raft::PeerSecret;
use crate::raft::wire::MAX_TERM;

/// A message as a forger would write it: from the leader, to `to`.
fn forged(kind: MessageType, from: u64, to: u64, term: u64) -> Vec<u8> {
    let mut message = Message::default();
    message.set_msg_type(kind);
    message.from = from;
    message.to = to;
    message.term = term;
    if kind == MessageType::MsgAppend {
        let mut entry = Entry::default();
        entry.term = term;
        entry.data = b"forged".to_vec().into();
        message.set_entries(vec![entry].into());
    }
    message.write_to_bytes().unwrap_or_default()
}

/// Sends `messages` to host `to`'s transport, with `secret` if any; returns
/// how the stream ended.
async fn inject(
    to: usize,
    secret: Option<&str>,
    messages: Vec<Vec<u8>>,
) -> Result<(), tonic::Status> {
    let batch = MessageBatch {
        cluster_id: 0,
        messages,
    };
    let mut request = Request::new(futures_util::stream::iter([batch]));
    if let Some(secret) = secret {
        request.metadata_mut().insert(
            "dslab-peer-secret",
            secret
                .parse()
                .map_err(|_| tonic::Status::internal("bad secret"))?,
        );
    }
    RaftTransportClient::new(channel(to))
        .stream(request)
        .await
        .map(drop)
}

#[test]
fn raft_callers_without_the_peer_secret_are_refused() {
    for_each_seed(|seed| {
        let mut options = Options::new(3);
        options.peer_secret = Some(PeerSecret::new("correct-horse-battery-staple")?);
        let mut cluster = Cluster::new(seed, &options);
        let leader = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        let status = cluster.status(leader).ok_or("leader stopped")?;
        let follower = if leader == 1 { 2 } else { 1 };
        let (outcome, refusals) = shared::<Vec<Code>>();
        cluster.script("forger", async move {
            let append = forged(
                MessageType::MsgAppend,
                leader as u64,
                follower as u64,
                status.term + 1,
            );
            for secret in [None, Some("wrong-horse-battery-staple")] {
                let refused = inject(follower, secret, vec![append.clone()]).await;
                outcome
                    .borrow_mut()
                    .push(refused.err().map_or(Code::Ok, |s| s.code()));
            }
            Ok(())
        });
        cluster.finish(Duration::from_secs(10))?;
        assert_eq!(
            *refusals.borrow(),
            [Code::Unauthenticated, Code::Unauthenticated]
        );
        // The members, which share the secret, carry on as before.
        cluster.run_for(Duration::from_secs(2))?;
        assert_eq!(cluster.stable_leader(), Some(leader));
        assert_eq!(
            cluster.status(leader).ok_or("leader stopped")?.term,
            status.term
        );
        let written = cluster.write("after", 5)?;
        assert_eq!(written.len(), 5);
        Ok(())
    });
}

#[test]
fn raft_a_term_no_cluster_could_reach_is_refused() {
    for_each_seed(|seed| {
        // No secret: the transport believes anyone, but not the impossible.
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let leader = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        let term = cluster.status(leader).ok_or("leader stopped")?.term;
        let (outcome, refusal) = shared::<Option<Code>>();
        cluster.script("forger", async move {
            let poison = forged(MessageType::MsgHeartbeat, leader as u64, 3, u64::MAX);
            let refused = inject(3, None, vec![poison]).await;
            *outcome.borrow_mut() = refused.err().map(|s| s.code());
            Ok(())
        });
        cluster.finish(Duration::from_secs(10))?;
        assert_eq!(*refusal.borrow(), Some(Code::InvalidArgument));
        cluster.run_for(Duration::from_secs(3))?;
        for i in 1..=3 {
            let status = cluster.status(i).ok_or("a node stopped")?;
            assert!(!status.stopped && status.term <= MAX_TERM && status.term == term);
        }
        Ok(())
    });
}

#[test]
fn raft_values_as_large_as_etcd_allows_replicate_under_concurrency() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let leader = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        // Eight writers at once, 1.4 MiB each: more than one batch's worth
        // of appends in flight to every follower.
        let (outcome, acknowledged) = shared::<usize>();
        cluster.script("large-writers", async move {
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let outcome = outcome.clone();
                    tokio::task::spawn_local(async move {
                        let value = "v".repeat(1400 * 1024);
                        for n in 0..3 {
                            let key = format!("large-{w}-{n}");
                            if client(leader).put(put(&key, &value)).await.is_ok() {
                                *outcome.borrow_mut() += 1;
                            }
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await?;
            }
            Ok(())
        });
        cluster.finish(Duration::from_secs(60))?;
        assert_eq!(*acknowledged.borrow(), 24, "large writes timed out");
        assert!(
            cluster.converge(Duration::from_secs(10))?,
            "followers did not catch up"
        );
        Ok(())
    });
}
