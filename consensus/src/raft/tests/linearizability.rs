//! Linearizability under faults: concurrent clients on a few keys while a
//! nemesis partitions, crashes and restarts nodes and the transport loses,
//! duplicates and reorders messages; every history goes to the checker.
//! Then the broken twins: the same kind of schedule against a node that
//! serves "linearizable" reads from local state, and against a leader
//! lease that ignores clock drift, both of which the checker must catch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use observability::rpc::RpcChannel;
use observability::sim::for_each_seed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use replication::consistency::recorder::{ClientError, KvClient, Recorder};
use replication::consistency::{CheckResult, History, Model, Verdict, check};

use super::{Cluster, Options, assert_logs_match, client, get, put, seeds_or};
use crate::proto::etcdserverpb::kv_client::KvClient as EtcdKv;
use crate::raft::{ReadMode, Timing, TransportFaults};

const NODES: usize = 5;
const KEYS: usize = 8;
const CLIENTS: u64 = 5;
/// How long the nemesis runs; then the network heals and clients stop.
const CHAOS: Duration = Duration::from_secs(12);
const CHECK_BUDGET: Duration = Duration::from_secs(20);

/// The history recorder's view of an etcd KV client: `get` is a
/// linearizable Range (absent reads as ""), `put` a Put.
struct Etcd(EtcdKv<RpcChannel>);

impl KvClient for Etcd {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        let response = self
            .0
            .range(get(key))
            .await
            .map_err(|s| ClientError::from_status(&s))?;
        let value = response
            .into_inner()
            .kvs
            .pop()
            .map(|kv| kv.value)
            .unwrap_or_default();
        String::from_utf8(value).map_err(|e| ClientError::Definite(e.to_string()))
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.0
            .put(put(key, value))
            .await
            .map(drop)
            .map_err(|s| ClientError::from_status(&s))
    }

    async fn append(&mut self, _key: &str, _value: &str) -> Result<(), ClientError> {
        Err(ClientError::Definite("etcd has no append".into()))
    }
}

/// Faster elections than etcd's defaults, so a run sees many of them.
fn churn_options(read_mode: ReadMode) -> Options {
    let mut options = Options::new(NODES);
    options.timing = Timing {
        tick: Duration::from_millis(20),
        election_ticks: 10,
        heartbeat_ticks: 1,
        request_timeout: Duration::from_secs(2),
    };
    options.snapshot_entries = 200;
    options.keep_entries = 50;
    options.faults = TransportFaults {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.05,
        seed: 0,
    };
    options.read_mode = read_mode;
    options
}

fn judge(history: &History) -> CheckResult {
    match check(history, Model::Kv, Some(CHECK_BUDGET)) {
        Ok(result) => result,
        Err(err) => panic!("the history is malformed: {err}"),
    }
}

/// One seeded run: clients on random keys and nodes, a nemesis cutting
/// and crashing nodes, then a heal and a final read of every key.
fn churn(seed: u64) -> observability::sim::SimResult<History> {
    let mut cluster = Cluster::new(seed, &churn_options(ReadMode::ReadIndex));
    cluster
        .await_leader(Duration::from_secs(5))?
        .ok_or("no leader")?;
    let recorder = Recorder::new();
    let stop = Rc::new(Cell::new(false));
    let stopped = stop.clone();
    let clients = recorder.clone();
    cluster.script("clients", async move {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let stop = stopped.clone();
                let recorder = clients.clone();
                tokio::task::spawn_local(async move {
                    let mut rng = StdRng::seed_from_u64(seed ^ (c << 16));
                    let mut target = rng.random_range(1..=NODES);
                    let mut kv = recorder.client(c, Etcd(client(target)));
                    let mut n = 0;
                    while !stop.get() {
                        let key = format!("k{}", rng.random_range(0..KEYS));
                        let result = if rng.random_bool(0.5) {
                            kv.get(&key).await.map(drop)
                        } else {
                            n += 1;
                            kv.put(&key, &format!("c{c}-{n}")).await
                        };
                        if result.is_err() {
                            target = rng.random_range(1..=NODES);
                            kv = recorder.client(c, Etcd(client(target)));
                        }
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await?;
        }
        // Once healed, every key read once more: a lost acknowledged write
        // shows up here as a read the checker cannot place.
        let mut kv = clients.client(CLIENTS, Etcd(client(1)));
        for k in 0..KEYS {
            let key = format!("k{k}");
            for _ in 0..20 {
                if kv.get(&key).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    });

    let mut nemesis = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut crashed: Vec<usize> = Vec::new();
    let started = cluster.sim.elapsed();
    while cluster.sim.elapsed() - started < CHAOS {
        let node = nemesis.random_range(1..=NODES);
        match nemesis.random_range(0..5) {
            0 => cluster.isolate(node),
            1 => {
                let other = nemesis.random_range(1..=NODES);
                cluster.split(&[node, other]);
            }
            2 if crashed.len() < 2 && !crashed.contains(&node) => {
                cluster.crash(node);
                crashed.push(node);
            }
            3 => {
                if let Some(node) = crashed.pop() {
                    cluster.restart(node)?;
                }
            }
            _ => cluster.heal(),
        }
        let pause = nemesis.random_range(300..1_500);
        cluster.run_for(Duration::from_millis(pause))?;
    }
    cluster.heal();
    for node in crashed {
        cluster.restart(node)?;
    }
    stop.set(true);
    cluster.finish(Duration::from_secs(60))?;
    assert!(
        cluster.converge(Duration::from_secs(20))?,
        "replicas did not converge after healing"
    );
    assert_logs_match(&cluster.disks);
    Ok(recorder.history())
}

#[test]
fn raft_histories_under_partitions_crashes_and_loss_are_linearizable() {
    for seed in seeds_or(20) {
        let history = churn(seed).unwrap_or_else(|err| {
            panic!("seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p consensus raft_histories")
        });
        let completed = history
            .operations
            .iter()
            .filter(|op| op.ret != u64::MAX)
            .count();
        assert!(
            completed > 100,
            "seed {seed}: only {completed} operations completed"
        );
        let result = judge(&history);
        assert!(
            matches!(result.verdict, Verdict::Linearizable { .. }),
            "seed {seed}: {}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p consensus raft_histories",
            result.explain(&history)
        );
    }
}

/// A schedule that exposes stale reads: write, cut the leader off from its
/// followers (clients still reach it), write through the new majority,
/// read from the old leader.
fn deposed_leader_read(seed: u64, read_mode: ReadMode) -> observability::sim::SimResult<History> {
    let mut options = Options::new(3);
    options.read_mode = read_mode;
    let mut cluster = Cluster::new(seed, &options);
    let old = cluster
        .await_leader(Duration::from_secs(5))?
        .ok_or("no leader")?;
    let recorder = Recorder::new();
    let writer = recorder.clone();
    cluster.script("first-write", async move {
        writer
            .client(0, Etcd(client(old)))
            .put("k", "before")
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(())
    });
    cluster.finish(Duration::from_secs(10))?;
    cluster.split(&[old]);
    let new = cluster
        .await_new_leader(old, Duration::from_secs(10))?
        .ok_or("the majority elected no leader")?;
    write_new_then_read_old(&mut cluster, &recorder, new, old)?;
    Ok(recorder.history())
}

/// Writes "after" through the new leader, then reads from the old one:
/// the read a stale server gets wrong.
fn write_new_then_read_old(
    cluster: &mut Cluster<'_>,
    recorder: &Recorder,
    new: usize,
    old: usize,
) -> observability::sim::SimResult {
    let acknowledged = Rc::new(RefCell::new(false));
    let (writer, done) = (recorder.clone(), acknowledged.clone());
    cluster.script("second-write", async move {
        writer
            .client(1, Etcd(client(new)))
            .put("k", "after")
            .await
            .map_err(|e| format!("{e:?}"))?;
        *done.borrow_mut() = true;
        let _ = writer.client(2, Etcd(client(old))).get("k").await;
        Ok(())
    });
    cluster.finish(Duration::from_secs(20))?;
    assert!(
        *acknowledged.borrow(),
        "the majority did not take the write"
    );
    Ok(())
}

#[test]
fn raft_broken_twin_local_reads_are_caught_and_read_index_passes() {
    for_each_seed(|seed| {
        let broken = deposed_leader_read(seed, ReadMode::UnsafeLocal)?;
        let verdict = judge(&broken);
        assert!(
            matches!(verdict.verdict, Verdict::NotLinearizable(_)),
            "the checker missed a stale read: {}",
            verdict.explain(&broken)
        );
        let real = deposed_leader_read(seed, ReadMode::ReadIndex)?;
        let verdict = judge(&real);
        assert!(
            matches!(verdict.verdict, Verdict::Linearizable { .. }),
            "{}",
            verdict.explain(&real)
        );
        Ok(())
    });
}

/// Episode 17's leader lease under clock skew: node 1 leads with a clock
/// that keeps time; nodes 2 and 3 run 400 % fast. Node 1 confirms its
/// leadership with a read, is cut off from the others, and is read from
/// again after they have elected a leader and taken a write.
fn lease_read_under_skew(seed: u64, read_mode: ReadMode) -> observability::sim::SimResult<History> {
    let mut options = Options::new(3);
    options.read_mode = read_mode;
    options.fast_clocks = vec![(2, 400), (3, 400)];
    let mut cluster = Cluster::new(seed, &options);
    let first = cluster
        .await_leader(Duration::from_secs(10))?
        .ok_or("no leader")?;
    if first != 1 {
        let node = cluster.node(first).ok_or("the leader is down")?;
        cluster.script("transfer", async move {
            node.transfer_leader(1).await.map_err(|e| e.to_string())?;
            Ok(())
        });
        cluster.finish(Duration::from_secs(10))?;
    }
    cluster.run_until(Duration::from_secs(10), |c| c.stable_leader() == Some(1))?;
    let recorder = Recorder::new();
    let writer = recorder.clone();
    cluster.script("lease", async move {
        let mut leader = writer.client(0, Etcd(client(1)));
        leader
            .put("k", "before")
            .await
            .map_err(|e| format!("{e:?}"))?;
        // A read confirms node 1's leadership and starts its lease.
        leader.get("k").await.map_err(|e| format!("{e:?}"))?;
        Ok(())
    });
    cluster.finish(Duration::from_secs(10))?;
    cluster.split(&[1]);
    // Node 1 still believes it leads until its own clock says otherwise,
    // so the new leader is looked for on the majority's side alone.
    let majority_leader = |c: &Cluster<'_>| {
        [2, 3].into_iter().find(|&i| {
            c.status(i)
                .is_some_and(|s| s.role == crate::raft::Role::Leader)
                && [2, 3]
                    .iter()
                    .all(|&j| c.status(j).is_some_and(|s| s.leader == i as u64))
        })
    };
    cluster.run_until(Duration::from_secs(10), |c| majority_leader(c).is_some())?;
    let new = majority_leader(&cluster).ok_or("the fast majority elected no leader")?;
    write_new_then_read_old(&mut cluster, &recorder, new, 1)?;
    Ok(recorder.history())
}

/// The broken twin: a lease that assumes every clock keeps time serves
/// node 1's stale value after the fast majority has moved on — caught by
/// the checker. With a bound that covers the skew, the lease has run out
/// by then and the read goes to the (unreachable) majority instead.
#[test]
fn raft_leader_lease_needs_a_drift_bound_under_clock_skew() {
    for_each_seed(|seed| {
        let broken = lease_read_under_skew(seed, ReadMode::UNBOUNDED_LEASE)?;
        let verdict = judge(&broken);
        assert!(
            matches!(verdict.verdict, Verdict::NotLinearizable(_)),
            "the checker missed the lease's stale read: {}",
            verdict.explain(&broken)
        );
        let bounded = lease_read_under_skew(
            seed,
            ReadMode::LeaderLease {
                max_drift_percent: 400,
            },
        )?;
        let verdict = judge(&bounded);
        assert!(
            matches!(verdict.verdict, Verdict::Linearizable { .. }),
            "{}",
            verdict.explain(&bounded)
        );
        Ok(())
    });
}
