//! CrdtReplica clusters in turmoil's simulated network, and the replica
//! against hostile input on real TCP.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use observability::rpc::peer_secret::PeerSecret;
use observability::rpc::{ClientBuilder, Net, RpcServer, ServerHandle};
use observability::sim::{self, Simulation, faults};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use super::client::ReplicaClient;
use super::object::Kind;
use super::{AntiEntropy, CrdtReplica, MessageFaults, ReplicaConfig};
use crate::clock::ReplicaId;
use crate::clock::physical::{PhysicalClock, SystemClock, TokioClock};
use crate::proto::crdt_replica_client::CrdtReplicaClient;
use crate::proto::{self, FILE_DESCRIPTOR_SET};

pub(super) const REPLICAS: usize = 5;

/// How the simulated cluster runs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Setup {
    pub mode: AntiEntropy,
    pub faults: MessageFaults,
}

/// Five replicas on n1..n5. A restarted host comes back empty with a new
/// incarnation (counted outside the host, so it survives the restart).
pub(super) fn cluster(seed: u64, setup: Setup) -> Simulation<'static> {
    let mut sim = Simulation::builder(seed)
        .hosts(REPLICAS)
        .duration(Duration::from_secs(600))
        .build();
    let addresses: BTreeMap<ReplicaId, String> = (1..=REPLICAS)
        .map(|i| {
            (
                ReplicaId(i as u64),
                format!("{}:{}", sim::node(i), sim::PORT),
            )
        })
        .collect();
    for i in 1..=REPLICAS {
        let addresses = addresses.clone();
        let starts = Rc::new(Cell::new(0u64));
        sim.host(&sim::node(i), move || {
            let addresses = addresses.clone();
            starts.set(starts.get() + 1);
            let incarnation = starts.get();
            async move {
                let id = ReplicaId(i as u64);
                let mut config = ReplicaConfig::new(id, addresses, Net::Sim);
                config.gossip_interval = Duration::from_millis(100);
                config.mode = setup.mode;
                config.faults = setup.faults;
                config.seed = seed ^ (i as u64) << 8 ^ incarnation;
                config.incarnation = incarnation;
                config.peer_secret = Some(secret());
                config.clock = Arc::new(TokioClock::new(1_700_000_000_000_000_000, 0));
                let replica = CrdtReplica::start(config)?;
                RpcServer::new()
                    .add_service(replica.into_service(), FILE_DESCRIPTOR_SET)
                    .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                    .await?;
                Ok(())
            }
        });
    }
    sim
}

pub(super) fn client(i: usize) -> ReplicaClient {
    ReplicaClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri(&sim::node(i))))
}

/// Every replica's (counter, set), read from the client.
async fn views(clients: &mut [ReplicaClient]) -> Result<Vec<(String, Vec<String>)>, tonic::Status> {
    let mut views = Vec::new();
    for client in clients.iter_mut() {
        let count = client.read(Kind::GCounter, "hits").await?.count;
        let elements = client.read(Kind::OrSet, "set").await?.elements;
        views.push((count, elements));
    }
    Ok(views)
}

/// Polls until all replicas agree (for at most `within` of simulated
/// time); the agreed view.
async fn converged(
    clients: &mut [ReplicaClient],
    within: Duration,
) -> Result<(String, Vec<String>), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let views = views(clients).await?;
        if views.windows(2).all(|pair| pair[0] == pair[1]) {
            return Ok(views[0].clone());
        }
        if tokio::time::Instant::now() > deadline {
            let summary: Vec<(String, usize)> = views
                .iter()
                .map(|(count, elements)| (count.clone(), elements.len()))
                .collect();
            return Err(format!(
                "replicas still disagree after {within:?}: (count, set size) {summary:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) fn seeds() -> Vec<u64> {
    // Eight seeds by default; DSLAB_SEED / DSLAB_SEEDS pick others.
    if std::env::var_os("DSLAB_SEEDS").is_some() || std::env::var_os("DSLAB_SEED").is_some() {
        sim::seeds()
    } else {
        (1..=8).collect()
    }
}

/// Episodes 21-22. Five replicas gossiping through random partitions
/// between them, with 10% of gossip messages dropped, 10% duplicated and
/// 10% reordered, while a client sends increments, adds and removes to
/// random replicas. After healing and quiescence every replica reads the
/// same, and it is the sequential answer: the counter is the sum of every
/// acknowledged increment, the set holds every added element except
/// those a remove found present (each element is added once).
#[test]
fn crdt_replica_converges_through_partitions_loss_duplication_and_reordering() {
    for seed in seeds() {
        let setup = Setup {
            mode: AntiEntropy::Delta,
            faults: MessageFaults {
                drop: 0.1,
                duplicate: 0.1,
                reorder: 0.1,
            },
        };
        let mut sim = cluster(seed, setup);
        sim.client(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut clients: Vec<ReplicaClient> = (1..=REPLICAS).map(client).collect();
            let mut increments = 0u64;
            let mut added = Vec::new();
            let mut removed = BTreeSet::new();
            for step in 0..120 {
                if step % 20 == 0 {
                    // A new random partition of the replicas in two.
                    for a in 1..=REPLICAS {
                        for b in a + 1..=REPLICAS {
                            faults::heal(&sim::node(a), &sim::node(b));
                        }
                    }
                    let side: Vec<usize> =
                        (1..=REPLICAS).filter(|_| rng.random_bool(0.5)).collect();
                    for &a in &side {
                        for b in (1..=REPLICAS).filter(|b| !side.contains(b)) {
                            faults::partition(&sim::node(a), &sim::node(b));
                        }
                    }
                }
                let at = rng.random_range(0..REPLICAS);
                match rng.random_range(0..3) {
                    0 => {
                        let amount = rng.random_range(1..=5);
                        clients[at].increment("hits", amount).await?;
                        increments += amount;
                    }
                    1 => {
                        let element = format!("e{step}");
                        clients[at].insert("set", &element).await?;
                        added.push(element);
                    }
                    _ if !added.is_empty() => {
                        let element = added[rng.random_range(0..added.len())].clone();
                        let reply = clients[at]
                            .update_reply(
                                Kind::OrSet,
                                "set",
                                proto::update_request::Operation::Remove(element.clone()),
                            )
                            .await?;
                        if reply.changed {
                            removed.insert(element);
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..50))).await;
            }
            for a in 1..=REPLICAS {
                for b in a + 1..=REPLICAS {
                    faults::heal(&sim::node(a), &sim::node(b));
                }
            }
            let (count, elements) = converged(&mut clients, Duration::from_secs(60)).await?;
            assert_eq!(count, increments.to_string(), "seed {seed}: the counter");
            let expected: Vec<String> = added
                .iter()
                .filter(|element| !removed.contains(*element))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(elements, expected, "seed {seed}: the set");
            Ok(())
        });
        if let Err(err) = sim.run() {
            panic!(
                "seed {seed}: {err}\nreplay with: DSLAB_SEED={seed} DSLAB_SEEDS=1 cargo test -p replication crdt_replica_converges"
            );
        }
    }
}

/// Bytes all replicas have shipped.
async fn shipped(clients: &mut [ReplicaClient]) -> Result<u64, tonic::Status> {
    let mut bytes = 0;
    for client in clients.iter_mut() {
        let status = client.status().await?;
        bytes += status.delta_bytes + status.full_state_bytes;
    }
    Ok(bytes)
}

/// Bytes shipped from the heal of a partition until convergence, when a
/// 300-element set is replicated and each side made a few updates.
fn bytes_to_heal(mode: AntiEntropy) -> u64 {
    let shipped_after_heal = Rc::new(Cell::new(0));
    let result = shipped_after_heal.clone();
    let mut sim = cluster(
        7,
        Setup {
            mode,
            faults: MessageFaults::default(),
        },
    );
    sim.client(async move {
        let mut clients: Vec<ReplicaClient> = (1..=REPLICAS).map(client).collect();
        for i in 0..300 {
            clients[0].insert("set", &format!("element-{i:03}")).await?;
        }
        converged(&mut clients, Duration::from_secs(60)).await?;
        for a in 1..=2 {
            for b in 3..=REPLICAS {
                faults::partition(&sim::node(a), &sim::node(b));
            }
        }
        clients[0].increment("hits", 1).await?;
        clients[1].insert("set", "left").await?;
        clients[2].remove("set", "element-000").await?;
        clients[4].increment("hits", 2).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = shipped(&mut clients).await?;
        for a in 1..=2 {
            for b in 3..=REPLICAS {
                faults::heal(&sim::node(a), &sim::node(b));
            }
        }
        let (count, elements) = converged(&mut clients, Duration::from_secs(60)).await?;
        assert_eq!((count.as_str(), elements.len()), ("3", 300));
        shipped_after_heal.set(shipped(&mut clients).await? - before);
        Ok(())
    });
    sim.run().expect("the cluster converges");
    result.get()
}

/// Episode 21. After a partition with four updates, delta anti-entropy
/// ships at most a tenth of the bytes full-state anti-entropy ships
/// between the heal and convergence (on the replicas' byte counters).
#[test]
fn crdt_replica_deltas_ship_a_tenth_of_full_state_after_a_partition() {
    let delta = bytes_to_heal(AntiEntropy::Delta);
    let full = bytes_to_heal(AntiEntropy::FullState);
    assert!(delta > 0 && full > 0);
    assert!(
        delta * 10 <= full,
        "deltas shipped {delta} bytes, full state {full}"
    );
}

/// Episode 22. A replica crashes and restarts with nothing, and takes
/// updates at once: its peers see the new incarnation, find that the
/// deltas it needs are long gone, and refill it with their full state,
/// chunk by chunk — and its new updates count as new everywhere.
#[test]
fn crdt_replica_restarted_empty_is_refilled_by_full_state() {
    let mut sim = cluster(
        3,
        Setup {
            mode: AntiEntropy::Delta,
            faults: MessageFaults::default(),
        },
    );
    let written = Rc::new(Cell::new(false));
    let restarted = Rc::new(Cell::new(false));
    let (driver_written, driver_restarted) = (written.clone(), restarted.clone());
    sim.client(async move {
        let mut clients: Vec<ReplicaClient> = (1..=REPLICAS).map(client).collect();
        for i in 0..200 {
            clients[i % 4]
                .insert("set", &format!("element-{i:03}"))
                .await?;
            clients[i % 5].increment("hits", 1).await?;
        }
        converged(&mut clients, Duration::from_secs(60)).await?;
        driver_written.set(true);
        while !driver_restarted.get() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Updates on n5 before anyone has refilled it: a new run must not
        // reuse its old run's dots or counter entry.
        clients[4].increment("hits", 7).await?;
        clients[4].insert("set", "after-restart").await?;
        let (count, elements) = converged(&mut clients, Duration::from_secs(60)).await?;
        assert_eq!((count.as_str(), elements.len()), ("207", 201));
        assert!(elements.contains(&"after-restart".to_owned()));
        let mut full_state_sent = 0;
        for client in &mut clients[..4] {
            full_state_sent += client.status().await?.full_state_messages;
        }
        assert!(full_state_sent > 0, "peers refilled n5 with full state");
        Ok(())
    });
    while !written.get() {
        let finished = sim.step().expect("the simulation runs");
        assert!(!finished, "the driver ended before the restart");
    }
    sim.restart(&sim::node(5));
    restarted.set(true);
    sim.run().expect("n5 is refilled");
}

/// The peer secret of the lone replica's cluster.
fn secret() -> PeerSecret {
    PeerSecret::new("sixteen-or-more-characters").expect("a valid secret")
}

/// A lone replica of a two-member cluster (its peer never answers), on
/// 127.0.0.1, with a peer secret.
async fn lone_replica() -> (
    ServerHandle,
    CrdtReplicaClient<observability::rpc::RpcChannel>,
) {
    let peers = BTreeMap::from([(ReplicaId(2), "127.0.0.1:1".to_owned())]);
    let mut config = ReplicaConfig::new(ReplicaId(1), peers, Net::Tcp);
    config.peer_secret = Some(secret());
    let replica = CrdtReplica::start(config).expect("a valid config");
    let server = RpcServer::new()
        .add_service(replica.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("binds")
        .spawn();
    let client = CrdtReplicaClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    (server, client)
}

fn object(kind: i32, name: &str) -> Option<proto::ObjectId> {
    Some(proto::ObjectId {
        r#type: kind,
        name: name.to_owned(),
    })
}

/// Member 2's actor in its first run.
const PEER_ACTOR: u64 = (2 << super::INCARNATION_BITS) | 1;

fn gossip_from_2(deltas: Vec<proto::Delta>) -> proto::GossipRequest {
    proto::GossipRequest {
        from: 2,
        deltas,
        ..Default::default()
    }
}

fn set_delta(counter: u64, entries: Vec<proto::or_set_state::Entry>) -> proto::Delta {
    proto::Delta {
        dot: Some(proto::Dot {
            replica: PEER_ACTOR,
            counter,
        }),
        object: Some(proto::ObjectState {
            name: "set".into(),
            state: Some(proto::object_state::State::OrSet(proto::OrSetState {
                entries,
                context: None,
            })),
        }),
    }
}

fn entry(element: &str, counter: u64) -> proto::or_set_state::Entry {
    proto::or_set_state::Entry {
        element: element.into(),
        dots: vec![proto::Dot {
            replica: PEER_ACTOR,
            counter,
        }],
    }
}

/// Episode 21. Hostile and mistaken input — unknown object types, an
/// operation of another type, gossip from a stranger or without the peer
/// secret, malformed and oversized deltas, forged updates, a clock an
/// hour in the future — each gets a precise status, and the replica's
/// state and version vector are unchanged.
#[tokio::test]
async fn crdt_replica_refuses_bad_input_and_keeps_its_state() {
    let (server, mut client) = lone_replica().await;
    let set = proto::CrdtType::OrSet as i32;
    client
        .update(proto::UpdateRequest {
            object: object(set, "set"),
            operation: Some(proto::update_request::Operation::Insert("kept".into())),
        })
        .await
        .expect("a valid update");
    let status_before = client
        .status(proto::StatusRequest {})
        .await
        .expect("status")
        .into_inner();

    let update = |kind: i32, operation| proto::UpdateRequest {
        object: object(kind, "set"),
        operation: Some(operation),
    };
    use proto::update_request::Operation as Op;
    let mistakes = [
        ("unknown type", update(99, Op::Insert("x".into()))),
        ("unspecified type", update(0, Op::Insert("x".into()))),
        (
            "insert on a counter",
            update(proto::CrdtType::GCounter as i32, Op::Insert("x".into())),
        ),
        (
            "oversized element",
            update(set, Op::Insert("x".repeat(2000))),
        ),
        (
            "no operation",
            proto::UpdateRequest {
                object: object(set, "set"),
                operation: None,
            },
        ),
    ];
    for (what, request) in mistakes {
        let status = client.update(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}");
    }
    let past_the_maximum = proto::UpdateRequest {
        object: object(proto::CrdtType::GCounter as i32, "big"),
        operation: Some(Op::Increment(1 << 62)),
    };
    let status = client.update(past_the_maximum).await.expect_err("refused");
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());

    let far_future = proto::Delta {
        dot: Some(proto::Dot {
            replica: PEER_ACTOR,
            counter: 1,
        }),
        object: Some(proto::ObjectState {
            name: "register".into(),
            state: Some(proto::object_state::State::LwwRegister(
                proto::LwwRegisterState {
                    stamp: Some(proto::HlcTimestamp {
                        wall_ns: SystemClock.now_ns() + 3_600_000_000_000,
                        logical: 0,
                    }),
                    writer: PEER_ACTOR,
                    value: "from the future".into(),
                },
            )),
        }),
    };
    let gossip = [
        (
            "a stranger",
            Code::InvalidArgument,
            proto::GossipRequest {
                from: 9,
                ..Default::default()
            },
        ),
        (
            "dot counter 0",
            Code::InvalidArgument,
            gossip_from_2(vec![set_delta(0, vec![entry("a", 1)])]),
        ),
        (
            "an element twice",
            Code::InvalidArgument,
            gossip_from_2(vec![set_delta(1, vec![entry("a", 1), entry("a", 2)])]),
        ),
        (
            "an oversized element",
            Code::InvalidArgument,
            gossip_from_2(vec![set_delta(1, vec![entry(&"a".repeat(5000), 1)])]),
        ),
        (
            "a stranger's dot",
            Code::InvalidArgument,
            gossip_from_2(vec![proto::Delta {
                dot: Some(proto::Dot {
                    replica: 7,
                    counter: 1,
                }),
                ..set_delta(1, vec![])
            }]),
        ),
        // Valid first delta, bad second: nothing of the message is merged.
        (
            "a bad delta after a good one",
            Code::InvalidArgument,
            gossip_from_2(vec![
                set_delta(1, vec![entry("b", 1)]),
                proto::Delta {
                    object: None,
                    ..set_delta(2, vec![])
                },
            ]),
        ),
        (
            "more deltas than a message may carry",
            Code::InvalidArgument,
            gossip_from_2(
                (1..=300)
                    .map(|i| set_delta(i, vec![entry(&format!("e{i}"), i)]))
                    .collect(),
            ),
        ),
        (
            "a forged update of this replica",
            Code::InvalidArgument,
            gossip_from_2(vec![proto::Delta {
                dot: Some(proto::Dot {
                    replica: status_before.actor,
                    counter: 99,
                }),
                ..set_delta(1, vec![])
            }]),
        ),
        (
            "a clock an hour ahead",
            Code::FailedPrecondition,
            gossip_from_2(vec![far_future]),
        ),
        (
            "a message past the size limit",
            Code::ResourceExhausted,
            gossip_from_2(vec![set_delta(
                1,
                (1..=6000)
                    .map(|i| entry(&format!("{i:01000}"), i))
                    .collect(),
            )]),
        ),
    ];
    for (what, code, request) in gossip {
        let mut request = tonic::Request::new(request);
        secret().attach(&mut request);
        let status = client.gossip(request).await.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {}", status.message());
    }
    // A valid message without the secret: refused before it is read.
    let status = client
        .gossip(gossip_from_2(vec![set_delta(
            1,
            vec![entry("sneaked in", 1)],
        )]))
        .await
        .expect_err("no secret");
    assert_eq!(status.code(), Code::Unauthenticated);

    let status_after = client
        .status(proto::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status_after.seen, status_before.seen);
    assert_eq!(status_after.state_bytes, status_before.state_bytes);
    let read = client
        .read(proto::ReadRequest {
            object: object(set, "set"),
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        read.value.map(|value| value.elements),
        Some(vec!["kept".to_owned()])
    );
    server.shutdown().await.expect("shuts down");
}

/// The shared hostile client against every method: each call ends with a
/// precise status, and the server stays healthy.
#[tokio::test]
async fn crdt_replica_survives_the_fuzzer() {
    use observability::fuzz::{FuzzOptions, fuzz_service};
    let (server, _) = lone_replica().await;
    let report = fuzz_service(
        server.uri(),
        FILE_DESCRIPTOR_SET,
        "replication.v1.CrdtReplica",
        &FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert!(report.calls > 100, "{report:?}");
    server.shutdown().await.expect("shuts down");
}

/// A replica's core, as a test drives it (no network).
fn core(
    id: u64,
    incarnation: u64,
) -> super::anti_entropy::Replica<crate::clock::physical::ManualClock> {
    use crate::clock::hlc::HybridClock;
    use crate::clock::physical::ManualClock;
    let members = super::codec::Members([ReplicaId(1), ReplicaId(2)].into());
    let clock = HybridClock::new(ManualClock::new(1_000_000_000), Duration::from_millis(500));
    super::anti_entropy::Replica::new(
        ReplicaId(id),
        members,
        incarnation,
        AntiEntropy::Delta,
        clock,
    )
}

/// One gossip message from `from` to `to`, acknowledged.
fn exchange<C: PhysicalClock>(
    from: &mut super::anti_entropy::Replica<C>,
    to: &mut super::anti_entropy::Replica<C>,
) -> proto::GossipRequest {
    let (request, sent) = from.gossip_to(to.id()).expect("a peer");
    let reply = to.receive(&request).expect("a valid message");
    from.acknowledge(to.id(), &sent, &reply)
        .expect("a valid reply");
    request
}

/// Episode 22. Replica 1 holds more than its delta buffer, so replica 2
/// needs its full state, in chunks. Replica 2 restarts just before the
/// last chunk — which carries the claim "this covers everything". The new
/// run must not adopt the claim (it never merged the earlier chunks); the
/// transfer starts over and replica 2 ends with every object.
#[test]
fn crdt_replica_full_state_claim_is_not_adopted_across_a_restart() {
    use super::object::{ObjectKey, Operation};
    let mut a = core(1, 1);
    let mut b = core(2, 1);
    for set in 0..12 {
        for element in 0..100 {
            let key = ObjectKey {
                kind: Kind::OrSet,
                name: format!("set-{set}"),
            };
            a.update(key, Operation::Insert(format!("{element:0900}")))
                .expect("within the bounds");
        }
    }
    exchange(&mut a, &mut b); // The probe: a learns b's incarnation.
    let mut chunks = 0;
    let last_chunk = loop {
        let (request, sent) = a.gossip_to(b.id()).expect("a peer");
        assert!(
            !request.objects.is_empty(),
            "the deltas are gone: full state"
        );
        if request.full_state_seen.is_some() {
            break request;
        }
        let reply = b.receive(&request).expect("a valid chunk");
        a.acknowledge(b.id(), &sent, &reply).expect("a valid reply");
        chunks += 1;
    };
    assert!(chunks >= 2, "several chunks before the last ({chunks})");

    let mut b = core(2, 2);
    let reply = b.receive(&last_chunk).expect("a valid chunk");
    assert_eq!(reply.incarnation, 2);
    let sent = super::anti_entropy::Sent::Chunk {
        start: None,
        last: None,
        last_chunk: true,
    };
    a.acknowledge(b.id(), &sent, &reply).expect("a valid reply");
    for _ in 0..20 {
        exchange(&mut a, &mut b);
    }
    for set in 0..12 {
        let key = ObjectKey {
            kind: Kind::OrSet,
            name: format!("set-{set}"),
        };
        assert_eq!(
            b.read(&key).1.elements.len(),
            100,
            "set-{set} on the restarted replica"
        );
    }
    assert_eq!(b.status().seen, a.status().seen);
}
