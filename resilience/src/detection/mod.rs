//! Detecting incidents on a real backend: SLO burn-rate alerts and gray
//! failure, each against a scripted Flaky.
//!
//! Episode: 36, "Incident Response" (also 32, 11)
//! Pattern: observability / incident detection
//! Try it:  cargo run -- demo slo-burn --svg target/figures; cargo run -- demo gray-failure
//! Test it: cargo test -p resilience gray_failure
//!
//! Detection is the first step of every incident, and the two ways it
//! goes wrong are both on show here: alerting on the wrong thing, and not
//! seeing what the callers see. The detectors themselves live in
//! `observability` ([`observability::slo`], [`observability::gray_failure`]);
//! this module points them at [`crate::flaky::Flaky`], whose failures are
//! on cue, through the real RPC stack on loopback TCP.
//!
//! `slo-burn` sends one call per simulated minute through a blip, an
//! outage and a slow leak, and both alert policies read the server's RED
//! counters every simulated five minutes: days of traffic in a second,
//! with the real server doing the counting. `gray-failure` has ten
//! callers identify themselves in a request header while Flaky fails a
//! tenth of them, and compares the differential detector with a monitor
//! that trusts the health check.
//!
//! Simplified: the clock is simulated (each call stands for a minute, or
//! for 100 ms) so that both demos run in a few seconds; the wall clock
//! never enters a decision. `slo-burn` replays exactly (a tick's calls
//! race, but the number that fail is fixed by the seed); in
//! `gray-failure` the racing calls share the everyday failures out
//! differently each run, so its claims hold by a margin, not to the call.

mod callers;
mod gray_demo;
mod slo_demo;

pub use callers::{
    CALLERS, EVALUATE_EVERY, FLAKY_SERVICE, Monitors, Observation, ROUND, caller, suspected_callers,
};
pub use gray_demo::{Naming, gray_failure_demo, named_in};
pub use slo_demo::slo_burn_demo;

#[cfg(test)]
mod tests;
