//! Leases on a simulated cluster: expiry decided by the leader's clock and
//! replicated, never early; keep-alives that hold a lease through a
//! failover.

use std::time::Duration;

use observability::sim::SimResult;

use super::{Cluster, Options, channel, seeds_or, shared};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest};

const KEY: &[u8] = b"/service/worker-1";

/// Grants a lease of `ttl` seconds and attaches `KEY` to it, through any
/// node that answers; returns the lease.
async fn grant_and_attach(ttl: i64) -> Result<i64, Box<dyn std::error::Error>> {
    for attempt in 0..30 {
        let node = attempt % 3 + 1;
        let granted = LeaseClient::new(channel(node))
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await;
        let Ok(granted) = granted else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let lease = granted.into_inner().id;
        let put = PutRequest {
            key: KEY.to_vec(),
            value: b"alive".to_vec(),
            lease,
            ..PutRequest::default()
        };
        for attempt in 0..30 {
            if super::client(attempt % 3 + 1)
                .put(put.clone())
                .await
                .is_ok()
            {
                return Ok(lease);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Err("no node granted the lease".into())
}

/// [`grant_and_attach`] from a client script, run to its end.
fn grant_and_attach_in(cluster: &mut Cluster<'_>, ttl: i64) -> SimResult<i64> {
    let (lease, granted) = shared::<i64>();
    cluster.script("grant", async move {
        *lease.borrow_mut() = grant_and_attach(ttl).await?;
        Ok(())
    });
    cluster.finish(Duration::from_secs(30))?;
    let id = *granted.borrow();
    Ok(id)
}

/// Whether every running replica holds `KEY` (`Some(true)`), none does
/// (`Some(false)`), or they disagree (`None`).
fn key_everywhere(cluster: &Cluster<'_>) -> Option<bool> {
    let holds: Vec<bool> = cluster
        .states()
        .into_iter()
        .map(|(_, _, kvs)| kvs.iter().any(|(key, _)| key == KEY))
        .collect();
    if holds.iter().all(|h| *h) {
        Some(true)
    } else if holds.iter().all(|h| !*h) {
        Some(false)
    } else {
        None
    }
}

/// Episode 16. A key attached to a lease that nobody keeps alive is gone
/// from every replica within a moment of the TTL — and present on every
/// replica until the TTL has passed.
#[test]
fn lease_key_disappears_when_its_lease_expires_and_not_before() -> SimResult {
    for seed in seeds_or(3) {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        cluster
            .await_leader(Duration::from_secs(30))?
            .ok_or("no leader")?;
        let lease = grant_and_attach_in(&mut cluster, 2)?;
        assert!(lease > 0, "seed {seed}: a positive lease id");
        cluster.converge(Duration::from_secs(5))?;
        let attached = cluster.sim.elapsed();
        // Until the TTL has run (less the time the put took after the
        // grant), every replica keeps the key.
        while cluster.sim.elapsed() < attached + Duration::from_millis(1_600) {
            assert_eq!(
                key_everywhere(&cluster),
                Some(true),
                "seed {seed}: the key went before its lease ran out"
            );
            cluster.run_for(Duration::from_millis(50))?;
        }
        let gone =
            cluster.run_until(Duration::from_secs(5), |c| key_everywhere(c) == Some(false))?;
        let gone = gone.ok_or_else(|| format!("seed {seed}: the key outlived its lease"))?;
        assert!(
            gone < Duration::from_secs(2),
            "seed {seed}: expiry took {gone:?} past the TTL's last moment"
        );
        for (node, _, _) in cluster.states() {
            let leases = cluster
                .node(node)
                .map(|n| n.read_state(|s| s.mvcc.leases().len()));
            assert_eq!(leases, Some(0), "seed {seed}: node {node} kept the lease");
        }
    }
    Ok(())
}

/// Episodes 16 and 17. A client that keeps its lease alive keeps its key
/// through the leader's crash and the election after it: the new leader
/// restarts every lease's TTL rather than expiring them. Once the
/// keep-alives stop, the key goes.
#[test]
fn lease_keep_alive_holds_through_leader_failover() -> SimResult {
    for seed in seeds_or(3) {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let old = cluster
            .await_leader(Duration::from_secs(30))?
            .ok_or("no leader")?;
        let id = grant_and_attach_in(&mut cluster, 2)?;
        // Keep-alives every 500 ms for 12 s, to whichever node answers.
        let alive_for = Duration::from_secs(12);
        cluster.script("keep-alive", async move {
            let started = tokio::time::Instant::now();
            let mut node = 1;
            while started.elapsed() < alive_for {
                let request = tokio_stream::once(LeaseKeepAliveRequest { id });
                let answer = match LeaseClient::new(super::channel(node))
                    .lease_keep_alive(request)
                    .await
                {
                    Ok(answers) => answers.into_inner().message().await.ok().flatten(),
                    Err(_) => None,
                };
                match answer {
                    Some(answer) => assert!(answer.ttl > 0, "the lease was lost while kept alive"),
                    None => node = node % 3 + 1,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(())
        });
        cluster.run_for(Duration::from_secs(2))?;
        cluster.crash(old);
        cluster
            .await_new_leader(old, Duration::from_secs(30))?
            .ok_or("no new leader")?;
        let until = cluster.sim.elapsed() + Duration::from_secs(4);
        while cluster.sim.elapsed() < until {
            assert_ne!(
                key_everywhere(&cluster),
                Some(false),
                "seed {seed}: a kept-alive key vanished in the failover"
            );
            cluster.run_for(Duration::from_millis(100))?;
        }
        cluster.restart(old)?;
        cluster.finish(Duration::from_secs(30))?;
        let gone = cluster.run_until(Duration::from_secs(10), |c| {
            key_everywhere(c) == Some(false)
        })?;
        assert!(
            gone.is_some(),
            "seed {seed}: the key outlived its last keep-alive"
        );
    }
    Ok(())
}
