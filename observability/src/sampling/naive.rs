//! The broken twin: head sampling at 1 %, and nothing else.
//!
//! It is what many teams run: cheap, consistent across hops, and blind.
//! The decision is taken when the root span starts, before the request
//! has failed or been slow, so a failing request is kept with the same
//! 1 % chance as a healthy one. When the one trace that would explain an
//! incident is needed, it is 99 % likely to be gone. The tests and
//! `dslab demo trace-sampling` show it dropping the error trace that
//! [`super::TailSamplingProcessor`] keeps.

use opentelemetry_sdk::trace::Sampler;

/// The ratio the twin keeps.
pub const NAIVE_HEAD_RATIO: f64 = 0.01;

/// `parentbased_traceidratio` at 1 %: consistent, and blind to outcomes.
pub fn naive_head_sampler() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(NAIVE_HEAD_RATIO)))
}
