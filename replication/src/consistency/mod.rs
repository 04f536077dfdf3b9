//! Consistency checking: is what the clients saw possible?
//!
//! Episode: 19, "Consistency Models Hierarchy" (also 4, Jepsen methodology; 18, isolation)
//! Pattern: testing / history checking, from linearizability down to causal, and isolation
//! Try it:  cargo run -- demo linearizability
//! Test it: cargo test -p replication consistency
//!
//! A distributed store makes promises about what clients can observe. A
//! test that records what clients *did* observe — every call, its reply,
//! when it started and ended — can then ask whether any legal execution
//! explains it. Linearizability is the strongest promise: the store
//! behaves as one copy, each operation taking effect at one instant
//! between its call and its return. [`checker`] decides it. Weaker
//! promises name what a history still keeps when that fails:
//! [`sequential`] (one order keeping each client's program order, real
//! time ignored), [`causal`] (causes seen before their effects, by the
//! bad patterns of Bouajjani et al.) and [`session`] (read-your-writes,
//! monotonic reads and writes, writes-follow-reads). [`transactional`]
//! judges multi-key transactions the way Jepsen's Elle does and names the
//! strongest isolation level they keep. [`recorder`] records histories
//! from real clients; [`timeline`] draws them.
//!
//! Pitfall: a checker that gives up silently proves nothing. Some course
//! harnesses time out and report success; this one reports `Unknown`.

pub mod causal;
pub mod checker;
pub mod history;
mod memo;
pub mod model;
pub mod recorder;
mod search;
pub mod sequential;
pub mod session;
mod states;
#[cfg(test)]
mod tests;
pub mod timeline;
pub mod transactional;

pub use checker::{CheckResult, Verdict, Violation, check};
pub use history::{Command, Datum, History, Operation, Reply};
pub use model::Model;
