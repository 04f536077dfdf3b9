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

mod axes;

pub use axes::{Legend, tick_label};

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

fn drawing<E: std::fmt::Display>(err: E) -> PlotError {
    PlotError::Drawing(err.to_string())
}

#[cfg(test)]
mod tests;
