//! Running demos for an audience, and the tour that runs them all.

use std::time::{Duration, Instant};

use observability::demo::{Check, Narrator};
use observability::telemetry::SpanCapture;

use crate::registry::{Demo, demos};

/// How one demo went.
#[derive(Debug)]
pub struct DemoOutcome {
    pub name: &'static str,
    pub episodes: &'static str,
    pub checks: Vec<Check>,
    /// Set when the demo could not run to the end.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl DemoOutcome {
    /// Every claim held and nothing broke.
    pub fn passed(&self) -> bool {
        self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.held)
    }
}

/// Runs one demo, narrating to `out`.
pub async fn run_demo(demo: Demo, out: &mut Narrator, spans: &SpanCapture) -> DemoOutcome {
    let started = Instant::now();
    spans.clear();
    let result = (demo.run)(out, spans).await;
    let mut error = result.err().map(|err| err.to_string());
    if let Some(err) = &error {
        out.say(&format!("  ✘ the demo could not finish: {err}"));
    }
    // Figures asked for with --svg are part of what the run promised.
    let unwritten = out.take_unwritten_figures();
    if error.is_none() && !unwritten.is_empty() {
        let err = format!(
            "{} of its figures could not be written ({})",
            unwritten.len(),
            unwritten.join("; ")
        );
        out.say(&format!("  ✘ the demo failed: {err}"));
        error = Some(err);
    }
    DemoOutcome {
        name: demo.name,
        episodes: demo.episodes,
        checks: out.take_checks(),
        error,
        elapsed: started.elapsed(),
    }
}

/// Runs every registered demo in order, then prints the summary table.
/// Returns whether every demo's claims held.
pub async fn tour(out: &mut Narrator, spans: &SpanCapture) -> bool {
    out.say("dslab tour: every demo in course order. Each makes claims about the system it runs;");
    out.say("the tour fails if any claim does not hold.");
    let mut outcomes = Vec::new();
    for demo in demos() {
        out.say("");
        out.say(&format!(
            "##### dslab demo {} (episodes {})",
            demo.name, demo.episodes
        ));
        outcomes.push(run_demo(demo, out, spans).await);
    }
    summarize(out, &outcomes)
}

/// Prints the summary table; returns whether every demo passed.
pub fn summarize(out: &mut Narrator, outcomes: &[DemoOutcome]) -> bool {
    out.section("Summary");
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let held = o.checks.iter().filter(|c| c.held).count();
            vec![
                o.name.to_owned(),
                o.episodes.to_owned(),
                format!("{held}/{}", o.checks.len()),
                format!("{:.2} s", o.elapsed.as_secs_f64()),
                if o.passed() { "ok" } else { "FAILED" }.to_owned(),
            ]
        })
        .collect();
    out.table(
        &["demo", "episodes", "claims held", "time", "result"],
        &rows,
    );
    let all = outcomes.iter().all(DemoOutcome::passed);
    out.say("");
    out.say(if all {
        "Every claim held."
    } else {
        "Some demos failed: see ✘ and FAILED above."
    });
    all
}
