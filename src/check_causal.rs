//! `dslab check --consistency causal`: judge a recorded history for
//! causal consistency (exit 0 causal, 1 not, 2 unknown; bad input is the
//! caller's exit 3).

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use replication::consistency::causal::{CausalVerdict, Variant, check_causal};
use replication::consistency::{History, Model, timeline};

use crate::check::CheckOptions;

/// The process exit code for each verdict.
pub fn exit_code(verdict: &CausalVerdict) -> u8 {
    match verdict {
        CausalVerdict::Causal => 0,
        CausalVerdict::NotCausal => 1,
        CausalVerdict::Unknown { .. } => 2,
    }
}

/// Reads, checks and reports `file` against `variant`; returns the exit
/// code. Errors (bad input, unreadable file) are the caller's exit code 3.
pub fn check_causal_file(
    file: &Path,
    variant: Variant,
    options: &CheckOptions,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    if options.sessions {
        anyhow::bail!(
            "--sessions checks get/append histories; causal consistency already implies the four session guarantees"
        );
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let history = History::from_jsonl(&text).with_context(|| format!("{}", file.display()))?;
    if let Some(name) = &options.model {
        let model = name.parse::<Model>()?;
        model.validate(&history)?;
    }
    let report = check_causal(&history, variant, Some(options.budget))
        .with_context(|| format!("{}", file.display()))?;
    if options.json {
        writeln!(out, "{:#}", report.to_json())?;
    } else {
        writeln!(
            out,
            "{} (model {})",
            report.explain().trim_end(),
            report.model
        )?;
    }
    if let Some(path) = &options.html {
        let title = file.file_name().map_or_else(
            || "history".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::fs::write(path, timeline::html(&history, None, &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(exit_code(&report.verdict))
}
