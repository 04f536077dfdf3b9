//! Commit latency across regions: the Raft KV on a simulated wide-area
//! network whose links are the speed-of-light floors between real cities
//! (`patterns::physics`), measured against the majority-round-trip model.

use std::time::Duration;

use observability::sim::SimResult;
use patterns::physics::{LatencyMatrix, commit_latency, leaders_by_latency};

use super::{Cluster, Options, client, host, put, seeds_or, shared};

/// Timed writes per leader.
const WRITES: usize = 8;

/// The commit latencies a client next to `leader` sees: one untimed
/// write first (the leader's first append to a follower probes it),
/// then [`WRITES`] timed ones, one at a time.
fn measure_at(cluster: &mut Cluster<'_>, leader: usize) -> SimResult<Vec<Duration>> {
    if cluster.stable_leader() != Some(leader) {
        let node = cluster
            .node(cluster.stable_leader().ok_or("no leader")?)
            .ok_or("the leader is down")?;
        cluster.script(&format!("transfer-to-{leader}"), async move {
            node.transfer_leader(leader as u64)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        });
        cluster.finish(Duration::from_secs(30))?;
        cluster
            .run_until(Duration::from_secs(30), |c| {
                c.stable_leader() == Some(leader)
            })?
            .ok_or("leadership did not move")?;
    }
    let (sink, measured) = shared::<Vec<Duration>>();
    let writer = format!("writer-at-{leader}");
    cluster.script(&writer, async move {
        let mut kv = client(leader);
        kv.put(put("warm-up", "x")).await?;
        for n in 0..WRITES {
            let started = tokio::time::Instant::now();
            kv.put(put(&format!("k{n}"), "v")).await?;
            sink.borrow_mut().push(started.elapsed());
        }
        Ok(())
    });
    // The client sits in the leader's data centre: its own hop is free,
    // so what is measured is the commit.
    cluster
        .sim
        .set_latency(&writer, &host(leader), Duration::ZERO);
    cluster.finish(Duration::from_secs(60))?;
    let latencies = measured.borrow().clone();
    Ok(latencies)
}

/// Runs a cluster placed on `sites` and, for the first leader elected
/// and for the fastest one, checks every commit against the model.
fn commit_latency_matches_the_model(seed: u64, sites: &[&str]) -> SimResult {
    let matrix = LatencyMatrix::from_sites(sites)?;
    let mut cluster = Cluster::new(seed, &Options::new(sites.len()));
    for (a, b, one_way) in matrix.links() {
        cluster.sim.set_latency(&host(a + 1), &host(b + 1), one_way);
    }
    let elected = cluster
        .await_leader(Duration::from_secs(30))?
        .ok_or("no leader")?;
    let best = leaders_by_latency(&matrix)[0].leader + 1;
    let mut leaders = vec![elected, best];
    leaders.dedup();
    for leader in leaders {
        // Route factor 1: the modelled commit *is* the floor.
        let floor = commit_latency(&matrix, leader - 1);
        let measured = measure_at(&mut cluster, leader)?;
        assert_eq!(measured.len(), WRITES, "seed {seed}: writes failed");
        eprintln!("seed {seed} {sites:?} leader n{leader}: model {floor:?}, measured {measured:?}");
        for latency in &measured {
            assert!(
                *latency >= floor,
                "seed {seed} {sites:?}: leader n{leader} committed in {latency:?}, below the floor {floor:?}"
            );
            // Turmoil delivers on 1 ms ticks: a few of them per commit
            // (client → leader → followers → leader → client), and nothing
            // else, since the disks are in memory.
            assert!(
                latency.saturating_sub(floor) <= Duration::from_millis(6),
                "seed {seed} {sites:?}: leader n{leader} committed in {latency:?}, model {floor:?}"
            );
        }
    }
    Ok(())
}

/// Episode 2. Three replicas, one per continent: every commit crosses an
/// ocean, and takes the round trip to the nearest other continent — never
/// less than the floor, and no more than a few simulated ticks above it.
#[test]
fn geo_three_replicas_commit_in_the_majority_round_trip() {
    for seed in seeds_or(2) {
        commit_latency_matches_the_model(seed, &["new-york", "london", "tokyo"])
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// Episode 2. Five replicas, three of them in North America: the fastest
/// leader, Ashburn, completes its majority with New York and San
/// Francisco without leaving the continent (38.0 ms), so five replicas
/// commit faster than three spread across oceans (54.6 ms).
#[test]
fn geo_five_replicas_with_a_continental_majority_commit_faster() {
    let five = [
        "ashburn",
        "new-york",
        "san-francisco",
        "london",
        "frankfurt",
    ];
    let three =
        LatencyMatrix::from_sites(&["new-york", "london", "tokyo"]).expect("cities in the table");
    let matrix = LatencyMatrix::from_sites(&five).expect("cities in the table");
    let fastest = &leaders_by_latency(&matrix)[0];
    assert_eq!(fastest.site, "ashburn");
    assert!(fastest.commit < leaders_by_latency(&three)[0].commit);
    for seed in seeds_or(2) {
        commit_latency_matches_the_model(seed, &five)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
