//! The normal distribution's upper tail, computed in log space.
//!
//! Phi is `-log10 Q(y)`, where `Q(y) = P(Z > y)` for a standard normal Z.
//! Computing `Q` first and taking the log afterwards breaks down exactly
//! where phi matters most: `Q(9)` is 1e-19, already below `1 - f64::EPSILON`
//! for the complementary form, and `Q(38)` underflows to zero, which turns
//! phi into infinity. So the tail is evaluated as a logarithm from the
//! start, and phi stays finite and accurate for any finite silence.
//!
//! Pitfall: Akka's detector uses a logistic approximation of the normal
//! CDF. It is cheap and smooth, but its tail is exponential, not Gaussian,
//! so at phi 8 it is off by a factor of several from the normal it claims
//! to fit. Here the complementary error function comes from Numerical
//! Recipes' Chebyshev fit (`erfcc`), whose *relative* error is below
//! 1.2e-7 everywhere — phi is right to about 1e-7 at any depth.

use std::f64::consts::{LN_10, SQRT_2};

/// `ln erfc(z)` for `z >= 0` (Numerical Recipes, `erfcc`, in log form).
fn ln_erfc_nonnegative(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let series = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() + series
}

/// `log10 P(Z > y)` for a standard normal Z.
pub fn log10_upper_tail(y: f64) -> f64 {
    if y >= 0.0 {
        // Q(y) = erfc(y / √2) / 2
        ((0.5f64).ln() + ln_erfc_nonnegative(y / SQRT_2)) / LN_10
    } else {
        // Q(y) = 1 - Q(-y), and Q(-y) < 1/2, so ln_1p keeps the precision.
        let lower = 0.5 * ln_erfc_nonnegative(-y / SQRT_2).exp();
        (-lower).ln_1p() / LN_10
    }
}

/// `P(Z > y)` for a standard normal Z.
pub fn upper_tail(y: f64) -> f64 {
    10f64.powf(log10_upper_tail(y))
}

/// The standard normal density at `y`.
pub fn density(y: f64) -> f64 {
    (-0.5 * y * y).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Phi of a silence `y` standard deviations past the mean: `-log10 Q(y)`.
pub fn phi(y: f64) -> f64 {
    -log10_upper_tail(y)
}

/// The `y` at which [`phi`] reaches `level` (`level > 0`): the inverse,
/// so that a detector can say *when* it will start suspecting.
///
/// Phi is strictly increasing in `y`, so bisection is exact to the last
/// bit; it runs once per detector, not per heartbeat.
pub fn y_at_phi(level: f64) -> f64 {
    let (mut low, mut high) = (-1.0f64, 1.0f64);
    // phi(-40) is 0 in f64 and phi grows like y²/4.6, so both searches end
    // for any finite positive level.
    while phi(low) >= level && low > -1e3 {
        low *= 2.0;
    }
    while phi(high) < level && high < 1e300 {
        high *= 2.0;
    }
    for _ in 0..2_000 {
        let middle = low + (high - low) / 2.0;
        if middle <= low || middle >= high {
            break;
        }
        if phi(middle) < level {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of Q(y) (Abramowitz & Stegun, table 26.1, and
    /// high-precision evaluations), checked to a relative 1e-6.
    #[test]
    fn failure_detector_normal_tail_matches_reference_values() {
        for (y, q) in [
            (0.0, 0.5),
            (1.0, 0.158_655_253_931_457),
            (-1.0, 0.841_344_746_068_543),
            (3.0, 1.349_898_031_630_09e-3),
            (5.0, 2.866_515_718_791_94e-7),
            (10.0, 7.619_853_024_160_53e-24),
            (20.0, 2.753_624_118_606_23e-89),
            (-6.0, 1.0 - 9.865_876_450_376_98e-10),
        ] {
            let got = upper_tail(y);
            assert!(
                ((got - q) / q).abs() < 1e-6,
                "Q({y}) = {got:e}, expected {q:e}"
            );
        }
        // Far beyond where Q itself underflows, phi stays finite and keeps
        // growing like y²/(2 ln 10).
        // log10 Q(60) from the asymptotic series φ(y)/y · (1 - 1/y² + 3/y⁴).
        let deep = phi(60.0);
        assert!(
            deep.is_finite() && (deep - 783.907_4).abs() < 1e-3,
            "{deep}"
        );
    }

    #[test]
    fn failure_detector_normal_phi_inverse_round_trips() {
        for (level, y) in [
            (1.0, 1.281_551_565_545),
            (2.0, 2.326_347_874_041),
            (3.0, 3.090_232_306_168),
            (8.0, 5.612_001_244_175),
        ] {
            let got = y_at_phi(level);
            assert!((got - y).abs() < 1e-5, "y at phi {level} = {got}");
        }
        for level in [1e-6, 0.1, 0.301, 0.5, 4.0, 16.0, 100.0] {
            let y = y_at_phi(level);
            assert!((phi(y) - level).abs() < 1e-9 * level.max(1.0), "{level}");
        }
    }
}
