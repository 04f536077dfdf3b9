//! Locks on a simulated Raft KV: contenders that pause past their leases,
//! a leader that crashes, and a resource that either checks fencing
//! tokens or trusts the lock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use observability::sim::{SimResult, turmoil};

use super::client::{EtcdClient, Session};
use super::fencing::{FencedStore, Fencing};
use crate::proto::v3electionpb::election_client::ElectionClient;
use crate::proto::v3electionpb::{CampaignRequest, ResignRequest};
use crate::raft::tests::{Cluster, Options, channel, host, seeds_or};

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
                _ => {
                    node = node % 3 + 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
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
/// crashes and then its successor is cut off; one of them stalls past its lease while holding it. Checked:
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
        // Then the new leader is cut off from everyone for a while.
        cluster.run_for(Duration::from_secs(2))?;
        if let Some(leader) = cluster.stable_leader() {
            cluster.isolate(leader);
            cluster.run_for(Duration::from_secs(4))?;
            cluster.heal();
        }
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

/// One term of office, as its candidate lived it.
#[derive(Clone, Debug)]
struct Term {
    candidate: usize,
    revision: i64,
    elected: Duration,
    /// When it stopped acting as leader: it resigned, or its own view of
    /// its lease ran out.
    stopped: Duration,
}

/// Campaigns through etcd's Election service, leads for a while (acting
/// only while its session is surely valid, unless `ignores_lease`: the
/// broken twin), resigns; `rounds` times.
async fn candidate(
    id: usize,
    rounds: usize,
    ignores_lease: bool,
    terms: Rc<RefCell<Vec<Term>>>,
    leading: Rc<RefCell<Option<usize>>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut node = id % 3 + 1;
    for _ in 0..rounds {
        let (session, leader) = loop {
            let attempt = async {
                let session = Session::start(channel(node), 2).await?;
                let campaign = CampaignRequest {
                    name: b"/elect/primary".to_vec(),
                    lease: session.lease(),
                    value: format!("candidate-{id}").into_bytes(),
                };
                let mut request = tonic::Request::new(campaign);
                request.set_timeout(Duration::from_secs(20));
                let won = ElectionClient::new(channel(node)).campaign(request).await?;
                let leader = won.into_inner().leader.ok_or("no leader key")?;
                Ok::<_, Box<dyn std::error::Error>>((session, leader))
            };
            match tokio::time::timeout(Duration::from_secs(25), attempt).await {
                Ok(Ok(won)) => break won,
                _ => {
                    node = node % 3 + 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let elected = turmoil::elapsed();
        *leading.borrow_mut() = Some(id);
        // Lead for up to three seconds, acting only while the lease
        // surely holds.
        let term_ends = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let valid = session.valid_until();
            let now = tokio::time::Instant::now();
            let lost = now >= valid || !session.is_alive();
            if now >= term_ends || (lost && !ignores_lease) {
                break;
            }
            let wake = if ignores_lease {
                term_ends
            } else {
                valid.min(term_ends)
            };
            tokio::time::sleep_until(wake.min(now + Duration::from_millis(50))).await;
        }
        let stopped = turmoil::elapsed();
        *leading.borrow_mut() = None;
        terms.borrow_mut().push(Term {
            candidate: id,
            revision: leader.rev,
            elected,
            stopped,
        });
        let _ = ElectionClient::new(channel(node))
            .resign(ResignRequest {
                leader: Some(leader),
            })
            .await;
        let _ = session.close().await;
    }
    Ok(())
}

/// Runs three candidates, three terms each, and cuts the first leader off
/// from the cluster for six seconds; answers every term and who was cut.
fn election_with_a_cut_off_leader(seed: u64, ignores_lease: bool) -> SimResult<(Vec<Term>, usize)> {
    let mut cluster = Cluster::new(seed, &Options::new(3));
    cluster
        .await_leader(Duration::from_secs(30))?
        .ok_or("no leader")?;
    let terms = Rc::new(RefCell::new(Vec::new()));
    let leading = Rc::new(RefCell::new(None));
    for id in 1..=CLIENTS {
        let (terms, leading) = (terms.clone(), leading.clone());
        cluster.script(&format!("candidate-{id}"), async move {
            candidate(id, 3, ignores_lease, terms, leading).await
        });
    }
    let cut = cluster.run_until(Duration::from_secs(30), |_| leading.borrow().is_some())?;
    cut.ok_or("nobody was elected")?;
    let cut_off = leading.borrow().ok_or("the leader vanished")?;
    let candidate_host = format!("candidate-{cut_off}");
    for node in 1..=3 {
        cluster.sim.partition(&candidate_host, &host(node));
    }
    cluster.run_for(Duration::from_secs(6))?;
    for node in 1..=3 {
        cluster.sim.heal(&candidate_host, &host(node));
    }
    cluster.finish(Duration::from_secs(300))?;
    let mut terms = terms.borrow().clone();
    terms.sort_by_key(|t| t.elected);
    Ok((terms, cut_off))
}

/// Whether any term began before the one before it stopped.
fn overlapping(terms: &[Term]) -> Option<(Term, Term)> {
    terms
        .windows(2)
        .find(|pair| pair[0].stopped > pair[1].elected)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
}

/// Episodes 17 and 16. Three candidates campaign through etcd's Election
/// service; while one leads, it is cut off from the whole cluster. It
/// stops acting when its own view of its lease runs out — before the
/// cluster expires the lease and elects another — so terms of office never
/// overlap, checked over the whole run; and every term's revision is
/// larger than the last.
#[test]
fn lock_election_leaders_never_overlap_when_a_leader_is_cut_off() -> SimResult {
    for seed in seeds_or(3) {
        let (terms, cut_off) = election_with_a_cut_off_leader(seed, false)?;
        assert_eq!(
            terms.len(),
            CLIENTS * 3,
            "seed {seed}: every candidate led three times"
        );
        assert_eq!(
            overlapping(&terms).map(|_| ()),
            None,
            "seed {seed}: two leaders at once: {terms:?}"
        );
        assert!(
            terms
                .windows(2)
                .all(|pair| pair[0].revision < pair[1].revision),
            "seed {seed}: a later term with a smaller revision: {terms:?}"
        );
        let first_cut = terms
            .iter()
            .find(|t| t.candidate == cut_off)
            .ok_or("the cut-off candidate never led")?;
        assert!(
            first_cut.stopped - first_cut.elected < Duration::from_secs(3),
            "seed {seed}: the cut-off leader kept acting: {first_cut:?}"
        );
    }
    Ok(())
}

/// The broken twin: a leader that acts for its whole term whatever its
/// lease says is still acting, cut off, when the cluster elects the next.
#[test]
fn lock_election_twin_that_ignores_its_lease_overlaps_the_next_leader() -> SimResult {
    for seed in seeds_or(3) {
        let (terms, cut_off) = election_with_a_cut_off_leader(seed, true)?;
        let (old, new) = overlapping(&terms)
            .ok_or_else(|| format!("seed {seed}: the twin's overlap went undetected: {terms:?}"))?;
        assert_eq!(
            old.candidate, cut_off,
            "seed {seed}: the cut-off leader overlapped"
        );
        assert!(new.revision > old.revision);
    }
    Ok(())
}

/// Episode 16. The fenced store over gRPC: equal and larger tokens are
/// accepted, a smaller one is refused with FailedPrecondition and changes
/// nothing, malformed writes get InvalidArgument; the unfenced twin
/// accepts the stale write; every method survives the hostile client.
#[tokio::test(flavor = "multi_thread")]
async fn lock_fenced_store_service_refuses_stale_tokens_and_bad_input() {
    use observability::rpc::{ClientBuilder, Net, RpcServer};
    use tonic::Code;

    use crate::proto::FILE_DESCRIPTOR_SET;
    use crate::proto::v1::fenced_store_client::FencedStoreClient;
    use crate::proto::v1::{FencedReadRequest, FencedWriteRequest};

    let serve = |fencing: Fencing| async move {
        RpcServer::new()
            .add_service(
                FencedStore::new(fencing).into_service(),
                FILE_DESCRIPTOR_SET,
            )
            .bind(Net::Tcp, "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("binds")
            .spawn()
    };
    let write = |key: &str, value: &str, token: i64| FencedWriteRequest {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        token,
    };
    let server = serve(Fencing::Enforced).await;
    let mut store = FencedStoreClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    for token in [5, 5, 9] {
        let highest = store
            .write(write("ledger", &format!("t{token}"), token))
            .await
            .expect("a current token")
            .into_inner()
            .highest_token;
        assert_eq!(highest, token);
    }
    let stale = store
        .write(write("ledger", "stale", 7))
        .await
        .expect_err("a stale token");
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert_eq!(
        stale.message(),
        "stale fencing token 7: \"ledger\" has seen 9"
    );
    let read = store
        .read(FencedReadRequest {
            key: "ledger".into(),
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        (read.value.as_slice(), read.token, read.highest_token),
        (&b"t9"[..], 9, 9)
    );
    for bad in [
        write("ledger", "x", 0),
        write("ledger", "x", -3),
        write("", "x", 10),
        write(&"k".repeat(super::fencing::MAX_KEY_BYTES + 1), "x", 10),
        write(
            "ledger",
            &"v".repeat(super::fencing::MAX_VALUE_BYTES + 1),
            10,
        ),
    ] {
        let refused = store.write(bad).await.expect_err("malformed");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{}",
            refused.message()
        );
    }
    observability::fuzz::fuzz_service(
        server.uri(),
        FILE_DESCRIPTOR_SET,
        "consensus.v1.FencedStore",
        &observability::fuzz::FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));

    let twin = serve(Fencing::Off).await;
    let mut twin = FencedStoreClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(twin.uri()));
    twin.write(write("ledger", "new", 9)).await.expect("write");
    twin.write(write("ledger", "stale", 7))
        .await
        .expect("the twin takes a stale write");
}
