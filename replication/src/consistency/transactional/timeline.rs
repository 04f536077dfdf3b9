//! A transactional history as a picture: one self-contained HTML page,
//! one row per process, each transaction a box from call to return. The
//! transactions of the reported cycles are outlined in red and their
//! edges listed with evidence below the picture. Hover a box for its
//! micro-ops.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use super::super::timeline::{Bar, bar, escape, page};
use super::anomalies::Level;
use super::history::{MicroOp, Outcome, TxnHistory};
use super::report::{Report, explain_step};

const ROW: f64 = 30.0;
const LEFT: f64 = 90.0;
const WIDTH: f64 = 1100.0;
/// Boxes drawn at most; a larger history is drawn in part and says so.
const MAX_BOXES: usize = 5_000;

fn describe(history: &TxnHistory, t: usize) -> String {
    let txn = &history.txns[t];
    let ops: Vec<String> = txn
        .ops
        .iter()
        .map(|op| match op {
            MicroOp::Append { key, element } => {
                format!("append {} {element}", history.key_name(*key))
            }
            MicroOp::ReadList { key, elements } => {
                format!("r {} {elements:?}", history.key_name(*key))
            }
            MicroOp::Write { key, value } => format!("w {} {value}", history.key_name(*key)),
            MicroOp::ReadRegister { key, value } => {
                format!("r {} {value:?}", history.key_name(*key))
            }
        })
        .collect();
    format!("T{} ({:?}): {}", txn.id, txn.outcome, ops.join("; "))
}

/// Renders `history` with `report`'s cycles highlighted.
pub fn html(history: &TxnHistory, report: &Report, isolation: Level, title: &str) -> String {
    let txns = &history.txns;
    let shown = txns.len().min(MAX_BOXES);
    let processes: Vec<u64> = txns[..shown]
        .iter()
        .map(|t| t.process)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Without times, a transaction's position in the file stands in.
    let start = |t: usize| txns[t].call.unwrap_or(t as u64 * 2);
    let end = |t: usize| txns[t].ret.unwrap_or(start(t) + 1);
    let first = (0..shown).map(start).min().unwrap_or(0);
    let last = (0..shown).map(end).max().unwrap_or(1).max(first + 1);
    let span = (last - first) as f64 * 1.02;
    let x = |time: u64| LEFT + time.saturating_sub(first) as f64 / span * WIDTH;
    let in_cycle: HashSet<usize> = report
        .cycles
        .iter()
        .flat_map(|c| c.steps.iter().map(|(t, _)| *t))
        .collect();

    let mut svg = String::new();
    let height = ROW * processes.len() as f64 + 20.0;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="11">"#,
        LEFT + WIDTH + 20.0
    );
    for (row, process) in processes.iter().enumerate() {
        let y = 10.0 + ROW * row as f64 + ROW / 2.0;
        let _ = write!(
            svg,
            r##"<text x="4" y="{y}">process {process}</text><line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/>"##,
            LEFT + WIDTH
        );
    }
    for (t, txn) in txns.iter().enumerate().take(shown) {
        let row = processes
            .iter()
            .position(|p| *p == txn.process)
            .unwrap_or(0);
        let y = 14.0 + ROW * row as f64;
        let x0 = x(start(t));
        let x1 = x(end(t)).max(x0 + 3.0);
        let fill = match txn.outcome {
            Outcome::Ok => "#90caf9",
            Outcome::Fail => "#e0e0e0",
            Outcome::Info => "#fff59d",
        };
        let stroke = if in_cycle.contains(&t) {
            r##" stroke="#c62828" stroke-width="2.5""##
        } else {
            ""
        };
        bar(
            &mut svg,
            &Bar {
                title: &describe(history, t),
                x0,
                x1,
                y,
                height: ROW - 8.0,
                fill,
                stroke,
                label: &format!("T{}", txn.id),
                min_label_width: 30.0,
            },
        );
    }
    svg.push_str("</svg>");

    let mut edges = String::new();
    for cycle in &report.cycles {
        let _ = write!(edges, "<h3>{}</h3><ol>", escape(&cycle.anomaly.name()));
        for (from, edge) in &cycle.steps {
            let _ = write!(
                edges,
                "<li>{}</li>",
                escape(&explain_step(history, *from, edge))
            );
        }
        edges.push_str("</ol>");
    }
    let partial = if shown < txns.len() {
        format!(" Only the first {shown} are drawn.")
    } else {
        String::new()
    };
    let intro = format!(
        "{} transactions by {} processes.{partial} Boxes run from call to return: blue committed, grey aborted, yellow unknown; red outline: a transaction in a reported cycle.",
        txns.len(),
        processes.len()
    );
    page(
        title,
        &intro,
        &report.explain(history, isolation),
        &format!("{svg}\n{edges}"),
    )
}
