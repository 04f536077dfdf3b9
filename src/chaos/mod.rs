//! `dslab chaos run FILE`: a chaos experiment against a simulation or
//! against a group of real `dslab serve` processes this runner owns.
//!
//! Episode: 12, "Chaos Engineering Principles" (also 4)
//! Pattern: chaos engineering / process-group fault injection
//! Try it:  cargo run -- chaos run docs/chaos/replica-crash.json
//! Test it: cargo test --test cli chaos_cli
//!
//! The file holds an `experiment` ([`patterns::chaos::Experiment`]: the
//! hypothesis, the abort bound, the windows and the faults) and one
//! target: `simulation` (a [`patterns::chaos::SimulatedSystem`], run in
//! milliseconds on the discrete-event engine) or `processes` (a
//! [`ProcessGroupConfig`]: R replicas of `dslab serve flaky`, started by
//! this runner). On processes, a crash is SIGKILL (healed by a restart on
//! the same port), a Flaky fault is a `Configure` call that changes the
//! replica's script, and partitions, latency and loss are settings of
//! the TCP [`proxy::Proxy`] the runner puts in front of every replica —
//! the runner never touches the machine's network. The runner's own
//! client probes the replicas through those proxies and measures each
//! window; the decisions are the same pure [`patterns::chaos::Runner`]
//! the simulation uses.
//!
//! Exit codes: 0 the hypothesis held, 1 it broke, the run aborted or the
//! system was not steady, 3 the definition is bad (nothing was started).
//!
//! Bounds: definitions up to [`patterns::chaos::definition::MAX_DEFINITION_BYTES`];
//! at most [`group::MAX_REPLICAS`] processes probed at [`group::MAX_RATE`]
//! calls/s, so calls in flight stay below rate × replicas × attempt timeout.
//!
//! Simplified: the group is Flaky replicas on loopback and one probing
//! client; real tools target existing fleets by tag and inject with
//! iptables/tc or a service mesh, which needs privileges this runner
//! deliberately does without.

pub mod group;
pub mod proxy;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use observability::demo::Narrator;
use patterns::chaos::definition::{MAX_DEFINITION_BYTES, parse_json};
use patterns::chaos::{
    Action, ChaosReport, Decision, Experiment, Outcome, Runner, SimulatedSystem, run_simulated,
};
use serde::Deserialize;

pub use group::{ProcessGroup, ProcessGroupConfig};

/// An experiment file: the experiment and exactly one target.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosFile {
    pub experiment: Experiment,
    #[serde(default)]
    pub simulation: Option<SimulatedSystem>,
    #[serde(default)]
    pub processes: Option<ProcessGroupConfig>,
}

/// What the experiment runs against.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Simulation(SimulatedSystem),
    Processes(ProcessGroupConfig),
}

fn invalid(field: &str, reason: impl Into<String>) -> patterns::Error {
    patterns::Error::InvalidChaosExperiment {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses and checks a definition; nothing starts if this fails.
pub fn parse(text: &str) -> patterns::Result<(Experiment, Target)> {
    let file: ChaosFile = parse_json(text)?;
    let target = match (file.simulation, file.processes) {
        (Some(simulation), None) => Target::Simulation(simulation),
        (None, Some(processes)) => {
            let faults: Vec<_> = file
                .experiment
                .faults
                .iter()
                .map(|f| f.fault.clone())
                .collect();
            processes.validate(&faults)?;
            file.experiment.validate(&processes.hosts())?;
            Target::Processes(processes)
        }
        _ => {
            return Err(invalid(
                "definition",
                "give exactly one target: \"simulation\" or \"processes\"",
            ));
        }
    };
    Ok((file.experiment, target))
}

/// Runs the experiment against a group of processes started from `binary`.
pub async fn run_processes(
    experiment: &Experiment,
    config: &ProcessGroupConfig,
    binary: std::path::PathBuf,
) -> anyhow::Result<ChaosReport> {
    let mut group = ProcessGroup::start(config, binary).await?;
    let mut runner = Runner::new(experiment.clone());
    let window = experiment.window();
    // Replicas just started: let the probe's first calls connect before
    // the first window counts anything.
    tokio::time::sleep(window / 4).await;
    group.take_window();
    let mut next = tokio::time::Instant::now() + window;
    loop {
        tokio::time::sleep_until(next).await;
        next += window;
        let metrics = group.take_window();
        let (actions, report) = match runner.end_window(&metrics) {
            Decision::Continue(actions) => (actions, None),
            Decision::Stop(actions, report) => (actions, Some(report)),
        };
        for action in actions {
            let (index, on) = match action {
                Action::Inject(i) => (i, true),
                Action::Heal(i) => (i, false),
            };
            let fault = &experiment.faults[index].fault;
            if let Err(err) = group.apply(fault, on).await {
                // A fault that cannot be injected or healed ends the run:
                // heal what can be healed (dropping the group kills it).
                for i in runner.active().collect::<Vec<_>>() {
                    let _ = group.apply(&experiment.faults[i].fault, false).await;
                }
                return Err(err.context(format!(
                    "{} {}",
                    if on { "injecting" } else { "healing" },
                    fault.describe()
                )));
            }
        }
        if let Some(report) = report {
            return Ok(report);
        }
    }
}

/// Writes the report: the windows as a table, then the verdict.
pub fn print_report(report: &ChaosReport, out: Box<dyn Write + Send>) {
    let mut narrator = Narrator::new(out);
    narrator.section(&format!("chaos experiment: {}", report.name));
    narrator.say(&format!(
        "hypothesis: {}; blast radius (abort unless): {}",
        report.hypothesis, report.abort
    ));
    let (header, rows) = report.table();
    narrator.table(&header, &rows);
    narrator.say(&report.verdict());
}

/// 0 when the hypothesis held; 1 otherwise.
pub fn exit_code(report: &ChaosReport) -> u8 {
    u8::from(report.outcome != Outcome::Passed)
}

/// `dslab chaos run FILE`.
pub fn run_file(path: &Path) -> anyhow::Result<u8> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        metadata.len() <= MAX_DEFINITION_BYTES as u64,
        "{}: {} bytes exceeds the limit of {MAX_DEFINITION_BYTES}",
        path.display(),
        metadata.len()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (experiment, target) = parse(&text).with_context(|| path.display().to_string())?;
    let report = match target {
        Target::Simulation(system) => run_simulated(&experiment, &system)?,
        Target::Processes(config) => {
            let binary = std::env::current_exe().context("locating the dslab binary")?;
            tokio::runtime::Runtime::new()
                .context("starting the tokio runtime")?
                .block_on(run_processes(&experiment, &config, binary))?
        }
    };
    print_report(&report, Box::new(std::io::stdout()));
    Ok(exit_code(&report))
}
