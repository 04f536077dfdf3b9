//! How a live demo talks to its audience, and what it promises.
//!
//! A demo narrates (sections, sentences, tables) and makes *checks*: claims
//! about the system it just ran, each with the evidence that it held. The
//! tour fails if any check fails, so a demo is also a test an audience can
//! watch.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use crate::plot::LineChart;

/// What a demo returns when it could not run at all (as opposed to a
/// check that ran and failed).
pub type DemoResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One claim a demo made about the system, and whether it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub claim: String,
    pub held: bool,
    pub evidence: String,
}

/// Narration for a terminal audience, plus the checks made along the way.
pub struct Narrator {
    out: Box<dyn Write + Send>,
    checks: Vec<Check>,
    figures: Option<PathBuf>,
    /// Figures asked for that could not be written, with the reason.
    unwritten: Vec<String>,
}

impl std::fmt::Debug for Narrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Narrator")
            .field("checks", &self.checks)
            .field("figures", &self.figures)
            .field("unwritten", &self.unwritten)
            .finish_non_exhaustive()
    }
}

impl Narrator {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            checks: Vec::new(),
            figures: None,
            unwritten: Vec::new(),
        }
    }

    /// Also draw figures, as SVG files in `dir` (created if missing).
    pub fn with_figures(mut self, dir: impl Into<PathBuf>) -> Self {
        self.figures = Some(dir.into());
        self
    }

    /// Draws `chart` as `NAME.svg` when figures were asked for, and says
    /// where it went; otherwise does nothing, since the tables already told
    /// the story. A figure that was asked for but cannot be written is said
    /// plainly and remembered ([`Narrator::take_unwritten_figures`]): the
    /// demo runs on, but whoever runs it must not be told all went well
    /// when the files they wanted are not there.
    pub fn figure(&mut self, name: &str, chart: &LineChart) {
        let Some(dir) = self.figures.clone() else {
            return;
        };
        let path = dir.join(format!("{name}.svg"));
        let written = chart
            .to_svg()
            .map_err(|err| err.to_string())
            .and_then(|svg| {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&path, svg))
                    .map_err(|err| err.to_string())
            });
        match written {
            Ok(()) => self.say(&format!("  figure: {}", path.display())),
            Err(err) => {
                let failure = format!("figure {} not written: {err}", path.display());
                self.say(&format!("  ✘ {failure}"));
                self.unwritten.push(failure);
            }
        }
    }

    /// Hands over the figures that could not be written (each with its
    /// path and reason), leaving none.
    pub fn take_unwritten_figures(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unwritten)
    }

    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    fn line(&mut self, text: &str) {
        // Narration is best effort: a closed pipe must not abort the demo.
        let _ = writeln!(self.out, "{text}");
    }

    /// A heading for the next part of the story.
    pub fn section(&mut self, title: &str) {
        self.line("");
        self.line(&format!("== {title}"));
    }

    /// A sentence of narration.
    pub fn say(&mut self, text: &str) {
        self.line(text);
    }

    /// A pre-formatted block (a span tree, a history), indented.
    pub fn block(&mut self, text: &str) {
        for line in text.lines() {
            self.line(&format!("    {line}"));
        }
    }

    /// A table with a header row; columns are padded to fit.
    pub fn table<R: AsRef<[String]>>(&mut self, header: &[&str], rows: &[R]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.as_ref().iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let format_row = |cells: Vec<&str>| {
            let mut line = String::from("   ");
            for (cell, width) in cells.iter().zip(&widths) {
                let _ = write!(line, " {cell:<width$} ");
            }
            line.trim_end().to_owned()
        };
        self.line(&format_row(header.to_vec()));
        self.line(&format!(
            "    {}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  ")
        ));
        for row in rows {
            self.line(&format_row(
                row.as_ref().iter().map(String::as_str).collect(),
            ));
        }
    }

    /// Records and prints a claim about the system; returns whether it held.
    pub fn check(
        &mut self,
        claim: impl Into<String>,
        held: bool,
        evidence: impl Into<String>,
    ) -> bool {
        let check = Check {
            claim: claim.into(),
            held,
            evidence: evidence.into(),
        };
        let mark = if held { "✔" } else { "✘ FAILED:" };
        self.line(&format!("  {mark} {} ({})", check.claim, check.evidence));
        self.checks.push(check);
        held
    }

    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Hands over the checks made so far, leaving none.
    pub fn take_checks(&mut self) -> Vec<Check> {
        std::mem::take(&mut self.checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::Series;

    fn chart() -> LineChart {
        LineChart::new("t", "x", "y").series(Series::line("s", vec![(0.0, 1.0), (1.0, 2.0)]))
    }

    /// A figure asked for but not writable (its directory would have to
    /// live inside a regular file) is said, and handed over as a failure;
    /// one that is written leaves nothing behind.
    #[test]
    fn demo_narrator_reports_figures_it_could_not_write() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a directory")?;

        let mut blocked = Narrator::new(Box::new(std::io::sink())).with_figures(file.join("sub"));
        blocked.figure("blocked", &chart());
        let unwritten = blocked.take_unwritten_figures();
        assert_eq!(unwritten.len(), 1, "{unwritten:?}");
        assert!(unwritten[0].contains("blocked.svg"), "{unwritten:?}");
        assert!(
            blocked.take_unwritten_figures().is_empty(),
            "handed over once"
        );

        let mut fine = Narrator::new(Box::new(std::io::sink())).with_figures(dir.path().join("ok"));
        fine.figure("fine", &chart());
        assert!(fine.take_unwritten_figures().is_empty());
        assert!(std::fs::read_to_string(dir.path().join("ok/fine.svg"))?.starts_with("<svg"));

        // Without --svg nothing is asked for, so nothing can fail.
        let mut none = Narrator::new(Box::new(std::io::sink()));
        none.figure("none", &chart());
        assert!(none.take_unwritten_figures().is_empty());
        Ok(())
    }
}
