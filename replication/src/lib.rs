//! Data consistency and replication: Module 4 of the course.
//!
//! | Episode | Module | What it holds |
//! |---|---|---|
//! | 19 Consistency Models, 4 Jepsen | [`consistency`] | histories, a linearizability checker (per-key, memoized, budgeted), session-guarantee checkers, a recorder, HTML timelines |
//! | 19 | [`register`] | a key-value register service to record histories from, and its stale-reading twin |

pub mod consistency;
pub mod error;
pub mod register;

pub use error::{Error, Result};
