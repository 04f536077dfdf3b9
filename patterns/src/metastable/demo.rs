//! `dslab demo metastable`: a three-second spike, an outage that does not
//! end, and the four interventions that end it.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::plot::{LineChart, Series};
use observability::telemetry::SpanCapture;

use super::{Intervention, MetastableConfig, MetastableReport, simulate};
use crate::error::Result;

const SEED: u64 = 1;

fn recovery(report: &MetastableReport) -> String {
    report
        .recovery_time()
        .map_or("never".into(), |r| format!("{} s", r.as_secs()))
}

/// Episode 9.
pub async fn metastable_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    let base = MetastableConfig::episode_9(Intervention::Naive, SEED);
    out.section("Episode 9: metastable failure — the outage that outlives its trigger");
    out.say(&format!(
        "4 workers serve {:.0} requests/s; clients offer {:.0}/s (60%), time out after 1 s and try up to 4 times.",
        base.capacity(),
        base.arrival_rate
    ));
    out.say(
        "From 10 s to 13 s the load triples. Then it is back to 60% — for the rest of the minute.",
    );
    let mut reports: Vec<MetastableReport> = Intervention::episode_9()
        .into_iter()
        .chain([Intervention::Capacity {
            extra_workers: 4,
            hold: Duration::from_secs(15),
        }])
        .map(|intervention| simulate(&MetastableConfig::episode_9(intervention, SEED)))
        .collect::<Result<_>>()?;
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.config.intervention.name(),
                recovery(r),
                format!("{:.0}", r.final_goodput(Duration::from_secs(20))),
                format!("{:.2}", r.amplification()),
                r.buckets
                    .iter()
                    .map(|b| b.queue)
                    .max()
                    .unwrap_or(0)
                    .to_string(),
                r.buckets.iter().map(|b| b.wasted).sum::<u64>().to_string(),
            ]
        })
        .collect();
    out.table(
        &[
            "intervention",
            "recovered after trigger",
            "goodput/s (last 20 s)",
            "attempts/request",
            "peak queue",
            "wasted services",
        ],
        &rows,
    );
    let healthy = base.arrival_rate * MetastableReport::HEALTHY_SHARE;
    if let [naive, budget, shedding, lifo, triple, double] = reports.as_slice() {
        out.check(
            "without mitigation the system stays down after the trigger is gone",
            naive.recovered_at.is_none() && naive.final_goodput(Duration::from_secs(20)) < 0.05 * base.arrival_rate,
            format!(
                "goodput {:.0}/s in the last 20 s at 60% load; {:.1} attempts per request; {} served for nobody",
                naive.final_goodput(Duration::from_secs(20)),
                naive.amplification(),
                naive.buckets.iter().map(|b| b.wasted).sum::<u64>()
            ),
        );
        for (report, bound) in [(budget, 10), (shedding, 2), (lifo, 2), (triple, 15)] {
            out.check(
                format!(
                    "{} restores goodput within {bound} s of the trigger's end",
                    report.config.intervention.name()
                ),
                report
                    .recovery_time()
                    .is_some_and(|r| r <= Duration::from_secs(bound)),
                format!(
                    "recovered after {}, then {:.0}/s (healthy ≥ {healthy:.0}/s)",
                    recovery(report),
                    report.final_goodput(Duration::from_secs(20))
                ),
            );
        }
        out.check(
            "capacity must beat the amplified load: doubling the workers is not enough",
            double.recovered_at.is_none(),
            format!(
                "800/s of capacity against about {:.0} attempts/s",
                base.arrival_rate * f64::from(base.max_attempts)
            ),
        );
    }
    out.say("");
    out.say("The trigger is not the cause. Ending it changes nothing; breaking the loop — fewer retries, a wait");
    out.say("capped below the timeout, fresh requests first, or capacity above the amplified load — does.");
    let mut chart = LineChart::new(
        "Metastable failure: goodput after a 3 s spike (10–13 s)",
        "time (s)",
        "goodput (answers within the timeout per s)",
    )
    .threshold("offered load", base.arrival_rate);
    // Doubling the workers leaves goodput as flat as the twin's: that
    // line goes first, so the twin's is drawn over it and both are named.
    if let Some(double) = reports.pop() {
        reports.insert(0, double);
    }
    for (i, report) in reports.drain(..).enumerate() {
        let points = report
            .buckets
            .iter()
            .map(|b| (b.start.as_secs_f64(), b.goodput as f64))
            .collect();
        let mut name = report.config.intervention.name();
        if i == 0 {
            name.push_str(" (under the twin's line)");
        }
        chart = chart.series(Series::line(name, points));
    }
    out.figure("metastable-timeline", &chart);
    Ok(())
}
