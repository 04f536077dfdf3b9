//! Figures for the demos that draw: line charts written as SVG.
//!
//! Episode: 32, "Metrics & Monitoring" (also 13, 36)
//! Pattern: observability / visualisation
//! Try it:  cargo run -- demo failure-detectors --svg target/figures
//! Test it: cargo test -p observability plot_
//!
//! Some results are curves — a detector's detection time against its
//! false-positive rate, an error budget burning down over an outage — and a
//! curve is read at a glance where a table of forty numbers is not. A demo
//! builds a [`LineChart`] from the numbers it already measured and hands it
//! to [`crate::demo::Narrator::figure`], which writes it only when the user
//! asked for figures (`--svg DIR`); the terminal output stays the default.
//!
//! SVG needs no fonts or system libraries: text is left to the browser, so
//! plotters is built with its SVG backend only.

use plotters::prelude::*;

/// Width and height of every figure, in pixels.
pub const SIZE: (u32, u32) = (900, 540);

/// One named line: points in data coordinates, drawn in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a marker at each point as well as the line (for sparse sweeps).
    pub markers: bool,
    /// Join the points with a line. Off for points that are separate
    /// measurements, not a curve ([`Series::points`]).
    pub joined: bool,
}

impl Series {
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            markers: false,
            joined: true,
        }
    }

    /// A line with a marker at every measured point.
    pub fn marked(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            markers: true,
            ..Self::line(name, points)
        }
    }

    /// Markers only: separate measurements that no line should join.
    pub fn points(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            joined: false,
            ..Self::marked(name, points)
        }
    }
}

/// The corner the legend sits in: the one the data leaves empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Legend {
    #[default]
    UpperRight,
    UpperLeft,
    LowerLeft,
    LowerRight,
}

/// A horizontal reference line, e.g. an alert threshold or an SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub name: String,
    pub y: f64,
}

/// A titled chart of several series sharing two axes.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub thresholds: Vec<Threshold>,
    /// Draw the y axis on a log scale (positive values only).
    pub log_y: bool,
    /// Name the x positions 1, 2, … instead of numbering a continuous
    /// axis: a categorical axis gets one tick per category and no 1.5.
    pub x_categories: Vec<String>,
    pub legend: Legend,
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the chart has no finite points to draw")]
    Empty,
    #[error("a log-scale axis needs positive values")]
    NonPositiveOnLogAxis,
    #[error("drawing failed: {0}")]
    Drawing(String),
}

impl LineChart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            thresholds: Vec::new(),
            log_y: false,
            x_categories: Vec::new(),
            legend: Legend::default(),
        }
    }

    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    pub fn threshold(mut self, name: impl Into<String>, y: f64) -> Self {
        self.thresholds.push(Threshold {
            name: name.into(),
            y,
        });
        self
    }

    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// A categorical x axis: the points' x are 1 for the first name, 2
    /// for the second, and so on.
    pub fn x_categories<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.x_categories = names.into_iter().map(Into::into).collect();
        self
    }

    pub fn legend(mut self, corner: Legend) -> Self {
        self.legend = corner;
        self
    }

    /// The data's bounds, padded so that no line sits on the frame.
    fn bounds(&self) -> Result<(std::ops::Range<f64>, std::ops::Range<f64>), PlotError> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(finite).copied())
            .collect();
        let (first, rest) = points.split_first().ok_or(PlotError::Empty)?;
        let (mut x0, mut x1, mut y0, mut y1) = (first.0, first.0, first.1, first.1);
        for &(x, y) in rest {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        for t in self.thresholds.iter().filter(|t| t.y.is_finite()) {
            (y0, y1) = (y0.min(t.y), y1.max(t.y));
        }
        // Half a category either side: the ticks land on 1, 2, … only.
        let xs = if self.x_categories.is_empty() {
            pad(x0, x1)
        } else {
            0.5..self.x_categories.len() as f64 + 0.5
        };
        if self.log_y {
            if y0 <= 0.0 {
                return Err(PlotError::NonPositiveOnLogAxis);
            }
            return Ok((xs, y0 / 1.5..y1 * 1.5));
        }
        Ok((xs, pad(y0.min(0.0), y1)))
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        let (xs, ys) = self.bounds()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(drawing)?;
            let mut builder = ChartBuilder::on(&root);
            builder
                .caption(&self.title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64);
            if self.log_y {
                let chart = builder
                    .build_cartesian_2d(xs, ys.log_scale())
                    .map_err(drawing)?;
                self.draw(chart)?;
            } else {
                let chart = builder.build_cartesian_2d(xs, ys).map_err(drawing)?;
                self.draw(chart)?;
            }
            root.present().map_err(drawing)?;
        }
        Ok(svg)
    }

    fn draw<'a, Y>(
        &self,
        mut chart: ChartContext<
            'a,
            SVGBackend<'a>,
            Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
        >,
    ) -> Result<(), PlotError>
    where
        Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        let category = |x: &f64| {
            let index = x.round();
            if (x - index).abs() > 1e-6 || index < 1.0 {
                return String::new();
            }
            self.x_categories
                .get(index as usize - 1)
                .cloned()
                .unwrap_or_default()
        };
        let log_label = |y: &f64| tick_label(*y);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str());
        if !self.x_categories.is_empty() {
            // As many labels as categories: plotters then steps by 1.
            mesh.x_labels(self.x_categories.len())
                .x_max_light_lines(0)
                .x_label_formatter(&category);
        }
        if self.log_y {
            mesh.y_label_formatter(&log_label);
        }
        mesh.draw().map_err(drawing)?;
        let (x0, x1) = {
            let range = chart.x_range();
            (range.start, range.end)
        };
        for (i, threshold) in self.thresholds.iter().enumerate() {
            let color = Palette99::pick(self.series.len() + i).to_rgba();
            let style = color.stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, threshold.y), (x1, threshold.y)],
                    6,
                    4,
                    style,
                ))
                .map_err(drawing)?
                .label(threshold.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0));
            if series.joined {
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(drawing)?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            if series.markers || !series.joined {
                let drawn = chart
                    .draw_series(points.map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(drawing)?;
                if !series.joined {
                    drawn
                        .label(series.name.as_str())
                        .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(match self.legend {
                Legend::UpperRight => SeriesLabelPosition::UpperRight,
                Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
                Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
                Legend::LowerRight => SeriesLabelPosition::LowerRight,
            })
            .draw()
            .map_err(drawing)
    }
}

fn pad(low: f64, high: f64) -> std::ops::Range<f64> {
    let span = if high > low {
        high - low
    } else {
        low.abs().max(1.0)
    };
    low - span * 0.02..high + span * 0.05
}

/// A tick label a reader can take in: at most three significant digits,
/// and powers of ten as `1e-4` rather than the `9.999999999999999e-5`
/// that a log axis's computed ticks print as.
pub fn tick_label(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    // Three significant digits first, so 0.00999… counts as 0.01.
    let value: f64 = format!("{value:.2e}").parse().unwrap_or(value);
    let magnitude = value.abs();
    if (1e-2..1e4).contains(&magnitude) {
        // Round to three significant digits, then drop trailing zeros.
        let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
        let text = format!("{value:.decimals$}");
        return if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        };
    }
    let text = format!("{value:.2e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    format!("{mantissa}e{exponent}")
}

fn drawing<E: std::fmt::Display>(err: E) -> PlotError {
    PlotError::Drawing(err.to_string())
}

#[cfg(test)]
mod tests {
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
}
