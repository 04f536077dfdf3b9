//! φ, Pearson and Spearman: how much two failure histories move together.

use crate::{Error, Result};

/// Samples per series at most: a day of one-second samples is 86,400, so
/// this leaves room for weeks while bounding the memory a caller can ask
/// the ranking to allocate.
pub const MAX_SAMPLES: usize = 10_000_000;

fn check_lengths(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::InvalidSeries {
            reason: format!("series of different lengths ({a} and {b})"),
        });
    }
    if !(2..=MAX_SAMPLES).contains(&a) {
        return Err(Error::InvalidSeries {
            reason: format!("{a} samples; correlation needs 2..={MAX_SAMPLES}"),
        });
    }
    Ok(())
}

fn check_finite(x: &[f64], y: &[f64]) -> Result<()> {
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::InvalidSeries {
            reason: "a sample is not a finite number".into(),
        });
    }
    Ok(())
}

/// Refuses a series whose samples are all equal. Testing the sum of
/// squares against 0.0 is not enough: the mean of [0.1, 0.1, 0.1] is not
/// exactly 0.1 in binary, so the deviations leave ~1e-33 behind and the
/// "correlation" comes out as rounding noise instead of an error.
fn check_varies(x: &[f64], y: &[f64]) -> Result<()> {
    let constant = |s: &[f64]| s.iter().all(|v| *v == s[0]);
    if constant(x) || constant(y) {
        return Err(Error::InvalidSeries {
            reason: "a constant series has no correlation".into(),
        });
    }
    Ok(())
}

/// The 2×2 table of two hosts' up/down samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contingency {
    /// Both down at the same sample.
    pub both: u64,
    pub only_a: u64,
    pub only_b: u64,
    /// Both up.
    pub neither: u64,
}

impl Contingency {
    pub fn of(a: &[bool], b: &[bool]) -> Result<Self> {
        check_lengths(a.len(), b.len())?;
        let mut table = Self::default();
        for (&down_a, &down_b) in a.iter().zip(b) {
            match (down_a, down_b) {
                (true, true) => table.both += 1,
                (true, false) => table.only_a += 1,
                (false, true) => table.only_b += 1,
                (false, false) => table.neither += 1,
            }
        }
        Ok(table)
    }

    pub fn samples(&self) -> u64 {
        self.both + self.only_a + self.only_b + self.neither
    }

    /// φ = (n₁₁n₀₀ − n₁₀n₀₁) / √(n₁·n₀·n·₁n·₀): Pearson's r on 0/1 data.
    /// +1: they always fail together; 0: no linear association; −1: one
    /// is down exactly when the other is up.
    pub fn phi(&self) -> Result<f64> {
        let [n11, n10, n01, n00] =
            [self.both, self.only_a, self.only_b, self.neither].map(|n| n as f64);
        let margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00);
        if margins == 0.0 {
            // Pitfall: a host that never failed (or never ran) has no
            // variance; its φ is undefined, not 0. Calling it 0 would make
            // "never seen failing" read as "proven independent".
            return Err(Error::InvalidSeries {
                reason: "a host that is always up (or always down) has no φ".into(),
            });
        }
        Ok((n11 * n00 - n10 * n01) / margins.sqrt())
    }

    /// The χ² statistic of independence (1 degree of freedom): n·φ². Above
    /// 10.83 independence is rejected at p < 0.001 — for independent,
    /// unautocorrelated samples.
    pub fn chi_square(&self) -> Result<f64> {
        Ok(self.samples() as f64 * self.phi()?.powi(2))
    }
}

/// φ of two down/up series.
pub fn phi(a: &[bool], b: &[bool]) -> Result<f64> {
    Contingency::of(a, b)?.phi()
}

/// Pearson's product-moment correlation: the covariance over the product
/// of the standard deviations. Sensitive to linear association only.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_lengths(x.len(), y.len())?;
    check_finite(x, y)?;
    check_varies(x, y)?;
    let n = x.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        // The samples differ, but by so little that their squared
        // deviations underflow: no correlation can be computed.
        return Err(Error::InvalidSeries {
            reason: "the samples differ by less than f64 can square".into(),
        });
    }
    // Rounding can carry |r| a hair past 1.
    Ok((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Ranks 1…n, ties sharing the mean of the ranks they span.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: each gets their mean rank.
        let shared = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = shared;
        }
        start = end;
    }
    ranks
}

/// Spearman's ρ: Pearson on the ranks. It sees any monotone relation —
/// error rate rising with load, however non-linearly — where Pearson
/// underrates a curve.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check_lengths(x.len(), y.len())?;
    check_finite(x, y)?;
    pearson(&ranks(x), &ranks(y))
}
