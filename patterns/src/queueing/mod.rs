//! Queueing theory, checked: M/M/1, M/M/c, G/G/1 and Little's law against
//! a simulator, and what a queue should do when the load exceeds it.
//!
//! Episode: 25, "Queue Theory in Practice" (also 26, 7)
//! Pattern: performance / queueing models, queue management under overload
//! Try it:  cargo run -- demo queueing --svg target/figures
//! Test it: cargo test -p patterns queueing
//!
//! A server that is busy a fraction ρ of the time makes each call wait
//! about ρ/(1 − ρ) service times on top of its own: twice at ρ = 0.5, ten
//! times at 0.9, a hundred at 0.99. That is the knee, and the reason a
//! fleet running "only" at 90% feels slow. [`models`] gives the closed
//! forms — M/M/1, M/M/c with Erlang's C, Kingman's G/G/1 approximation —
//! and Little's law L = λW, which ties queue length, throughput and
//! latency together for any stable system, a real one included. [`sim`]
//! runs the same queues on the discrete-event engine shared with the
//! retry storm ([`resilience::des`]) and measures what the formulas
//! predict, so every formula here is checked, and the checks can fail.
//!
//! Past ρ = 1 there is no steady state and no formula: the queue grows for
//! as long as the overload lasts. Then the queue's *discipline* decides
//! what the clients get ([`discipline`], Episode 7). An unbounded FIFO —
//! the broken twin, [`discipline::NaiveUnboundedFifo`] — serves everyone
//! late: once the wait passes the clients' deadline the server, still
//! 100% busy, serves only requests nobody waits for any more, and goodput
//! falls to zero. A bounded FIFO caps the wait by refusing the excess;
//! CoDel drops when the *sojourn time* stays above a target; adaptive LIFO
//! serves the freshest requests first while the queue is congested.
//!
//! Bounds: a simulation generates at most [`sim::MAX_CUSTOMERS`]
//! customers on at most [`sim::MAX_SERVERS`] servers; every discipline but
//! the broken twin has a capacity.
//!
//! Simplified: one queue in front of identical servers, service times
//! independent of load, and servers that cannot see client deadlines (with
//! deadline propagation, Episode 39, a server can skip expired work — the
//! fix this demo's broken twin lacks). Real servers also slow down as they
//! saturate (contention, Episode 27), which makes every knee sharper.

pub mod discipline;
pub mod models;
pub mod sim;

mod demo;

pub use demo::queueing_demo;
pub use discipline::{AdaptiveLifo, BoundedFifo, Codel, NaiveUnboundedFifo, QueueDiscipline};
pub use models::{QueueMetrics, gg1_kingman, littles_law_in_system, littles_law_time, mm1, mmc};
pub use sim::{Distribution, Policy, QueueConfig, QueueReport, simulate};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod flaky_tests;
