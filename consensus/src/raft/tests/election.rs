//! Leader election: one leader, quickly; none without a majority; a lost
//! leader replaced, and quiet when it returns.

use std::time::Duration;

use observability::sim::for_each_seed;

use super::{Cluster, Options};
use crate::raft::Role;

const FIVE_SECONDS: Duration = Duration::from_secs(5);

#[test]
fn raft_three_nodes_elect_exactly_one_leader_within_five_seconds() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let leader = cluster
            .await_leader(FIVE_SECONDS)?
            .ok_or("no leader within 5 s of start")?;
        let term = cluster.status(leader).ok_or("leader stopped")?.term;
        // A healthy cluster keeps its leader: no spurious elections.
        cluster.run_for(Duration::from_secs(10))?;
        assert_eq!(cluster.leaders(), vec![leader]);
        assert_eq!(cluster.status(leader).ok_or("leader stopped")?.term, term);
        for i in 1..=3 {
            assert_eq!(
                cluster.status(i).ok_or("node stopped")?.leader,
                leader as u64
            );
        }
        Ok(())
    });
}

#[test]
fn raft_minority_side_of_a_partition_has_no_leader() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(5));
        let leader = cluster.await_leader(FIVE_SECONDS)?.ok_or("no leader")?;
        // The leader and one follower on one side, three nodes on the other.
        let follower = if leader == 1 { 2 } else { 1 };
        let minority = [leader, follower];
        cluster.split(&minority);
        // Check quorum: within an election timeout or two the old leader
        // notices it cannot reach a majority and steps down; the majority
        // elects its own.
        cluster.run_for(Duration::from_secs(5))?;
        for _ in 0..100 {
            cluster.run_for(Duration::from_millis(100))?;
            for i in minority {
                let status = cluster.status(i).ok_or("node stopped")?;
                assert_ne!(status.role, Role::Leader, "node {i} leads a minority");
            }
        }
        let majority_leader = cluster
            .stable_leader()
            .ok_or("the majority has no leader")?;
        assert!(!minority.contains(&majority_leader));
        Ok(())
    });
}

#[test]
fn raft_isolated_leader_is_replaced_and_steps_down_on_rejoin() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let old = cluster.await_leader(FIVE_SECONDS)?.ok_or("no leader")?;
        let old_term = cluster.status(old).ok_or("leader stopped")?.term;
        cluster.isolate(old);
        cluster
            .run_until(FIVE_SECONDS, |c| {
                c.leaders()
                    .iter()
                    .any(|&l| l != old && c.status(l).is_some_and(|s| s.term > old_term))
            })?
            .ok_or("no new leader within 5 s of isolating the old one")?;
        let new = *cluster
            .leaders()
            .iter()
            .find(|&&l| l != old)
            .ok_or("lost the new leader")?;
        cluster.run_for(Duration::from_secs(3))?;
        // Alone, the old leader stepped down (check quorum) and — thanks to
        // pre-vote — has not inflated its term campaigning.
        let alone = cluster.status(old).ok_or("old leader stopped")?;
        assert_ne!(alone.role, Role::Leader);
        assert_eq!(alone.term, old_term, "an isolated node bumped its term");

        cluster.heal();
        let new_term = cluster.status(new).ok_or("new leader stopped")?.term;
        cluster
            .run_until(FIVE_SECONDS, |c| {
                c.status(old).is_some_and(|s| s.leader == new as u64)
            })?
            .ok_or("the old leader did not follow the new one")?;
        cluster.run_for(Duration::from_secs(3))?;
        // It rejoined as a follower without disrupting the new leader.
        assert_eq!(cluster.leaders(), vec![new]);
        assert_eq!(
            cluster.status(new).ok_or("new leader stopped")?.term,
            new_term
        );
        Ok(())
    });
}
