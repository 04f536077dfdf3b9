//! The gray-failure detector against Flaky over the simulated network.

use std::time::Duration;

use observability::gray_failure::{DetectorConfig, GrayFailureDetector, HealthStatus, Verdict};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::sim::{self, Simulation, for_each_seed};

use super::{CALLERS, Monitors, Observation, caller, named_in};
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{FILE_DESCRIPTOR_SET, GrayFailure, Script};
use crate::flaky::{Behaviour, Flaky};

/// Runs the callers against a Flaky on simulated host n1: 15 s of the
/// everyday 1 % failures, then 15 s of `script`. Returns the observations
/// of the second phase and what each caller saw in total.
fn run(seed: u64, script: Script) -> Vec<Observation> {
    let mut sim = Simulation::builder(seed)
        .hosts(1)
        .duration(Duration::from_secs(300))
        .build();
    let everyday = Script {
        error_rate: 0.01,
        seed,
        ..Script::default()
    };
    let backend = Flaky::new(
        "backend",
        Behaviour::from_script(&everyday).expect("valid script"),
    );
    let hosted = backend.clone();
    sim.host("n1", move || {
        let flaky = hosted.clone();
        async move {
            RpcServer::new()
                .add_service(flaky.into_service(), FILE_DESCRIPTOR_SET)
                .serve(Net::Sim, sim::listen_addr(), std::future::pending())
                .await?;
            Ok(())
        }
    });
    let observed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let out = observed.clone();
    sim.client(async move {
        let channel = ClientBuilder::new(Net::Sim).connect_lazy(sim::uri("n1"));
        let client = FlakyClient::new(channel.clone());
        let mut monitors = Monitors::new(GrayFailureDetector::new(DetectorConfig::default())?);
        let phase = Duration::from_secs(15);
        let first = monitors
            .run(&client, &channel, Duration::ZERO, phase)
            .await?;
        assert!(
            first.iter().all(|o| o.detector == Verdict::Healthy),
            "alarm before any failure: {first:?}"
        );
        backend.configure(Behaviour::from_script(&Script {
            seed: seed + 1,
            ..script
        })?);
        let second = monitors.run(&client, &channel, phase, 2 * phase).await?;
        out.borrow_mut().extend(second);
        Ok(())
    });
    sim.run().unwrap_or_else(|err| panic!("seed {seed}: {err}"));
    observed.take()
}

/// Episodes 11, 36. A tenth of the callers (those whose names hash into
/// the failing tenth) lose half their calls; everyone loses the everyday
/// 1 %. The health check answers SERVING throughout, so the
/// health-check-only monitor stays green; the differential detector flags
/// the failure within one 10-second window, never names an innocent
/// caller, and once its window holds only the failure names exactly the
/// hit callers.
#[test]
fn gray_failure_detector_catches_a_tenth_of_callers_failing_that_health_checks_miss() {
    let gray = GrayFailure {
        caller_fraction: 0.1,
        error_rate: 0.5,
        ..GrayFailure::default()
    };
    let rule = crate::flaky::GrayFailure::from_proto(&gray).expect("valid");
    let hit: Vec<String> = (0..CALLERS).map(caller).filter(|c| rule.hits(c)).collect();
    assert_eq!(hit.len(), CALLERS / 10, "{hit:?}");
    for_each_seed(|seed| {
        let observations = run(
            seed,
            Script {
                error_rate: 0.01,
                gray: Some(gray.clone()),
                ..Script::default()
            },
        );
        assert!(
            observations
                .iter()
                .all(|o| o.health == HealthStatus::Serving)
        );
        assert!(
            observations
                .iter()
                .all(|o| o.health_only == Verdict::Healthy),
            "the broken twin stays green"
        );
        let naming = named_in(&observations, &hit);
        assert!(naming.first_flagged.is_some_and(|i| i < 10), "{naming:?}");
        assert!(naming.only_hit && naming.exact_once_full, "{naming:?}");
        Ok(())
    });
}

/// Episode 11. The same callers and detector against a Flaky failing 1 %
/// of everyone's calls: no alarm in 30 evaluations, seed after seed.
#[test]
fn gray_failure_detector_never_alarms_on_a_healthy_flaky() {
    for_each_seed(|seed| {
        for run_seed in [seed, seed + 1_000] {
            let observations = run(
                run_seed,
                Script {
                    error_rate: 0.01,
                    ..Script::default()
                },
            );
            let alarms: Vec<&Observation> = observations
                .iter()
                .filter(|o| o.detector != Verdict::Healthy)
                .collect();
            assert!(alarms.is_empty(), "seed {run_seed}: {alarms:?}");
        }
        Ok(())
    });
}
