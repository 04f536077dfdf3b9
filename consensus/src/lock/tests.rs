//! Locks on a simulated Raft KV: contenders that pause past their leases,
//! a leader that crashes, and a resource that either checks fencing
//! tokens or trusts the lock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use observability::sim::{SimResult, turmoil};

use super::client::{EtcdClient, Session};
use super::fencing::{FencedStore, Fencing};
use crate::raft::tests::{Cluster, Options, channel, seeds_or};

const LOCK: &[u8] = b"/locks/ledger";
const CLIENTS: usize = 3;
const ROUNDS: usize = 4;

/// One hold of the lock, as its client lived it.
#[derive(Clone, Debug)]
struct Hold {
    client: usize,
    token: i64,
    acquired: Duration,
    released: Duration,
    /// The client stalled past its lease while holding.
    paused: bool,
    /// What each store answered its write.
    fenced_ok: bool,
    unfenced_ok: bool,
}

/// Every write a store accepted, in order: (token, client).
type Accepted = Rc<RefCell<Vec<(i64, usize)>>>;

async fn contend(
    client: usize,
    pauses: bool,
    fenced: FencedStore,
    unfenced: FencedStore,
    holds: Rc<RefCell<Vec<Hold>>>,
    accepted: (Accepted, Accepted),
) -> Result<(), Box<dyn std::error::Error>> {
    let mut node = client % 3 + 1;
    for round in 0..ROUNDS {
        // A session and a lock, from whichever node answers.
        let (session, held) = loop {
            let attempt = async {
                let session = Session::start(channel(node), 2).await?;
                let held = EtcdClient::new(channel(node)).lock(LOCK, &session).await?;
                Ok::<_, tonic::Status>((session, held))
            };
            match tokio::time::timeout(Duration::from_secs(20), attempt).await {
                Ok(Ok(done)) => break done,
                _ => node = node % 3 + 1,
            }
        };
        let acquired = turmoil::elapsed();
        let paused = pauses && round == 1;
        if paused {
            // A stop-the-world pause longer than the lease.
            session.freeze();
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
        let value = format!("client {client} round {round}");
        let fenced_ok = fenced
            .write("ledger", value.as_bytes(), held.revision)
            .is_ok();
        let unfenced_ok = unfenced
            .write("ledger", value.as_bytes(), held.revision)
            .is_ok();
        if fenced_ok {
            accepted.0.borrow_mut().push((held.revision, client));
        }
        if unfenced_ok {
            accepted.1.borrow_mut().push((held.revision, client));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let released = turmoil::elapsed();
        holds.borrow_mut().push(Hold {
            client,
            token: held.revision,
            acquired,
            released,
            paused,
            fenced_ok,
            unfenced_ok,
        });
        let _ = EtcdClient::new(channel(node)).unlock(&held).await;
        let _ = session.close().await;
    }
    Ok(())
}

/// Episode 16. Three clients take turns on one lock while the leader
/// crashes; one of them stalls past its lease while holding it. Checked:
/// holders that did not stall never overlap; every later holder has a
/// larger token; the fenced store refuses the stalled holder's write and
/// never accepts a token smaller than one it accepted; the unfenced twin
/// accepts it — a violation the check detects.
#[test]
fn lock_fencing_refuses_stale_holders_and_the_unfenced_twin_does_not() -> SimResult {
    for seed in seeds_or(3) {
        let mut cluster = Cluster::new(seed, &Options::new(3));
        let old = cluster
            .await_leader(Duration::from_secs(30))?
            .ok_or("no leader")?;
        let fenced = FencedStore::new(Fencing::Enforced);
        let unfenced = FencedStore::new(Fencing::Off);
        let holds = Rc::new(RefCell::new(Vec::new()));
        let accepted: (Accepted, Accepted) = Default::default();
        for client in 1..=CLIENTS {
            let (fenced, unfenced, holds, accepted) = (
                fenced.clone(),
                unfenced.clone(),
                holds.clone(),
                accepted.clone(),
            );
            cluster.script(&format!("client-{client}"), async move {
                contend(client, client == 1, fenced, unfenced, holds, accepted).await
            });
        }
        cluster.run_for(Duration::from_secs(3))?;
        cluster.crash(old);
        cluster.run_for(Duration::from_secs(3))?;
        cluster.restart(old)?;
        cluster.finish(Duration::from_secs(300))?;

        let holds = holds.borrow().clone();
        assert_eq!(
            holds.len(),
            CLIENTS * ROUNDS,
            "seed {seed}: every round held the lock"
        );
        let mut by_token = holds.clone();
        by_token.sort_by_key(|h| h.token);
        assert!(
            by_token.windows(2).all(|w| w[0].token < w[1].token),
            "seed {seed}: two holds shared a token"
        );
        // Mutual exclusion among holders that did not stall: in token
        // order, each released before the next acquired.
        let live: Vec<&Hold> = by_token.iter().filter(|h| !h.paused).collect();
        for pair in live.windows(2) {
            assert!(
                pair[0].released <= pair[1].acquired,
                "seed {seed}: clients {} and {} held the lock at once: {pair:?}",
                pair[0].client,
                pair[1].client
            );
        }
        // The stalled holder: someone took the lock while it slept, so its
        // write was stale.
        let stalled = holds.iter().find(|h| h.paused).ok_or("nobody stalled")?;
        assert!(
            holds
                .iter()
                .any(|h| h.token > stalled.token && h.acquired < stalled.released),
            "seed {seed}: nobody took the lock during the stall"
        );
        assert!(
            !stalled.fenced_ok,
            "seed {seed}: the fenced store took a stale write"
        );
        assert!(
            stalled.unfenced_ok,
            "seed {seed}: the unfenced store refused"
        );
        let monotonic = |writes: &Accepted| writes.borrow().windows(2).all(|w| w[0].0 <= w[1].0);
        assert!(
            monotonic(&accepted.0),
            "seed {seed}: the fenced store went backwards"
        );
        assert!(
            !monotonic(&accepted.1),
            "seed {seed}: the unfenced twin's stale write went undetected"
        );
    }
    Ok(())
}
