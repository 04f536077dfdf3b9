//! The episode map, in one place: which module teaches which episode, the
//! test that proves it and the demo that shows it. `dslab list` prints it,
//! `dslab tour` runs its demos in order, and the README's map is checked
//! against it.

use futures_util::future::BoxFuture;
use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;

/// A live demo: narrates to the audience and checks its claims.
pub type DemoFn = for<'a> fn(&'a mut Narrator, &'a SpanCapture) -> BoxFuture<'a, DemoResult>;

/// A demo the tour can run.
#[derive(Clone, Copy)]
pub struct Demo {
    /// What to type after `dslab demo`.
    pub name: &'static str,
    pub run: DemoFn,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo").field("name", &self.name).finish()
    }
}

/// One row of the episode map.
#[derive(Clone, Copy, Debug)]
pub struct Topic {
    /// Course episode numbers, primary first (`"31"`, `"4, 12"`).
    pub episodes: &'static str,
    /// `crate::module` holding the code.
    pub module: &'static str,
    /// What the module teaches, in a few words.
    pub summary: &'static str,
    /// The test filter an instructor types, after `cargo test`.
    pub tests: &'static str,
    pub demo: Option<Demo>,
}

/// Every topic, in the order the tour visits them.
pub fn topics() -> Vec<Topic> {
    vec![
        Topic {
            episodes: "31",
            module: "observability::relay",
            summary: "trace context across three services",
            tests: "-p observability relay_",
            demo: Some(Demo {
                name: "trace-propagation",
                run: |out, spans| Box::pin(observability::relay::trace_propagation(out, spans)),
            }),
        },
        Topic {
            episodes: "31, 4",
            module: "observability::rpc",
            summary: "one RPC stack: spans, deadlines, limits, health, reflection",
            tests: "-p observability rpc",
            demo: None,
        },
        Topic {
            episodes: "32",
            module: "observability::metrics",
            summary: "RED metrics per gRPC method",
            tests: "-p observability red_metrics",
            demo: None,
        },
        Topic {
            episodes: "4, 12",
            module: "observability::sim",
            summary: "seeded simulation: partitions, crashes, replay",
            tests: "-p observability sim_",
            demo: None,
        },
    ]
}

/// The demo called `name`, if any.
pub fn demo(name: &str) -> Option<Demo> {
    topics()
        .into_iter()
        .filter_map(|topic| topic.demo)
        .find(|demo| demo.name == name)
}

/// The episode map as a Markdown table (the README embeds this verbatim).
pub fn markdown() -> String {
    let mut out =
        String::from("| Episode | Module | What it shows | Test | Demo |\n|---|---|---|---|---|\n");
    for topic in topics() {
        let demo = topic
            .demo
            .map_or_else(|| "—".to_owned(), |d| format!("`dslab demo {}`", d.name));
        out.push_str(&format!(
            "| {} | `{}` | {} | `cargo test {}` | {} |\n",
            topic.episodes, topic.module, topic.summary, topic.tests, demo
        ));
    }
    out
}
