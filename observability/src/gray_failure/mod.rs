//! Gray failure: the service is up according to itself and down according
//! to some of its callers. Differential observability catches it.
//!
//! Episode: 11, "Gray Failures - Partial System Degradation" (also 36)
//! Pattern: observability / differential observability
//! Try it:  cargo run -- demo gray-failure
//! Test it: cargo test --workspace gray_failure
//!
//! Huang et al. ("Gray Failure: The Achilles' Heel of Cloud-Scale Systems",
//! HotOS 2017) define a gray failure by *who* sees it: the system's own
//! failure detector says healthy while its clients see it failing. A bad
//! NIC on one path, one overloaded shard, one code path that throws — the
//! health check, which asks the server about itself, goes green through
//! all of them ([`NaiveHealthMonitor`], the broken twin). The remedy is to
//! listen to the observers: every caller reports each call's outcome, and
//! [`GrayFailureDetector`] compares them. When health says SERVING but one
//! caller, or one method, fails significantly more often than everyone
//! else — or everyone fails significantly more than a good day allows —
//! that difference is the gray failure, and the group is named.
//!
//! "Significantly" is a binomial tail test of each group against the rest
//! of the window's calls: how likely is this many failures in this many
//! calls at the rest's failure ratio? The tail is bounded by Chernoff's
//! inequality, which — unlike the normal approximation of a z-test —
//! never overstates significance on the few calls a single caller makes
//! (see [`binomial_tail_bound`]). Three guards keep noise quiet: a
//! minimum number of calls for the group and for the rest, a minimum
//! number of failures (one unlucky call is not a pattern), and a minimum
//! effect (with a million calls, 1.1 % against 1.0 % is significant and
//! irrelevant). The false-alarm budget per evaluation (`family_alpha`) is
//! split across all groups compared, Bonferroni-style, since testing
//! twenty callers at 1 % each finds a "culprit" one run in five.
//!
//! Bounds: at most [`MAX_OBSERVERS`] observers and [`MAX_METHODS`] methods
//! are tracked, each over [`BUCKETS`] time buckets; idle ones are
//! forgotten, and past the bound newcomers share one overflow key
//! ([`OVERFLOW_KEY`]), still counted in the totals. Names longer than
//! [`MAX_NAME_BYTES`] are refused with a typed [`GrayError`].
//!
//! Simplified: outcome reports are function calls in one process; at
//! scale they travel as client-side metrics (a `client_requests_total`
//! with the caller's zone or host as a label), and the comparison is a
//! query over them.

mod core;
mod naive;
mod probe;
mod stats;
mod window;

pub use core::{
    DetectorConfig, Dimension, GrayError, GrayFailureDetector, HealthStatus, MAX_METHODS,
    MAX_NAME_BYTES, MAX_OBSERVERS, Suspect, Verdict,
};
pub use naive::NaiveHealthMonitor;
pub use probe::check_health;
pub use stats::{binomial_tail_bound, smoothed_ratio};
pub use window::{BUCKETS, Counts, OVERFLOW_KEY};

#[cfg(test)]
mod tests;
