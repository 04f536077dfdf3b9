//! The etcd API of a single-node cluster on loopback: semantics, errors
//! with etcd's codes and texts, nothing applied by a refused request, and
//! the hostile client against every method.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle};
use tonic::Code;

use super::Services;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    CompactionRequest, Compare, HashKvRequest, MemberAddRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, PutRequest, RangeRequest,
    RequestOp, StatusRequest, TxnRequest,
};
use crate::raft::{MemDisk, NodeConfig, RaftNode, Storage, Timing};

/// A one-node cluster on 127.0.0.1, with requests timing out after
/// `timeout`.
async fn single_node(timeout: Duration) -> (RaftNode, ServerHandle) {
    single_node_with(timeout, |server| server).await
}

/// [`single_node`], its server set up by `configure`.
async fn single_node_with(
    timeout: Duration,
    configure: impl FnOnce(RpcServer) -> RpcServer,
) -> (RaftNode, ServerHandle) {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
    let addr = listener.local_addr().expect("bound");
    drop(listener);
    let peers = BTreeMap::from([(1, addr.to_string())]);
    let mut config = NodeConfig::new(1, peers, Storage::Memory(MemDisk::new()), Net::Tcp);
    // A hostile client fills the store to its quota; every snapshot of a
    // full store copies it several times over, so tests keep it small.
    config.quota_bytes = 32 * 1024 * 1024;
    config.timing = Timing {
        tick: Duration::from_millis(10),
        request_timeout: timeout,
        ..Timing::default()
    };
    let node = RaftNode::start(config).await.expect("starts");
    let server = configure(Services::new(&node, Net::Tcp).into_server())
        .bind(Net::Tcp, addr)
        .await
        .expect("binds")
        .spawn();
    node.wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a one-node cluster elects itself");
    (node, server)
}

fn kv(server: &ServerHandle) -> KvClient<RpcChannel> {
    KvClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()))
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..RangeRequest::default()
    }
}

/// Episode 13. Put, get, history, a transaction and a compaction through
/// the real API, headers filled as etcd fills them.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_kv_round_trip_with_headers() {
    let (node, server) = single_node(Duration::from_secs(5)).await;
    let mut client = kv(&server);
    let first = client.put(put("k", "v1")).await.expect("put").into_inner();
    let header = first.header.expect("header");
    assert_eq!((header.revision, header.member_id), (2, 1));
    assert_eq!(header.cluster_id, node.cluster_id());
    assert!(header.raft_term >= 2);
    client.put(put("k", "v2")).await.expect("put");
    let now = client.range(get("k")).await.expect("get").into_inner();
    assert_eq!(now.kvs[0].value, b"v2");
    assert_eq!(now.kvs[0].version, 2);
    let then = client
        .range(RangeRequest {
            revision: 2,
            ..get("k")
        })
        .await
        .expect("get at 2")
        .into_inner();
    assert_eq!(then.kvs[0].value, b"v1");
    let swap = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: b"k".to_vec(),
            target_union: Some(TargetUnion::Value(b"v2".to_vec())),
            ..Compare::default()
        }],
        success: vec![RequestOp {
            request: Some(Op::RequestPut(put("k", "v3"))),
        }],
        failure: Vec::new(),
    };
    let swapped = client.txn(swap).await.expect("txn").into_inner();
    assert!(swapped.succeeded);
    assert_eq!(swapped.header.expect("header").revision, 4);
    client
        .compact(CompactionRequest {
            revision: 3,
            physical: true,
        })
        .await
        .expect("compact");
    let gone = client
        .range(RangeRequest {
            revision: 2,
            ..get("k")
        })
        .await
        .expect_err("compacted");
    assert_eq!(
        (gone.code(), gone.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    drop(server);
    node.stop().await;
}

/// Bad input gets etcd's codes and texts, and leaves the store as it was.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_bad_input_gets_etcds_errors_and_changes_nothing() {
    let (node, server) = single_node(Duration::from_secs(5)).await;
    let mut client = kv(&server);
    client.put(put("k", "v")).await.expect("put");
    let revision = node.read_state(|state| state.mvcc.revision());
    let cases: Vec<(tonic::Status, Code, &str)> = vec![
        (
            client.put(put("", "v")).await.expect_err("empty key"),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            client
                .put(put("big", &"x".repeat(1600 * 1024)))
                .await
                .expect_err("too large"),
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            client
                .range(RangeRequest {
                    revision: 1000,
                    ..get("k")
                })
                .await
                .expect_err("future"),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        (
            client
                .txn(TxnRequest {
                    success: (0..129)
                        .map(|i| RequestOp {
                            request: Some(Op::RequestPut(put(&format!("k{i}"), "v"))),
                        })
                        .collect(),
                    ..TxnRequest::default()
                })
                .await
                .expect_err("too many ops"),
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        (
            client
                .put(PutRequest {
                    ignore_value: true,
                    ..put("missing", "")
                })
                .await
                .expect_err("no such key"),
            Code::InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            client
                .compact(CompactionRequest {
                    revision: 1000,
                    physical: false,
                })
                .await
                .expect_err("future compaction"),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
    ];
    let mut members = ClusterClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let add = |url: &str| MemberAddRequest {
        peer_ur_ls: vec![url.to_owned()],
        is_learner: true,
    };
    let mut maintenance =
        MaintenanceClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let membership_cases: Vec<(tonic::Status, Code, &str)> = vec![
        (
            members
                .member_remove(MemberRemoveRequest { id: 99 })
                .await
                .expect_err("unknown member"),
            Code::NotFound,
            "etcdserver: member not found",
        ),
        (
            members
                .member_promote(MemberPromoteRequest { id: 99 })
                .await
                .expect_err("unknown member"),
            Code::NotFound,
            "etcdserver: member not found",
        ),
        (
            members
                .member_add(add("not a url"))
                .await
                .expect_err("bad URL"),
            Code::InvalidArgument,
            "etcdserver: given member URLs are invalid",
        ),
        (
            members
                .member_add(add(&format!("http://{}", server.local_addr())))
                .await
                .expect_err("taken URL"),
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        ),
        (
            members
                .member_add(add("https://127.0.0.1:1"))
                .await
                .expect_err("a scheme the transport cannot dial"),
            Code::InvalidArgument,
            "etcdserver: given member URLs are invalid",
        ),
        (
            members
                .member_update(MemberUpdateRequest {
                    id: 99,
                    peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                })
                .await
                .expect_err("unknown member"),
            Code::NotFound,
            "etcdserver: member not found",
        ),
        (
            maintenance
                .move_leader(MoveLeaderRequest { target_id: 99 })
                .await
                .expect_err("not a member"),
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ),
        (
            maintenance
                .hash_kv(HashKvRequest { revision: 1000 })
                .await
                .expect_err("future"),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
    ];
    for (status, code, text) in cases.into_iter().chain(membership_cases) {
        assert_eq!((status.code(), status.message()), (code, text));
    }
    assert_eq!(
        node.read_state(|state| state.mvcc.revision()),
        revision,
        "no refused request changed the store"
    );
    assert_eq!(
        node.read_state(|state| state.members.keys().copied().collect::<Vec<_>>()),
        [1],
        "no refused change touched the membership"
    );
    // A revision compacted away is refused with etcd's words.
    client
        .compact(CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .expect("compacts");
    let compacted = client
        .range(RangeRequest {
            revision: revision - 1,
            ..get("k")
        })
        .await
        .expect_err("compacted");
    assert_eq!(
        (compacted.code(), compacted.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    let status = MaintenanceClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()))
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.leader, 1);
    assert!(status.raft_index >= 2 && status.errors.is_empty());
    drop(server);
    node.stop().await;
}

/// Episode 34. The hostile client against every method of every service a
/// node hosts (each on a node of its own: a random MemberAdd can cost the
/// one-node cluster its quorum). Every call gets a precise status, and the
/// node still answers afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn fuzz_raft_kv_every_service_answers_precisely() {
    use observability::fuzz::{FuzzOptions, fuzz_service};

    use crate::proto::FILE_DESCRIPTOR_SET;
    for service in [
        "etcdserverpb.KV",
        "etcdserverpb.Cluster",
        "etcdserverpb.Maintenance",
        "etcdserverpb.Lease",
        "etcdserverpb.Watch",
        "v3lockpb.Lock",
        "v3electionpb.Election",
        "consensus.v1.RaftTransport",
    ] {
        // Lock and Campaign wait for their turn as long as the caller
        // allows; random requests often queue behind each other, so the
        // server's cap on them is short here.
        let (node, server) = single_node_with(Duration::from_millis(300), |server| {
            server
                .route_max_duration("/v3lockpb.Lock/Lock", Duration::from_secs(1))
                .route_max_duration("/v3electionpb.Election/Campaign", Duration::from_secs(1))
        })
        .await;
        let options = FuzzOptions {
            random_messages: 24,
            ..FuzzOptions::default()
        };
        fuzz_service(server.uri(), FILE_DESCRIPTOR_SET, service, &options)
            .await
            .unwrap_or_else(|failure| panic!("{service}: {failure}"));
        MaintenanceClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()))
            .status(StatusRequest {})
            .await
            .unwrap_or_else(|status| panic!("{service}: still answering: {status:?}"));
        drop(server);
        node.stop().await;
    }
}

/// A peer stream that goes silent is ended by the server's idle limit,
/// although its handler — which reads the stream to its end before it
/// answers — has returned nothing yet: a client cannot hold a task by
/// opening a stream and saying nothing.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_silent_peer_stream_is_ended_by_the_idle_limit() {
    use crate::proto::v1::MessageBatch;
    use crate::proto::v1::raft_transport_client::RaftTransportClient;

    let (node, server) = single_node_with(Duration::from_secs(5), |server| {
        server.route_idle_timeout(
            "/consensus.v1.RaftTransport/Stream",
            Duration::from_millis(300),
        )
    })
    .await;
    let channel = tonic::transport::Endpoint::from(server.uri())
        .connect()
        .await
        .expect("connects");
    let mut client = RaftTransportClient::new(channel);
    let silent = client.stream(futures_util::stream::pending::<MessageBatch>());
    let ended = tokio::time::timeout(Duration::from_secs(30), silent)
        .await
        .expect("the server ended the stream")
        .expect_err("ended with a status");
    assert_eq!(ended.code(), Code::Cancelled, "{ended:?}");
    assert!(ended.message().contains("idle"), "{ended:?}");
    drop(server);
    node.stop().await;
}

fn lease_client(
    server: &ServerHandle,
) -> crate::proto::etcdserverpb::lease_client::LeaseClient<RpcChannel> {
    crate::proto::etcdserverpb::lease_client::LeaseClient::new(
        ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()),
    )
}

/// Episode 16. The Lease API as etcd answers it: a TTL below the minimum
/// is raised to it; TimeToLive lists the keys; a revoke deletes them all
/// in one revision; an unknown lease answers TTL -1 to TimeToLive, TTL 0
/// to a keep-alive, and "requested lease not found" to a revoke or a put;
/// too large a TTL and a negative id are refused; nothing refused is
/// applied.
#[tokio::test(flavor = "multi_thread")]
async fn lease_api_answers_as_etcd_does() {
    use crate::proto::etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
        LeaseTimeToLiveRequest,
    };
    let (node, server) = single_node(Duration::from_secs(5)).await;
    let mut leases = lease_client(&server);
    let mut kv = kv(&server);
    let granted = leases
        .lease_grant(LeaseGrantRequest { ttl: -5, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    assert!(granted.id > 0, "a positive id: {}", granted.id);
    assert_eq!(granted.ttl, 1, "a negative TTL becomes the minimum");
    let long = leases
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 77 })
        .await
        .expect("grant with an id")
        .into_inner();
    assert_eq!((long.id, long.ttl), (77, 600));
    let again = leases
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 77 })
        .await
        .expect_err("the id is taken");
    assert_eq!(
        (again.code(), again.message()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    for (request, code, text) in [
        (
            LeaseGrantRequest {
                ttl: 9_000_000_001,
                id: 0,
            },
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        ),
        (
            LeaseGrantRequest { ttl: 10, id: -3 },
            Code::InvalidArgument,
            "etcdserver: lease ID must be positive",
        ),
    ] {
        let refused = leases.lease_grant(request).await.expect_err("refused");
        assert_eq!((refused.code(), refused.message()), (code, text));
    }
    for key in ["/svc/a", "/svc/b", "/svc/c"] {
        let mut request = put(key, "up");
        request.lease = 77;
        kv.put(request).await.expect("put with a lease");
    }
    let mut orphan = put("/svc/d", "up");
    orphan.lease = 999;
    let refused = kv.put(orphan).await.expect_err("an unknown lease");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let ttl = leases
        .lease_time_to_live(LeaseTimeToLiveRequest { id: 77, keys: true })
        .await
        .expect("time to live")
        .into_inner();
    assert_eq!(ttl.granted_ttl, 600);
    assert!((599..=600).contains(&ttl.ttl), "remaining {}", ttl.ttl);
    assert_eq!(
        ttl.keys,
        vec![b"/svc/a".to_vec(), b"/svc/b".to_vec(), b"/svc/c".to_vec()]
    );
    let unknown = leases
        .lease_time_to_live(LeaseTimeToLiveRequest { id: 5, keys: false })
        .await
        .expect("an unknown lease is an answer")
        .into_inner();
    assert_eq!(unknown.ttl, -1);
    let mut keep = leases
        .lease_keep_alive(tokio_stream::iter([
            LeaseKeepAliveRequest { id: 77 },
            LeaseKeepAliveRequest { id: 5 },
        ]))
        .await
        .expect("keep-alive stream")
        .into_inner();
    let first = keep.message().await.expect("answer").expect("one");
    let second = keep.message().await.expect("answer").expect("two");
    assert_eq!((first.id, first.ttl), (77, 600));
    assert_eq!(
        (second.id, second.ttl),
        (5, 0),
        "unknown: TTL 0, not an error"
    );
    let listed: Vec<i64> = leases
        .lease_leases(LeaseLeasesRequest {})
        .await
        .expect("leases")
        .into_inner()
        .leases
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&77) && listed.contains(&granted.id));

    let before = node.read_state(|s| s.mvcc.revision());
    leases
        .lease_revoke(LeaseRevokeRequest { id: 77 })
        .await
        .expect("revoke");
    let after = node.read_state(|s| s.mvcc.revision());
    assert_eq!(after, before + 1, "three keys deleted in one revision");
    let left = kv
        .range(RangeRequest {
            key: b"/svc/".to_vec(),
            range_end: b"/svc0".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(left.count, 0);
    let gone = leases
        .lease_revoke(LeaseRevokeRequest { id: 77 })
        .await
        .expect_err("revoked already");
    assert_eq!(
        (gone.code(), gone.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    assert_eq!(
        node.read_state(|s| s.mvcc.revision()),
        after,
        "nothing applied"
    );
    drop(server);
    node.stop().await;
}

/// Episode 16. The Watch API as etcd answers it: `created` with the
/// revision first; puts and deletes in order with `prev_kv`; a filter;
/// history replayed from `start_revision`; a progress request answered
/// with watch id -1; an empty range refused at creation; a compacted start
/// cancelled with the compaction's revision; a cancel acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn watch_api_answers_as_etcd_does() {
    use crate::proto::etcdserverpb::watch_client::WatchClient;
    use crate::proto::etcdserverpb::watch_create_request::FilterType;
    use crate::proto::etcdserverpb::watch_request::RequestUnion;
    use crate::proto::etcdserverpb::{
        DeleteRangeRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
        WatchRequest,
    };
    let (node, server) = single_node(Duration::from_secs(5)).await;
    let mut kv = kv(&server);
    kv.put(put("/a/1", "old")).await.expect("put");
    let history_start = node.read_state(|s| s.mvcc.revision());
    let (requests, inbox) = tokio::sync::mpsc::channel(8);
    let mut watch = WatchClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()))
        .watch(tokio_stream::wrappers::ReceiverStream::new(inbox))
        .await
        .expect("watch")
        .into_inner();
    let create = |create: WatchCreateRequest| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    };
    requests
        .send(create(WatchCreateRequest {
            key: b"/a/".to_vec(),
            range_end: b"/a0".to_vec(),
            prev_kv: true,
            ..WatchCreateRequest::default()
        }))
        .await
        .expect("send");
    let created = watch.message().await.expect("ok").expect("created");
    assert!(created.created && created.events.is_empty());
    assert_eq!(created.header.expect("header").revision, history_start);
    let live = created.watch_id;

    kv.put(put("/a/1", "new")).await.expect("put");
    kv.put(put("/b/1", "elsewhere")).await.expect("put");
    kv.delete_range(DeleteRangeRequest {
        key: b"/a/1".to_vec(),
        ..DeleteRangeRequest::default()
    })
    .await
    .expect("delete");
    let mut events = Vec::new();
    while events.len() < 2 {
        let response = watch.message().await.expect("ok").expect("events");
        assert_eq!(response.watch_id, live);
        events.extend(response.events);
    }
    assert_eq!(events[0].r#type, 0, "a put");
    let kv0 = events[0].kv.clone().expect("kv");
    assert_eq!(
        (kv0.key.as_slice(), kv0.value.as_slice()),
        (&b"/a/1"[..], &b"new"[..])
    );
    assert_eq!(events[0].prev_kv.clone().expect("prev").value, b"old");
    assert_eq!(events[1].r#type, 1, "a delete");
    assert!(events[1].kv.as_ref().expect("kv").mod_revision > kv0.mod_revision);

    // History from the start, puts only.
    requests
        .send(create(WatchCreateRequest {
            key: b"/a/".to_vec(),
            range_end: b"/a0".to_vec(),
            start_revision: history_start,
            filters: vec![FilterType::Nodelete as i32],
            ..WatchCreateRequest::default()
        }))
        .await
        .expect("send");
    let created = watch.message().await.expect("ok").expect("created");
    assert!(created.created);
    let replay = watch.message().await.expect("ok").expect("replay");
    let values: Vec<Vec<u8>> = replay
        .events
        .iter()
        .map(|e| e.kv.clone().expect("kv").value)
        .collect();
    assert_eq!(values, vec![b"old".to_vec(), b"new".to_vec()], "no delete");

    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await
        .expect("send");
    let progress = watch.message().await.expect("ok").expect("progress");
    assert_eq!(progress.watch_id, -1);
    assert_eq!(
        progress.header.expect("header").revision,
        node.read_state(|s| s.mvcc.revision())
    );

    requests
        .send(create(WatchCreateRequest {
            key: b"/z".to_vec(),
            range_end: b"/a".to_vec(),
            ..WatchCreateRequest::default()
        }))
        .await
        .expect("send");
    let refused = watch.message().await.expect("ok").expect("refused");
    assert!(refused.created && refused.canceled);
    assert_eq!(refused.cancel_reason, "mvcc: watcher range is empty");

    kv.compact(CompactionRequest {
        revision: node.read_state(|s| s.mvcc.revision()),
        physical: false,
    })
    .await
    .expect("compact");
    requests
        .send(create(WatchCreateRequest {
            key: b"/a/1".to_vec(),
            start_revision: history_start,
            ..WatchCreateRequest::default()
        }))
        .await
        .expect("send");
    let created = watch.message().await.expect("ok").expect("created");
    let compacted = watch.message().await.expect("ok").expect("compacted");
    assert_eq!(compacted.watch_id, created.watch_id);
    assert!(compacted.canceled);
    assert_eq!(
        compacted.compact_revision,
        node.read_state(|s| s.mvcc.revision())
    );

    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: live,
            })),
        })
        .await
        .expect("send");
    let cancelled = watch.message().await.expect("ok").expect("cancelled");
    assert!(cancelled.canceled && cancelled.watch_id == live);
    drop(requests);
    drop(server);
    node.stop().await;
}

/// Episodes 16 and 17. etcd's Lock and Election services on one node: a
/// second Lock waits until the first holder unlocks; a campaign without a
/// lease gets one; Leader answers the first candidate, Proclaim changes
/// its value, Resign hands over to the next; the errors carry etcd's
/// texts.
#[tokio::test(flavor = "multi_thread")]
async fn lock_and_election_services_answer_as_etcd_does() {
    use crate::proto::etcdserverpb::LeaseGrantRequest;
    use crate::proto::v3electionpb::election_client::ElectionClient;
    use crate::proto::v3electionpb::{
        CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
    };
    use crate::proto::v3lockpb::lock_client::LockClient;
    use crate::proto::v3lockpb::{LockRequest, UnlockRequest};
    let (node, server) = single_node(Duration::from_secs(5)).await;
    let channel = ClientBuilder::new(Net::Tcp).connect_lazy(server.uri());
    let mut leases = lease_client(&server);
    let mut grant = async || {
        leases
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .expect("grant")
            .into_inner()
            .id
    };
    let (first, second) = (grant().await, grant().await);
    let mut locks = LockClient::new(channel.clone());
    let held = locks
        .lock(LockRequest {
            name: b"jobs".to_vec(),
            lease: first,
        })
        .await
        .expect("lock")
        .into_inner();
    assert_eq!(held.key, format!("jobs/{first:x}").into_bytes());
    let mut waiting = LockClient::new(channel.clone());
    let waiter = tokio::spawn(async move {
        waiting
            .lock(LockRequest {
                name: b"jobs".to_vec(),
                lease: second,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second lock waits for the first");
    locks
        .unlock(UnlockRequest {
            key: held.key.clone(),
        })
        .await
        .expect("unlock");
    let next = waiter.await.expect("joined").expect("locked").into_inner();
    assert_eq!(next.key, format!("jobs/{second:x}").into_bytes());
    // A caller that gives up leaves the queue: its key does not block
    // whoever comes next.
    let third = grant().await;
    let mut impatient = tonic::Request::new(LockRequest {
        name: b"jobs".to_vec(),
        lease: third,
    });
    impatient.set_timeout(Duration::from_millis(300));
    let gave_up = locks.lock(impatient).await.expect_err("the lock is held");
    assert_eq!(gave_up.code(), Code::DeadlineExceeded);
    let orphan = format!("jobs/{third:x}");
    let mut kv = kv(&server);
    let mut left = u64::MAX;
    for _ in 0..50 {
        left = kv
            .range(get(&orphan))
            .await
            .expect("range")
            .into_inner()
            .count as u64;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "the abandoned waiter's key is gone");
    let unknown = locks
        .lock(LockRequest {
            name: b"jobs".to_vec(),
            lease: 424_242,
        })
        .await
        .expect_err("an unknown lease");
    assert_eq!(
        (unknown.code(), unknown.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );

    let mut election = ElectionClient::new(channel.clone());
    let none = election
        .leader(LeaderRequest {
            name: b"primary".to_vec(),
        })
        .await
        .expect_err("nobody campaigned");
    assert_eq!(
        (none.code(), none.message()),
        (Code::NotFound, "election: no leader")
    );
    let won = election
        .campaign(CampaignRequest {
            name: b"primary".to_vec(),
            lease: 0,
            value: b"10.0.0.1".to_vec(),
        })
        .await
        .expect("campaign without a lease")
        .into_inner()
        .leader
        .expect("a leader key");
    assert!(won.lease > 0, "a lease was granted for it");
    let leader = election
        .leader(LeaderRequest {
            name: b"primary".to_vec(),
        })
        .await
        .expect("leader")
        .into_inner()
        .kv
        .expect("kv");
    assert_eq!(leader.value, b"10.0.0.1");
    election
        .proclaim(ProclaimRequest {
            leader: Some(won.clone()),
            value: b"10.0.0.9".to_vec(),
        })
        .await
        .expect("proclaim");
    let stale = LeaderKey {
        rev: won.rev + 1000,
        ..won.clone()
    };
    let refused = election
        .proclaim(ProclaimRequest {
            leader: Some(stale),
            value: b"x".to_vec(),
        })
        .await
        .expect_err("not the leader's key");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::FailedPrecondition, "election: not leader")
    );
    let missing = election
        .resign(ResignRequest { leader: None })
        .await
        .expect_err("no leader key");
    assert_eq!(missing.code(), Code::InvalidArgument);
    election
        .resign(ResignRequest { leader: Some(won) })
        .await
        .expect("resign");
    let none = election
        .leader(LeaderRequest {
            name: b"primary".to_vec(),
        })
        .await
        .expect_err("resigned");
    assert_eq!(none.code(), Code::NotFound);
    drop(server);
    node.stop().await;
}
