//! `dslab demo failure-detectors`: how fast each detector notices a crash,
//! and how often it cries wolf.

use std::time::Duration;

use super::PhiConfig;
use super::experiment::{DetectorSpec, Experiment, Outcome};
use super::network::Scenario;
use crate::demo::{DemoResult, Narrator};
use crate::offload;
use crate::plot::{LineChart, Series};
use crate::telemetry::SpanCapture;

/// Runs per world: 60 one-hour runs, 50 healthy hours after warm-up.
const RUNS: u64 = 60;
const TIMEOUTS: [f64; 8] = [1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0];
const PHI_THRESHOLDS: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0];
/// The thresholds compared with a timeout tuned to err as often.
const COMPARED: [f64; 4] = [1.0, 3.0, 8.0, 16.0];

/// The demo's phi detector: a 200-interval window (a few minutes, short
/// enough to follow a change of network), a 20 ms floor, and `pause` of
/// allowance for stalls.
fn phi(threshold: f64, pause: Duration) -> DetectorSpec {
    DetectorSpec::Phi(PhiConfig {
        threshold,
        max_sample_size: 200,
        min_std_deviation: Duration::from_millis(20),
        acceptable_heartbeat_pause: pause,
        first_heartbeat_estimate: Duration::from_secs(1),
    })
}

const ALLOWANCE: Duration = Duration::from_secs(1);

/// One phi setting against the timeout that errs as often.
struct Duel {
    threshold: f64,
    phi: Outcome,
    timeout: Outcome,
}

impl Duel {
    /// Seconds phi detects sooner (negative: later).
    fn edge(&self) -> f64 {
        self.timeout.mean_detection() - self.phi.mean_detection()
    }
}

/// Everything the demo measures, computed off the async workers.
struct Measured {
    hours: f64,
    timeouts: Vec<Outcome>,
    pure_phi: Vec<Outcome>,
    allowed_phi: Vec<Outcome>,
    /// (world, duels) for the steady, shifting and pause-free worlds.
    duels: Vec<(&'static str, Vec<Duel>)>,
}

/// Duels at [`COMPARED`] thresholds, reusing phi outcomes already judged
/// on this experiment (`known`, at [`PHI_THRESHOLDS`]).
fn duels(experiment: &Experiment, known: &[Outcome]) -> crate::Result<Vec<Duel>> {
    COMPARED
        .iter()
        .map(|&threshold| {
            let phi = match PHI_THRESHOLDS.iter().position(|&t| t == threshold) {
                Some(i) if i < known.len() => known[i].clone(),
                _ => experiment.judge(phi(threshold, ALLOWANCE))?,
            };
            let timeout = experiment.matching_timeout(phi.false_positives)?;
            Ok(Duel {
                threshold,
                phi,
                timeout,
            })
        })
        .collect()
}

fn measure() -> crate::Result<Measured> {
    let shifting = Experiment::new(Scenario::shifting(), 1..=RUNS)?;
    let timeouts =
        shifting.sweep(&TIMEOUTS.map(|intervals| DetectorSpec::Timeout { intervals }))?;
    let pure_phi = shifting.sweep(&PHI_THRESHOLDS.map(|t| phi(t, Duration::ZERO)))?;
    let allowed_phi = shifting.sweep(&PHI_THRESHOLDS.map(|t| phi(t, ALLOWANCE)))?;
    let steady = Experiment::new(Scenario::steady(), 1..=RUNS)?;
    let calm_sender = Experiment::new(Scenario::shifting().without_pauses(), 1..=RUNS)?;
    let duels = vec![
        ("steady network, GC pauses", duels(&steady, &[])?),
        (
            "shifting network, GC pauses",
            duels(&shifting, &allowed_phi)?,
        ),
        ("shifting network, no pauses", duels(&calm_sender, &[])?),
    ];
    Ok(Measured {
        hours: shifting.healthy_hours(),
        timeouts,
        pure_phi,
        allowed_phi,
        duels,
    })
}

fn row(detector: &str, setting: String, outcome: &Outcome) -> Vec<String> {
    vec![
        detector.to_owned(),
        setting,
        format!("{:.2}", outcome.false_positives_per_hour()),
        format!("{:.2} s", outcome.mean_detection()),
        format!("{:.2} s", outcome.detection_quantile(0.95)),
    ]
}

/// A higher threshold never suspects more often and never detects sooner.
fn trades(outcomes: &[Outcome]) -> bool {
    outcomes.windows(2).all(|pair| {
        pair[1].false_positives <= pair[0].false_positives
            && pair[1].mean_detection() >= pair[0].mean_detection()
    })
}

fn curve(name: &str, outcomes: &[Outcome]) -> Series {
    Series::marked(
        name,
        outcomes
            .iter()
            .map(|o| (o.mean_detection(), o.false_positives_per_hour()))
            .collect(),
    )
}

/// Episodes 13, 4 and 11: the detection-time / false-positive trade-off
/// of a fixed timeout and of phi accrual, measured in simulation.
pub async fn failure_detectors_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episodes 13, 4, 11: when is silence a crash?");
    out.say(
        "A sender beats every 1 s to a monitor. Latency is 50 ms ± 20 ms, 1% of heartbeats hit a",
    );
    out.say("spike of 200 ms or more (heavy-tailed), and the network is congested a quarter of the time");
    out.say("(10× the jitter and spikes). Every ~10 min the sender stalls in a GC pause of 0.3 s or more.");
    out.say(&format!(
        "After an hour it crashes. {RUNS} seeded runs; every detector judges the same heartbeats."
    ));
    let measured = offload::cpu(measure).await??;

    out.section(&format!(
        "The trade-off ({:.0} healthy hours, {RUNS} crashes)",
        measured.hours
    ));
    let mut rows = Vec::new();
    for o in &measured.timeouts {
        if let DetectorSpec::Timeout { intervals } = o.spec {
            rows.push(row("timeout", format!("{intervals} × interval"), o));
        }
    }
    for (name, outcomes) in [
        ("phi", &measured.pure_phi),
        ("phi + 1 s pause", &measured.allowed_phi),
    ] {
        for (threshold, o) in PHI_THRESHOLDS.iter().zip(outcomes.iter()) {
            rows.push(row(name, format!("phi ≥ {threshold}"), o));
        }
    }
    out.table(
        &[
            "detector",
            "setting",
            "false suspicions/h",
            "mean detection",
            "p95 detection",
        ],
        &rows,
    );
    let chart = LineChart::new(
        "Failure detectors: detection time vs false suspicions",
        "mean detection time after a crash (s)",
        "false suspicions per healthy hour",
    )
    .series(curve(
        "fixed timeout (1.5×–8× interval)",
        &measured.timeouts,
    ))
    .series(curve("phi accrual (phi 1–16)", &measured.pure_phi))
    .series(curve("phi + 1 s acceptable pause", &measured.allowed_phi))
    .log_y();
    out.figure("failure-detectors", &chart);

    let families = [
        &measured.timeouts,
        &measured.pure_phi,
        &measured.allowed_phi,
    ];
    out.check(
        "every detector trades: a higher threshold never suspects more often, never detects sooner",
        families.iter().all(|outcomes| trades(outcomes)),
        "per family, along its thresholds",
    );
    let pure16 = &measured.pure_phi[PHI_THRESHOLDS.len() - 1];
    let timeout3 = &measured.timeouts[3];
    out.say(
        "The normal fit describes jitter, not stalls: a 2 s pause is 'impossible' for a peer whose",
    );
    out.say("heartbeats come every 1 s ± 30 ms, so phi alone suspects every long GC pause.");
    out.check(
        "phi without a pause allowance suspects live senders over 5× as often as a 3× timeout, even at phi 16",
        pure16.false_positives_per_hour() > 1.0
            && pure16.false_positives > 5 * timeout3.false_positives.max(1),
        format!(
            "phi 16: {:.2}/h, detecting in {:.2} s; timeout 3×: {:.2}/h, in {:.2} s",
            pure16.false_positives_per_hour(),
            pure16.mean_detection(),
            timeout3.false_positives_per_hour(),
            timeout3.mean_detection()
        ),
    );
    let allowed3 = &measured.allowed_phi[2];
    out.check(
        "a 1 s acceptable pause (Akka's remedy) brings phi ≥ 3 under one false suspicion per hour",
        measured.allowed_phi[2..]
            .iter()
            .all(|o| o.false_positives_per_hour() < 1.0),
        format!(
            "phi 3 + 1 s: {:.2}/h, detecting in {:.2} s",
            allowed3.false_positives_per_hour(),
            allowed3.mean_detection()
        ),
    );
    equal_footing(out, &measured.duels);
    Ok(())
}

/// Each phi setting against the fastest timeout that errs no more often.
fn equal_footing(out: &mut Narrator, worlds: &[(&'static str, Vec<Duel>)]) {
    out.section("At equal false positives: phi against a timeout tuned with hindsight");
    out.say(
        "For each phi setting (+1 s pause), the fastest fixed timeout that makes no more false",
    );
    out.say(
        "suspicions on the very same heartbeats — an oracle's timeout — and who detects sooner.",
    );
    let mut rows = Vec::new();
    for (world, duels) in worlds {
        for duel in duels {
            let DetectorSpec::Timeout { intervals } = duel.timeout.spec else {
                continue;
            };
            rows.push(vec![
                (*world).to_owned(),
                format!("phi ≥ {}", duel.threshold),
                format!("{:.2}", duel.phi.false_positives_per_hour()),
                format!("{:.2} s", duel.phi.mean_detection()),
                format!("{intervals:.2} s"),
                format!("{:.2} s", duel.timeout.mean_detection()),
                format!("{:+.2} s", duel.edge()),
            ]);
        }
    }
    out.table(
        &[
            "world",
            "phi",
            "false suspicions/h",
            "phi detects",
            "matching timeout",
            "timeout detects",
            "phi's edge",
        ],
        &rows,
    );
    // Thresholds 1 and 3: where false suspicions are frequent enough to
    // measure. At phi 8+ both make almost none in 50 hours, and the
    // "matching" timeout is just the longest gap seen.
    let low_edge = |duels: &[Duel]| (duels[0].edge() + duels[1].edge()) / 2.0;
    let [steady, shifting, calm_sender] = [&worlds[0].1, &worlds[1].1, &worlds[2].1];
    out.say("(At phi 8 and above both err under once in two hours here: too rare to compare.)");
    out.say(
        "Phi's adaptivity pays when the network changes character: in calm phases its deadline",
    );
    out.say(
        "is tight, in congested ones loose, while one timeout must fit both. On a steady network a",
    );
    out.say("well-chosen timeout is as good; GC pauses, which no normal fit predicts, eat into the edge.");
    out.check(
        "on a shifting network phi (thresholds 1 and 3) detects sooner than the timeout that errs as often",
        calm_sender[..2].iter().all(|duel| duel.edge() > 0.0)
            && shifting[..2].iter().all(|duel| duel.edge() > 0.0),
        format!(
            "by {:.2} s without pauses, {:.2} s with them",
            low_edge(calm_sender),
            low_edge(shifting)
        ),
    );
    out.check(
        "on a steady network phi gains nothing: under 0.05 s over the timeout that errs as often",
        low_edge(steady) < 0.05,
        format!(
            "phi's mean edge at thresholds 1 and 3: {:+.3} s",
            low_edge(steady)
        ),
    );
}
