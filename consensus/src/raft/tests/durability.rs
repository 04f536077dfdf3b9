//! Durability: an acknowledged write survives any crash that leaves the
//! disks — of every node at once, of the leader, of the followers.

use std::time::Duration;

use observability::sim::for_each_seed;

use super::{Cluster, Options, assert_logs_match};

const ELECTION: Duration = Duration::from_secs(10);

#[test]
fn raft_acknowledged_writes_survive_crashes_of_all_the_leader_and_the_followers() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        cluster.await_leader(ELECTION)?.ok_or("no leader")?;
        let mut acknowledged = cluster.write("before-all", 30)?;
        assert_eq!(acknowledged.len(), 30, "a healthy cluster refused writes");

        // Every node at once: nothing in memory survives.
        for i in 1..=3 {
            cluster.crash(i);
        }
        cluster.run_for(Duration::from_secs(1))?;
        for i in 1..=3 {
            cluster.restart(i)?;
        }
        cluster
            .await_leader(ELECTION)?
            .ok_or("no leader after restarting all")?;
        cluster.assert_readable(&acknowledged)?;

        // The leader alone; the others elect a new one and keep writing.
        acknowledged.extend(cluster.write("before-leader", 20)?);
        let leader = cluster.stable_leader().ok_or("no leader")?;
        cluster.crash(leader);
        let successor = cluster.await_leader(ELECTION)?.ok_or("no successor")?;
        assert_ne!(successor, leader);
        acknowledged.extend(cluster.write("without-leader", 20)?);
        cluster.restart(leader)?;
        assert!(
            cluster.converge(ELECTION)?,
            "the old leader did not catch up"
        );
        cluster.assert_readable(&acknowledged)?;

        // Both followers: the leader loses its majority until they return.
        acknowledged.extend(cluster.write("before-followers", 20)?);
        let leader = cluster.stable_leader().ok_or("no leader")?;
        let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
        for &i in &followers {
            cluster.crash(i);
        }
        cluster.run_for(Duration::from_secs(3))?;
        for &i in &followers {
            cluster.restart(i)?;
        }
        cluster
            .await_leader(ELECTION)?
            .ok_or("no leader after the followers returned")?;
        assert!(cluster.converge(ELECTION)?, "replicas did not converge");
        cluster.assert_readable(&acknowledged)?;
        assert_logs_match(&cluster.disks);
        Ok(())
    });
}
