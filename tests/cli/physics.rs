//! Episodes 1 and 2: the correlated-failure and speed-of-light demos, run
//! as an instructor runs them, with their figures.

use super::support::{run, stdout};

/// Runs `demo` with `--svg`, asserts every one of its `claims` held, and
/// returns its narration and the figures it drew, by name.
fn demo_with_figures(
    demo: &str,
    claims: std::ops::RangeInclusive<usize>,
    figures: &[&str],
) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("figures");
    let output = run(&["demo", demo, "--svg", svg.to_str().expect("utf-8 path")]);
    let text = stdout(&output);
    assert!(output.status.success(), "demo failed:\n{text}");
    assert!(!text.contains('✘'), "a claim failed:\n{text}");
    assert!(claims.contains(&text.matches('✔').count()), "{text}");
    let drawn = figures
        .iter()
        .map(|name| {
            let drawn = std::fs::read_to_string(svg.join(format!("{name}.svg")))
                .unwrap_or_else(|e| panic!("{name}.svg not written: {e}\n{text}"));
            assert!(drawn.starts_with("<svg"), "{name}.svg is not an SVG");
            drawn
        })
        .collect();
    (text, drawn)
}

/// Episode 1. `dslab demo correlated-failure --svg DIR`: the detector
/// names the hidden resolver, the staged rollout stops the version-skew
/// bug in one cell, and both figures are drawn.
#[test]
fn cli_demo_correlated_failure_holds_its_claims_and_draws() {
    let (_, drawn) = demo_with_figures(
        "correlated-failure",
        6..=6,
        &[
            "correlated-failure-p-all-down",
            "correlated-failure-timeline",
        ],
    );
    assert!(drawn[0].contains("behind one resolver"));
}

/// Episode 2. `dslab demo speed-of-light --svg DIR`: the Raft KV on
/// emulated wide-area links never commits below the floor and lands near
/// the majority round trip; the floor and the placements are drawn.
#[test]
fn cli_demo_speed_of_light_holds_its_claims_and_draws() {
    let (text, drawn) = demo_with_figures(
        "speed-of-light",
        // Per placement one or two measured leaders (the one elected
        // first, and the fastest when that is another), each with a floor
        // claim and, where the models are far enough apart to tell, a
        // majority claim; plus the 3-against-5 comparison.
        7..=13,
        &[
            "speed-of-light-floor",
            "speed-of-light-placements",
            "speed-of-light-measured-vs-floor",
        ],
    );
    // The fastest leader of every placement can be told from a miscounted
    // quorum, so each placement makes the majority claim at least once.
    assert!(
        text.matches("commits wait for a majority, not").count() >= 3,
        "{text}"
    );
    assert!(drawn[1].contains("measured on Raft"));
    assert!(drawn[2].contains("the floor"));
}

/// `--svg` into a directory that cannot be created fails the run: the
/// figures were asked for, so "Every claim held" with exit 0 would lie.
#[test]
fn cli_demo_with_an_unwritable_svg_dir_fails_plainly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let blocked = file.join("figures");
    let output = run(&[
        "demo",
        "correlated-failure",
        "--svg",
        blocked.to_str().expect("utf-8 path"),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("correlated-failure-p-all-down.svg not written"),
        "{text}"
    );
    assert!(text.contains("figures could not be written"), "{text}");
    assert!(!text.contains("Every claim held"), "{text}");
    assert!(text.contains("FAILED"), "{text}");
}
