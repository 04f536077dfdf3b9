//! Which sampler to run, from the names OpenTelemetry standardised
//! (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) plus dslab's own.
//!
//! | name | argument | head decision |
//! |---|---|---|
//! | `always_on` | — | every span |
//! | `always_off` | — | none |
//! | `traceidratio` | ratio in [0, 1], default 1 | a share of trace ids, at every span |
//! | `parentbased_always_on` (default) | — | the parent's; roots sampled |
//! | `parentbased_always_off` | — | the parent's; roots dropped |
//! | `parentbased_traceidratio` | ratio in [0, 1], default 1 | the parent's; roots by trace id |
//! | `parentbased_ratelimited` | traces per second, default 10 | the parent's; roots by a token bucket |
//! | `tail` | `keep=R,slow_ms=N,max_traces=N,spans_per_trace=N,wait_ms=N` (or just `R`) | the parent's, roots sampled; then [`super::TailSamplingProcessor`] |
//!
//! An argument given to a sampler that takes none is ignored, as the
//! specification asks. Unlike the SDK, which falls back to the default on
//! a value it cannot read, a bad name or argument is an error: a sampler
//! silently at 100 % in production is an expensive surprise.

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

use super::TailPolicy;
use super::rate_limited::RateLimitedSampler;
use crate::{Error, Result};

/// Every sampler name understood.
pub const SAMPLER_NAMES: [&str; 8] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "parentbased_ratelimited",
    "tail",
];

/// The default rate of `parentbased_ratelimited`.
pub const DEFAULT_TRACES_PER_SECOND: f64 = 10.0;

/// The head sampler, decided as each span starts.
#[derive(Clone, Debug, PartialEq)]
pub enum HeadSampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
    ParentBasedRateLimited { per_second: f64 },
}

/// A head sampler and, optionally, tail sampling in front of the exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    pub head: HeadSampler,
    pub tail: Option<TailPolicy>,
}

impl Default for SamplingConfig {
    /// `parentbased_always_on`, OpenTelemetry's default.
    fn default() -> Self {
        Self {
            head: HeadSampler::ParentBasedAlwaysOn,
            tail: None,
        }
    }
}

fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidSampler {
        setting: setting.into(),
        reason: reason.into(),
    }
}

/// A ratio in [0, 1]; missing means 1 (the specification's default).
fn ratio(name: &str, arg: Option<&str>) -> Result<f64> {
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(1.0);
    };
    match arg.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(invalid(
            format!("{name} argument {arg:?}"),
            "a ratio is a number from 0 to 1, e.g. 0.1",
        )),
    }
}

/// A whole number in `1..=max` from `key=value`.
fn bounded(key: &str, value: &str, max: u64) -> Result<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            format!("tail {key}={value:?}"),
            format!("must be a whole number from 1 to {max}"),
        )),
    }
}

fn tail_policy(arg: Option<&str>) -> Result<TailPolicy> {
    let mut policy = TailPolicy::default();
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(policy);
    };
    for part in arg.split(',').map(str::trim) {
        let Some((key, value)) = part.split_once('=') else {
            policy.keep_share = ratio("tail", Some(part))?;
            continue;
        };
        match key.trim() {
            "keep" => policy.keep_share = ratio("tail keep", Some(value))?,
            "slow_ms" => {
                policy.slow_threshold =
                    Duration::from_millis(bounded(key, value, super::MAX_SLOW_MS)?);
            }
            "max_traces" => {
                policy.max_traces = bounded(key, value, super::MAX_TRACES as u64)? as usize;
            }
            "spans_per_trace" => {
                policy.max_spans_per_trace =
                    bounded(key, value, super::MAX_SPANS_PER_TRACE as u64)? as usize;
            }
            "wait_ms" => {
                policy.decision_wait =
                    Duration::from_millis(bounded(key, value, super::MAX_WAIT_MS)?);
            }
            other => {
                return Err(invalid(
                    format!("tail argument {other:?}"),
                    "known keys: keep, slow_ms, max_traces, spans_per_trace, wait_ms",
                ));
            }
        }
    }
    Ok(policy)
}

impl SamplingConfig {
    /// Reads a sampler `name` and its `arg`, as in `OTEL_TRACES_SAMPLER`
    /// and `OTEL_TRACES_SAMPLER_ARG`. No name means the default.
    pub fn parse(name: Option<&str>, arg: Option<&str>) -> Result<Self> {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(Self::default());
        };
        let head = match name {
            "always_on" => HeadSampler::AlwaysOn,
            "always_off" => HeadSampler::AlwaysOff,
            "traceidratio" => HeadSampler::TraceIdRatio(ratio(name, arg)?),
            "parentbased_always_on" => HeadSampler::ParentBasedAlwaysOn,
            "parentbased_always_off" => HeadSampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => HeadSampler::ParentBasedTraceIdRatio(ratio(name, arg)?),
            "parentbased_ratelimited" => {
                let per_second = match arg.map(str::trim).filter(|a| !a.is_empty()) {
                    None => DEFAULT_TRACES_PER_SECOND,
                    Some(text) => text.parse::<f64>().map_err(|_| {
                        invalid(
                            format!("{name} argument {text:?}"),
                            "traces per second, e.g. 100",
                        )
                    })?,
                };
                // Refuses a bad rate here, not when the first span starts.
                RateLimitedSampler::new(per_second)?;
                HeadSampler::ParentBasedRateLimited { per_second }
            }
            "tail" => {
                return Ok(Self {
                    head: HeadSampler::ParentBasedAlwaysOn,
                    tail: Some(tail_policy(arg)?),
                });
            }
            other => {
                return Err(invalid(
                    format!("{other:?}"),
                    format!("unknown sampler; use one of {}", SAMPLER_NAMES.join(", ")),
                ));
            }
        };
        Ok(Self { head, tail: None })
    }

    /// The SDK sampler for the tracer provider.
    pub fn head_sampler(&self) -> Sampler {
        let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
        match &self.head {
            HeadSampler::AlwaysOn => Sampler::AlwaysOn,
            HeadSampler::AlwaysOff => Sampler::AlwaysOff,
            HeadSampler::TraceIdRatio(r) => Sampler::TraceIdRatioBased(*r),
            HeadSampler::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
            HeadSampler::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
            HeadSampler::ParentBasedTraceIdRatio(r) => parent_based(Sampler::TraceIdRatioBased(*r)),
            HeadSampler::ParentBasedRateLimited { per_second } => {
                match RateLimitedSampler::new(*per_second) {
                    Ok(limited) => Sampler::ParentBased(Box::new(limited)),
                    // `parse` checked the rate; a hand-built config with
                    // a bad one samples nothing rather than everything.
                    Err(_) => parent_based(Sampler::AlwaysOff),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every standard name and dslab's own parse; arguments are checked.
    #[test]
    fn sampling_config_reads_the_standard_names_and_arguments() {
        let parse = |n: &str, a: Option<&str>| SamplingConfig::parse(Some(n), a);
        let head = |n: &str, a: Option<&str>| parse(n, a).ok().map(|c| c.head);
        assert_eq!(
            SamplingConfig::parse(None, Some("0.5")).ok(),
            Some(SamplingConfig::default())
        );
        assert_eq!(
            head("traceidratio", Some(" 0.25 ")),
            Some(HeadSampler::TraceIdRatio(0.25))
        );
        assert_eq!(
            head("parentbased_traceidratio", None),
            Some(HeadSampler::ParentBasedTraceIdRatio(1.0))
        );
        assert_eq!(
            head("always_off", Some("ignored")),
            Some(HeadSampler::AlwaysOff)
        );
        assert_eq!(
            head("parentbased_ratelimited", Some("100")),
            Some(HeadSampler::ParentBasedRateLimited { per_second: 100.0 })
        );
        let tail = parse(
            "tail",
            Some("keep=0.2, slow_ms=250,max_traces=64,wait_ms=1000"),
        )
        .expect("valid")
        .tail
        .expect("tail");
        assert_eq!(tail.keep_share, 0.2);
        assert_eq!(tail.slow_threshold, Duration::from_millis(250));
        assert_eq!(tail.max_traces, 64);
        assert_eq!(tail.decision_wait, Duration::from_secs(1));
        assert_eq!(
            parse("tail", Some("0.05"))
                .expect("valid")
                .tail
                .map(|t| t.keep_share),
            Some(0.05)
        );
        for name in SAMPLER_NAMES {
            assert!(parse(name, None).is_ok(), "{name}");
        }
    }

    /// Bad names and arguments are refused with a message naming them,
    /// never defaulted.
    #[test]
    fn sampling_config_refuses_bad_names_and_arguments() {
        for (name, arg) in [
            ("xray", None),
            ("AlwaysOn", None),
            ("traceidratio", Some("1.5")),
            ("traceidratio", Some("-0.1")),
            ("parentbased_traceidratio", Some("NaN")),
            ("parentbased_traceidratio", Some("half")),
            ("parentbased_ratelimited", Some("0")),
            ("parentbased_ratelimited", Some("lots")),
            ("tail", Some("keep=2")),
            ("tail", Some("slow_ms=0")),
            ("tail", Some("max_traces=99999999")),
            ("tail", Some("spans_per_trace=-1")),
            ("tail", Some("colour=blue")),
        ] {
            let err = SamplingConfig::parse(Some(name), arg).expect_err(name);
            assert!(matches!(err, Error::InvalidSampler { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(arg.unwrap_or(name).split('=').next().unwrap_or(name)),
                "{text}"
            );
        }
    }
}
