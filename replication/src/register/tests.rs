//! Registers over the simulated network, recorded and checked.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::sim::{self, Simulation, for_each_seed};

use super::proto::FILE_DESCRIPTOR_SET;
use super::stale::StaleRegister;
use super::*;
use crate::consistency::recorder::Recorder;
use crate::consistency::{History, Model, Verdict, check};

/// Runs 3 recording clients against host n1 and returns their history.
fn record_sim<F>(seed: u64, serve: F) -> History
where
    F: Fn() -> RpcServer + 'static,
{
    let mut sim = Simulation::builder(seed).hosts(1).build();
    sim.host("n1", move || {
        let server = serve();
        async move {
            server
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
    let recorder = Recorder::new();
    let history = Rc::new(RefCell::new(History::default()));
    let (out, rec) = (history.clone(), recorder.clone());
    sim.client(async move {
        let tasks: Vec<_> = (0..3u64)
            .map(|client| {
                let mut kv = rec.client(
                    client,
                    RegisterKv::new(ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1"))),
                );
                tokio::spawn(async move {
                    for i in 0..20 {
                        let _ = kv.append("k", &format!("<{client}:{i}>")).await;
                        let _ = kv.get("k").await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        *out.borrow_mut() = rec.history();
        Ok(())
    });
    if let Err(err) = sim.run() {
        panic!("simulation failed with seed {seed}: {err}");
    }

    history.borrow().clone()
}

/// Episode 19. A one-copy register's recorded history is linearizable;
/// the replica-reading twin's is not — across seeds.
#[test]
fn register_recorded_histories_tell_the_twins_apart() {
    for_each_seed(|seed| {
        let sound = record_sim(seed, || {
            RpcServer::new().add_service(Register::new().into_service(), FILE_DESCRIPTOR_SET)
        });
        assert_eq!(sound.operations.len(), 120);
        let verdict = check(&sound, Model::Kv, Some(Duration::from_secs(30)))?.verdict;
        assert!(
            matches!(verdict, Verdict::Linearizable { .. }),
            "{verdict:?}"
        );

        let stale = record_sim(seed, || {
            RpcServer::new().add_service(
                StaleRegister::new(Duration::from_millis(30)).into_service(),
                FILE_DESCRIPTOR_SET,
            )
        });
        let verdict = check(&stale, Model::Kv, Some(Duration::from_secs(30)))?.verdict;
        assert!(
            matches!(verdict, Verdict::NotLinearizable(_)),
            "the stale twin must be caught: {verdict:?}"
        );
        Ok(())
    });
}

/// Bad input: oversized keys and values are refused with InvalidArgument,
/// an append past the value limit with FailedPrecondition, and a definite
/// refusal is left out of the recorded history.
#[tokio::test]
async fn register_refuses_oversized_input() {
    use std::net::{Ipv4Addr, SocketAddr};
    let server = RpcServer::new()
        .add_service(Register::new().into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("binds")
        .spawn();
    let recorder = Recorder::new();
    let mut kv = recorder.client(
        1,
        RegisterKv::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri())),
    );
    let too_long = "k".repeat(MAX_KEY_BYTES + 1);
    let refused = kv.get(&too_long).await.expect_err("key too long");
    assert!(
        matches!(refused, ClientError::Definite(ref m) if m.contains("InvalidArgument")),
        "{refused:?}"
    );
    let big = "v".repeat(MAX_VALUE_BYTES / 2 + 1);
    kv.append("k", &big).await.expect("fits");
    let overflow = kv
        .append("k", &big)
        .await
        .expect_err("would exceed the value limit");
    assert!(
        matches!(overflow, ClientError::Definite(ref m) if m.contains("FailedPrecondition")),
        "{overflow:?}"
    );
    assert_eq!(
        kv.get("k").await.expect("readable").len(),
        big.len(),
        "the refused append changed nothing"
    );
    assert_eq!(
        recorder.history().operations.len(),
        2,
        "refused calls never happened"
    );
}

async fn serve_on_loopback(server: RpcServer) -> observability::rpc::ServerHandle {
    use std::net::{Ipv4Addr, SocketAddr};
    server
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("binds")
        .spawn()
}

/// A flood of new keys fills the register to its byte limit and no
/// further: the next write is ResourceExhausted, overwrites that fit
/// still succeed, and what was stored is intact.
#[tokio::test]
async fn register_flood_of_keys_stops_at_the_byte_limit() {
    let server = serve_on_loopback(RpcServer::new().add_service(
        Register::with_max_bytes(10 * 1024).into_service(),
        FILE_DESCRIPTOR_SET,
    ))
    .await;
    let mut client = RegisterClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let value = "v".repeat(1000);
    let mut stored = 0;
    let refused = loop {
        let put = PutRequest {
            key: format!("key-{stored:05}"),
            value: value.clone(),
        };
        match client.put(put).await {
            Ok(_) => stored += 1,
            Err(status) => break status,
        }
        assert!(stored <= 10, "the limit holds");
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // Each key costs its 9 bytes, the value's 1000 and the map's overhead.
    let fits = 10 * 1024 / (ENTRY_OVERHEAD_BYTES + 9 + 1000);
    assert_eq!(stored, fits, "{fits} keys fit in 10 KiB");
    let overwrite = PutRequest {
        key: "key-00000".into(),
        value: "short".into(),
    };
    client
        .put(overwrite)
        .await
        .expect("an overwrite that shrinks fits");
    let kept = client
        .get(GetRequest {
            key: format!("key-{:05}", fits - 1),
        })
        .await
        .expect("readable")
        .into_inner()
        .value;
    assert_eq!(kept, value);
}

/// The stale twin's replication backlog is bounded: with a replica that
/// lags for an hour, the write past the backlog is ResourceExhausted.
#[tokio::test(start_paused = true)]
async fn register_stale_backlog_is_bounded() {
    let stale = StaleRegister::new(Duration::from_secs(3600));
    let service = stale.into_service();
    let mut client = RegisterClient::new(service);
    for i in 0..stale::MAX_BACKLOG {
        let put = PutRequest {
            key: format!("k{i}"),
            value: "v".into(),
        };
        client.put(put).await.expect("room in the backlog");
    }
    let refused = client
        .append(AppendRequest {
            key: "k0".into(),
            value: "more".into(),
        })
        .await
        .expect_err("the backlog is full");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
}

/// The hostile client against both registers on loopback: precise
/// statuses for everything, and the registers still serve afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn fuzz_register_every_method_answers_precisely() {
    use observability::fuzz::{FuzzOptions, fuzz_service};

    for server in [
        RpcServer::new().add_service(Register::new().into_service(), FILE_DESCRIPTOR_SET),
        RpcServer::new().add_service(
            StaleRegister::new(Duration::from_millis(5)).into_service(),
            FILE_DESCRIPTOR_SET,
        ),
    ] {
        let server = serve_on_loopback(server).await;
        fuzz_service(
            server.uri(),
            FILE_DESCRIPTOR_SET,
            "replication.v1.Register",
            &FuzzOptions::default(),
        )
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
        let mut client =
            RegisterClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
        client
            .put(PutRequest {
                key: "after".into(),
                value: "v".into(),
            })
            .await
            .expect("still serving");
    }
}

/// The byte count follows what is stored: appending nothing to a key, or
/// re-putting an empty value, never charges the key again — a client
/// cannot fill the register by repeating a no-op.
#[test]
fn register_repeated_empty_writes_do_not_grow_the_count() {
    let mut store = Store::with_max_bytes(10 * 1024);
    let key = "k".repeat(1000);
    store.put(key.clone(), String::new()).expect("fits");
    let after_put = store.bytes;
    for _ in 0..1000 {
        store.append(&key, "").expect("an empty append always fits");
        store
            .put(key.clone(), String::new())
            .expect("re-putting the same value fits");
    }
    assert_eq!(store.bytes, after_put);
    store.append(&key, "x").expect("fits");
    assert_eq!(store.bytes, after_put + 1);
}
