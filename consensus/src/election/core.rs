//! What both algorithms share, without IO: the [`Elector`] interface each
//! core implements, the membership and ring order, the failure detector,
//! and [`Node`], which runs either core and counts what it sends.

use std::collections::BTreeMap;
use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{
    Algorithm, Error, Kind, MAX_NODES, Message, NodeId, Outgoing, Result, Timing, bully, ring,
};

/// An election algorithm as a pure state machine: it takes events and
/// pushes the messages it decides to send. No clock, no socket.
pub trait Elector: Send + fmt::Debug {
    /// One tick of time passed.
    fn tick(&mut self, out: &mut Vec<Outgoing>);
    /// A member's message arrived.
    fn receive(&mut self, message: Message, out: &mut Vec<Outgoing>);
    /// A message this node sent to `to` could not be delivered.
    fn undeliverable(&mut self, to: NodeId, message: Message, out: &mut Vec<Outgoing>);
    /// Start an election now (as if the failure detector had fired).
    fn campaign(&mut self, out: &mut Vec<Outgoing>);
    fn leader(&self) -> Option<NodeId>;
    fn epoch(&self) -> u64;
}

/// The members, sorted by id; ring order is id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    me: NodeId,
    all: Vec<NodeId>,
}

impl Members {
    /// `ids` must hold `me`, no 0, at most [`MAX_NODES`] distinct ids.
    pub fn new(me: NodeId, ids: impl IntoIterator<Item = NodeId>) -> Result<Self> {
        let mut all: Vec<NodeId> = ids.into_iter().collect();
        all.sort();
        all.dedup();
        let invalid = |reason: String| Error::Invalid {
            field: "members",
            reason,
        };
        if all.len() > MAX_NODES {
            return Err(invalid(format!(
                "{} members; at most {MAX_NODES}",
                all.len()
            )));
        }
        if all.first() == Some(&NodeId(0)) {
            return Err(invalid("0 is not a node id".into()));
        }
        if !all.contains(&me) {
            return Err(invalid(format!("must include this node, {me}")));
        }
        Ok(Self { me, all })
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.all.binary_search(&id).is_ok()
    }

    /// Every member but this one.
    pub fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.all.iter().copied().filter(move |&id| id != self.me)
    }

    /// The members with a higher id than this one.
    pub fn higher(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.all.iter().copied().filter(move |&id| id > self.me)
    }

    /// The member after `id` on the ring: the next higher id, wrapping
    /// from the highest to the lowest.
    pub fn successor(&self, id: NodeId) -> NodeId {
        self.all
            .iter()
            .copied()
            .find(|&next| next > id)
            .or_else(|| self.all.first().copied())
            .unwrap_or(self.me)
    }
}

/// The failure detector both algorithms use: "the leader is dead" means
/// "silent for a while".
#[derive(Debug)]
pub(super) struct Detector {
    timeout_ticks: u32,
    quiet: u32,
    patience: u32,
    rng: SmallRng,
}

impl Detector {
    pub(super) fn new(timeout_ticks: u32, seed: u64) -> Self {
        let mut detector = Self {
            timeout_ticks,
            quiet: 0,
            patience: timeout_ticks,
            rng: SmallRng::seed_from_u64(seed),
        };
        detector.reset();
        detector
    }

    /// The leader was heard from: start counting silence again.
    pub(super) fn reset(&mut self) {
        self.quiet = 0;
        // Pitfall: with one fixed timeout every node suspects the dead
        // leader on the same tick. The bully then runs n elections at once
        // and the ring n rounds (its O(n²) worst case); a random share of
        // the timeout lets one node go first and the rest hear from it.
        self.patience = self.timeout_ticks + self.rng.random_range(0..self.timeout_ticks);
    }

    /// One tick of silence; `true` when it has lasted too long: more than
    /// `patience` ticks, so never less than `patience` ticks of time.
    pub(super) fn tick(&mut self) -> bool {
        self.quiet += 1;
        if self.quiet > self.patience {
            self.reset();
            return true;
        }
        false
    }
}

/// What a node knows and has done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub id: NodeId,
    pub algorithm: Algorithm,
    /// Whom it follows (itself if it leads).
    pub leader: Option<NodeId>,
    /// The number of the election that made its leader.
    pub epoch: u64,
    /// Messages sent since the node started, by kind.
    pub sent: BTreeMap<Kind, u64>,
    /// Of those, how many never arrived.
    pub undelivered: u64,
    /// Messages the service did not send at all: too many were in flight
    /// (see [`super::MAX_IN_FLIGHT`]). Always 0 in the simulation.
    pub dropped: u64,
}

impl View {
    pub fn leads(&self) -> bool {
        self.leader == Some(self.id)
    }

    /// Messages of the election itself: every kind but heartbeats.
    pub fn election_messages(&self) -> u64 {
        self.sent
            .iter()
            .filter(|(kind, _)| **kind != Kind::Heartbeat)
            .map(|(_, count)| count)
            .sum()
    }

    pub fn heartbeats(&self) -> u64 {
        self.sent.get(&Kind::Heartbeat).copied().unwrap_or(0)
    }
}

/// One member: an algorithm's core, and the count of what it sent.
#[derive(Debug)]
pub struct Node {
    algorithm: Algorithm,
    members: Members,
    core: Box<dyn Elector>,
    sent: BTreeMap<Kind, u64>,
    undelivered: u64,
}

impl Node {
    /// Member `id` of the election among `members`. `seed` draws its
    /// timeouts, so a run replays.
    pub fn new(
        algorithm: Algorithm,
        id: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        timing: Timing,
        seed: u64,
    ) -> Result<Self> {
        timing.check()?;
        let members = Members::new(id, members)?;
        // Each node draws its own timeouts, from the run's seed.
        let seed = seed ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let core: Box<dyn Elector> = match algorithm {
            Algorithm::Bully => Box::new(bully::Bully::new(members.clone(), timing, seed)),
            Algorithm::Ring => Box::new(ring::Ring::new(members.clone(), timing, seed)),
        };
        Ok(Self {
            algorithm,
            members,
            core,
            sent: BTreeMap::new(),
            undelivered: 0,
        })
    }

    pub fn id(&self) -> NodeId {
        self.members.me()
    }

    /// Whom it follows (itself if it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.core.leader()
    }

    pub fn tick(&mut self) -> Vec<Outgoing> {
        self.decide(|core, out| core.tick(out))
    }

    /// A peer's message; refused if it does not come from another member
    /// or names a candidate that is not one.
    pub fn receive(&mut self, message: Message) -> Result<Vec<Outgoing>> {
        for (field, id) in [("from", message.from), ("candidate", message.candidate)] {
            if !self.members.contains(id) {
                return Err(Error::NotMember { field, id });
            }
        }
        if message.from == self.id() {
            return Err(Error::Invalid {
                field: "from",
                reason: format!(
                    "is this node ({}); a node does not message itself",
                    self.id()
                ),
            });
        }
        Ok(self.decide(|core, out| core.receive(message, out)))
    }

    pub fn undeliverable(&mut self, to: NodeId, message: Message) -> Vec<Outgoing> {
        self.undelivered += 1;
        self.decide(|core, out| core.undeliverable(to, message, out))
    }

    pub fn campaign(&mut self) -> Vec<Outgoing> {
        self.decide(|core, out| core.campaign(out))
    }

    pub fn view(&self) -> View {
        View {
            id: self.id(),
            algorithm: self.algorithm,
            leader: self.core.leader(),
            epoch: self.core.epoch(),
            sent: self.sent.clone(),
            undelivered: self.undelivered,
            dropped: 0,
        }
    }

    /// Runs one event through the core and counts what it sends.
    fn decide(
        &mut self,
        event: impl FnOnce(&mut dyn Elector, &mut Vec<Outgoing>),
    ) -> Vec<Outgoing> {
        let mut out = Vec::new();
        event(self.core.as_mut(), &mut out);
        for sent in &out {
            *self.sent.entry(sent.message.kind).or_default() += 1;
        }
        out
    }
}
