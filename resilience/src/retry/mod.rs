//! Retry: try again, later, a bounded number of times — and not all at once.
//!
//! Episode: 40, "Retry" (also 8, "Cascade Failures & Retry Storms")
//! Pattern: resilience / retry with backoff, jitter and budget
//! Try it:  cargo run -- demo retry-storm
//! Test it: cargo test -p resilience retry
//!
//! A retry turns a transient failure into a success at the price of more
//! load. That price is what Episode 8 is about: when a backend fails for
//! everyone at once, every client retries at once, and the retries are
//! the load that keeps it down. Three defences, all here:
//! - exponential backoff with jitter ([`backoff`]), so retries spread out;
//! - a retry budget ([`budget`]), so retries stay a small share of traffic
//!   however bad things get;
//! - retrying only retryable codes, only idempotent methods, and only
//!   within the caller's remaining deadline ([`policy`], [`layer`]).
//!
//! Broken twin: [`RetryPolicy::naive`] — no jitter, no budget.

pub mod backoff;
pub mod budget;
pub mod layer;
pub mod policy;
#[cfg(test)]
mod tests;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use layer::{RetryLayer, RetryService, RetryStats};
pub use policy::{BudgetConfig, GiveUpReason, Idempotency, NextStep, Pushback, RetryPolicy};
