//! `dslab check`: judge a recorded history, exit with the verdict.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use replication::consistency::causal::Variant;
use replication::consistency::{History, Model, Verdict, check, session, timeline};

/// How `dslab check` was asked to judge.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// `kv`, `register` or `etcd-register`; detected when `None`.
    pub model: Option<String>,
    pub budget: Duration,
    pub json: bool,
    pub html: Option<PathBuf>,
    pub sessions: bool,
    pub consistency: Consistency,
}

/// Which promise `dslab check --consistency` judges a history against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// One copy, each operation at one instant between call and return.
    #[default]
    Linearizable,
    /// One order keeping each client's program order; real time ignored.
    Sequential,
    /// Causal order (program order and reads-from) respected, in one of
    /// Bouajjani et al.'s three variants.
    Causal(Variant),
}

impl Consistency {
    pub const ALL: [Consistency; 5] = [
        Consistency::Linearizable,
        Consistency::Sequential,
        Consistency::Causal(Variant::Cc),
        Consistency::Causal(Variant::Ccv),
        Consistency::Causal(Variant::Cm),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Sequential => "sequential",
            Consistency::Causal(Variant::Cc) => "causal",
            Consistency::Causal(Variant::Ccv) => "causal-convergence",
            Consistency::Causal(Variant::Cm) => "causal-memory",
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        Consistency::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Consistency::ALL.iter().map(|c| c.name()).collect();
                anyhow::anyhow!("unknown consistency {name:?}; choose {}", names.join(", "))
            })
    }
}

/// The process exit code for each verdict.
pub fn exit_code(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Linearizable { .. } => 0,
        Verdict::NotLinearizable(_) => 1,
        Verdict::Unknown { .. } => 2,
    }
}

/// Reads, checks and reports `file`; returns the exit code. Errors (bad
/// input, unreadable file) are the caller's exit code 3.
pub fn check_file(file: &Path, options: &CheckOptions, out: &mut impl Write) -> anyhow::Result<u8> {
    // A misspelt model is named as such, not reported as a line of the
    // file that fails to parse.
    let named_model = options
        .model
        .as_deref()
        .map(str::parse::<Model>)
        .transpose()?;
    if let Consistency::Causal(variant) = options.consistency {
        return crate::check_causal::check_causal_file(file, variant, options, out);
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let history = History::from_jsonl(&text).with_context(|| format!("{}", file.display()))?;
    let model = match named_model {
        Some(model) => model,
        None => Model::detect(&history)?,
    };
    if options.consistency == Consistency::Sequential {
        return crate::check_sequential::report(file, &history, model, options, out);
    }
    let result = check(&history, model, Some(options.budget))?;
    let violations = if options.sessions {
        session::check_sessions(&history)?
    } else {
        Vec::new()
    };
    if options.json {
        let mut report = result.to_json(&history);
        if options.sessions {
            report["session_violations"] = violations
                .iter()
                .map(|v| v.to_json())
                .collect::<Vec<_>>()
                .into();
        }
        writeln!(out, "{report:#}")?;
    } else {
        writeln!(
            out,
            "{} ({} operations, model {model})",
            result.explain(&history).trim_end(),
            history.operations.len()
        )?;
        if options.sessions {
            writeln!(out, "session guarantees: {} violations", violations.len())?;
            for v in &violations {
                writeln!(out, "  {}: {}", v.guarantee, v.explanation)?;
            }
        }
    }
    if let Some(path) = &options.html {
        let title = file.file_name().map_or_else(
            || "history".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::fs::write(path, timeline::html(&history, Some(&result), &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(exit_code(&result.verdict))
}
