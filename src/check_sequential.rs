//! `dslab check --consistency sequential`: judge a history for sequential
//! consistency (see `replication::consistency::sequential`), exit with
//! the verdict: 0 sequential, 1 not, 2 unknown within the budget.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use replication::consistency::sequential::{self, SequentialVerdict};
use replication::consistency::{History, Model, timeline};

use crate::check::CheckOptions;

/// The process exit code for each verdict.
pub fn exit_code(verdict: &SequentialVerdict) -> u8 {
    match verdict {
        SequentialVerdict::Sequential { .. } => 0,
        SequentialVerdict::NotSequential(_) => 1,
        SequentialVerdict::Unknown { .. } => 2,
    }
}

/// Checks the parsed `history` and reports it as `dslab check` does;
/// returns the exit code.
pub fn report(
    file: &Path,
    history: &History,
    model: Model,
    options: &CheckOptions,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    if options.sessions {
        anyhow::bail!(
            "--sessions goes with --consistency linearizable; session guarantees are checked on their own"
        );
    }
    let result = sequential::check(history, model, Some(options.budget))?;
    if options.json {
        writeln!(out, "{:#}", result.to_json(history))?;
    } else {
        writeln!(
            out,
            "{} ({} operations, model {model})",
            result.explain(history).trim_end(),
            history.operations.len()
        )?;
    }
    if let Some(path) = &options.html {
        let name = file.file_name().map_or_else(
            || "history".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        // The timeline draws the history; the verdict's first line heads it.
        let explanation = result.explain(history);
        let verdict = explanation.lines().next().unwrap_or_default();
        let title = format!("{name} — {verdict}");
        std::fs::write(path, timeline::html(history, None, &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(exit_code(&result.verdict))
}
