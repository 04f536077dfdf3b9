//! Membership: grow through learners, replace a member, shrink; hand
//! leadership to every node; a removed member stops serving.

use std::future::Future;
use std::time::Duration;

use observability::sim::for_each_seed;
use tonic::Status;

use super::{Cluster, Options, Slot, address, channel, client, get, put};
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MoveLeaderRequest,
};

/// Retries `call` while the cluster settles (no leader yet, a learner
/// still catching up, a change still in flight): up to 10 s.
async fn settled<T, F: Future<Output = Result<T, Status>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, Status> {
    let mut last = None;
    for _ in 0..50 {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or_else(|| Status::unknown("never called")))
}

fn voters(slots: &[Slot], i: usize) -> Vec<u64> {
    let mut voters = slots[i - 1].status().map(|s| s.voters).unwrap_or_default();
    voters.sort_unstable();
    voters
}

/// Adds host `i` as a learner through host `via`, then promotes it once it
/// has caught up.
async fn add_voter(via: usize, i: usize) -> Result<(), Status> {
    let members = ClusterClient::new(channel(via));
    let added = settled(|| {
        let mut members = members.clone();
        async move {
            members
                .member_add(MemberAddRequest {
                    peer_ur_ls: vec![format!("http://{}", address(i))],
                    is_learner: true,
                })
                .await
        }
    })
    .await?
    .into_inner();
    let id = added.member.map_or(0, |m| m.id);
    assert_eq!(id, i as u64, "member ids are handed out in order");
    assert!(added.members.iter().any(|m| m.id == id && m.is_learner));
    settled(|| {
        let mut members = members.clone();
        async move { members.member_promote(MemberPromoteRequest { id }).await }
    })
    .await?;
    Ok(())
}

async fn remove(via: usize, id: u64) -> Result<(), Status> {
    let members = ClusterClient::new(channel(via));
    settled(|| {
        let mut members = members.clone();
        async move { members.member_remove(MemberRemoveRequest { id }).await }
    })
    .await?;
    Ok(())
}

#[test]
fn raft_grows_through_learners_replaces_a_member_and_shrinks_to_one() {
    for_each_seed(|seed| {
        let mut options = Options::new(4);
        options.founders = 1;
        let mut cluster = Cluster::new(seed, &options);
        assert_eq!(cluster.await_leader(Duration::from_secs(5))?, Some(1));
        let written = cluster.write("alone", 10)?;

        // {1} → {1,2,3}, each newcomer a learner until it has caught up.
        cluster.script("grow", async move {
            add_voter(1, 2).await?;
            add_voter(1, 3).await?;
            Ok(())
        });
        cluster.finish(Duration::from_secs(60))?;
        let grown = cluster.run_until(Duration::from_secs(5), |c| {
            (1..=3).all(|i| voters(&c.slots, i) == [1, 2, 3])
        })?;
        assert!(grown.is_some(), "not every member sees {{1,2,3}}");
        cluster.assert_readable(&written)?;

        // Replace 2 with 4.
        cluster.script("replace", async move {
            add_voter(3, 4).await?;
            remove(3, 2).await?;
            Ok(())
        });
        cluster.finish(Duration::from_secs(60))?;
        let replaced = cluster.run_until(Duration::from_secs(5), |c| {
            [1, 3, 4].iter().all(|&i| voters(&c.slots, i) == [1, 3, 4])
        })?;
        assert!(replaced.is_some(), "not every member sees {{1,3,4}}");
        // Member 2 may never see the entry that removed it committed: the
        // others stop replicating to it. It learns when it next calls them.
        let told = cluster.run_until(Duration::from_secs(5), |c| {
            c.status(2).is_some_and(|s| s.removed)
        })?;
        assert!(told.is_some(), "member 2 was not told it was removed");

        // Shrink to {3}, whoever leads; then member 3 alone takes writes,
        // and the removed members refuse to serve.
        cluster.script("shrink", async move {
            remove(3, 1).await?;
            remove(3, 4).await?;
            settled(|| async { client(3).put(put("after", "shrink")).await }).await?;
            Ok(())
        });
        cluster.finish(Duration::from_secs(60))?;
        let told = cluster.run_until(Duration::from_secs(5), |c| {
            [1, 2, 4]
                .iter()
                .all(|&i| c.status(i).is_some_and(|s| s.removed))
        })?;
        assert!(told.is_some(), "a removed member was not told");
        cluster.script("after-shrink", async move {
            for removed in [1, 2, 4] {
                let refused = client(removed).range(get("after")).await;
                let status = refused.err().ok_or("a removed member served a read")?;
                assert_eq!(status.message(), "etcdserver: server stopped");
            }
            let list = ClusterClient::new(channel(3))
                .member_list(MemberListRequest::default())
                .await?
                .into_inner();
            let ids: Vec<u64> = list.members.iter().map(|m| m.id).collect();
            assert_eq!(ids, vec![3]);
            Ok(())
        });
        cluster.finish(Duration::from_secs(20))?;
        assert_eq!(voters(&cluster.slots, 3), vec![3]);
        assert_eq!(cluster.leaders(), vec![3]);
        Ok(())
    });
}

#[test]
fn raft_leadership_moves_to_every_node_and_only_the_leader_may_move_it() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let first = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        let mut order: Vec<usize> = (1..=3).filter(|&i| i != first).collect();
        order.push(first);
        let mut current = first;
        for target in order {
            let follower = (1..=3).find(|&i| i != current).ok_or("no follower")?;
            cluster.script(&format!("move-to-{target}"), async move {
                let refused = MaintenanceClient::new(channel(follower))
                    .move_leader(MoveLeaderRequest {
                        target_id: target as u64,
                    })
                    .await;
                let status = refused.err().ok_or("a follower moved the leadership")?;
                assert_eq!(status.message(), "etcdserver: not leader");
                MaintenanceClient::new(channel(current))
                    .move_leader(MoveLeaderRequest {
                        target_id: target as u64,
                    })
                    .await?;
                Ok(())
            });
            cluster.finish(Duration::from_secs(20))?;
            cluster.run_for(Duration::from_millis(500))?;
            assert_eq!(cluster.stable_leader(), Some(target));
            current = target;
        }
        Ok(())
    });
}
