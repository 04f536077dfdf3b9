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
        "consensus.v1.RaftTransport",
    ] {
        let (node, server) = single_node(Duration::from_millis(300)).await;
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
