//! Resilience patterns as tower layers on real gRPC calls: Module 7 of the
//! course (Episodes 37–42) and Episode 8.
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 37 Circuit Breaker | [`circuit_breaker`] | Resilience4j semantics: count and time windows, slow calls, exactly-N half-open probes, operator states; a layer; the naive twin |
//! | 38 Bulkhead | [`bulkhead`] | per-dependency concurrency slots, bounded wait |
//! | 39 Timeout | [`timeout`] | per-call timeouts; deadlines carrying the remaining time across hops |
//! | 40 Retry, 8 Retry Storms | [`retry`] | backoff with none / full / equal / decorrelated jitter, gRPC retry budgets, idempotency, deadline-aware; retries real tonic calls |
//! | 25 Queue Theory, 8 | [`des`] | the discrete-event engine: seeded event queue in (time, insertion) order, a clock that jumps; the retry storm and the queueing models run on it |
//! | 8 Cascades & Retry Storms | [`retry_storm`] | the storm simulated: work amplification and recovery by retry policy |
//! | 41 Rate Limiting | [`rate_limit`] | token bucket, lock-free GCRA, keyed limits; clones share one limit |
//! | 42 Backpressure, 7 Admission Control | [`adaptive`] | AIMD, Vegas, Gradient2 concurrency limits with load shedding; SRE client-side throttling |
//! | 32 Metrics & Monitoring | [`metrics`] | every layer's local refusals and state as Prometheus metrics |
//! | 12 Chaos Engineering, 11 Gray Failures | [`flaky`] | `Flaky`, the scripted backend every demo and test breaks; gray failures only some callers see |
//! | 36 Incident Response, 32, 11 | [`detection`] | SLO burn-rate alerts and the gray-failure detector, pointed at a Flaky |
//!
//! Every layer works at the HTTP level, so it wraps a tonic `Channel` (a
//! client) or a generated server ([`server::Guarded`] hosts the result),
//! and learns each call's real gRPC status — from trailers, for unary
//! successes — through [`observability::rpc::outcome`]. [`classify`]
//! decides which statuses count against a backend.

pub mod adaptive;
pub mod bulkhead;
pub mod circuit_breaker;
pub mod classify;
pub mod des;
pub mod detection;
pub mod error;
pub mod flaky;
pub mod metrics;
pub mod rate_limit;
pub mod retry;
pub mod retry_storm;
pub mod server;
pub mod timeout;

pub use error::{Error, Result};

/// The boxed error tower services in this crate return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
