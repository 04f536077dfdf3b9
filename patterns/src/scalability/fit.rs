//! Fitting the Universal Scalability Law to measured points by least
//! squares. Pure numbers, no IO.

use super::core::{Point, Usl, UslError};

/// The most points [`fit()`] accepts: a sweep is a few dozen levels, and the
/// bound keeps a caller from handing it an unbounded vector.
pub const MAX_POINTS: usize = 10_000;

/// A fitted model and how well it explains the points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UslFit {
    pub model: Usl,
    /// 1 − SSE/SST on throughput: 1 is a perfect fit. It can be negative
    /// when a flat line would have done better.
    pub r_squared: f64,
}

/// Which coefficients a fit may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// λ, σ and κ.
    Full,
    /// κ = 0: Amdahl.
    NoCoherency,
    /// σ = 0.
    NoContention,
    /// σ = κ = 0: linear scaling.
    Linear,
}

/// Fits λ, σ and κ by least squares.
///
/// The method is the classic linearisation, done without needing a
/// measurement at N = 1. Multiply the law out:
///
/// ```text
/// N / X(N) = [(1−σ) + (σ−κ)·N + κ·N²] / λ
/// ```
///
/// and N/X is, by Little's law, the mean response time of a closed loop
/// with N callers. So response time is a quadratic in N: ordinary linear
/// least squares on the basis (1, N, N²) gives a₀, a₁, a₂, and
/// λ = 1/(a₀+a₁+a₂), κ = λa₂, σ = λa₁ + κ. Each residual is weighted by
/// X/N, which makes it a relative error: a point at N = 64 counts as much
/// as one at N = 1. Noise-free points are recovered exactly.
///
/// Measured points can pull σ or κ below zero; the fit then falls back to
/// the best of the constrained shapes (κ = 0, which is Amdahl; σ = 0; or
/// both), so it never reports a negative cost.
pub fn fit(points: &[Point]) -> Result<UslFit, UslError> {
    fit_shapes(
        points,
        &[
            Shape::Full,
            Shape::NoCoherency,
            Shape::NoContention,
            Shape::Linear,
        ],
    )
}

/// Fits Amdahl's law (κ fixed at 0) to the same points.
pub fn fit_amdahl(points: &[Point]) -> Result<UslFit, UslError> {
    fit_shapes(points, &[Shape::NoCoherency, Shape::Linear])
}

fn fit_shapes(points: &[Point], shapes: &[Shape]) -> Result<UslFit, UslError> {
    validate(points)?;
    let distinct = distinct_levels(points);
    let needed = unknowns(shapes[0]);
    if distinct < needed {
        return Err(UslError::TooFewLevels { distinct, needed });
    }
    let mut best: Option<(f64, Usl)> = None;
    for (i, &shape) in shapes.iter().enumerate() {
        let Some(model) = solve(points, shape) else {
            continue;
        };
        // The first shape is the unconstrained one: when it is feasible it
        // is also the least-squares optimum, and the others cannot beat it.
        if i == 0 {
            best = Some((0.0, model));
            break;
        }
        let error = weighted_error(points, &model);
        if best.as_ref().is_none_or(|(e, _)| error < *e) {
            best = Some((error, model));
        }
    }
    match best {
        Some((_, model)) => Ok(UslFit {
            model,
            r_squared: r_squared(points, &model),
        }),
        None => Err(UslError::Degenerate {
            reason: "no λ > 0, σ ≥ 0, κ ≥ 0 fits these points",
        }),
    }
}

fn validate(points: &[Point]) -> Result<(), UslError> {
    if points.is_empty() {
        return Err(UslError::NoPoints);
    }
    if points.len() > MAX_POINTS {
        return Err(UslError::TooManyPoints {
            count: points.len(),
            max: MAX_POINTS,
        });
    }
    for (index, p) in points.iter().enumerate() {
        let reason = if !p.concurrency.is_finite() || !p.throughput.is_finite() {
            Some("not a finite number")
        } else if p.concurrency < 1.0 {
            Some("concurrency must be at least 1")
        } else if p.throughput <= 0.0 {
            Some("throughput must be positive")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(UslError::InvalidPoint {
                index,
                concurrency: p.concurrency,
                throughput: p.throughput,
                reason,
            });
        }
    }
    Ok(())
}

fn distinct_levels(points: &[Point]) -> usize {
    let mut levels: Vec<f64> = points.iter().map(|p| p.concurrency).collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    levels.len()
}

fn unknowns(shape: Shape) -> usize {
    match shape {
        Shape::Full => 3,
        Shape::NoCoherency | Shape::NoContention => 2,
        Shape::Linear => 1,
    }
}

/// The regressors of N/X for one shape, with N measured in units of
/// `scale` (the largest N) so that the columns are of similar size and the
/// normal equations stay well conditioned.
fn basis(shape: Shape, n: f64, scale: f64) -> Vec<f64> {
    let t = n / scale;
    match shape {
        Shape::Full => vec![1.0, t, t * t],
        Shape::NoCoherency => vec![1.0, t],
        Shape::NoContention => vec![1.0, (n * n - n) / (scale * scale)],
        Shape::Linear => vec![1.0],
    }
}

/// The power of `scale` each coefficient of [`basis`] carries.
fn powers(shape: Shape) -> &'static [i32] {
    match shape {
        Shape::Full => &[0, 1, 2],
        Shape::NoCoherency => &[0, 1],
        Shape::NoContention => &[0, 2],
        Shape::Linear => &[0],
    }
}

/// Weighted least squares for one shape, mapped back to (λ, σ, κ); `None`
/// if the system is singular or the result is infeasible.
fn solve(points: &[Point], shape: Shape) -> Option<Usl> {
    let k = unknowns(shape);
    let scale = points.iter().map(|p| p.concurrency).fold(1.0, f64::max);
    let mut normal = vec![vec![0.0; k + 1]; k];
    for p in points {
        let weight = p.throughput / p.concurrency;
        let row: Vec<f64> = basis(shape, p.concurrency, scale)
            .into_iter()
            .map(|b| b * weight)
            .collect();
        // The target N/X, weighted by X/N, is 1.
        for (equation, &ri) in normal.iter_mut().zip(&row) {
            for (cell, &rj) in equation.iter_mut().zip(&row) {
                *cell += ri * rj;
            }
            equation[k] += ri;
        }
    }
    let a: Vec<f64> = gauss(normal)?
        .into_iter()
        .zip(powers(shape))
        .map(|(b, &power)| b / scale.powi(power))
        .collect();
    let (lambda, sigma, kappa) = match shape {
        Shape::Full => {
            let lambda = 1.0 / (a[0] + a[1] + a[2]);
            let kappa = lambda * a[2];
            (lambda, lambda * a[1] + kappa, kappa)
        }
        Shape::NoCoherency => {
            let lambda = 1.0 / (a[0] + a[1]);
            (lambda, lambda * a[1], 0.0)
        }
        Shape::NoContention => {
            let lambda = 1.0 / a[0];
            (lambda, 0.0, lambda * a[1])
        }
        Shape::Linear => (1.0 / a[0], 0.0, 0.0),
    };
    // Round-off can leave an exact zero a hair below it.
    let clean = |v: f64| if v.abs() < 1e-12 { 0.0 } else { v };
    Usl::new(lambda, clean(sigma), clean(kappa)).ok()
}

/// Solves the augmented system by Gaussian elimination with partial
/// pivoting; `None` when it is singular (e.g. all points at one N).
fn gauss(mut m: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = m.len();
    let scale = m
        .iter()
        .flat_map(|row| row[..k].iter())
        .fold(0.0_f64, |acc, v| acc.max(v.abs()));
    for col in 0..k {
        let pivot = (col..k).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        let size = m[pivot][col].abs();
        if size.is_nan() || size <= scale * 1e-13 {
            return None;
        }
        m.swap(col, pivot);
        let (top, bottom) = m.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for equation in bottom {
            let factor = equation[col] / pivot_row[col];
            for (cell, p) in equation[col..].iter_mut().zip(&pivot_row[col..]) {
                *cell -= factor * p;
            }
        }
    }
    let mut x = vec![0.0; k];
    for row in (0..k).rev() {
        let tail: f64 = (row + 1..k).map(|j| m[row][j] * x[j]).sum();
        x[row] = (m[row][k] - tail) / m[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The quantity the fit minimises: squared relative error of response time.
fn weighted_error(points: &[Point], model: &Usl) -> f64 {
    points
        .iter()
        .map(|p| {
            let predicted = p.concurrency / model.throughput(p.concurrency);
            let measured = p.concurrency / p.throughput;
            ((predicted - measured) / measured).powi(2)
        })
        .sum()
}

fn r_squared(points: &[Point], model: &Usl) -> f64 {
    let mean = points.iter().map(|p| p.throughput).sum::<f64>() / points.len() as f64;
    let total: f64 = points.iter().map(|p| (p.throughput - mean).powi(2)).sum();
    let residual: f64 = points
        .iter()
        .map(|p| (p.throughput - model.throughput(p.concurrency)).powi(2))
        .sum();
    if total > 0.0 {
        1.0 - residual / total
    } else if residual == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The measured point of highest throughput (the first, on a tie).
pub fn measured_peak(points: &[Point]) -> Option<Point> {
    points
        .iter()
        .copied()
        .filter(|p| p.throughput.is_finite())
        .reduce(|best, p| {
            if p.throughput > best.throughput {
                p
            } else {
                best
            }
        })
}
