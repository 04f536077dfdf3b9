//! Resilience patterns as tower layers: Module 7 of the course (Episodes
//! 37–42) and Episode 8 (cascades and retry storms).
//!
//! The crate sits on `observability`; it holds no modules yet.
