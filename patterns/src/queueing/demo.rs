//! `dslab demo queueing`: the knee as utilisation → 1, and what four queue
//! disciplines make of 120% load.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::telemetry::SpanCapture;

use super::models::{mm1, mmc};
use super::sim::{Policy, QueueConfig, QueueReport, simulate};
use crate::error::Result;

/// Service rate per server: 10 ms per call.
const SERVICE_RATE: f64 = 100.0;
const UTILISATIONS: [f64; 7] = [0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95];
const SEED: u64 = 1;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// One row of the knee: model and simulated mean response for M/M/1 and
/// M/M/4 at utilisation `rho`.
struct KneePoint {
    rho: f64,
    mm1_model: f64,
    mm1_simulated: f64,
    mm4_model: f64,
    mm4_simulated: f64,
}

fn knee_point(rho: f64) -> Result<KneePoint> {
    let simulated = |servers: u32| -> Result<f64> {
        let mut config = QueueConfig::markovian(
            rho * SERVICE_RATE * f64::from(servers),
            SERVICE_RATE,
            servers,
            SEED,
        );
        // Near ρ = 1 successive waits are correlated for longer: run longer.
        config.customers = if rho > 0.85 { 120_000 } else { 30_000 };
        config.warmup = config.customers / 20;
        Ok(ms(simulate(&config)?.mean_response))
    };
    Ok(KneePoint {
        rho,
        mm1_model: ms(mm1(rho * SERVICE_RATE, SERVICE_RATE)?.mean_response),
        mm1_simulated: simulated(1)?,
        mm4_model: ms(mmc(4.0 * rho * SERVICE_RATE, SERVICE_RATE, 4)?.mean_response),
        mm4_simulated: simulated(4)?,
    })
}

fn knee_chart(points: &[KneePoint]) -> Result<LineChart> {
    let mut mm1_curve = Vec::new();
    let mut mm4_curve = Vec::new();
    for step in 1..=97 {
        let rho = f64::from(step) / 100.0;
        mm1_curve.push((
            rho,
            ms(mm1(rho * SERVICE_RATE, SERVICE_RATE)?.mean_response),
        ));
        mm4_curve.push((
            rho,
            ms(mmc(4.0 * rho * SERVICE_RATE, SERVICE_RATE, 4)?.mean_response),
        ));
    }
    let column = |f: fn(&KneePoint) -> f64| points.iter().map(|p| (p.rho, f(p))).collect();
    Ok(LineChart::new(
        "Latency vs utilisation: the knee (10 ms service)",
        "utilisation ρ",
        "mean response time (ms, log)",
    )
    .series(Series::line("M/M/1 model", mm1_curve))
    .series(Series::marked(
        "M/M/1 simulated",
        column(|p| p.mm1_simulated),
    ))
    .series(Series::line("M/M/4 model (Erlang C)", mm4_curve))
    .series(Series::marked(
        "M/M/4 simulated",
        column(|p| p.mm4_simulated),
    ))
    .log_y())
}

/// Episodes 25, 26, 7.
pub async fn queueing_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 25: the knee — latency as utilisation goes to 1");
    out.say("One queue, 10 ms of work per call on average, Poisson arrivals. The model is the closed form;");
    out.say("the simulation replays customers one by one on the discrete-event engine (resilience::des).");
    let points = UTILISATIONS
        .iter()
        .map(|&rho| knee_point(rho))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                format!("{:.2}", p.rho),
                format!("{:.1}", p.mm1_model),
                format!("{:.1}", p.mm1_simulated),
                format!("{:.1}", p.mm4_model),
                format!("{:.1}", p.mm4_simulated),
            ]
        })
        .collect();
    out.table(
        &[
            "ρ",
            "M/M/1 model ms",
            "simulated",
            "M/M/4 model ms",
            "simulated",
        ],
        &rows,
    );
    let worst = points
        .iter()
        .flat_map(|p| {
            [
                (p.mm1_simulated - p.mm1_model).abs() / p.mm1_model,
                (p.mm4_simulated - p.mm4_model).abs() / p.mm4_model,
            ]
        })
        .fold(0.0, f64::max);
    out.check(
        "the simulation agrees with M/M/1 and Erlang C at every utilisation",
        worst < 0.1,
        format!("worst difference {:.1}% (tolerance 10%)", worst * 100.0),
    );
    let at = |rho: f64| points.iter().find(|p| p.rho == rho);
    if let (Some(half), Some(high)) = (at(0.5), at(0.95)) {
        let ratio = high.mm1_simulated / half.mm1_simulated;
        out.check(
            "the knee: going from 50% to 95% busy multiplies latency about tenfold",
            (7.0..14.0).contains(&ratio),
            format!(
                "{:.1} ms → {:.1} ms, ×{ratio:.1} (model ×{:.1})",
                half.mm1_simulated,
                high.mm1_simulated,
                high.mm1_model / half.mm1_model
            ),
        );
        out.check(
            "four servers sharing one queue wait far less at the same utilisation",
            high.mm4_simulated < high.mm1_simulated / 2.0,
            format!(
                "at ρ = 0.95: M/M/4 {:.1} ms, M/M/1 {:.1} ms",
                high.mm4_simulated, high.mm1_simulated
            ),
        );
    }
    let refused = mm1(SERVICE_RATE, SERVICE_RATE);
    out.check(
        "at ρ = 1 the model refuses to answer instead of printing a number",
        refused.is_err(),
        refused.err().map(|err| err.to_string()).unwrap_or_default(),
    );
    out.figure("queueing-knee", &knee_chart(&points)?);

    overload(out)?;
    Ok(())
}

/// Episode 7: four disciplines at 120% load, and goodput across loads.
fn overload(out: &mut Narrator) -> DemoResult {
    out.section("Episode 7: 120% load — what the queue's discipline decides");
    out.say("Four workers serve 10 ms calls (400/s); clients send 480/s and give up after 200 ms.");
    out.say("A late answer still costs the server its 10 ms: it cannot see the deadline. \"late\" is the share");
    out.say("of answers that came after the client gave up: server time spent on nobody.");
    let capacity = 400.0;
    let mut reports: Vec<(Policy, QueueReport)> = Vec::new();
    for policy in Policy::episode_7() {
        reports.push((policy, simulate(&QueueConfig::episode_7(policy, SEED))?));
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|(policy, r)| {
            vec![
                policy.name().to_owned(),
                format!("{:.0}", r.goodput),
                format!("{:.0}", ms(r.p99_response)),
                format!("{:.1}%", r.busy_fraction * 100.0),
                format!("{:.0}%", r.late_share() * 100.0),
                r.rejected.to_string(),
                r.dropped.to_string(),
            ]
        })
        .collect();
    out.table(
        &[
            "policy",
            "goodput/s",
            "p99 ms",
            "busy",
            "late",
            "refused",
            "dropped",
        ],
        &rows,
    );
    if let [(_, naive), rest @ ..] = reports.as_slice() {
        out.check(
            "unbounded FIFO: the servers stay busy, yet goodput collapses",
            naive.busy_fraction > 0.99 && naive.goodput < 0.02 * capacity,
            format!(
                "busy {:.1}%, goodput {:.1}/s of {capacity:.0}/s, p99 {:.1} s",
                naive.busy_fraction * 100.0,
                naive.goodput,
                naive.p99_response.as_secs_f64()
            ),
        );
        for (policy, report) in rest {
            out.check(
                format!(
                    "{}: turns the excess away, goodput stays near capacity",
                    policy.name()
                ),
                report.goodput > 0.9 * capacity && report.goodput > 50.0 * naive.goodput.max(1.0),
                format!(
                    "{:.0}/s, {} refused, {} dropped",
                    report.goodput, report.rejected, report.dropped
                ),
            );
        }
        if let Some((_, bounded)) = rest
            .iter()
            .find(|(p, _)| matches!(p, Policy::BoundedFifo { .. }))
        {
            out.check(
                "a bounded FIFO caps the wait: its p99 stays under the clients' deadline",
                bounded.p99_response < Duration::from_millis(200),
                format!("p99 {:.0} ms, deadline 200 ms", ms(bounded.p99_response)),
            );
        }
        if let Some((_, lifo)) = rest
            .iter()
            .find(|(p, _)| matches!(p, Policy::AdaptiveLifo { .. }))
        {
            out.say("  Adaptive LIFO's long p99 is its price: it is unfair. The requests it leaves at the bottom");
            out.say("  while congested are served late, if ever — the ones whose clients have already given up.");
            out.check(
                "adaptive LIFO serves the fresh first: most answers beat the deadline, a few wait very long",
                lifo.late_share() < 0.2 && lifo.p99_response > Duration::from_millis(200),
                format!("{:.0}% late, p99 {:.1} s", lifo.late_share() * 100.0, lifo.p99_response.as_secs_f64()),
            );
        }
        let worst_little = reports
            .iter()
            .map(|(_, r)| r.littles_law_error())
            .fold(0.0, f64::max);
        out.check(
            "Little's law holds in every run, overload or not",
            worst_little < 1e-6,
            format!("largest |L − λW| / L = {worst_little:.1e}"),
        );
    }

    out.say("");
    out.say("Goodput (answers within 200 ms, per second) as the offered load rises:");
    let loads = [0.7, 0.9, 1.0, 1.1, 1.2, 1.5];
    let mut curves: Vec<(Policy, Vec<(f64, f64)>)> = Policy::episode_7()
        .map(|policy| (policy, Vec::new()))
        .into();
    for &load in &loads {
        for (policy, curve) in &mut curves {
            let mut config = QueueConfig::episode_7(*policy, SEED);
            config.arrivals = super::Distribution::Exponential {
                mean: Duration::from_secs_f64(1.0 / (load * capacity)),
            };
            curve.push((load * 100.0, simulate(&config)?.goodput));
        }
    }
    let mut header = vec!["load"];
    header.extend(curves.iter().map(|(policy, _)| policy.name()));
    let rows: Vec<Vec<String>> = loads
        .iter()
        .enumerate()
        .map(|(i, load)| {
            let mut row = vec![format!("{:.0}%", load * 100.0)];
            row.extend(curves.iter().map(|(_, curve)| format!("{:.0}", curve[i].1)));
            row
        })
        .collect();
    out.table(&header, &rows);
    let goodput_at = |curve: &[(f64, f64)], load: f64| {
        curve
            .iter()
            .find(|(x, _)| (*x - load).abs() < 1e-9)
            .map_or(0.0, |(_, y)| *y)
    };
    if let [(_, naive), (_, bounded), ..] = curves.as_slice() {
        let collapsed = goodput_at(naive, 110.0);
        let held = loads
            .iter()
            .filter(|&&load| load >= 1.0)
            .map(|&load| goodput_at(bounded, load * 100.0))
            .fold(f64::INFINITY, f64::min);
        out.check(
            "past saturation the unbounded FIFO collapses while the bounded FIFO holds its goodput",
            collapsed < 0.1 * capacity && held > 0.9 * capacity,
            format!("at 110%: unbounded {collapsed:.0}/s; bounded at least {held:.0}/s from 100% to 150%"),
        );
    }
    out.say(
        "CoDel's control law raises its drop rate slowly (gaps of interval/√count), tuned for TCP",
    );
    out.say("senders that halve their rate after one drop. These clients never slow down, so at 150% its");
    out.say("drops lag the excess and the standing queue sits above the deadline. Facebook's RPC variant");
    out.say("drops every request older than a short timeout once congested; the simple bound wins here.");
    let mut chart = LineChart::new(
        "Goodput per queue policy (4 workers × 100/s, 200 ms deadline)",
        "offered load (% of capacity)",
        "goodput (answers within deadline per s)",
    )
    .threshold("capacity", capacity);
    for (policy, curve) in curves {
        chart = chart.series(Series::marked(policy.name(), curve));
    }
    out.figure("queueing-goodput", &chart);
    Ok(())
}
