//! `dslab check FILE --model list-append|rw-register`: judge a recorded
//! transactional history Elle's way and exit with the verdict for the
//! requested isolation level (0 holds, 1 violated, 2 unknown; bad input
//! is the caller's 3).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use replication::consistency::transactional::{
    self, CheckOptions, DataModel, Level, LevelVerdict, Outcome, TxnHistory, timeline,
};

/// How `dslab check` was asked to judge a transactional history.
#[derive(Clone, Debug)]
pub struct TransactionalOptions {
    pub model: DataModel,
    pub isolation: Level,
    pub realtime: bool,
    pub process_order: bool,
    pub budget: Duration,
    pub json: bool,
    pub html: Option<PathBuf>,
}

/// Is `model` one of the transactional models?
pub fn is_transactional_model(model: &str) -> bool {
    model.parse::<DataModel>().is_ok()
}

impl TransactionalOptions {
    /// Parses the model and level names; `--isolation` defaults to
    /// serializable. Asking for strict serializability turns on real-time
    /// edges, which it cannot be judged without.
    pub fn new(model: &str, isolation: Option<&str>, budget: Duration) -> anyhow::Result<Self> {
        let isolation: Level = isolation
            .unwrap_or("serializable")
            .parse()
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            model: model.parse()?,
            isolation,
            realtime: isolation == Level::StrictSerializable,
            process_order: false,
            budget,
            json: false,
            html: None,
        })
    }
}

/// The exit code for a level's verdict.
pub fn exit_code(verdict: LevelVerdict) -> u8 {
    match verdict {
        LevelVerdict::Holds => 0,
        LevelVerdict::Violated => 1,
        LevelVerdict::Unknown => 2,
    }
}

/// Reads, checks and reports `file`; returns the exit code. Errors (bad
/// input, unreadable file) are the caller's exit code 3.
pub fn check_transactional_file(
    file: &Path,
    options: &TransactionalOptions,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let history = TxnHistory::from_jsonl(&text, options.model)
        .with_context(|| format!("{}", file.display()))?;
    if options.realtime
        && let Some(txn) = history
            .txns
            .iter()
            .find(|t| t.call.is_none() || (t.outcome == Outcome::Ok && t.ret.is_none()))
    {
        // Without times a transaction has no real-time edges, and a
        // cycle through it would go unseen: "holds" would be a guess.
        anyhow::bail!(
            "{}: line {}: real-time order (--realtime, strict-serializable) needs \"call\" \
             on every transaction and \"return\" on every ok one",
            file.display(),
            txn.line
        );
    }
    let report = transactional::check(
        &history,
        &CheckOptions {
            realtime: options.realtime,
            process_order: options.process_order,
            budget: Some(options.budget),
            ..CheckOptions::default()
        },
    );
    if options.json {
        writeln!(out, "{:#}", report.to_json(&history, options.isolation))?;
    } else {
        write!(out, "{}", report.explain(&history, options.isolation))?;
    }
    if let Some(path) = &options.html {
        let title = file.file_name().map_or_else(
            || "history".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::fs::write(
            path,
            timeline::html(&history, &report, options.isolation, &title),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(exit_code(report.level(options.isolation)))
}
