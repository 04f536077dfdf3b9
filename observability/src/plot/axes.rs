//! Axis and legend details: tick labels a reader can take in, and the
//! corner the legend goes in.

/// The corner the legend sits in: the one the data leaves empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Legend {
    #[default]
    UpperRight,
    UpperLeft,
    LowerLeft,
    LowerRight,
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
