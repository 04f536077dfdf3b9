//! With a peer secret, the peer RPCs (Replicate, Fetch, MerkleNodes,
//! MerkleLeaves) refuse a caller without it; the members, which attach
//! it, still replicate, read and repair.

use std::time::Duration;

use observability::rpc::peer_secret::PeerSecret;
use observability::rpc::{ClientBuilder, Net, RpcChannel};
use tonic::Code;

use super::{LocalCluster, Resolution};
use crate::clock::ReplicaId;
use crate::proto::{self, quorum_kv_client::QuorumKvClient};

fn secret() -> PeerSecret {
    PeerSecret::new("sixteen-or-more-characters").expect("a valid secret")
}

/// A stranger that knows the protocol (and a member's id) but not the
/// secret: it tries to wipe a key with an empty state that has seen
/// everything, and to read the store through the peer calls.
#[tokio::test]
async fn quorum_peer_calls_without_the_secret_are_refused() {
    let cluster = LocalCluster::start(3, |_, config| {
        config.anti_entropy_interval = None;
        config.peer_timeout = Duration::from_secs(2);
        config.peer_secret = Some(secret());
    })
    .await
    .expect("a loopback cluster starts");
    let mut client = cluster.client(0);
    client
        .put("cart", b"milk", Vec::new(), 3, false)
        .await
        .expect("members replicate to each other with the secret");

    let mut stranger: QuorumKvClient<RpcChannel> =
        QuorumKvClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(cluster.uri(1)));
    let wipe = proto::ReplicateRequest {
        from: 1,
        entries: vec![proto::KeyState {
            key: "cart".to_owned(),
            ..Default::default()
        }],
        hint_for: 0,
    };
    let refused = [
        stranger.replicate(wipe).await.err(),
        stranger
            .fetch(proto::FetchRequest {
                from: 1,
                keys: vec!["cart".to_owned()],
            })
            .await
            .err(),
        stranger
            .merkle_nodes(proto::MerkleNodesRequest {
                from: 1,
                level: 0,
                indices: vec![0],
            })
            .await
            .err(),
        stranger
            .merkle_leaves(proto::MerkleLeavesRequest {
                from: 1,
                leaves: vec![0],
            })
            .await
            .err(),
    ];
    for status in refused {
        assert_eq!(
            status.map(|status| status.code()),
            Some(Code::Unauthenticated)
        );
    }

    let read = client
        .get("cart", 3, false, Resolution::Siblings)
        .await
        .expect("get");
    assert_eq!(read.values, [b"milk".to_vec()], "nothing was wiped");
    cluster.nodes[0]
        .anti_entropy_with(ReplicaId(2))
        .await
        .expect("anti-entropy between members runs with the secret");
    cluster.shutdown().await;
}
