//! Agreement: replicas commit the same entry at every index, nothing
//! commits without a majority, and what a deposed leader appended alone is
//! overwritten.

use std::time::Duration;

use observability::sim::for_each_seed;

use super::{Cluster, Options, assert_logs_match, client, get, put, shared};

#[test]
fn raft_partitioned_leader_commits_nothing_and_its_entries_are_overwritten() {
    for_each_seed(|seed| {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let old = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        let before = cluster.status(old).ok_or("leader stopped")?;

        // Cut the leader off from its followers (the client still reaches
        // it) and write to it while it still believes it leads.
        cluster.split(&[old]);
        let (outcome, stale_write) = shared::<Option<bool>>();
        cluster.script("stale-writer", async move {
            let acknowledged = client(old)
                .put(put("k", "from-the-old-leader"))
                .await
                .is_ok();
            *outcome.borrow_mut() = Some(acknowledged);
            Ok(())
        });
        let appended = cluster
            .run_until(Duration::from_secs(1), |c| {
                c.status(old)
                    .is_some_and(|s| s.last_index > before.last_index)
            })?
            .is_some();
        assert!(appended, "the old leader never appended the write");
        cluster.finish(Duration::from_secs(10))?;
        assert_eq!(
            *stale_write.borrow(),
            Some(false),
            "a write without a majority was acknowledged"
        );
        let alone = cluster.status(old).ok_or("old leader stopped")?;
        assert_eq!(
            alone.commit, before.commit,
            "the old leader committed alone"
        );

        // The majority moves on and writes the same key.
        let new = cluster
            .await_new_leader(old, Duration::from_secs(5))?
            .ok_or("the majority elected no leader")?;
        let (outcome, fresh_write) = shared::<Option<bool>>();
        cluster.script("fresh-writer", async move {
            let acknowledged = client(new).put(put("k", "from-the-majority")).await.is_ok();
            *outcome.borrow_mut() = Some(acknowledged);
            Ok(())
        });
        cluster.finish(Duration::from_secs(10))?;
        assert_eq!(*fresh_write.borrow(), Some(true));

        cluster.heal();
        assert!(
            cluster.converge(Duration::from_secs(10))?,
            "replicas did not converge"
        );
        let (outcome, value) = shared::<Vec<Vec<u8>>>();
        cluster.script("reader", async move {
            let kvs = client(old).range(get("k")).await?.into_inner().kvs;
            *outcome.borrow_mut() = kvs.into_iter().map(|kv| kv.value).collect();
            Ok(())
        });
        cluster.finish(Duration::from_secs(10))?;
        assert_eq!(*value.borrow(), vec![b"from-the-majority".to_vec()]);
        assert_logs_match(&cluster.disks);
        Ok(())
    });
}
