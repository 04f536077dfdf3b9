//! Leader election the classic way — the bully and ring algorithms — for
//! comparison with Raft's.
//!
//! Episode: 17, "Leader Election Algorithms" (also 4)
//! Pattern: coordination / leader election
//! Try it:  cargo run -- demo leader-election
//! Test it: cargo test -p consensus election_
//!
//! A group that wants one node to act for it (assign work, order writes,
//! run the cron job) must agree on which node that is, and agree again
//! when it dies. Both classic answers elect the highest id that is alive.
//! [`bully`]: whoever notices the leader's silence asks every higher id;
//! anyone higher answers and takes over; a node that no one higher answers
//! declares itself — O(n²) messages when the lowest id notices, n − 1 when
//! the highest does. [`ring`]: an election message carries the largest id
//! it has seen once around a logical ring; when it comes home, its owner
//! leads and sends the result around — at most 3n − 1 messages for one
//! initiator.
//!
//! The one thing to watch: both trust their failure detector. Silence is
//! taken for death, and a leader on the far side of a partition is silent,
//! not dead — so the near side elects its own, and the group has two
//! leaders (split brain, Episode 4; `election_partition_*`). Raft cannot do
//! this ([`crate::raft`], `raft_minority_side_of_a_partition_has_no_leader`):
//! a leader needs the votes of a majority, which one side at most has, and
//! a term number tells the deposed leader apart from the new one. Nothing
//! here has either — the epoch a node reports is informational. When the
//! partition heals both algorithms converge again, but whatever the two
//! leaders did in the meantime conflicts.
//!
//! How the module is built: [`bully`] and [`ring`] are pure cores (events
//! in, messages out, time in ticks); [`Node`] runs either and counts what
//! it sends ([`self::core`] holds what the two share); [`service`] serves a node over gRPC on any
//! [`observability::rpc::Net`]; [`mod@compare`] replays the scenarios on the
//! cores in simulated time, event by event, so a demo can print the
//! comparison without test tooling. The tests run the same scenarios on
//! the gRPC services in turmoil.
//!
//! Bounds: at most [`MAX_NODES`] members; a message is four integers and
//! the server refuses requests over [`MAX_MESSAGE_BYTES`]; one event makes
//! a node send at most one message per other member; a node has at most
//! [`MAX_IN_FLIGHT`] messages in flight (more are dropped, and the
//! algorithms' timeouts recover), each with a deadline
//! ([`Timing::deliver_timeout`]).
//!
//! Simplified: fixed membership; no peer authentication (anyone who can
//! reach the port can speak for a member; Raft's transport checks a peer
//! secret); a fixed heartbeat timeout as the failure detector, shared by
//! both algorithms. Real systems elect with a quorum (ZooKeeper's Zab,
//! etcd and Consul's Raft). Elasticsearch before 7.0 picked its master by
//! a fixed order of node ids, much as the bully does, and relied on the
//! operator setting `discovery.zen.minimum_master_nodes` to a majority to
//! prevent split brain; 7.0 replaced it with a quorum-based protocol.

pub mod bully;
pub mod compare;
pub mod core;
mod demo;
pub mod ring;
pub mod service;
#[cfg(test)]
mod tests;

pub use compare::{ElectionReport, Phase, REPORT_HEADER, Scenario, compare, simulate};
pub use core::{Elector, Members, Node, View};
pub use demo::leader_election_demo;
pub use service::{ElectionNode, NodeConfig};

use std::fmt;
use std::time::Duration;

use tonic::Status;

/// Members of one election, at most.
pub const MAX_NODES: usize = 64;
/// The largest request a node accepts. An election message is four
/// varints (under 40 bytes); anything near this size is not one.
pub const MAX_MESSAGE_BYTES: usize = 256;
/// Messages one node may have in flight at once. Past it, new messages
/// are dropped: a node that cannot keep up must not queue without bound.
pub const MAX_IN_FLIGHT: usize = 4 * MAX_NODES;

/// A member's id. Higher ids win both elections; 0 is not an id (the wire
/// uses it for "none").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which election a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    Bully,
    Ring,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Bully => "bully",
            Algorithm::Ring => "ring",
        }
    }
}

/// The kinds of message, as counted in a node's [`View`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Bully: "anyone higher, answer". Ring: the largest id seen so far.
    Election,
    /// Bully's OK: "I am higher and alive".
    Answer,
    /// Bully: "I am the coordinator".
    Coordinator,
    /// Ring: "`candidate` leads", once around the ring.
    Elected,
    /// The leader is alive.
    Heartbeat,
}

/// One message between members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub kind: Kind,
    /// The sender's election number (see [`View::epoch`]).
    pub epoch: u64,
    /// Ring: the largest id seen (ELECTION) or the leader (ELECTED); the
    /// other kinds repeat `from`.
    pub candidate: NodeId,
}

/// A message a core decided to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub to: NodeId,
    pub message: Message,
}

/// The clocks of both algorithms. The cores count ticks; the service
/// ticks every [`Timing::tick`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub tick: Duration,
    /// A leader sends a heartbeat to every member this often.
    pub heartbeat_ticks: u32,
    /// Silence after which a node suspects its leader: this, plus a random
    /// share of it again, drawn afresh each time.
    pub timeout_ticks: u32,
    /// Bully: how long an election waits for an ANSWER before its node
    /// declares itself.
    pub answer_ticks: u32,
    /// Ring: how long a node takes part in a round before it presumes the
    /// round lost (its message died with a node) and starts another.
    pub round_ticks: u32,
    /// Each message's deadline: a peer that does not take it by then is
    /// down or cut off.
    pub deliver_timeout: Duration,
}

impl Default for Timing {
    /// A heartbeat every 50 ms, suspicion after 200–400 ms of silence, an
    /// answer awaited 100 ms, a ring round 1 s, a message 100 ms.
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(10),
            heartbeat_ticks: 5,
            timeout_ticks: 20,
            answer_ticks: 10,
            round_ticks: 100,
            deliver_timeout: Duration::from_millis(100),
        }
    }
}

impl Timing {
    fn check(&self) -> Result<()> {
        let ticks = [
            ("timing.heartbeat_ticks", self.heartbeat_ticks),
            ("timing.timeout_ticks", self.timeout_ticks),
            ("timing.answer_ticks", self.answer_ticks),
            ("timing.round_ticks", self.round_ticks),
        ];
        for (field, value) in ticks {
            if value == 0 {
                return Err(Error::Invalid {
                    field,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.tick.is_zero() || self.deliver_timeout.is_zero() {
            return Err(Error::Invalid {
                field: "timing",
                reason: "tick and deliver_timeout must be positive".into(),
            });
        }
        // Pitfall: a heartbeat interval at or above the timeout makes a
        // healthy leader look dead between two beats.
        if self.heartbeat_ticks >= self.timeout_ticks {
            return Err(Error::Invalid {
                field: "timing.heartbeat_ticks",
                reason: format!("must be below timeout_ticks ({})", self.timeout_ticks),
            });
        }
        Ok(())
    }
}

/// What an election node refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A message naming a node outside the election.
    #[error("{field}: node {id} is not a member of this election")]
    NotMember { field: &'static str, id: NodeId },
    /// A member's address is not `host:port`.
    #[error("address of node {id}: {reason}")]
    PeerAddress { id: NodeId, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            // Both are the caller's mistake, and retrying cannot fix them.
            Error::Invalid { .. } | Error::NotMember { .. } => Status::invalid_argument(message),
            // Only at start-up, from the configuration: never a peer's fault.
            Error::PeerAddress { .. } => Status::failed_precondition(message),
        }
    }
}
