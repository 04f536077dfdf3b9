//! Flaky as a service, in paused time.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;

use super::proto::flaky_client::FlakyClient;
use super::proto::{CallRequest, Script};
use super::{Behaviour, Flaky};

fn per_call(codes: &[Code]) -> Behaviour {
    let script = Script {
        per_call: codes.iter().map(|&c| c as i32).collect(),
        ..Script::default()
    };
    Behaviour::from_script(&script).expect("valid")
}

async fn outcomes(client: &mut FlakyClient<super::FlakyServer<Flaky>>, n: usize) -> Vec<Code> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let code = match client.call(CallRequest::default()).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        seen.push(code);
    }
    seen
}

/// Episode 12. A new script plays its per-call outcomes from its own first
/// call: installing [Unavailable, OK] after five calls fails the sixth
/// call, not a call that would have been the first long ago.
#[tokio::test(start_paused = true)]
async fn flaky_configure_starts_the_per_call_script_over() {
    let flaky = Flaky::new("backend", per_call(&[Code::Internal]));
    let mut client = FlakyClient::new(flaky.clone().into_service());
    assert_eq!(
        outcomes(&mut client, 5).await,
        [Code::Internal, Code::Ok, Code::Ok, Code::Ok, Code::Ok]
    );
    flaky.configure(per_call(&[Code::Unavailable, Code::Ok, Code::Aborted]));
    assert_eq!(
        outcomes(&mut client, 4).await,
        [Code::Unavailable, Code::Ok, Code::Aborted, Code::Ok]
    );
    let reply = client
        .call(CallRequest::default())
        .await
        .expect("healthy")
        .into_inner();
    assert_eq!(reply.call_index, 4, "indexed from the new script");
    assert_eq!(flaky.stats().calls, 10, "the lifetime count goes on");
}

/// A backend scripted with no latency answers in no time: tokio rounds
/// timers up to a millisecond, so an instant call must not sleep at all.
#[tokio::test(start_paused = true)]
async fn flaky_zero_latency_does_not_sleep() {
    let flaky = Flaky::new("instant", Behaviour::healthy());
    let mut client = FlakyClient::new(flaky.into_service());
    let started = Instant::now();
    for _ in 0..10 {
        client.call(CallRequest::default()).await.expect("healthy");
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// The hostile client against Flaky on loopback. Call is fuzzed while the
/// script is healthy; Configure then installs whatever random scripts
/// validate; every answer is a precise status, and Flaky stays up.
#[tokio::test]
async fn fuzz_flaky_every_method_answers_precisely() {
    use std::net::{Ipv4Addr, SocketAddr};

    use observability::fuzz::{FuzzOptions, fuzz_service};
    use observability::rpc::{ClientBuilder, Net, RpcServer};

    use super::proto::{FILE_DESCRIPTOR_SET, StatsRequest};

    let server = RpcServer::new()
        .add_service(
            Flaky::new("fuzzed", Behaviour::healthy()).into_service(),
            FILE_DESCRIPTOR_SET,
        )
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("binds")
        .spawn();
    let report = fuzz_service(
        server.uri(),
        FILE_DESCRIPTOR_SET,
        "resilience.v1.Flaky",
        &FuzzOptions::default(),
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(report.by_code.contains_key("InvalidArgument"), "{report:?}");
    let mut client = FlakyClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    client
        .stats(StatsRequest {})
        .await
        .expect("still answering");
}

/// Episode 11. A gray failure installed through `Configure` fails every
/// call of the callers it names (by the `dslab-caller` header) and none
/// of anyone else's; a script hitting nobody, or a bad fraction, is
/// refused with InvalidArgument and leaves the old script in place.
#[tokio::test(start_paused = true)]
async fn flaky_gray_failure_fails_only_the_named_callers() {
    use super::proto::GrayFailure;
    use super::{CALLER_HEADER, Flaky};

    let flaky = Flaky::new("backend", Behaviour::healthy());
    let mut client = FlakyClient::new(flaky.clone().into_service());
    let gray = Script {
        gray: Some(GrayFailure {
            callers: vec!["caller-3".into()],
            ..GrayFailure::default()
        }),
        ..Script::default()
    };
    let installed = client.configure(gray).await.expect("valid").into_inner();
    assert_eq!(
        installed.gray.map(|g| g.error_rate),
        Some(1.0),
        "0 means every call"
    );
    let mut failed_by_caller = [0u32; 5];
    for round in 0..10 {
        for (caller, failed) in failed_by_caller.iter_mut().enumerate() {
            let mut request = tonic::Request::new(CallRequest::default());
            let name = format!("caller-{caller}").parse().expect("ASCII");
            request.metadata_mut().insert(CALLER_HEADER, name);
            match client.call(request).await {
                Ok(_) => {}
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "round {round}");
                    *failed += 1;
                }
            }
        }
    }
    assert_eq!(failed_by_caller, [0, 0, 0, 10, 0]);
    assert_eq!(flaky.stats().gray_failed, 10);
    client
        .call(CallRequest::default())
        .await
        .expect("an unnamed in-process caller is not hit");

    for bad in [
        GrayFailure::default(),
        GrayFailure {
            caller_fraction: 2.0,
            ..GrayFailure::default()
        },
    ] {
        let refused = client
            .configure(Script {
                gray: Some(bad),
                ..Script::default()
            })
            .await
            .expect_err("invalid");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
    assert_eq!(flaky.stats().gray_failed, 10);
}
