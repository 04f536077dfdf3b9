//! A chaos experiment runner: steady state, injection, verification, abort.
//!
//! Episode: 12, "Chaos Engineering Principles" (also 4, 36)
//! Pattern: chaos engineering / experiment with an abort bound
//! Try it:  cargo run -- chaos run docs/chaos/replica-crash.json
//! Test it: cargo test -p patterns chaos
//!
//! A chaos experiment is a test of a hypothesis about production, not a
//! random act of violence. It states the *steady state* as an SLO on a
//! metric users feel ("success_rate ≥ 0.99"), measures it before anything
//! is broken (no steady state, no experiment), injects a fault (a crash,
//! a partition, loss, latency), and keeps measuring: if the hypothesis
//! holds throughout, confidence was earned; if it breaks, a weakness was
//! found. Because it runs where users are, it also declares its *blast
//! radius* — a second, looser bound ("error_rate ≤ 0.2") whose breach
//! heals every fault at once and stops the experiment. The one thing to
//! watch for: the abort must not wait for the schedule. [`core::Runner`]
//! decides window by window and heals on the first window over the bound.
//!
//! The decisions are pure ([`core`]); the same runner drives a simulated
//! replicated service ([`sim`], on [`resilience::des`]) and, from the CLI
//! (`dslab chaos run`), a group of real `dslab serve` processes.
//! Definitions are JSON ([`definition`]); every mistake is reported with
//! the field it concerns ([`crate::Error::InvalidChaosExperiment`]).
//!
//! Bounds: at most [`definition::MAX_FAULTS`] faults per experiment, an
//! hour of experiment ([`definition::MAX_EXPERIMENT`]) in at most
//! [`definition::MAX_WINDOWS`] windows (one report row each), windows of
//! at most [`definition::MAX_WINDOW`] (a window's latencies are held
//! until it ends) that expect at least
//! [`definition::MIN_REQUESTS_PER_WINDOW`] requests, definitions up to
//! [`definition::MAX_DEFINITION_BYTES`]; the simulated service has at most
//! [`sim::MAX_REPLICAS`] replicas and [`sim::MAX_RATE`] requests/s, and
//! keeps only requests in flight.
//!
//! Every target checks the same rules ([`Experiment::validate`]): bounds
//! point the way that means "healthy" (success and throughput `at_least`,
//! error rate and p99 `at_most`), the abort bound is no tighter than the
//! hypothesis, a fault must be able to change something (links have the
//! client at one end: replicas do not call each other; the client is
//! never crashed or made flaky), and a replica has one fault at a time.
//!
//! Simplified: faults start and end on window boundaries; one client
//! host observes the system; one fault per replica at a time. Real tools (Chaos Monkey, Gremlin, Chaos
//! Toolkit, LitmusChaos) add targeting by tag, gradual blast-radius
//! expansion and approval workflows; the loop is the same.

pub mod core;
pub mod definition;
mod network;
pub mod sim;
mod validate;

pub use core::{Action, ChaosReport, Decision, Outcome, Runner, WindowMetrics, WindowRow};
pub use definition::{Condition, Experiment, Fault, Metric, ScheduledFault};
pub use sim::{SimulatedService, SimulatedSystem, run_simulated};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod validate_tests;
