//! The ring algorithm (Chang and Roberts, 1979; LeLann, 1977): the largest
//! id goes once around.
//!
//! Members sit on a logical ring in id order; each sends only to its
//! successor.
//!
//! - A node that suspects the leader starts a round: ELECTION carrying its
//!   own id to its successor, and it becomes a *participant*.
//! - A node that gets ELECTION with a larger id passes it on. With a
//!   smaller id it puts its own in — unless it is a participant already,
//!   in which case it swallows the message: a larger id is on its way
//!   around, and the smaller one can never win.
//! - A node that gets its own id back has seen every live id: it leads,
//!   and sends ELECTED around once so that everyone knows.
//! - A successor that does not take a message is skipped: the message goes
//!   to the one after it. That is how the ring survives a dead node.
//!
//! Cost: one initiator, n live nodes: at most 2n − 1 ELECTIONs (the
//! initiator sits just past the highest id, so the message goes almost
//! twice around) and n ELECTEDs: at most 3n − 1. If every node starts at
//! once, Chang–Roberts costs O(n log n) on average and O(n²) when the ids
//! descend along the ring. Time grows with n too: the hops are sequential,
//! where the bully's messages go out in parallel.
//!
//! Like the bully, the ring takes silence for death: a leader behind a
//! partition is skipped like a dead one, and the near side elects its own.

use super::core::Detector;
use super::{Elector, Kind, Members, Message, NodeId, Outgoing, Timing};

/// One member's ring election.
#[derive(Debug)]
pub struct Ring {
    members: Members,
    timing: Timing,
    detector: Detector,
    leader: Option<NodeId>,
    /// The number of the round that made `leader`.
    epoch: u64,
    /// The highest round number seen in any message.
    seen: u64,
    /// Taking part in a round: ticks left before it is presumed lost.
    participant: Option<u32>,
    /// Leading: ticks until the next heartbeat.
    heartbeat_in: u32,
}

impl Ring {
    pub fn new(members: Members, timing: Timing, seed: u64) -> Self {
        Self {
            members,
            timing,
            detector: Detector::new(timing.timeout_ticks, seed),
            leader: None,
            epoch: 0,
            seen: 0,
            participant: None,
            heartbeat_in: timing.heartbeat_ticks,
        }
    }

    fn me(&self) -> NodeId {
        self.members.me()
    }

    fn leads(&self) -> bool {
        self.leader == Some(self.me())
    }

    /// Sends `kind` about `candidate` to the next member after `after`
    /// (the successor of this node, or of one that did not answer). When
    /// every other member has been skipped, it arrives back here.
    fn pass(
        &mut self,
        after: NodeId,
        kind: Kind,
        candidate: NodeId,
        epoch: u64,
        out: &mut Vec<Outgoing>,
    ) {
        let message = Message {
            from: self.me(),
            kind,
            epoch,
            candidate,
        };
        let to = self.members.successor(after);
        if to == self.me() {
            self.deliver(message, out);
        } else {
            out.push(Outgoing { to, message });
        }
    }

    fn start_round(&mut self, out: &mut Vec<Outgoing>) {
        self.seen = self.seen.saturating_add(1);
        self.participant = Some(self.timing.round_ticks);
        self.pass(self.me(), Kind::Election, self.me(), self.seen, out);
    }

    fn follow(&mut self, leader: NodeId, epoch: u64) {
        self.leader = Some(leader);
        self.epoch = epoch;
        self.detector.reset();
    }

    /// Handles a message, from a peer or come back around.
    fn deliver(&mut self, message: Message, out: &mut Vec<Outgoing>) {
        self.seen = self.seen.max(message.epoch);
        let (me, candidate) = (self.me(), message.candidate);
        match message.kind {
            Kind::Election if candidate > me => {
                self.participant = Some(self.timing.round_ticks);
                self.pass(me, Kind::Election, candidate, self.seen, out);
            }
            Kind::Election if candidate < me && self.participant.is_none() => {
                self.participant = Some(self.timing.round_ticks);
                self.pass(me, Kind::Election, me, self.seen, out);
            }
            Kind::Election if candidate < me => {
                // A participant swallows it: its own, larger id is already
                // going around. This is Chang–Roberts' saving over LeLann,
                // where every id travels the whole ring.
            }
            Kind::Election => {
                // Our own id came back: no live member is larger.
                self.participant = None;
                self.follow(me, self.seen);
                self.heartbeat_in = self.timing.heartbeat_ticks;
                self.pass(me, Kind::Elected, me, self.epoch, out);
            }
            Kind::Elected if candidate == me => {
                // Our announcement came home: everyone has heard it.
                self.participant = None;
            }
            Kind::Elected => {
                // Pitfall: forward each announcement once only. A leader
                // that dies while its ELECTED travels is skipped, so the
                // message would circle the ring forever.
                let known = self.leader == Some(candidate) && self.epoch == message.epoch;
                self.participant = None;
                self.follow(candidate, message.epoch);
                if !known {
                    self.pass(me, Kind::Elected, candidate, message.epoch, out);
                }
            }
            Kind::Heartbeat if self.leader == Some(message.from) || self.leader.is_none() => {
                self.follow(message.from, message.epoch);
            }
            Kind::Heartbeat if self.leads() && self.participant.is_none() => {
                // Another node leads too — a healed partition. A new round
                // settles it: the largest live id wins it.
                self.start_round(out);
            }
            // Heartbeats of a leader we do not follow; the bully's kinds.
            _ => {}
        }
    }
}

impl Elector for Ring {
    fn tick(&mut self, out: &mut Vec<Outgoing>) {
        if self.leads() {
            self.heartbeat_in = self.heartbeat_in.saturating_sub(1);
            if self.heartbeat_in == 0 {
                self.heartbeat_in = self.timing.heartbeat_ticks;
                let message = Message {
                    from: self.me(),
                    kind: Kind::Heartbeat,
                    epoch: self.epoch,
                    candidate: self.me(),
                };
                // Simplified: heartbeats go to every member directly, the
                // same failure detector as the bully's, so the comparison
                // is of the elections alone.
                out.extend(self.members.others().map(|to| Outgoing { to, message }));
            }
        }
        match self.participant {
            Some(0) => {
                // The round's message died with a node holding it.
                self.participant = None;
                if !self.leads() {
                    self.start_round(out);
                }
            }
            Some(left) => self.participant = Some(left - 1),
            None => {
                if !self.leads() && self.detector.tick() {
                    self.start_round(out);
                }
            }
        }
    }

    fn receive(&mut self, message: Message, out: &mut Vec<Outgoing>) {
        self.deliver(message, out);
    }

    fn undeliverable(&mut self, to: NodeId, message: Message, out: &mut Vec<Outgoing>) {
        // Skip the successor that did not take it.
        // Simplified: the ring forgets who was skipped, so every round
        // pays a delivery timeout per dead node again; real rings keep a
        // membership list and route around known failures.
        if matches!(message.kind, Kind::Election | Kind::Elected) {
            self.pass(to, message.kind, message.candidate, message.epoch, out);
        }
    }

    fn campaign(&mut self, out: &mut Vec<Outgoing>) {
        if self.participant.is_none() {
            self.start_round(out);
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: u64) -> Vec<Ring> {
        (1..=n)
            .map(|id| {
                let members = Members::new(NodeId(id), (1..=n).map(NodeId)).expect("valid");
                Ring::new(members, Timing::default(), id)
            })
            .collect()
    }

    /// Delivers every message in order until none is left, skipping the
    /// nodes in `dead`; returns the messages sent (deliveries tried).
    fn settle(nodes: &mut [Ring], mut queue: Vec<Outgoing>, dead: &[u64]) -> usize {
        let mut sent = queue.len();
        while !queue.is_empty() {
            let Outgoing { to, message } = queue.remove(0);
            let mut out = Vec::new();
            if dead.contains(&to.0) {
                nodes[message.from.0 as usize - 1].undeliverable(to, message, &mut out);
            } else {
                nodes[to.0 as usize - 1].receive(message, &mut out);
            }
            sent += out.len();
            queue.extend(out);
        }
        sent
    }

    /// One initiator just past the highest id: 2n − 1 ELECTIONs and n
    /// ELECTEDs, and everyone follows the highest.
    #[test]
    fn election_ring_one_initiator_costs_three_n_minus_one() {
        let mut nodes = ring(5);
        let mut out = Vec::new();
        nodes[0].campaign(&mut out);
        assert_eq!(settle(&mut nodes, out, &[]), 3 * 5 - 1);
        assert!(nodes.iter().all(|n| n.leader() == Some(NodeId(5))));
    }

    /// A dead successor is skipped, and the dead leader is not elected.
    #[test]
    fn election_ring_skips_dead_successors() {
        let mut nodes = ring(5);
        let mut out = Vec::new();
        nodes[1].campaign(&mut out);
        settle(&mut nodes, out, &[5]);
        for node in &nodes[..4] {
            assert_eq!(node.leader(), Some(NodeId(4)));
        }
    }
}
