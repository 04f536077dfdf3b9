//! `dslab demo load-balancing`: five balancers meet one slow backend.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::telemetry::SpanCapture;

use super::Policy;
use super::experiment::{Outcome, Scenario};
use super::model::simulate;

const SEED: u64 = 28;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(outcome: &Outcome) -> Vec<String> {
    let slow = outcome.calls.get(outcome.slow_node).copied().unwrap_or(0);
    vec![
        outcome.balancer.to_owned(),
        format!("{slow} ({:.1}%)", 100.0 * outcome.slow_share()),
        ms(outcome.quantile(0.5)),
        ms(outcome.quantile(0.99)),
        outcome.failed.to_string(),
    ]
}

/// Episode 28: round robin, weighted round robin, least outstanding, p2c
/// and peak-EWMA over five backends, one ten times slower — simulated
/// (the queueing model of [`super::model`]), so every figure is exact and
/// the same on every run.
pub async fn load_balancing_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    let scenario = Scenario {
        seed: SEED,
        ..Scenario::default()
    };
    out.section("Episode 28: five balancers, one slow backend");
    out.say(&format!(
        "{} backends serve {} calls at once in ~{} ms each; n{} is {}x slower. {} calls/s arrive (Poisson),",
        scenario.backends,
        scenario.capacity,
        scenario.fast.as_millis(),
        scenario.slow_node() + 1,
        scenario.slowdown,
        scenario.rate_per_second,
    ));
    out.say(&format!(
        "{} calls in all, each with a {} s deadline. Weighted round robin is given the weights an operator",
        scenario.requests,
        scenario.deadline.as_secs_f64()
    ));
    out.say("who knew would set (10 per fast node, 1 for the slow one); the others know only what they see.");
    let outcomes = Policy::all(SEED)
        .into_iter()
        .map(|policy| simulate(&scenario, policy))
        .collect::<crate::Result<Vec<_>>>()?;
    let rows: Vec<Vec<String>> = outcomes.iter().map(row).collect();
    out.table(
        &[
            "balancer",
            "calls to the slow node",
            "p50",
            "p99",
            "timed out",
        ],
        &rows,
    );

    let by_name = |name: &str| outcomes.iter().find(|o| o.balancer == name);
    let (Some(rr), Some(weighted)) = (by_name("round-robin"), by_name("weighted-round-robin"))
    else {
        return Err("every policy ran".into());
    };
    let slow = |o: &Outcome| o.calls.get(o.slow_node).copied().unwrap_or(0);
    let fifth = scenario.requests as u64 / scenario.backends as u64;
    out.check(
        "round robin keeps feeding the slow node its full share (the broken twin)",
        slow(rr).abs_diff(fifth) <= 1,
        format!(
            "{} of {} calls, 1/{} is {fifth}",
            slow(rr),
            scenario.requests,
            scenario.backends
        ),
    );
    out.check(
        "so the slow node's queue reaches the deadline: round robin's p99 is the deadline",
        rr.quantile(0.99) == scenario.deadline && rr.failed > 0,
        format!(
            "p99 {}, {} calls timed out",
            ms(rr.quantile(0.99)),
            rr.failed
        ),
    );
    let total_weight: u32 = scenario.weights().iter().sum();
    let expected = scenario.requests as u64 / u64::from(total_weight);
    out.check(
        "smooth weighted round robin sends exactly the weighted share, 1 call in 41",
        slow(weighted).abs_diff(expected) <= 1,
        format!("{} calls, expected {expected}", slow(weighted)),
    );
    for name in ["least-outstanding", "p2c", "peak-ewma"] {
        let Some(aware) = by_name(name) else {
            return Err(format!("{name} ran").into());
        };
        out.check(
            format!("{name} sends the slow node under 8% of calls and beats round robin's p99 four times over"),
            aware.slow_share() < 0.08 && aware.quantile(0.99) * 4 < rr.quantile(0.99),
            format!(
                "{:.1}% of calls, p99 {} vs {}",
                100.0 * aware.slow_share(),
                ms(aware.quantile(0.99)),
                ms(rr.quantile(0.99))
            ),
        );
    }
    out.say("Round robin is fair in requests, not in work. The load-aware three notice the slow node holding");
    out.say("its requests (least-outstanding, p2c) or taking long to answer (peak-EWMA), and send elsewhere.");

    sweep(out, &scenario)?;
    Ok(())
}

/// p99 against offered load, per policy: the figure.
fn sweep(out: &mut Narrator, scenario: &Scenario) -> DemoResult {
    out.section("p99 as the offered load grows");
    let rates: Vec<f64> = (1..=7).map(|k| 100.0 * f64::from(k)).collect();
    let mut chart = LineChart::new(
        "p99 per balancer, one backend 10x slower",
        "offered load (calls/s)",
        "p99 latency (ms)",
    )
    .log_y()
    .threshold("deadline", scenario.deadline.as_secs_f64() * 1e3);
    let mut rows = Vec::new();
    for name in Policy::NAMES {
        let mut points = Vec::new();
        let mut row = vec![name.to_owned()];
        for &rate in &rates {
            let at_rate = Scenario {
                rate_per_second: rate,
                ..scenario.clone()
            };
            let outcome = simulate(&at_rate, Policy::by_name(name, SEED)?)?;
            let p99 = outcome.quantile(0.99);
            points.push((rate, p99.as_secs_f64() * 1e3));
            row.push(format!("{:.0}", p99.as_secs_f64() * 1e3));
        }
        rows.push(row);
        chart = chart.series(Series::marked(name, points));
    }
    let header: Vec<String> = std::iter::once("p99 (ms) at calls/s".to_owned())
        .chain(rates.iter().map(|r| format!("{r:.0}")))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.table(&header, &rows);
    out.figure("load-balancing-p99", &chart);
    Ok(())
}
