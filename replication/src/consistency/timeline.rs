//! A history as a picture: one self-contained HTML page with an SVG
//! timeline, clients as rows, operations as bars from call to return.
//!
//! Bars are coloured by key; an unknown outcome fades out to the right
//! (it may land any time after its call). When the checker found a
//! violation, the failing key's operations are outlined and the ones that
//! could not go next are drawn in red, with the explanation above. Hover a
//! bar for the operation.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::checker::{CheckResult, Verdict};
use super::history::History;

const ROW: f64 = 34.0;
const LEFT: f64 = 90.0;
const WIDTH: f64 = 1100.0;

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One box of a timeline: hover text, extent, colours, and a label drawn
/// inside when the box is wide enough for it.
pub(super) struct Bar<'a> {
    pub title: &'a str,
    pub x0: f64,
    pub x1: f64,
    pub y: f64,
    pub height: f64,
    pub fill: &'a str,
    /// Extra SVG attributes (an outline), or empty.
    pub stroke: &'a str,
    pub label: &'a str,
    pub min_label_width: f64,
}

/// Appends `bar` to `svg`.
pub(super) fn bar(svg: &mut String, bar: &Bar<'_>) {
    let Bar { x0, x1, y, .. } = *bar;
    let _ = write!(
        svg,
        r#"<g><title>{}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{}"{}/>"#,
        escape(bar.title),
        x1 - x0,
        bar.height,
        bar.fill,
        bar.stroke
    );
    if x1 - x0 > bar.min_label_width {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x0 + 3.0,
            y + bar.height / 2.0 + 4.0,
            escape(bar.label)
        );
    }
    svg.push_str("</g>");
}

/// A hue per key, stable across runs.
fn hue(key: &str) -> u32 {
    key.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360
}

/// Renders `history` (and the checker's verdict, if given) as HTML.
pub fn html(history: &History, result: Option<&CheckResult>, title: &str) -> String {
    let ops = &history.operations;
    let clients: Vec<u64> = ops
        .iter()
        .map(|op| op.client)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let first = ops.iter().map(|op| op.call).min().unwrap_or(0);
    let last = ops
        .iter()
        .map(|op| if op.ret == u64::MAX { op.call } else { op.ret })
        .max()
        .unwrap_or(1)
        .max(first + 1);
    let span = (last - first) as f64 * 1.05;
    let x = |t: u64| LEFT + (t.saturating_sub(first)) as f64 / span * WIDTH;

    let (failing, blocked, verdict_text): (BTreeSet<usize>, BTreeSet<usize>, String) =
        match result.map(|r| &r.verdict) {
            Some(Verdict::NotLinearizable(v)) => (
                v.operations.iter().copied().collect(),
                v.blocked.iter().map(|(id, _)| *id).collect(),
                result.map(|r| r.explain(history)).unwrap_or_default(),
            ),
            Some(_) => (
                BTreeSet::new(),
                BTreeSet::new(),
                result.map(|r| r.explain(history)).unwrap_or_default(),
            ),
            None => (BTreeSet::new(), BTreeSet::new(), String::new()),
        };

    let height = ROW * clients.len() as f64 + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="11">"#,
        LEFT + WIDTH + 20.0
    );
    svg.push_str(r##"<defs><linearGradient id="unknown"><stop offset="0" stop-color="#999" stop-opacity="0.8"/><stop offset="1" stop-color="#999" stop-opacity="0"/></linearGradient></defs>"##);
    for (row, client) in clients.iter().enumerate() {
        let y = 20.0 + ROW * row as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{}">client {client}</text>"#,
            y + ROW / 2.0
        );
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#eee"/>"##,
            LEFT + WIDTH,
            y + ROW / 2.0,
            y + ROW / 2.0
        );
    }
    for op in ops {
        let row = clients.iter().position(|c| *c == op.client).unwrap_or(0);
        let y = 24.0 + ROW * row as f64;
        let x0 = x(op.call);
        let unknown = op.ret == u64::MAX;
        let x1 = if unknown {
            LEFT + WIDTH
        } else {
            x(op.ret).max(x0 + 2.0)
        };
        let key = op.key.as_deref().unwrap_or("");
        let fill = if blocked.contains(&op.id) {
            "#e53935".to_owned()
        } else if unknown {
            "url(#unknown)".to_owned()
        } else {
            format!("hsl({}, 55%, 72%)", hue(key))
        };
        let stroke = if failing.contains(&op.id) {
            r##" stroke="#b71c1c" stroke-width="2""##
        } else {
            ""
        };
        let ret = if unknown {
            "never (outcome unknown)".to_owned()
        } else {
            op.ret.to_string()
        };
        let title = format!(
            "#{} client {}: {} — called {}, returned {}",
            op.id,
            op.client,
            op.describe(),
            op.call,
            ret
        );
        bar(
            &mut svg,
            &Bar {
                title: &title,
                x0,
                x1,
                y,
                height: ROW - 8.0,
                fill: &fill,
                stroke,
                label: &op.describe(),
                min_label_width: 60.0,
            },
        );
    }
    svg.push_str("</svg>");

    let intro = format!(
        "{} operations by {} clients. Bars run from call to return; colour is the key; red outline: the key with no valid order; red fill: the operations that could not go next.",
        ops.len(),
        clients.len()
    );
    page(title, &intro, &verdict_text, &svg)
}

/// A self-contained HTML page: a title, one paragraph saying how to read
/// the drawing, the verdict as preformatted text, then `body` (already
/// HTML; everything else is escaped here).
pub(super) fn page(title: &str, intro: &str, verdict: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px}} pre{{background:#f6f6f6;padding:12px;white-space:pre-wrap}}</style>
</head><body>
<h1>{title}</h1>
<p>{intro}</p>
<pre>{verdict}</pre>
{body}
</body></html>
"#,
        title = escape(title),
        intro = escape(intro),
        verdict = escape(verdict),
    )
}
