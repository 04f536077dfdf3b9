//! `dslab demo retry-storm`: six retry policies through the same outage.

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;

use super::{STORM_BUDGET, StormReport, StormScenario, simulate, storm_policy};
use crate::retry::{Jitter, RetryPolicy};

/// The policies compared: the same exponential backoff, different jitter
/// and budget.
pub fn contenders() -> Vec<(&'static str, RetryPolicy)> {
    vec![
        (
            "no retry",
            RetryPolicy {
                max_attempts: 1,
                ..storm_policy(Jitter::None, None)
            },
        ),
        ("retry, no jitter (naive)", storm_policy(Jitter::None, None)),
        ("full jitter", storm_policy(Jitter::Full, None)),
        ("equal jitter", storm_policy(Jitter::Equal, None)),
        (
            "decorrelated jitter",
            storm_policy(Jitter::Decorrelated, None),
        ),
        (
            "full jitter + budget",
            storm_policy(Jitter::Full, Some(STORM_BUDGET)),
        ),
    ]
}

/// Calls per 100 ms as a one-line bar chart.
fn sparkline(arrivals: &[u32], buckets: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = arrivals
        .iter()
        .take(buckets)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    arrivals
        .iter()
        .take(buckets)
        .map(|&n| BARS[(n as usize * 7).div_ceil(max as usize).min(7)])
        .collect()
}

/// Episode 8: a one-second outage, 50 clients in step, six retry policies.
pub async fn retry_storm_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    let scenario = StormScenario::episode_8(1);
    out.section("Episode 8: a one-second outage, and what retries make of it");
    out.say("50 clients send a request every 200 ms, all on the same beat. The backend serves 10 calls at");
    out.say(
        "once (20 ms each) and queues 10 more; it is down from t = 1 s to t = 2 s. Simulated time:",
    );
    out.say("each policy below replays the same storm event by event.");
    let mut results: Vec<(&str, StormReport)> = Vec::new();
    for (name, policy) in contenders() {
        results.push((name, simulate(&scenario, &policy)?));
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(name, r)| {
            vec![
                (*name).to_owned(),
                r.attempts.to_string(),
                format!("{:.2}×", r.amplification()),
                format!("{:.1}%", r.success_rate() * 100.0),
                r.refused_full.to_string(),
                format!("{:.1} s", r.completion.as_secs_f64()),
            ]
        })
        .collect();
    out.table(
        &[
            "policy",
            "calls",
            "amplification",
            "succeeded",
            "refused (full)",
            "last request done",
        ],
        &rows,
    );

    out.section("Calls reaching the backend per 100 ms, 0 → 8 s");
    let (naive, jittered) = (&results[1].1, &results[2].1);
    out.say(&format!(
        "  no jitter    {}",
        sparkline(&naive.arrivals, 80)
    ));
    out.say(&format!(
        "  full jitter  {}",
        sparkline(&jittered.arrivals, 80)
    ));
    out.say("Without jitter, every backoff is a multiple of 100 ms: retries from different rounds land on");
    out.say(
        "the same instants, overflow the queue, and come back together. Jitter spreads them out.",
    );

    let budgeted = &results[5].1;
    out.check(
        "full jitter does less total work than retries in lockstep",
        jittered.attempts < naive.attempts,
        format!("{} vs {} calls", jittered.attempts, naive.attempts),
    );
    out.check(
        "jitter ends the storm sooner",
        jittered.completion < naive.completion,
        format!(
            "{:.1} s vs {:.1} s",
            jittered.completion.as_secs_f64(),
            naive.completion.as_secs_f64()
        ),
    );
    let bound = 1.0
        + (scenario.clients as f64 * 6.0 + 0.1 * budgeted.succeeded as f64)
            / budgeted.requests as f64;
    out.check(
        "the budget keeps retries a bounded share of traffic",
        budgeted.amplification() <= bound && budgeted.amplification() < jittered.amplification(),
        format!(
            "{:.2}× (bound {:.2}×) vs {:.2}× unbudgeted",
            budgeted.amplification(),
            bound,
            jittered.amplification()
        ),
    );
    out.say("The budget trades recoveries for load: once a client's tokens are spent it stops retrying,");
    out.say("so fewer requests succeed — but the backend is never asked for more than a bounded share extra.");
    out.check(
        "retries recover requests the outage would have lost",
        results[5].1.success_rate() > results[0].1.success_rate(),
        format!(
            "{:.1}% vs {:.1}% without retries",
            results[5].1.success_rate() * 100.0,
            results[0].1.success_rate() * 100.0
        ),
    );
    Ok(())
}
