//! Circuit breaker: stop calling a backend that is failing, then probe.
//!
//! Episode: 37, "Circuit Breaker - Complete Implementation" (also 8)
//! Pattern: resilience / circuit breaker
//! Try it:  cargo run -- demo circuit-breaker
//! Test it: cargo test -p resilience circuit_breaker
//!
//! A backend in trouble gets slower, then fails; callers that keep calling
//! it tie up their own threads and connections waiting, and deny the
//! backend the breathing room to recover — the first step of a cascade
//! (Episode 8). A breaker watches the outcomes of recent calls and, once
//! the failure (or slow-call) rate crosses a threshold, *opens*: calls fail
//! fast without reaching the backend. After a wait it goes *half-open* and
//! lets exactly N probe calls through; their outcome closes it again or
//! re-opens it, each time waiting longer if configured to.
//!
//! The semantics are Resilience4j's, the reference most teams know:
//! count- and time-based sliding windows, thresholds that trip at
//! equality, a minimum number of calls before any verdict, exactly N
//! permitted calls in half-open, ignored outcomes that release their
//! permit, FORCED_OPEN and DISABLED for operators, and illegal manual
//! transitions refused. One deliberate difference: a permit remembers the
//! state it was issued in, so a slow call from before an opening cannot
//! count as a half-open probe.
//!
//! The closed state, the path every call takes on a healthy day, hands out
//! permits without a lock and reads no clock unless slow calls or a time
//! window need it.
//!
//! Broken twin: [`naive::NaiveCircuitBreaker`] has no half-open limit.

pub mod breaker;
pub mod config;
pub mod core;
mod demo;
pub mod layer;
pub mod naive;
#[cfg(test)]
mod tests;
pub mod window;

pub use breaker::{BreakerMetrics, CircuitBreaker, Permit};
pub use config::{BreakerConfig, SlidingWindow};
pub use core::{State, StateChange};
pub use demo::circuit_breaker_demo;
pub use layer::{CircuitBreakerLayer, CircuitBreakerService};
