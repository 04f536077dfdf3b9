//! The pure pieces (versions, store, hints, Merkle trees, placement), and
//! a loopback cluster: anti-entropy's cost, and hostile input.

use std::collections::BTreeSet;
use std::time::Duration;

use observability::fuzz::{FuzzOptions, fuzz_service};
use tonic::Code;

use super::anti_entropy;
use super::hints::Hints;
use super::merkle::{self, MerkleTree};
use super::placement::Placement;
use super::store::Store;
use super::version::{self, Resolution, Stored};
use super::{LocalCluster, MAX_HINTS, MAX_SIBLINGS};
use crate::clock::ReplicaId;
use crate::clock::vector::VersionVector;
use crate::proto::FILE_DESCRIPTOR_SET;

fn stored(value: &str, stamp_ms: u64) -> Stored {
    Stored {
        value: value.as_bytes().to_vec(),
        stamp_ms,
    }
}

fn texts(values: Vec<Vec<u8>>) -> Vec<String> {
    values
        .into_iter()
        .map(|value| String::from_utf8(value).expect("test values are text"))
        .collect()
}

/// Episode 22. Two writes through two coordinators, neither having seen
/// the other, stay siblings after the replicas merge; a write that names
/// the context of a read of both replaces both, everywhere — including on
/// a replica whose coordinator never held one of them.
#[test]
fn quorum_concurrent_writes_stay_siblings_until_a_write_resolves_them() {
    let (a, b) = (ReplicaId(1 << 40 | 1), ReplicaId(2 << 40 | 1));
    let mut one = Store::default();
    let mut two = Store::default();
    let first = one
        .coordinate(a, "k", &VersionVector::new(), stored("left", 1))
        .expect("within bounds");
    let second = two
        .coordinate(b, "k", &VersionVector::new(), stored("right", 2))
        .expect("within bounds");
    one.merge("k", &second).expect("within bounds");
    two.merge("k", &first).expect("within bounds");
    let state = one.get("k").expect("present").clone();
    assert_eq!(
        texts(version::resolve(&state, Resolution::Siblings)),
        ["left", "right"]
    );
    assert_eq!(
        texts(version::resolve(&state, Resolution::LastWriterWins)),
        ["right"]
    );
    assert_eq!(
        Some(&state),
        two.get("k"),
        "both replicas hold both siblings"
    );

    // A third replica saw only the first write; the resolving write is
    // coordinated there, with the context of a read of both. Alone, it
    // clamps the context to what it saw, so "right" would stay a sibling;
    // the coordinator first fetches the key from the other replicas (the
    // context names a dot it lacks), as here.
    let mut three = Store::default();
    three.merge("k", &first).expect("within bounds");
    let context = version::client_context(&state);
    let mut alone = Store::default();
    alone.merge("k", &first).expect("within bounds");
    let unresolved = alone
        .coordinate(a, "k", &context, stored("both", 3))
        .expect("within bounds");
    let mut on_one = Store::default();
    on_one.merge("k", &state).expect("within bounds");
    on_one.merge("k", &unresolved).expect("within bounds");
    assert_eq!(
        texts(version::resolve(
            on_one.get("k").expect("present"),
            Resolution::Siblings
        )),
        ["both", "right"],
        "only the first write was replaced"
    );
    three.merge("k", &second).expect("within bounds");
    let resolved = three
        .coordinate(a, "k", &context, stored("both", 3))
        .expect("within bounds");
    one.merge("k", &resolved).expect("within bounds");
    two.merge("k", &resolved).expect("within bounds");
    for store in [&one, &two, &three] {
        let state = store.get("k").expect("present");
        assert_eq!(
            texts(version::resolve(state, Resolution::Siblings)),
            ["both"]
        );
    }
}

/// Blind writes pile up siblings; past the bound the store refuses the
/// next one with a precise error and keeps the state it had.
#[test]
fn quorum_siblings_are_bounded() {
    let mut store = Store::default();
    let actor = ReplicaId(1 << 40 | 1);
    for i in 0..MAX_SIBLINGS {
        store
            .coordinate(actor, "k", &VersionVector::new(), stored(&i.to_string(), 0))
            .expect("below the bound");
    }
    let err = store
        .coordinate(actor, "k", &VersionVector::new(), stored("one more", 0))
        .expect_err("over the bound");
    assert_eq!(tonic::Status::from(err).code(), Code::FailedPrecondition);
    assert_eq!(store.get("k").map(|state| state.len()), Some(MAX_SIBLINGS));
}

/// A state from the wire with a dot of a stranger, a zero dot, a
/// counter from the future or too many siblings is refused.
#[test]
fn quorum_decode_refuses_malformed_states() {
    let members = |actor: ReplicaId| crate::crdt_replica::member_of(actor).0 <= 3;
    let mut store = Store::default();
    let state = store
        .coordinate(
            ReplicaId(1 << 40 | 1),
            "k",
            &VersionVector::new(),
            stored("v", 0),
        )
        .expect("within bounds");
    let good = version::encode("k", &state);
    assert!(version::decode(&good, members).is_ok());
    let mut stranger = good.clone();
    stranger.siblings[0].dot.as_mut().expect("a dot").replica = 9 << 40;
    let mut zero = good.clone();
    zero.siblings[0].dot.as_mut().expect("a dot").counter = 0;
    let mut future = good.clone();
    future.siblings[0].dot.as_mut().expect("a dot").counter = version::MAX_COUNTER;
    let mut crowded = good.clone();
    crowded.siblings = vec![good.siblings[0].clone(); MAX_SIBLINGS + 1];
    let mut empty_key = good.clone();
    empty_key.key.clear();
    for bad in [stranger, zero, future, crowded, empty_key] {
        let err = version::decode(&bad, members).expect_err("refused");
        assert_ne!(tonic::Status::from(err).code(), Code::Internal);
    }
}

/// A key re-hinted while its handoff was in flight stays pending; the
/// queue refuses a new hint when full.
#[test]
fn quorum_hints_keep_a_key_rewritten_during_handoff() {
    let owner = ReplicaId(1);
    let mut hints = Hints::default();
    hints.add(owner, "k").expect("room");
    let sent = hints.batches(10).remove(&owner).expect("a batch");
    hints.add(owner, "k").expect("room");
    hints.delivered(owner, &sent);
    assert_eq!(hints.len(), 1, "the newer write is still owed");
    let sent = hints.batches(10).remove(&owner).expect("a batch");
    hints.delivered(owner, &sent);
    assert!(hints.is_empty());
    assert_eq!(hints.delivered_count(), 1);

    for i in 0..MAX_HINTS {
        hints.add(owner, &i.to_string()).expect("room");
    }
    let err = hints.add(owner, "one more").expect_err("full");
    assert_eq!(tonic::Status::from(err).code(), Code::ResourceExhausted);
}

/// Equal stores give equal trees; one changed key changes its leaf and
/// the path to the root, nothing else.
#[test]
fn quorum_merkle_tree_isolates_a_difference_to_one_path() {
    let entries: Vec<(String, u64)> = (0..500).map(|i| (format!("key{i:04}"), i)).collect();
    let tree = MerkleTree::build(entries.iter().map(|(key, digest)| (key.as_str(), *digest)));
    let same = MerkleTree::build(entries.iter().map(|(key, digest)| (key.as_str(), *digest)));
    assert_eq!(tree, same);
    let mut changed = entries.clone();
    changed[42].1 += 1;
    let other = MerkleTree::build(changed.iter().map(|(key, digest)| (key.as_str(), *digest)));
    assert_ne!(tree.root(), other.root());
    let leaf = merkle::leaf_of("key0042");
    let mut index = leaf;
    for level in (0..=merkle::DEPTH).rev() {
        let all: Vec<u32> = (0..1u32 << level).collect();
        let theirs: Vec<u64> = all
            .iter()
            .map(|&i| other.node(level, i).unwrap_or(0))
            .collect();
        assert_eq!(
            tree.differing(level, &all, &theirs),
            [index],
            "level {level}"
        );
        index /= 2;
    }
}

/// The preference list is N distinct members; the ring order lists every
/// member once, the preference list first.
#[test]
fn quorum_placement_lists_n_distinct_replicas() {
    let members: BTreeSet<ReplicaId> = (1..=5).map(ReplicaId).collect();
    let placement = Placement::new(&members, 3).expect("valid");
    for i in 0..100 {
        let key = format!("k{i}");
        let order = placement.ring_order(&key);
        assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), members);
        assert_eq!(placement.preference_list(&key), order[..3]);
    }
    assert!(Placement::new(&members, 6).is_err());
    assert!(Placement::new(&members, 0).is_err());
}

async fn quiet_cluster() -> LocalCluster {
    LocalCluster::start(3, |_, config| {
        config.anti_entropy_interval = None;
        config.peer_timeout = Duration::from_secs(2);
    })
    .await
    .expect("a loopback cluster starts")
}

/// Copies every key of node 0 to nodes 1 and 2 directly (no network).
fn copy_everywhere(cluster: &LocalCluster) {
    let states: Vec<(String, version::Versioned)> = cluster.nodes[0]
        .store()
        .lock()
        .keys()
        .map(|(key, state)| (key.to_owned(), state.clone()))
        .collect();
    for node in &cluster.nodes[1..] {
        let mut store = node.store().lock();
        for (key, state) in &states {
            store.merge(key, state).expect("within bounds");
        }
    }
}

/// Episode 22. Three replicas share 2,000 keys. When node 1 alone holds
/// d changed keys, one Merkle exchange with node 2 makes them agree, and
/// the bytes it ships grow with d — not with the 2,000 keys: identical
/// replicas exchange one hash; d = 100 costs less than 100 times the
/// per-key cost of d = 1 plus a constant, and far less than shipping the
/// whole store (measured: about 17, 580, 4,000 and 32,500 bytes for
/// d = 0, 1, 10, 100, against 275,000 for the store).
#[tokio::test]
async fn quorum_anti_entropy_ships_bytes_proportional_to_the_difference() {
    let cluster = quiet_cluster().await;
    let actor = ReplicaId(1 << 40 | 7);
    {
        let mut store = cluster.nodes[0].store().lock();
        for i in 0..2000 {
            store
                .coordinate(
                    actor,
                    &format!("key-{i}"),
                    &VersionVector::new(),
                    stored(&"x".repeat(100), 0),
                )
                .expect("within bounds");
        }
    }
    copy_everywhere(&cluster);
    let whole_store: u64 = cluster.nodes[0]
        .store()
        .lock()
        .keys()
        .map(|(key, state)| prost::Message::encoded_len(&version::encode(key, state)) as u64)
        .sum();

    let mut cost = Vec::new();
    for (round, differing) in [0usize, 1, 10, 100].into_iter().enumerate() {
        {
            let mut store = cluster.nodes[0].store().lock();
            for i in 0..differing {
                let key = format!("key-{}", (i * 17 + round) % 2000);
                let context = version::client_context(store.get(&key).expect("present"));
                store
                    .coordinate(actor, &key, &context, stored(&format!("new {round}"), 1))
                    .expect("within bounds");
            }
        }
        let bytes = cluster.nodes[0]
            .anti_entropy_with(ReplicaId(2))
            .await
            .expect("the exchange runs");
        let digests = |i: usize| -> Vec<u64> {
            cluster.nodes[i]
                .store()
                .lock()
                .keys()
                .map(|(key, state)| version::digest(key, state))
                .collect()
        };
        assert_eq!(
            digests(0),
            digests(1),
            "d = {differing}: nodes 1 and 2 agree"
        );
        cost.push((differing, bytes));
    }
    let bytes = |d: usize| cost.iter().find(|(x, _)| *x == d).map_or(0, |(_, b)| *b);
    assert!(
        bytes(0) < 64,
        "identical replicas exchange a root hash: {cost:?}"
    );
    assert!(
        bytes(1) > bytes(0) && bytes(10) > bytes(1) && bytes(100) > bytes(10),
        "{cost:?}"
    );
    // Linear in d: each differing key costs its state plus at most its
    // path to the root (paths share their top as d grows).
    assert!(bytes(100) <= 100 * bytes(1), "{cost:?}");
    assert!(
        bytes(10) >= 5 * bytes(1) && bytes(100) >= 5 * bytes(10),
        "{cost:?}"
    );
    // 5% of the keys differ: well under a fifth of the store moves.
    assert!(
        bytes(100) * 5 < whole_store,
        "{cost:?} vs the whole store's {whole_store} bytes"
    );
    // Node 3 never took part: it still holds the first versions.
    let digests_of = |i: usize| -> Vec<u64> {
        let store = cluster.nodes[i].store().lock();
        store
            .keys()
            .map(|(key, state)| version::digest(key, state))
            .collect()
    };
    assert_ne!(digests_of(2), digests_of(0));
    cluster.shutdown().await;
}

/// A difference larger than one exchange's cap still converges: each
/// exchange repairs whole leaves, so the next one moves on to the rest.
#[tokio::test]
async fn quorum_anti_entropy_converges_past_the_per_exchange_cap() {
    let cluster = quiet_cluster().await;
    let total = 3 * anti_entropy::MAX_KEYS_PER_EXCHANGE;
    {
        let mut store = cluster.nodes[0].store().lock();
        for i in 0..total {
            store
                .coordinate(
                    ReplicaId(1 << 40 | 7),
                    &format!("key-{i}"),
                    &VersionVector::new(),
                    stored("v", 0),
                )
                .expect("within bounds");
        }
    }
    let held = |i: usize| cluster.nodes[i].store().lock().len();
    let mut after = Vec::new();
    for _ in 0..8 {
        cluster.nodes[0]
            .anti_entropy_with(ReplicaId(2))
            .await
            .expect("the exchange runs");
        after.push(held(1));
        if held(1) == total {
            break;
        }
    }
    assert!(after[0] < total, "one exchange is capped: {after:?}");
    assert_eq!(held(1), total, "later exchanges progress: {after:?}");
    let last = cluster.nodes[0]
        .anti_entropy_with(ReplicaId(2))
        .await
        .expect("the exchange runs");
    assert!(last < 64, "converged replicas exchange a root hash: {last}");
    cluster.shutdown().await;
}

/// The shared hostile client against every method of a node in a
/// three-node cluster: each call ends with a precise status, none panics.
#[tokio::test]
async fn quorum_kv_survives_the_fuzzer() {
    let cluster = quiet_cluster().await;
    let report = fuzz_service(
        cluster.uri(0),
        FILE_DESCRIPTOR_SET,
        "replication.v1.QuorumKv",
        &FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    assert!(report.calls > 100, "{report:?}");
    // Still serving after it.
    let mut client = cluster.client(0);
    client
        .put("after", b"fuzz", Vec::new(), 2, false)
        .await
        .expect("a put after the fuzzer");
    cluster.shutdown().await;
}

/// Bad requests get precise codes and change nothing: an oversized key
/// or value, R or W above N, a context naming a stranger, an unknown
/// resolution; a peer call from a non-member.
#[tokio::test]
async fn quorum_kv_refuses_bad_requests_with_precise_codes() {
    use crate::proto;
    let cluster = quiet_cluster().await;
    let mut client = cluster.client(0);
    let big_key = "k".repeat(super::MAX_KEY_BYTES + 1);
    let big_value = vec![0u8; super::MAX_VALUE_BYTES + 1];
    let stranger = vec![proto::VersionEntry {
        replica: 99 << 40,
        count: 1,
    }];
    let cases: Vec<(&str, Result<proto::QuorumPutReply, tonic::Status>)> = vec![
        (
            "empty key",
            client.put("", b"v", Vec::new(), 2, false).await,
        ),
        (
            "big key",
            client.put(&big_key, b"v", Vec::new(), 2, false).await,
        ),
        (
            "big value",
            client.put("k", &big_value, Vec::new(), 2, false).await,
        ),
        ("W > N", client.put("k", b"v", Vec::new(), 4, false).await),
        (
            "stranger in context",
            client.put("k", b"v", stranger, 2, false).await,
        ),
    ];
    for (what, result) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let status = client
        .get("k", 4, false, Resolution::Siblings)
        .await
        .expect_err("R > N");
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut raw = crate::proto::quorum_kv_client::QuorumKvClient::new(
        observability::rpc::ClientBuilder::new(observability::rpc::Net::Tcp)
            .connect_lazy(cluster.uri(0)),
    );
    let status = raw
        .get(proto::QuorumGetRequest {
            key: "k".into(),
            r: 1,
            sloppy: false,
            resolution: 7,
        })
        .await
        .expect_err("unknown resolution");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = raw
        .fetch(proto::FetchRequest {
            from: 42,
            keys: vec!["k".into()],
        })
        .await
        .expect_err("not a member");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        cluster
            .nodes
            .iter()
            .all(|node| node.store().lock().is_empty())
    );
    cluster.shutdown().await;
}
