//! Log compaction: the log stays short, and a follower too far behind for
//! the log catches up from a snapshot.

use std::time::Duration;

use observability::sim::for_each_seed;

use super::{Cluster, Options, client, put, shared};

const SNAPSHOT_ENTRIES: u64 = 300;
const KEEP_ENTRIES: u64 = 100;
const WRITES: usize = 2_000;

#[test]
fn raft_lagging_follower_catches_up_by_snapshot_and_the_log_stays_bounded() {
    for_each_seed(|seed| {
        let mut options = Options::new(3);
        options.snapshot_entries = SNAPSHOT_ENTRIES;
        options.keep_entries = KEEP_ENTRIES;
        let mut cluster = Cluster::new(seed, &options);
        let leader = cluster
            .await_leader(Duration::from_secs(5))?
            .ok_or("no leader")?;
        let lagging = if leader == 3 { 2 } else { 3 };
        cluster.crash(lagging);
        let missed_from = cluster.status(leader).ok_or("leader stopped")?.last_index;

        // Thousands of writes from eight concurrent writers, while the log
        // is checked after every step of the simulation.
        let (counter, acknowledged) = shared::<usize>();
        cluster.script("writers", async move {
            let writers = (0..8).map(|w| {
                let counter = counter.clone();
                tokio::task::spawn_local(async move {
                    let mut kv = client(leader);
                    for n in 0..WRITES / 8 {
                        let key = format!("w{w}-{n}");
                        kv.put(put(&key, &key)).await?;
                        *counter.borrow_mut() += 1;
                    }
                    Ok::<_, tonic::Status>(())
                })
            });
            for writer in writers.collect::<Vec<_>>() {
                writer.await??;
            }
            Ok(())
        });
        let bound = SNAPSHOT_ENTRIES + KEEP_ENTRIES + 64;
        let mut longest = 0;
        let finished = cluster.run_until(Duration::from_secs(120), |c| {
            longest = longest.max(c.status(leader).map_or(0, |s| s.log_entries));
            *acknowledged.borrow() == WRITES
        })?;
        assert!(finished.is_some(), "the writes did not finish");
        assert!(
            longest <= bound,
            "the leader's log grew to {longest} entries (bound {bound})"
        );
        let status = cluster.status(leader).ok_or("leader stopped")?;
        assert!(
            status.first_index > missed_from + 1,
            "the log still holds what the follower missed; the test would not need a snapshot"
        );
        assert!(cluster.disks[leader - 1].entry_count() as u64 <= bound);

        cluster.restart(lagging)?;
        assert!(
            cluster.converge(Duration::from_secs(30))?,
            "the follower did not catch up"
        );
        let caught_up = cluster.status(lagging).ok_or("follower stopped")?;
        assert!(
            caught_up.snapshot_index >= status.first_index - 1,
            "the follower caught up without installing a snapshot"
        );
        assert_eq!(caught_up.revision, status.revision);
        assert!(caught_up.log_entries <= bound);
        Ok(())
    });
}
