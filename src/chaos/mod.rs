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
//! system was not steady, 3 the definition is bad (nothing was started),
//! 4 the run itself failed (a replica would not start, a fault could not
//! be applied) or was stopped by SIGINT/SIGTERM: the windows measured so
//! far are printed, the group is killed, nothing is concluded.
//!
//! Bounds: definitions up to [`patterns::chaos::definition::MAX_DEFINITION_BYTES`]
//! (read through a limit, so a device or a pipe cannot grow it);
//! at most [`config::MAX_REPLICAS`] processes probed at [`config::MAX_RATE`]
//! calls/s, so calls in flight stay below rate × replicas × attempt timeout.
//! No replica outlives the runner (see [`group`]).
//!
//! Simplified: the group is Flaky replicas on loopback and one probing
//! client; real tools target existing fleets by tag and inject with
//! iptables/tc or a service mesh, which needs privileges this runner
//! deliberately does without.

pub mod config;
pub mod group;
mod probe;
pub mod proxy;

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use observability::demo::Narrator;
use patterns::chaos::definition::{MAX_DEFINITION_BYTES, parse_json};
use patterns::chaos::{
    Action, ChaosReport, Decision, Experiment, Outcome, Runner, SimulatedSystem, run_simulated,
};
use serde::Deserialize;

pub use config::ProcessGroupConfig;
pub use group::ProcessGroup;

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
            processes.validate()?;
            file.experiment.validate(&processes.hosts())?;
            processes.check_windows(file.experiment.window())?;
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

/// How a run against processes ended.
#[derive(Debug)]
pub enum ProcessRun {
    /// The experiment reached its verdict.
    Finished(ChaosReport),
    /// The run stopped early; the report holds the windows measured so
    /// far, and the error says why (`None`: the group never started).
    Failed(Option<ChaosReport>, anyhow::Error),
}

/// Resolves when the runner is asked to stop: SIGINT or SIGTERM.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// Runs the experiment against a group of processes started from
/// `binary`. The group is killed whichever way the run ends; a signal
/// ends it early with the windows measured so far.
pub async fn run_processes(
    experiment: &Experiment,
    config: &ProcessGroupConfig,
    binary: std::path::PathBuf,
) -> ProcessRun {
    let mut runner = Runner::new(experiment.clone());
    let mut started = false;
    // The drive future owns the group: however it ends — finished,
    // failed, or dropped by the signal branch — the group drops with it.
    let outcome = tokio::select! {
        result = drive(experiment, config, binary, &mut runner, &mut started) => result,
        signal = stop_signal() => Err(anyhow::anyhow!("stopped by {signal}")),
    };
    match outcome {
        Ok(report) => ProcessRun::Finished(report),
        Err(err) => {
            let report = started.then(|| runner.interrupt(format!("{err:#}")));
            ProcessRun::Failed(report, err)
        }
    }
}

async fn drive(
    experiment: &Experiment,
    config: &ProcessGroupConfig,
    binary: std::path::PathBuf,
    runner: &mut Runner,
    started: &mut bool,
) -> anyhow::Result<ChaosReport> {
    let mut group = ProcessGroup::start(config, binary).await?;
    *started = true;
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
        if let Some(report) = report {
            // The last heals would only restart what dropping the group
            // kills a moment later; partitions and the like live in the
            // proxies, which go with it.
            drop(actions);
            return Ok(report);
        }
        for action in actions {
            let (index, on) = match action {
                Action::Inject(i) => (i, true),
                Action::Heal(i) => (i, false),
            };
            let fault = &experiment.faults[index].fault;
            if let Err(err) = group.apply(fault, on).await {
                return Err(err.context(format!(
                    "{} {}",
                    if on { "injecting" } else { "healing" },
                    fault.describe()
                )));
            }
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

/// The exit code of a run that failed or was interrupted.
pub const EXIT_RUN_FAILED: u8 = 4;

/// Reads at most [`MAX_DEFINITION_BYTES`] of `path`: the limit is applied
/// while reading, since a device or a pipe reports no length.
pub fn read_definition(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_DEFINITION_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() <= MAX_DEFINITION_BYTES,
        "{}: longer than the limit of {MAX_DEFINITION_BYTES} bytes",
        path.display()
    );
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))
}

/// `dslab chaos run FILE`.
pub fn run_file(path: &Path) -> anyhow::Result<u8> {
    let text = read_definition(path)?;
    let name = path.display().to_string();
    let (experiment, target) = parse(&text).with_context(|| name.clone())?;
    let report = match target {
        Target::Simulation(system) => run_simulated(&experiment, &system).with_context(|| name)?,
        Target::Processes(config) => {
            let binary = std::env::current_exe().context("locating the dslab binary")?;
            let run = tokio::runtime::Runtime::new()
                .context("starting the tokio runtime")?
                .block_on(run_processes(&experiment, &config, binary));
            match run {
                ProcessRun::Finished(report) => report,
                ProcessRun::Failed(report, err) => {
                    if let Some(report) = report {
                        print_report(&report, Box::new(std::io::stdout()));
                    }
                    eprintln!("dslab: {name}: the run failed: {err:#}");
                    return Ok(EXIT_RUN_FAILED);
                }
            }
        }
    };
    print_report(&report, Box::new(std::io::stdout()));
    Ok(exit_code(&report))
}
