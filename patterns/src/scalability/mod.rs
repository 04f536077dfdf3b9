//! The Universal Scalability Law: why adding workers can make a system
//! slower, fitted from a measured sweep.
//!
//! Episode: 27, "Universal Scalability Law" (also 26)
//! Pattern: performance / capacity modelling
//! Try it:  cargo run --release -- bench usl --svg target/figures
//! Test it: cargo test -p patterns usl_
//!
//! Neil Gunther's law, `X(N) = λN / (1 + σ(N−1) + κN(N−1))`, names the
//! two things that stop throughput X growing with concurrency N.
//! Contention (σ) is queueing for something only one worker can use at a
//! time: on its own it flattens the curve towards λ/σ — Amdahl's law, the
//! κ = 0 case. Coherency (κ) is the cost of keeping workers in agreement
//! with each other; it grows with the number of pairs, so past
//! N* = √((1−σ)/κ) every added worker *lowers* throughput. The thing to
//! watch for: a load test that stops before N* sees only a flattening
//! curve and predicts that more hardware will help.
//!
//! - [`core`]: the law, the peak, Amdahl's κ = 0 case;
//! - [`mod@fit`]: [`fit()`] — least squares on the linearised form
//!   (response time N/X is a quadratic in N), with typed errors for empty,
//!   non-positive or degenerate input;
//! - [`model`]: the [`Costs`] of the contended server and a deterministic
//!   simulation of its throughput, against which the fit is checked;
//! - [`service`]: [`Contended`], the real gRPC server with those costs,
//!   which `dslab bench usl` sweeps on loopback.
//!
//! Bounds: a fit takes at most [`MAX_POINTS`] points; each cost is at most
//! [`MAX_COST`], a lock hold at most [`MAX_HOLD`]; the service refuses
//! calls beyond [`MAX_WORKERS`] in flight with `ResourceExhausted`.
//!
//! Simplified: one lock and a cross-talk cost that is linear in the calls
//! in flight. Real systems have several bottlenecks, and a fitted σ and κ
//! only describe the range that was measured.

pub mod core;
pub mod fit;
pub mod model;
pub mod service;

#[cfg(test)]
mod tests;

pub use self::core::{Point, Usl, UslError};
pub use self::fit::{MAX_POINTS, UslFit, fit, fit_amdahl, measured_peak};
pub use model::{Costs, MAX_COST, MAX_HOLD, MAX_WORKERS, simulated_sweep, simulated_throughput};
pub use service::Contended;
