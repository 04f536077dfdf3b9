//! `dslab demo gray-failure`: a tenth of the callers see half their calls
//! fail while the health check says SERVING.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::gray_failure::{DetectorConfig, GrayFailureDetector, HealthStatus, Verdict};
use observability::rpc::{ClientBuilder, Net, RpcServer};
use observability::telemetry::SpanCapture;

use super::callers::{CALLERS, Monitors, Observation, caller, suspected_callers};
use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{FILE_DESCRIPTOR_SET, GrayFailure as GrayScript, Script};
use crate::flaky::{Behaviour, Flaky, GrayFailure};

/// Each phase lasts this long, in simulated time.
const PHASE: Duration = Duration::from_secs(15);
/// Everyday failures every caller sees.
const BASELINE: f64 = 0.01;

fn healthy_script(seed: u64) -> Script {
    Script {
        error_rate: BASELINE,
        seed,
        ..Script::default()
    }
}

/// Episode 11: the failure only some callers see.
pub async fn gray_failure_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 11: a gray failure, seen by some callers and not by the health check");
    out.say(&format!(
        "{CALLERS} callers each call a Flaky backend on 127.0.0.1 ten times a (simulated) second; 1 % of calls"
    ));
    out.say("fail for everyone. For 15 s all is well; then a gray failure hits a tenth of the callers (by a");
    out.say("hash of their name, like a bad network path) and fails half their calls; 15 s later it heals.");
    out.say("Once a second the gRPC health check is asked, and two monitors judge: health-check-only, and");
    out.say("a differential detector comparing each caller's failures with everyone else's (10 s window).");

    let gray = GrayScript {
        caller_fraction: 0.1,
        error_rate: 0.5,
        ..GrayScript::default()
    };
    let hit: Vec<String> = {
        let validated = GrayFailure::from_proto(&gray)?;
        (0..CALLERS)
            .map(caller)
            .filter(|c| validated.hits(c))
            .collect()
    };
    let backend = Flaky::new("backend", Behaviour::from_script(&healthy_script(1))?);
    let server = RpcServer::new()
        .add_service(backend.clone().into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?
        .spawn();
    let channel = ClientBuilder::new(Net::Tcp).connect_lazy(server.uri());
    let client = FlakyClient::new(channel.clone());
    let mut monitors = Monitors::new(GrayFailureDetector::new(DetectorConfig::default())?);

    let mut phases = Vec::new();
    for (n, (name, script)) in [
        ("healthy", healthy_script(1)),
        (
            "gray failure",
            Script {
                gray: Some(gray.clone()),
                ..healthy_script(2)
            },
        ),
        ("healed", healthy_script(3)),
    ]
    .into_iter()
    .enumerate()
    {
        client.clone().configure(script).await?;
        let before = monitors.seen;
        let from = PHASE * n as u32;
        let observations = monitors.run(&client, &channel, from, from + PHASE).await?;
        let failed = |hit_side: bool| -> (u64, u64) {
            (0..CALLERS)
                .filter(|&i| hit.contains(&caller(i)) == hit_side)
                .fold((0, 0), |(f, c), i| {
                    let (now, then) = (monitors.seen[i], before[i]);
                    (f + now.failures - then.failures, c + now.calls - then.calls)
                })
        };
        phases.push((name, failed(true), failed(false), observations));
    }
    let gray_failed = backend.stats().gray_failed;
    server.shutdown().await?;

    out.section("What each monitor said, phase by phase");
    let ratio = |(failed, calls): (u64, u64)| {
        format!(
            "{failed}/{calls} ({:.0} %)",
            100.0 * failed as f64 / calls.max(1) as f64
        )
    };
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(name, hit_side, rest, observations)| {
            let flagged = observations
                .iter()
                .filter(|o| matches!(o.detector, Verdict::GrayFailure(_)))
                .count();
            vec![
                (*name).to_owned(),
                ratio(*hit_side),
                ratio(*rest),
                summary(
                    observations,
                    |o| o.health == HealthStatus::Serving,
                    "SERVING",
                ),
                summary(observations, |o| o.health_only == Verdict::Healthy, "green"),
                format!("gray at {flagged}/{}", observations.len()),
            ]
        })
        .collect();
    out.table(
        &[
            "phase",
            &format!("failed: {} (hit)", hit.join(", ")),
            "failed: the others",
            "health check",
            "health-only monitor",
            "detector",
        ],
        &rows,
    );
    claims(out, &phases, &hit, gray_failed);
    Ok(())
}

fn summary(
    observations: &[Observation],
    held: impl Fn(&Observation) -> bool,
    word: &str,
) -> String {
    let n = observations.iter().filter(|o| held(o)).count();
    format!("{word} {n}/{}", observations.len())
}

type Phase = (&'static str, (u64, u64), (u64, u64), Vec<Observation>);

/// How the detector's naming went during a gray failure.
#[derive(Debug)]
pub struct Naming {
    /// The look (seconds in, minus one) that first named anyone.
    pub first_flagged: Option<usize>,
    pub first_named: Vec<String>,
    /// Every caller it ever named was hit.
    pub only_hit: bool,
    /// From the tenth look on (a window full of the failure), it named
    /// exactly the hit callers.
    pub exact_once_full: bool,
}

/// Judges the looks taken during a gray failure against the callers that
/// were really hit (in name order).
pub fn named_in(observations: &[Observation], hit: &[String]) -> Naming {
    let named: Vec<Vec<String>> = observations
        .iter()
        .map(|o| suspected_callers(&o.detector))
        .collect();
    let first_flagged = named.iter().position(|n| !n.is_empty());
    Naming {
        first_flagged,
        first_named: first_flagged.map(|i| named[i].clone()).unwrap_or_default(),
        only_hit: named.iter().flatten().all(|name| hit.contains(name)),
        exact_once_full: named.len() > 9 && named[9..].iter().all(|n| n == hit),
    }
}

fn claims(out: &mut Narrator, phases: &[Phase], hit: &[String], gray_failed: u64) {
    let all: Vec<&Observation> = phases.iter().flat_map(|p| &p.3).collect();
    out.check(
        "the gray failure is real: a tenth of the callers were hit, and only they",
        hit.len() == CALLERS / 10 && gray_failed > 0,
        format!(
            "hit: {}; Flaky failed {gray_failed} of their calls on purpose",
            hit.join(", ")
        ),
    );
    out.check(
        "the health check said SERVING at every probe, through the gray failure",
        all.iter().all(|o| o.health == HealthStatus::Serving),
        format!("{} probes", all.len()),
    );
    out.check(
        "so health-check-only monitoring stayed green throughout (the broken twin)",
        all.iter().all(|o| o.health_only == Verdict::Healthy),
        "it never looks at what callers see",
    );
    let quiet = |observations: &[Observation], from: usize| {
        observations
            .iter()
            .skip(from)
            .all(|o| o.detector == Verdict::Healthy)
    };
    out.check(
        "the detector raised no alarm while everyone saw only the everyday 1 %",
        quiet(&phases[0].3, 0),
        format!("{} verdicts, all healthy", phases[0].3.len()),
    );
    let naming = named_in(&phases[1].3, hit);
    out.check(
        "the detector flags the gray failure within one window, and never an innocent caller",
        naming.first_flagged.is_some_and(|i| i < 10) && naming.only_hit,
        format!(
            "first flagged {} s in, naming {:?}",
            naming.first_flagged.map_or(-1, |i| i as i64 + 1),
            naming.first_named
        ),
    );
    out.check(
        "once its window holds only the gray failure, it names exactly the hit callers",
        naming.exact_once_full,
        format!("{hit:?} at every look from 10 s in"),
    );
    out.check(
        "once the healed window has slid past the failure, the detector is quiet again",
        quiet(&phases[2].3, 10),
        "10 s after the heal, every verdict healthy",
    );
}
