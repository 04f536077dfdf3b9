//! The ShardRouter over the simulated network: answers, membership
//! changes, and bad input.

use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use observability::sim::{self, SimResult, Simulation, for_each_seed};
use tonic::Code;

use super::proto::shard_router_client::ShardRouterClient;
use super::proto::{
    AddNodeRequest, FILE_DESCRIPTOR_SET, RemoveNodeRequest, RouteRequest, StatsRequest,
};
use super::{MAX_KEY_BYTES, ShardRouter};
use crate::hashing::{Strategy, StrategyConfig};

/// Runs `script` against a router on `n1` with `config` and `nodes`.
fn with_router<F, Fut>(config: StrategyConfig, nodes: &'static [&'static str], script: F)
where
    F: Fn(ShardRouterClient<RpcChannel>) -> Fut + Clone + 'static,
    Fut: Future<Output = SimResult> + 'static,
{
    for_each_seed(|seed| {
        let mut sim = Simulation::builder(seed).hosts(1).build();
        sim.host("n1", move || async move {
            let router = ShardRouter::new(config, nodes)?;
            RpcServer::new()
                .add_service(router.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        });
        let script = script.clone();
        sim.client(async move {
            // Channels spawn their connection task, so they are made inside
            // the simulated host's runtime.
            let channel = ClientBuilder::new(Net::Sim)
                .default_deadline(Duration::from_secs(10))
                .connect_lazy(sim::uri("n1"));
            script(ShardRouterClient::new(channel)).await
        });
        sim.run()
    });
}

fn route(key: &str, factor: u32) -> RouteRequest {
    RouteRequest {
        key: key.as_bytes().to_vec(),
        replication_factor: factor,
    }
}

/// Episode 24. Routes agree with the library's placement (a client could
/// compute them itself); replicas are distinct; membership changes bump
/// the version; stats see every member.
#[test]
fn shard_router_routes_and_tracks_membership() {
    with_router(
        StrategyConfig::new(Strategy::Ring),
        &["a", "b", "c"],
        |mut client| async move {
            let local = StrategyConfig::new(Strategy::Ring).build_with(&["a", "b", "c"])?;
            for i in 0..50 {
                let key = format!("user-{i}");
                let reply = client.route(route(&key, 3)).await?.into_inner();
                assert_eq!(reply.owner, local.owner(key.as_bytes())?, "{key}");
                assert_eq!(reply.replicas.len(), 3);
                assert_eq!(reply.replicas[0], reply.owner);
                assert_eq!(reply.membership_version, 1);
            }
            let added = client
                .add_node(AddNodeRequest {
                    name: "d".into(),
                    weight: 2,
                })
                .await?
                .into_inner();
            assert_eq!(added.version, 2);
            assert_eq!(
                added
                    .nodes
                    .iter()
                    .map(|n| (n.name.as_str(), n.weight))
                    .collect::<Vec<_>>(),
                [("a", 1), ("b", 1), ("c", 1), ("d", 2)]
            );
            let removed = client
                .remove_node(RemoveNodeRequest { name: "a".into() })
                .await?
                .into_inner();
            assert_eq!(removed.version, 3);
            let stats = client
                .stats(StatsRequest {
                    sample_keys: 20_000,
                })
                .await?
                .into_inner();
            assert_eq!(stats.sample_keys, 20_000);
            let loads: Vec<(&str, u64)> = stats
                .nodes
                .iter()
                .map(|n| (n.name.as_str(), n.keys))
                .collect();
            assert_eq!(loads.len(), 3);
            let d = loads.iter().find(|(n, _)| *n == "d").map_or(0, |(_, k)| *k);
            assert!(
                d > 8_000 && d < 12_000,
                "weight 2 of 4 takes about half: {loads:?}"
            );
            assert!(stats.memory_bytes > 0 && stats.max_over_mean >= 1.0);
            Ok(())
        },
    );
}

/// The status code of a failed call, `None` if it succeeded.
fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Option<Code> {
    result.err().map(|status| status.code())
}

/// Bad input: every refusal carries the precise status code, and the empty
/// key is routed like any other.
#[test]
fn shard_router_bad_input_gets_precise_status() {
    with_router(
        StrategyConfig::new(Strategy::Jump),
        &["a"],
        |mut client| async move {
            assert_eq!(
                code(
                    client
                        .add_node(AddNodeRequest {
                            name: "a".into(),
                            weight: 1
                        })
                        .await
                ),
                Some(Code::AlreadyExists)
            );
            assert_eq!(
                code(
                    client
                        .remove_node(RemoveNodeRequest { name: "zz".into() })
                        .await
                ),
                Some(Code::NotFound)
            );
            assert_eq!(
                code(
                    client
                        .add_node(AddNodeRequest {
                            name: "b".into(),
                            weight: 3
                        })
                        .await
                ),
                Some(Code::InvalidArgument),
                "jump has no weights"
            );
            assert_eq!(
                code(
                    client
                        .add_node(AddNodeRequest {
                            name: String::new(),
                            weight: 1
                        })
                        .await
                ),
                Some(Code::InvalidArgument)
            );
            assert_eq!(
                code(client.route(route("k", 17)).await),
                Some(Code::InvalidArgument)
            );
            let long = RouteRequest {
                key: vec![b'x'; MAX_KEY_BYTES + 1],
                replication_factor: 1,
            };
            assert_eq!(code(client.route(long).await), Some(Code::InvalidArgument));
            assert_eq!(
                code(
                    client
                        .stats(StatsRequest {
                            sample_keys: 2_000_000
                        })
                        .await
                ),
                Some(Code::InvalidArgument)
            );
            let empty = client.route(route("", 0)).await?.into_inner();
            assert_eq!(
                (empty.owner.as_str(), empty.replicas.len()),
                ("a", 1),
                "the empty key is placed; factor 0 means 1"
            );
            client
                .remove_node(RemoveNodeRequest { name: "a".into() })
                .await?;
            assert_eq!(
                code(client.route(route("k", 1)).await),
                Some(Code::FailedPrecondition),
                "no members"
            );
            assert_eq!(
                code(client.stats(StatsRequest { sample_keys: 10 }).await),
                Some(Code::FailedPrecondition)
            );
            Ok(())
        },
    );
}

/// Weights and table sizes out of range are refused when the router is
/// built, before it serves anything.
#[test]
fn shard_router_refuses_invalid_configuration() {
    let bad = [
        StrategyConfig {
            vnodes: 0,
            ..StrategyConfig::new(Strategy::Ring)
        },
        StrategyConfig {
            table_size: 65_536,
            ..StrategyConfig::new(Strategy::Maglev)
        },
        StrategyConfig {
            capacity_factor: 0.5,
            ..StrategyConfig::new(Strategy::Bounded)
        },
    ];
    for config in bad {
        let status = tonic::Status::from(ShardRouter::new(config, &["a"]).expect_err("invalid"));
        assert_eq!(status.code(), Code::InvalidArgument, "{config:?}");
    }
}

/// Bounded loads through the router: every key keeps the node it was
/// first given, and no node takes more than ⌈c·K/N⌉ of the keys routed.
#[test]
fn shard_router_bounded_assignments_are_sticky_and_capped() {
    let config = StrategyConfig {
        vnodes: 1,
        ..StrategyConfig::new(Strategy::Bounded)
    };
    with_router(config, &["a", "b", "c", "d"], |mut client| async move {
        let mut owners = std::collections::BTreeMap::<String, u64>::new();
        let mut first = Vec::new();
        for i in 0..400 {
            let reply = client.route(route(&format!("k{i}"), 2)).await?.into_inner();
            assert_ne!(reply.replicas[0], reply.replicas[1]);
            *owners.entry(reply.owner.clone()).or_default() += 1;
            first.push(reply.owner);
        }
        let cap = (1.25f64 * 400.0 / 4.0).ceil() as u64;
        assert!(owners.values().all(|&n| n <= cap), "{owners:?} over {cap}");
        // Late keys were pushed past full nodes; asked again, after the
        // loads changed, each key still gets the node it got first.
        for (i, owner) in first.iter().enumerate().rev() {
            let again = client.route(route(&format!("k{i}"), 1)).await?.into_inner();
            assert_eq!(&again.owner, owner, "k{i} is sticky");
        }
        let stats = client
            .stats(StatsRequest { sample_keys: 100 })
            .await?
            .into_inner();
        assert_eq!(stats.assigned_keys, 400);
        Ok(())
    });
}

/// The memory a flood of new keys can take is bounded in bytes: past the
/// limit new keys are ResourceExhausted, remembered keys still route, and
/// a refused key is not remembered.
#[tokio::test]
async fn shard_router_remembered_assignments_are_bounded_in_bytes() {
    let router = ShardRouter::new(StrategyConfig::new(Strategy::Bounded), &["a", "b"])
        .expect("valid")
        .with_max_tracked_bytes(20 * 1024);
    let key = |i: usize| format!("{i:04}{}", "k".repeat(1020)).into_bytes();
    let mut remembered = 0;
    let refused = loop {
        match router.route(&key(remembered), 1).await {
            Ok(_) => remembered += 1,
            Err(err) => break err,
        }
        assert!(remembered <= 20, "bounded");
    };
    assert!(matches!(refused, crate::Error::CapacityExceeded { .. }));
    assert_eq!(tonic::Status::from(refused).code(), Code::ResourceExhausted);
    assert_eq!(remembered, 18, "(1024 + 1 + 64) bytes a key, 20 KiB in all");
    router
        .route(&key(0), 1)
        .await
        .expect("known keys still route");
    let stats = router.stats(100).await.expect("measured");
    assert_eq!(stats.assigned_keys, 18);
}

/// Stats are bounded work: rendezvous scores every node for every key, so
/// with a thousand nodes a million-key request measures 20,000 keys (and
/// says so); past the concurrency cap a request is ResourceExhausted.
#[tokio::test]
async fn shard_router_stats_are_bounded_work() {
    use super::proto::shard_router_server::ShardRouter as GrpcShardRouter;

    let nodes: Vec<String> = (0..1000).map(|i| format!("node-{i}")).collect();
    let router =
        ShardRouter::new(StrategyConfig::new(Strategy::Rendezvous), &nodes).expect("valid");
    let reply = router.stats(1_000_000).await.expect("measured");
    assert_eq!(reply.sample_keys, super::MAX_STATS_WORK / 1000);

    let held = router
        .stats_slots
        .clone()
        .acquire_many_owned(super::MAX_CONCURRENT_STATS as u32)
        .await
        .expect("open");
    let busy = GrpcShardRouter::stats(
        &router,
        tonic::Request::new(StatsRequest { sample_keys: 10 }),
    )
    .await
    .expect_err("no slot");
    assert_eq!(busy.code(), Code::ResourceExhausted);
    drop(held);
    GrpcShardRouter::stats(
        &router,
        tonic::Request::new(StatsRequest { sample_keys: 10 }),
    )
    .await
    .expect("a slot is free again");
}

/// The hostile client against the router on loopback: every method gets
/// malformed, empty, oversized and extreme requests and answers each with
/// a precise status; afterwards the router still routes.
#[tokio::test]
async fn fuzz_shard_router_every_method_answers_precisely() {
    use std::net::{Ipv4Addr, SocketAddr};

    use observability::fuzz::{FuzzOptions, fuzz_service};

    for strategy in [
        Strategy::Ring,
        Strategy::Bounded,
        Strategy::Maglev,
        Strategy::Jump,
    ] {
        let config = StrategyConfig {
            vnodes: 10,
            ..StrategyConfig::new(strategy)
        };
        let router = ShardRouter::new(config, &["a", "b", "c"]).expect("valid");
        let server = RpcServer::new()
            .add_service(router.into_service(), FILE_DESCRIPTOR_SET)
            .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("binds")
            .spawn();
        let options = FuzzOptions {
            random_messages: 24,
            seed: strategy as u64,
            ..FuzzOptions::default()
        };
        let report = fuzz_service(
            server.uri(),
            FILE_DESCRIPTOR_SET,
            "patterns.v1.ShardRouter",
            &options,
        )
        .await
        .unwrap_or_else(|failure| panic!("{strategy}: {failure}"));
        assert!(report.calls > 60, "{report:?}");
        let mut client =
            ShardRouterClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
        let reply = client
            .route(route("after-the-storm", 1))
            .await
            .expect("still routing")
            .into_inner();
        assert!(!reply.owner.is_empty());
    }
}
