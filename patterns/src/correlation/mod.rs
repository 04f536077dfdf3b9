//! Correlated failure: the hidden dependency that makes three replicas one.
//!
//! Episode: 1, "The Correlation Catastrophe - Hidden Dependencies That Kill Systems"
//! Pattern: reliability / failure correlation, cells and staged rollouts
//! Try it:  cargo run -- demo correlated-failure --svg target/figures
//! Test it: cargo test -p patterns correlation_
//!
//! Three replicas that each fail 1% of the time are down together 10⁻⁶
//! of the time — if they fail independently. They rarely do: they share a
//! power feed, a switch, a resolver, a configuration push, a bug. With a
//! shared dependency that is down 2% of the time, all three are down 2% of
//! the time, twenty thousand times the slide's number, and adding a fourth
//! replica behind the same feed changes nothing ([`fleet`]).
//!
//! The remedy starts with measuring. [`stats`] gives the φ coefficient
//! (correlation of two up/down histories), Pearson's r and Spearman's ρ
//! (for downtime per window: ρ sees monotone, non-linear relations r
//! underrates). [`detector`] looks only at failure samples, groups the
//! hosts that fail together and names the inventory entry — rack, feed,
//! resolver — that explains the group, or says none does. [`mod@rollout`] is
//! the deployment side of correlation: one bad release reaching every
//! host at once is a shared dependency too. Cells and staged rollouts cap
//! the blast radius; the version-skew twin shows the bug they contain.
//!
//! The one thing to watch for: φ on a host that never failed is undefined,
//! not zero. "We never saw them fail together" is not evidence of
//! independence until both have failed.
//!
//! Bounds: a fleet simulation has at most [`fleet::MAX_HOSTS`] hosts,
//! [`fleet::MAX_STEPS`] steps and [`fleet::MAX_DEPENDENCIES`] shared
//! dependencies; series are at most [`stats::MAX_SAMPLES`] long; a rollout
//! covers at most [`rollout::MAX_FLEET`] hosts, bakes each stage at most
//! [`rollout::MAX_BAKE_STEPS`] steps and simulates at most
//! [`rollout::MAX_ORDERS`] orders. Probabilities outside 0..=1 (NaN
//! included) are refused.
//!
//! Simplified: outages have a fixed length and start independently per
//! step; real failures cluster in time (a bad day), which inflates φ of
//! every pair a little. The χ² threshold assumes independent samples,
//! which outages lasting several steps are not — so the detector also
//! demands a large φ, not just a significant one.

mod demo;
pub mod detector;
pub mod fleet;
pub mod rollout;
pub mod stats;

#[cfg(test)]
mod tests;

pub use demo::correlated_failure_demo;
pub use detector::{DetectorConfig, Suspect, detect};
pub use fleet::{
    Dependency, FailureSeries, FleetConfig, p_all_down_common_cause, p_all_down_independent,
    simulate,
};
pub use rollout::{Decoding, RolloutConfig, RolloutReport, Strategy, Version, rollout};
pub use stats::{Contingency, pearson, phi, spearman};
