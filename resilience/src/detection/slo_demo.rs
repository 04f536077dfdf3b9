//! `dslab demo slo-burn`: a real Flaky backend through a blip, an outage
//! and a slow leak, watched by two alert policies over its RED counters.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::rpc::{ClientBuilder, Net, RpcChannel, RpcServer};
use observability::slo::report::{AlertRecorder, Incident, Score};
use observability::slo::{
    AlertPolicy, MultiWindowPolicy, NaiveThresholdPolicy, Severity, Slo, red,
};
use observability::telemetry::SpanCapture;

use crate::flaky::proto::flaky_client::FlakyClient;
use crate::flaky::proto::{CallRequest, FILE_DESCRIPTOR_SET, Script};
use crate::flaky::{Behaviour, Flaky};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// The RED label of the calls the SLO is about.
const CALL: &str = "resilience.v1.Flaky/Call";
/// The simulated traffic: one request a minute, a low-traffic service.
const CALLS_PER_MINUTE: u32 = 1;
/// Three quiet days fill the ticket's window, sampled hourly; then the
/// policies look every five minutes.
const WARM_UP: Duration = Duration::from_secs(3 * 86_400);
const WARM_UP_TICK: Duration = HOUR;
const TICK: Duration = Duration::from_secs(300);
const RUN: Duration = Duration::from_secs(61 * 3600);
/// Everyday failures: a tenth of the budget.
const BASELINE: f64 = 0.001;
/// After the warm-up: the blip, the outage, the leak.
const BLIP_AT: Duration = HOUR;
const OUTAGE: (Duration, Duration) = (Duration::from_secs(2 * 3600), Duration::from_secs(8_100));
const LEAK: (Duration, Duration) = (
    Duration::from_secs(6 * 3600),
    Duration::from_secs(54 * 3600),
);
const LEAK_RATIO: f64 = 0.02;

/// The script for the tick starting `since` after the warm-up; phases are
/// numbered so a change of script is a change of number.
fn phase(since: Option<Duration>) -> (u8, Script) {
    let script = |error_rate, per_call: Vec<i32>| Script {
        error_rate,
        per_call,
        ..Script::default()
    };
    match since {
        Some(t) if (BLIP_AT..BLIP_AT + TICK).contains(&t) => (1, script(BASELINE, vec![14; 3])),
        Some(t) if (OUTAGE.0..OUTAGE.1).contains(&t) => (2, script(1.0, vec![])),
        Some(t) if (LEAK.0..LEAK.1).contains(&t) => (3, script(LEAK_RATIO, vec![])),
        Some(t) if t >= LEAK.1 => (4, script(BASELINE, vec![])),
        _ => (0, script(BASELINE, vec![])),
    }
}

/// Episodes 32, 36: which alert wakes whom, and for what.
pub async fn slo_burn_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episodes 32, 36: alerting on an SLO's burn rate");
    out.say(
        "SLO: 99 % of calls good over 30 days, so the error budget is 1 % (a 99 % target makes the",
    );
    out.say("point with thousands of calls where 99.9 % needs hundreds of thousands).");
    out.say("A Flaky backend on 127.0.0.1 gets one call per simulated minute, on a simulated clock: three");
    out.say(
        "quiet days (0.1 % errors), then a blip (3 calls fail in 5 minutes, 0.7 % of the budget),",
    );
    out.say(
        "an outage (15 minutes down, 3.5 %), and a slow leak (2 % errors for two days: a 2x burn).",
    );
    out.say(
        "Both policies read the server's RED counters for Flaky/Call every simulated 5 minutes:",
    );
    out.say("  multi-window: page 14.4x over 1 h and 5 min, page 6x over 6 h and 30 min, ticket 1x over 3 d and 6 h");
    out.say("  single threshold: page when the last 5 minutes burn faster than 14.4x");

    let slo = Slo::new(0.99, 30 * DAY)?;
    let mut multi = MultiWindowPolicy::workbook(slo)?;
    let mut naive = NaiveThresholdPolicy::new(slo, 5 * MINUTE, 14.4)?;
    let (mut multi_log, mut naive_log) = (AlertRecorder::default(), AlertRecorder::default());
    let windows = [5 * MINUTE, HOUR, 6 * HOUR, 3 * DAY];
    let mut burns: Vec<Vec<(f64, f64)>> = vec![Vec::new(); windows.len()];

    let backend = Flaky::new("backend", Behaviour::healthy());
    let server = RpcServer::new()
        .add_service(backend.into_service(), FILE_DESCRIPTOR_SET)
        .bind(Net::Tcp, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?
        .spawn();
    let client = FlakyClient::new(ClientBuilder::new(Net::Tcp).connect_lazy(server.uri()));
    let metrics = server.metrics();
    let (mut at, mut current, mut calls) = (Duration::ZERO, u8::MAX, 0u64);
    let mut pages_in_leak = 0;
    while at < WARM_UP + RUN {
        let since = at.checked_sub(WARM_UP);
        let (number, mut script) = phase(since);
        if number != current {
            // A new seed per phase: reinstalling one seed replays its draws.
            script.seed = u64::from(number) + 1;
            client.clone().configure(script).await?;
            current = number;
        }
        let tick = if since.is_some() { TICK } else { WARM_UP_TICK };
        let n = u64::from(CALLS_PER_MINUTE) * tick.as_secs() / 60;
        calls += n;
        send(&client, n).await;
        at += tick;
        let counts = red::read(&metrics, Some(CALL));
        let changes = multi.observe(at, counts.good, counts.total)?;
        if since.is_some_and(|t| (LEAK.0..LEAK.1).contains(&t)) {
            pages_in_leak += changes
                .iter()
                .filter(|c| c.firing && c.severity == Severity::Page)
                .count();
        }
        multi_log.note(at, multi.firing());
        naive.observe(at, counts.good, counts.total)?;
        naive_log.note(at, naive.firing());
        if let Some(since) = at.checked_sub(WARM_UP) {
            let hours = since.as_secs_f64() / 3600.0;
            for (points, window) in burns.iter_mut().zip(windows) {
                let burn = multi.burn_rate(window).unwrap_or(0.0);
                points.push((hours, burn.max(FLOOR)));
            }
        }
    }
    let served = red::read(&metrics, Some(CALL));
    server.shutdown().await?;

    let incidents = [
        Incident {
            name: "outage".into(),
            start: WARM_UP + OUTAGE.0,
            end: WARM_UP + OUTAGE.1,
        },
        Incident {
            name: "leak".into(),
            start: WARM_UP + LEAK.0,
            end: WARM_UP + LEAK.1,
        },
    ];
    let multi_score = multi_log.score(&incidents, multi.reset_time());
    let naive_score = naive_log.score(&incidents, naive.window());
    out.section("What each policy did (simulated time)");
    let rows: Vec<Vec<String>> = [(&multi_score, multi.label()), (&naive_score, naive.label())]
        .into_iter()
        .map(|(score, label)| row(label, score))
        .collect();
    out.table(
        &[
            "policy",
            "outage detected",
            "outage cleared",
            "leak detected",
            "alerts in leak",
            "false alarms",
        ],
        &rows,
    );
    out.say(&format!(
        "The server counted {} calls to Flaky/Call, {} of them bad; the clients sent {calls}.",
        served.total,
        served.bad()
    ));
    claims(
        out,
        &multi,
        &multi_score,
        &naive_score,
        served.total == calls,
        pages_in_leak,
    );
    draw(out, &multi, burns, &windows, &multi_log, &naive_log);
    Ok(())
}

/// Fires `n` calls at once and waits for them all. Their outcomes are
/// read back from the server's counters, like a real SLO's are.
async fn send(client: &FlakyClient<RpcChannel>, n: u64) {
    let calls = (0..n).map(|_| {
        let mut client = client.clone();
        async move { client.call(CallRequest::default()).await.is_ok() }
    });
    join_all(calls).await;
}

fn minutes(d: Option<Duration>) -> String {
    match d {
        Some(d) if d >= 2 * HOUR => format!("{:.1} h", d.as_secs_f64() / 3600.0),
        Some(d) => format!("{} min", d.as_secs() / 60),
        None => "never".to_owned(),
    }
}

fn row(label: String, score: &Score) -> Vec<String> {
    let outage = score.incident("outage");
    let leak = score.incident("leak");
    vec![
        label,
        minutes(outage.and_then(|s| s.detected_after)),
        minutes(outage.and_then(|s| s.cleared_after)),
        minutes(leak.and_then(|s| s.detected_after)),
        leak.map_or(0, |s| s.alerts).to_string(),
        score.false_alarms.len().to_string(),
    ]
}

fn claims(
    out: &mut Narrator,
    multi: &MultiWindowPolicy,
    multi_score: &Score,
    naive_score: &Score,
    counted: bool,
    pages_in_leak: usize,
) {
    out.check(
        "the SLI comes from the server's RED counters, and they saw every call",
        counted,
        "RedMetrics for resilience.v1.Flaky/Call",
    );
    let promise = multi.detection_time(1.0).unwrap_or_default() + TICK;
    let outage = multi_score.incident("outage");
    let detected = outage.and_then(|s| s.detected_after);
    out.check(
        "multi-window pages on the outage within its documented detection time",
        detected.is_some_and(|d| d <= promise),
        format!(
            "paged after {}; promised 14.4 x 1 % x 1 h = 8.6 min, plus one 5-minute sample",
            minutes(detected)
        ),
    );
    let cleared = outage.and_then(|s| s.cleared_after);
    out.check(
        "and stops paging within its 5-minute short window once the outage ends",
        cleared.is_some_and(|d| d <= 5 * MINUTE + TICK),
        format!("cleared after {}", minutes(cleared)),
    );
    let leak = multi_score.incident("leak");
    let leak_promise = multi.detection_time(LEAK_RATIO).unwrap_or_default() + TICK;
    let ticketed = leak.and_then(|s| s.detected_after);
    out.check(
        "it opens a ticket for the slow leak within its documented time, and pages nobody",
        ticketed.is_some_and(|d| d <= leak_promise) && pages_in_leak == 0,
        format!(
            "ticket after {} (promised at most 1 x 1 % x 3 d / 2 % = 36 h; sooner, as the outage and blip had spent budget); {pages_in_leak} pages",
            minutes(ticketed)
        ),
    );
    out.check(
        "multi-window raises no false alarm: not on the blip, not on everyday noise",
        multi_score.false_alarms.is_empty(),
        format!("{} false alarms", multi_score.false_alarms.len()),
    );
    let blip = WARM_UP + BLIP_AT + TICK;
    out.check(
        "the single threshold pages on the harmless blip (and misses nothing only by paging on everything)",
        naive_score.false_alarms.contains(&blip),
        format!(
            "{} false alarms, {} pages during the leak, each gone 5 minutes later",
            naive_score.false_alarms.len(),
            naive_score.incident("leak").map_or(0, |s| s.alerts)
        ),
    );
}

/// Burn rates below this are drawn at it (a log axis has no zero).
const FLOOR: f64 = 0.1;

fn draw(
    out: &mut Narrator,
    multi: &MultiWindowPolicy,
    burns: Vec<Vec<(f64, f64)>>,
    windows: &[Duration],
    multi_log: &AlertRecorder,
    naive_log: &AlertRecorder,
) {
    let mut chart = LineChart::new(
        "Burn rate of a 99 % SLO: blip (1 h), outage (2 h), slow leak (6 h to 54 h)",
        "hours after the warm-up",
        "burn rate (x budget), log scale",
    )
    .log_y();
    for (points, window) in burns.into_iter().zip(windows) {
        let name = match window.as_secs() {
            s if s >= 86_400 => format!("{} d window", s / 86_400),
            s if s >= 3600 => format!("{} h window", s / 3600),
            s => format!("{} min window", s / 60),
        };
        chart = chart.series(Series::line(name, points));
    }
    for rule in multi.rules() {
        chart = chart.threshold(format!("{} threshold", rule.name), rule.burn_rate);
    }
    let shift = |log: &AlertRecorder| {
        let mut shifted = AlertRecorder::default();
        for period in log.periods() {
            if let Some(start) = period.start.checked_sub(WARM_UP) {
                shifted.note(start, true);
                shifted.note(period.end.map_or(RUN, |e| e - WARM_UP), false);
            }
        }
        shifted
    };
    // The alert timelines run below the burn rates' floor, out of the
    // legend's way: each steps up while its policy is alerting.
    chart = chart
        .series(shift(multi_log).step_series("multi-window alerting", 0.025, 0.012, HOUR, RUN))
        .series(shift(naive_log).step_series("single threshold alerting", 0.07, 0.035, HOUR, RUN));
    out.figure("slo-burn", &chart);
}
