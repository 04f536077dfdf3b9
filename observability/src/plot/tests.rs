use super::*;

#[test]
fn plot_draws_every_series_and_threshold_by_name() {
    let chart = LineChart::new("detectors", "false positives / hour", "detection (s)")
        .series(Series::marked(
            "phi",
            vec![(0.1, 3.0), (1.0, 1.5), (10.0, 0.8)],
        ))
        .series(Series::line("timeout", vec![(0.2, 4.0), (2.0, 2.0)]))
        .threshold("budget", 2.5);
    let svg = chart.to_svg().expect("drawable");
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    for name in [
        "detectors",
        "phi",
        "timeout",
        "budget",
        "false positives / hour",
    ] {
        assert!(svg.contains(name), "{name} missing from the figure");
    }
    assert_eq!(
        svg.matches("<circle").count(),
        3,
        "one marker per phi point"
    );
}

#[test]
fn plot_tick_labels_are_short_and_exact_enough() {
    for (value, label) in [
        (0.009999999999999998, "0.01"),
        (9.999999999999999e-5, "1e-4"),
        (1e-6, "1e-6"),
        (2.5e-3, "2.5e-3"),
        (0.30000000000000004, "0.3"),
        (123.456, "123"),
        (1.0, "1"),
        (40.0, "40"),
        (12_345.0, "1.23e4"),
        (0.0, "0"),
        (-0.05, "-0.05"),
    ] {
        assert_eq!(tick_label(value), label, "{value}");
    }
}

#[test]
fn plot_log_axes_categories_and_unjoined_points_draw_as_asked() {
    let log = LineChart::new("p", "replicas", "P(all down)")
        .series(Series::marked(
            "independent",
            (1..=5).map(|n| (f64::from(n), 0.01f64.powi(n))).collect(),
        ))
        .log_y()
        .legend(Legend::LowerLeft)
        .to_svg()
        .expect("drawable");
    assert!(!log.contains("9.999999"), "unrounded tick label");
    assert!(!log.contains("0.00999"), "unrounded tick label");
    // plotters writes each label on a line of its own.
    assert!(
        log.contains("\n1e-4\n") && log.contains("\n0.01\n"),
        "{log}"
    );

    let seen = vec![(1.0, 5.0), (2.0, 7.0), (3.0, 6.0)];
    let chart = |series: Series| {
        LineChart::new("c", "placement", "ms")
            .series(series)
            .x_categories(["one", "two", "three"])
            .to_svg()
            .expect("drawable")
    };
    let categories = chart(Series::points("seen", seen.clone()));
    let joined = chart(Series::marked("seen", seen));
    for name in ["one", "two", "three"] {
        assert!(
            categories.contains(&format!("\n{name}\n")),
            "{name} missing"
        );
    }
    assert!(!categories.contains("\n1.5\n") && !categories.contains("\n2.5\n"));
    // Points only: one marker each (and one in the legend), no line.
    assert_eq!(categories.matches("<circle").count(), 4);
    assert!(
        categories.matches("<polyline").count() < joined.matches("<polyline").count(),
        "the points were joined"
    );
}

#[test]
fn plot_refuses_empty_charts_and_non_positive_log_values() {
    let empty = LineChart::new("t", "x", "y").series(Series::line("s", vec![(f64::NAN, 1.0)]));
    assert!(matches!(empty.to_svg(), Err(PlotError::Empty)));
    let log = LineChart::new("t", "x", "y")
        .series(Series::line("s", vec![(0.0, 0.0), (1.0, 10.0)]))
        .log_y();
    assert!(matches!(log.to_svg(), Err(PlotError::NonPositiveOnLogAxis)));
    let log_ok = LineChart::new("t", "x", "y")
        .series(Series::line("s", vec![(0.0, 0.01), (1.0, 10.0)]))
        .log_y();
    assert!(log_ok.to_svg().is_ok());
}
