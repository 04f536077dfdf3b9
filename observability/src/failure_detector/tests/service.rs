//! The Heartbeat service over turmoil's network and real loopback TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use prost::Message;
use tokio::time::Instant;
use tonic::{Code, Request};

use crate::failure_detector::monitor::{MAX_PEER_ID_BYTES, MAX_PEERS};
use crate::failure_detector::{HeartbeatMonitor, HeartbeatSender, Monitor, MonitorConfig, Stall};
use crate::fuzz::{FuzzOptions, fuzz_service};
use crate::proto::heartbeat_client::HeartbeatClient;
use crate::proto::{
    BeatRequest, DeclareRequest, Detector, FILE_DESCRIPTOR_SET, ForgetRequest, PeerStatus,
    StatusRequest, SuspectsReply, SuspectsRequest,
};
use crate::rpc::message_limit::DEFAULT_MAX_MESSAGE_BYTES;
use crate::rpc::peer_secret::PeerSecret;
use crate::rpc::{ClientBuilder, Net, RpcChannel, RpcServer, ServerHandle};
use crate::sim::{self, Simulation, faults, for_each_seed};

use super::{INTERVAL, fast_config as config};

async fn status(client: &mut HeartbeatClient<RpcChannel>, peer: &str) -> PeerStatus {
    client
        .status(StatusRequest { peer: peer.into() })
        .await
        .expect("status answers")
        .into_inner()
}

async fn suspects(client: &mut HeartbeatClient<RpcChannel>, detector: Detector) -> Vec<String> {
    let reply = client
        .suspects(SuspectsRequest {
            detector: detector as i32,
        })
        .await
        .expect("suspects answers")
        .into_inner();
    reply.suspects.into_iter().map(|s| s.peer).collect()
}

/// Episodes 13 and 4. Two senders beat to a monitor every 100 ms. One
/// freezes for 2 s (a GC pause) and is suspected by both detectors while
/// the other is not; it thaws and is trusted again. Then the other is
/// partitioned from the monitor: suspected, its lost heartbeats counted;
/// healed, trusted again.
#[test]
fn failure_detector_heartbeat_sim_stalled_or_partitioned_sender_is_suspected() {
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed)
            .duration(Duration::from_secs(60))
            .build();
        sim.host("n3", || async {
            let monitor = HeartbeatMonitor::new(config())?;
            monitor.declare("n1")?;
            monitor.declare("n2")?;
            RpcServer::new()
                .add_service(monitor.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        });
        let frozen = Stall::default();
        for (name, stall) in [("n1", Stall::default()), ("n2", frozen.clone())] {
            sim.host(name, move || {
                let monitor = ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n3"));
                let sender =
                    HeartbeatSender::new(monitor, name, 1, INTERVAL).with_stall(stall.clone());
                async move {
                    sender.run().await;
                    Ok(())
                }
            });
        }
        sim.client(async move {
            let mut client =
                HeartbeatClient::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n3")));
            let pause = |millis| tokio::time::sleep(Duration::from_millis(millis));
            pause(5_000).await;
            for peer in ["n1", "n2"] {
                let healthy = status(&mut client, peer).await;
                assert!(
                    !healthy.suspected_by_phi && !healthy.suspected_by_timeout,
                    "{healthy:?}"
                );
                assert!(healthy.heartbeats >= 40 && healthy.window_samples >= 40);
            }

            frozen.freeze();
            pause(2_000).await;
            assert_eq!(suspects(&mut client, Detector::PhiAccrual).await, ["n2"]);
            assert_eq!(suspects(&mut client, Detector::FixedTimeout).await, ["n2"]);
            let stalled = status(&mut client, "n2").await;
            assert!(
                stalled.phi > 8.0 && stalled.silence_micros >= 1_500_000,
                "{stalled:?}"
            );
            frozen.thaw();
            pause(1_000).await;
            assert!(suspects(&mut client, Detector::PhiAccrual).await.is_empty());

            faults::partition("n1", "n3");
            pause(2_000).await;
            assert_eq!(suspects(&mut client, Detector::PhiAccrual).await, ["n1"]);
            assert_eq!(suspects(&mut client, Detector::FixedTimeout).await, ["n1"]);
            faults::heal("n1", "n3");
            pause(4_000).await;
            let healed = status(&mut client, "n1").await;
            assert!(
                !healed.suspected_by_phi && !healed.suspected_by_timeout,
                "{healed:?}"
            );
            assert!(
                healed.missed > 0,
                "heartbeats lost to the partition are counted"
            );
            Ok(())
        });
        sim.run()
    });
}

async fn serve(monitor: HeartbeatMonitor) -> ServerHandle {
    RpcServer::new()
        .add_service(monitor.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("port 0 on loopback binds")
        .spawn()
}

/// The code a call ended with, `Ok` included.
fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|status| status.code(), |_| Code::Ok)
}

fn beat(sender: &str, incarnation: u64, sequence: u64) -> BeatRequest {
    BeatRequest {
        sender: sender.into(),
        incarnation,
        sequence,
    }
}

/// Bad input over real gRPC: each mistake gets its own precise code.
#[tokio::test]
async fn failure_detector_heartbeat_bad_input_gets_precise_codes() {
    let monitor = HeartbeatMonitor::new(MonitorConfig {
        max_peers: 2,
        ..config()
    })
    .expect("valid");
    let server = serve(monitor).await;
    let mut client = HeartbeatClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let declare = |peer: &str| DeclareRequest { peer: peer.into() };

    let added = client
        .declare(declare("a"))
        .await
        .expect("room")
        .into_inner();
    assert!(added.added && added.watched == 1);
    assert!(
        !client
            .declare(declare("a"))
            .await
            .expect("again")
            .into_inner()
            .added
    );
    client.declare(declare("b")).await.expect("room");
    assert_eq!(
        code(client.declare(declare("c")).await),
        Code::ResourceExhausted
    );

    let stranger = client
        .beat(beat("stranger", 1, 0))
        .await
        .expect_err("undeclared");
    assert_eq!(stranger.code(), Code::NotFound);
    assert!(stranger.message().contains("stranger"), "{stranger:?}");
    for bad in [
        String::new(),
        "x".repeat(MAX_PEER_ID_BYTES + 1),
        "a\nb".into(),
    ] {
        assert_eq!(
            code(client.beat(beat(&bad, 1, 0)).await),
            Code::InvalidArgument
        );
        assert_eq!(
            code(client.declare(declare(&bad)).await),
            Code::InvalidArgument
        );
    }
    let unknown = client
        .status(StatusRequest {
            peer: "nobody".into(),
        })
        .await;
    assert_eq!(code(unknown), Code::NotFound);
    let detector = client.suspects(SuspectsRequest { detector: 7 }).await;
    assert_eq!(code(detector), Code::InvalidArgument);

    assert!(
        client
            .beat(beat("a", 1, 5))
            .await
            .expect("ok")
            .into_inner()
            .accepted
    );
    for (incarnation, sequence) in [(1, 5), (1, 4), (0, 99)] {
        let stale = client
            .beat(beat("a", incarnation, sequence))
            .await
            .expect("ok");
        assert!(
            !stale.into_inner().accepted,
            "({incarnation}, {sequence}) is stale"
        );
    }
    let a = status(&mut client, "a").await;
    assert_eq!((a.heartbeats, a.stale, a.sequence), (1, 3, 5));

    let forget = |peer: &str| ForgetRequest { peer: peer.into() };
    assert!(
        client
            .forget(forget("a"))
            .await
            .expect("ok")
            .into_inner()
            .removed
    );
    assert_eq!(code(client.beat(beat("a", 1, 6)).await), Code::NotFound);
    assert!(
        client
            .declare(declare("c"))
            .await
            .expect("room again")
            .into_inner()
            .added
    );
    server.shutdown().await.expect("graceful");
}

/// With a peer secret, strangers can neither beat nor fill the table;
/// anyone may still ask what the monitor believes.
#[tokio::test]
async fn failure_detector_heartbeat_peer_secret_keeps_strangers_out() {
    let secret = PeerSecret::new("sixteen-chars-ok").expect("long enough");
    let monitor = HeartbeatMonitor::new(config())
        .expect("valid")
        .with_peer_secret(secret.clone());
    monitor.declare("n1").expect("room");
    let server = serve(monitor).await;
    let mut client = HeartbeatClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let forged = client.beat(beat("n1", 1, 0)).await.expect_err("no secret");
    assert_eq!(forged.code(), Code::Unauthenticated);
    let flood = client.declare(DeclareRequest { peer: "x".into() }).await;
    assert_eq!(flood.expect_err("no secret").code(), Code::Unauthenticated);
    let mut signed = Request::new(beat("n1", 1, 0));
    secret.attach(&mut signed);
    assert!(
        client
            .beat(signed)
            .await
            .expect("member")
            .into_inner()
            .accepted
    );
    assert_eq!(status(&mut client, "n1").await.heartbeats, 1);
    server.shutdown().await.expect("graceful");
}

/// Bounds: a flood of declarations fills the table to its bound and no
/// further, and the largest possible Suspects reply still fits in one
/// message.
#[test]
fn failure_detector_heartbeat_flood_of_declarations_stays_bounded() {
    let t0 = Instant::now();
    let mut monitor = Monitor::new(MonitorConfig {
        max_peers: MAX_PEERS,
        ..config()
    })
    .expect("valid");
    let refused = (0..2 * MAX_PEERS)
        .filter(|i| {
            let id = format!("{i:0>width$}", width = MAX_PEER_ID_BYTES);
            monitor.declare(&id, t0).is_err()
        })
        .count();
    assert_eq!((monitor.watched(), refused), (MAX_PEERS, MAX_PEERS));
    let reply = SuspectsReply {
        suspects: monitor
            .reports(t0 + Duration::from_secs(3_600))
            .into_iter()
            .map(PeerStatus::from)
            .collect(),
        watched: u32::try_from(MAX_PEERS).expect("small"),
    };
    assert_eq!(reply.suspects.len(), MAX_PEERS);
    assert!(
        reply.encoded_len() < DEFAULT_MAX_MESSAGE_BYTES / 8,
        "{} bytes",
        reply.encoded_len()
    );
}

/// The hostile client against the monitor: every method answers every
/// malformed, empty, oversized and extreme request precisely, and
/// heartbeats flow afterwards.
#[tokio::test]
async fn fuzz_heartbeat_every_method_answers_precisely() {
    let monitor = HeartbeatMonitor::new(config()).expect("valid");
    monitor.declare("n1").expect("room");
    let server = serve(monitor.clone()).await;
    let report = fuzz_service(
        server.uri(),
        FILE_DESCRIPTOR_SET,
        "observability.v1.Heartbeat",
        &FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(report.calls > 50, "{report:?}");
    for code in ["InvalidArgument", "NotFound"] {
        assert!(report.by_code.contains_key(code), "{code}: {report:?}");
    }
    assert!(monitor.reports().len() <= config().max_peers);
    let mut client = HeartbeatClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let after = client.beat(beat("n1", u64::MAX, u64::MAX)).await;
    assert!(after.is_ok(), "heartbeats still flow: {after:?}");
    server.shutdown().await.expect("graceful");
}
