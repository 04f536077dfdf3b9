//! The bully algorithm (Garcia-Molina, 1982): the highest id alive leads.
//!
//! - A node that suspects the leader (its heartbeats stopped) sends
//!   ELECTION to every higher id and waits [`Timing::answer_ticks`].
//! - A node that gets ELECTION from a lower id answers (OK) and, unless it
//!   is electing already, starts an election of its own: the higher node
//!   bullies the lower one out of the race.
//! - No answer in time: nobody higher is alive. The node declares itself
//!   and sends COORDINATOR to everyone, then heartbeats.
//! - An answer but no COORDINATOR within a timeout: the higher node died
//!   mid-election. Start again.
//! - COORDINATOR or HEARTBEAT from a higher id: follow it. From a lower id:
//!   that node must not lead while this one is alive, so this one starts an
//!   election (and wins it). That is also how a split brain ends once a
//!   partition heals.
//!
//! Cost: when the lowest id notices, every node elects in turn —
//! n(n−1)/2 ELECTIONs and as many OKs, plus n − 1 COORDINATORs: O(n²).
//! When the highest live node notices, n − 1 COORDINATORs and nothing else.
//! The O(n²) is a floor, not a ceiling: an ELECTION from below that
//! arrives after its receiver has already followed the coordinator starts
//! that receiver's election over (the rule says so), and the top node
//! re-announces itself to each late elector. With five nodes and 1–5 ms
//! latency the tests see 27 to 41 messages against the floor of 24.
//!
//! The failure detector decides everything: an ELECTION that goes
//! unanswered because of a partition looks exactly like one that goes
//! unanswered because everyone higher is dead.

use super::core::Detector;
use super::{Elector, Kind, Members, Message, NodeId, Outgoing, Timing};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Following the leader, or waiting to hear of one.
    Following,
    /// Sent ELECTION to every higher id; `left` ticks to wait for an OK.
    AwaitingAnswer { left: u32 },
    /// A higher node answered; `left` ticks to wait for its COORDINATOR.
    AwaitingCoordinator { left: u32 },
    /// Leading; the next heartbeat goes out in `left` ticks.
    Leading { left: u32 },
}

/// One member's bully election.
#[derive(Debug)]
pub struct Bully {
    members: Members,
    timing: Timing,
    detector: Detector,
    phase: Phase,
    leader: Option<NodeId>,
    /// The number of the election that made `leader`.
    epoch: u64,
    /// The highest election number seen in any message.
    seen: u64,
}

impl Bully {
    pub fn new(members: Members, timing: Timing, seed: u64) -> Self {
        Self {
            members,
            timing,
            detector: Detector::new(timing.timeout_ticks, seed),
            phase: Phase::Following,
            leader: None,
            epoch: 0,
            seen: 0,
        }
    }

    fn me(&self) -> NodeId {
        self.members.me()
    }

    fn message(&self, kind: Kind, epoch: u64) -> Message {
        Message {
            from: self.me(),
            kind,
            epoch,
            candidate: self.me(),
        }
    }

    fn start_election(&mut self, out: &mut Vec<Outgoing>) {
        self.leader = None;
        self.seen = self.seen.saturating_add(1);
        let election = self.message(Kind::Election, self.seen);
        let before = out.len();
        out.extend(self.members.higher().map(|to| Outgoing {
            to,
            message: election,
        }));
        if out.len() == before {
            // Nobody is higher: no one to ask, nothing to wait for.
            self.become_leader(out);
        } else {
            self.phase = Phase::AwaitingAnswer {
                left: self.timing.answer_ticks,
            };
        }
    }

    fn become_leader(&mut self, out: &mut Vec<Outgoing>) {
        self.leader = Some(self.me());
        self.epoch = self.seen;
        self.phase = Phase::Leading {
            left: self.timing.heartbeat_ticks,
        };
        self.broadcast(Kind::Coordinator, out);
    }

    fn broadcast(&self, kind: Kind, out: &mut Vec<Outgoing>) {
        let message = self.message(kind, self.epoch);
        out.extend(self.members.others().map(|to| Outgoing { to, message }));
    }

    fn follow(&mut self, leader: NodeId, epoch: u64) {
        self.leader = Some(leader);
        self.epoch = epoch;
        self.phase = Phase::Following;
        self.detector.reset();
    }
}

impl Elector for Bully {
    fn tick(&mut self, out: &mut Vec<Outgoing>) {
        match self.phase {
            Phase::Following => {
                if self.detector.tick() {
                    self.start_election(out);
                }
            }
            // A wait of `left` ticks ends on the tick after the last one,
            // so it never lasts less than `left` ticks of time.
            Phase::AwaitingAnswer { left: 0 } => self.become_leader(out),
            Phase::AwaitingAnswer { left } => {
                self.phase = Phase::AwaitingAnswer { left: left - 1 };
            }
            Phase::AwaitingCoordinator { left: 0 } => self.start_election(out),
            Phase::AwaitingCoordinator { left } => {
                self.phase = Phase::AwaitingCoordinator { left: left - 1 };
            }
            Phase::Leading { left } if left <= 1 => {
                self.broadcast(Kind::Heartbeat, out);
                self.phase = Phase::Leading {
                    left: self.timing.heartbeat_ticks,
                };
            }
            Phase::Leading { left } => self.phase = Phase::Leading { left: left - 1 },
        }
    }

    fn receive(&mut self, message: Message, out: &mut Vec<Outgoing>) {
        self.seen = self.seen.max(message.epoch);
        let (me, from) = (self.me(), message.from);
        match message.kind {
            Kind::Election if from < me => {
                out.push(Outgoing {
                    to: from,
                    message: self.message(Kind::Answer, self.seen),
                });
                match self.phase {
                    // Pitfall: a leader that only answers OK leaves the
                    // lower node waiting for a COORDINATOR that never
                    // comes; it times out and elects again, forever.
                    Phase::Leading { .. } => out.push(Outgoing {
                        to: from,
                        message: self.message(Kind::Coordinator, self.epoch),
                    }),
                    Phase::Following => self.start_election(out),
                    // Already electing: one election per node at a time.
                    Phase::AwaitingAnswer { .. } | Phase::AwaitingCoordinator { .. } => {}
                }
            }
            Kind::Answer if from > me => {
                if let Phase::AwaitingAnswer { .. } = self.phase {
                    // Someone higher takes over; its COORDINATOR should
                    // follow within about one failure-detector timeout.
                    self.phase = Phase::AwaitingCoordinator {
                        left: self.timing.timeout_ticks,
                    };
                }
            }
            Kind::Coordinator | Kind::Heartbeat if from > me => {
                self.follow(from, message.epoch);
            }
            Kind::Coordinator | Kind::Heartbeat if from < me => {
                // A lower node leads while this one is alive: it could not
                // hear us (a partition), or we were down. Bully it.
                if matches!(self.phase, Phase::Following | Phase::Leading { .. }) {
                    self.start_election(out);
                }
            }
            // ELECTED is the ring's; ELECTION from above and OK from below
            // do not happen in this algorithm.
            _ => {}
        }
    }

    fn undeliverable(&mut self, _to: NodeId, _message: Message, _out: &mut Vec<Outgoing>) {
        // Nothing to do: the bully learns of dead nodes only from silence.
        // An ELECTION to a dead node is simply never answered.
    }

    fn campaign(&mut self, out: &mut Vec<Outgoing>) {
        if matches!(self.phase, Phase::Following | Phase::Leading { .. }) {
            self.start_election(out);
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

    fn node(id: u64, n: u64) -> Bully {
        let members = Members::new(NodeId(id), (1..=n).map(NodeId)).expect("valid members");
        Bully::new(members, Timing::default(), id)
    }

    fn kinds(out: &[Outgoing]) -> Vec<(u64, Kind)> {
        out.iter().map(|o| (o.to.0, o.message.kind)).collect()
    }

    /// The rules, one event at a time: the lowest id asks everyone
    /// higher; a higher node answers and takes over; the highest declares
    /// itself at once.
    #[test]
    fn election_bully_rules_one_event_at_a_time() {
        let mut low = node(1, 3);
        let mut out = Vec::new();
        low.campaign(&mut out);
        assert_eq!(kinds(&out), [(2, Kind::Election), (3, Kind::Election)]);
        let election = out[0].message;

        let mut middle = node(2, 3);
        out.clear();
        middle.receive(election, &mut out);
        assert_eq!(kinds(&out), [(1, Kind::Answer), (3, Kind::Election)]);

        let mut high = node(3, 3);
        out.clear();
        high.receive(election, &mut out);
        assert_eq!(
            kinds(&out),
            [
                (1, Kind::Answer),
                (1, Kind::Coordinator),
                (2, Kind::Coordinator)
            ]
        );
        assert_eq!(high.leader(), Some(NodeId(3)));

        // The coordinator's message makes the others follow it.
        let coordinator = out[1].message;
        out.clear();
        low.receive(coordinator, &mut out);
        assert!(out.is_empty());
        assert_eq!(low.leader(), Some(NodeId(3)));
    }

    /// No answer within `answer_ticks`: the node declares itself.
    #[test]
    fn election_bully_unanswered_node_declares_itself() {
        let mut low = node(1, 3);
        let mut out = Vec::new();
        low.campaign(&mut out);
        out.clear();
        for _ in 0..Timing::default().answer_ticks {
            low.tick(&mut out);
        }
        assert!(out.is_empty(), "waits at least answer_ticks");
        low.tick(&mut out);
        assert_eq!(low.leader(), Some(NodeId(1)));
        assert_eq!(
            kinds(&out),
            [(2, Kind::Coordinator), (3, Kind::Coordinator)]
        );
    }
}
