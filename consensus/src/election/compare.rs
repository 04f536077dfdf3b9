//! Bully against ring, scenario by scenario, in simulated time.
//!
//! A discrete-event simulation of the cores alone: every decision comes
//! from the same [`Node`] the gRPC service runs, while the clock jumps
//! from event to event (a tick, a message arriving after a random
//! latency, a message found undeliverable after its deadline). A run takes
//! milliseconds, a seed replays it exactly, and a demo can print it with
//! no test tooling. The services themselves run the same scenarios over
//! turmoil's simulated network in the tests, with the same outcomes.
//!
//! Simplified: a message is lost only to a crash or a partition, never at
//! random; latency is uniform between two bounds. A crash is a power cut
//! and a partition is silence: either way a sender learns that a message
//! was lost at its deadline. (turmoil refuses a new connection across a
//! partition at once, so the services skip partitioned ring successors
//! faster in the tests than here; the claims hold for both.)

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Algorithm, Error, MAX_NODES, Message, Node, NodeId, Outgoing, Result, Timing};

/// The parts of a comparison run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Every node up, no leader; the lowest id notices first.
    Start,
    /// The leader (the highest id) crashes.
    LeaderCrash,
    /// The network splits into the lower ids and the top two, the leader
    /// among them.
    Partition,
    /// The partition heals.
    Heal,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::LeaderCrash => "leader crash",
            Phase::Partition => "partition",
            Phase::Heal => "heal",
        }
    }
}

/// The setting both algorithms run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Members 1..=nodes. The partition puts the top two on one side.
    pub nodes: u64,
    pub timing: Timing,
    /// One-way latency of a message, drawn between the two.
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// A phase goes on this long after its election, so late messages
    /// (an OK arriving after the COORDINATOR) are counted too.
    pub settle: Duration,
    /// A phase with no agreed leader by then is reported without one.
    pub give_up: Duration,
    pub seed: u64,
}

impl Scenario {
    /// Episode 17's setting: five nodes, default timing, 1–5 ms latency
    /// (turmoil's defaults in the tests).
    pub fn episode_17(seed: u64) -> Self {
        Self {
            nodes: 5,
            timing: Timing::default(),
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(5),
            settle: Duration::from_millis(500),
            give_up: Duration::from_secs(10),
            seed,
        }
    }
}

/// What one phase cost and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionReport {
    pub algorithm: Algorithm,
    pub phase: Phase,
    pub nodes: usize,
    /// Election messages (every kind but heartbeats) all nodes sent during
    /// the phase, delivered or not.
    pub messages: u64,
    pub heartbeats: u64,
    /// From the phase's event until every side agreed on a leader; `None`
    /// if that did not happen within [`Scenario::give_up`].
    pub time_to_elect: Option<Duration>,
    /// Per side of the network (one side unless partitioned), the live
    /// nodes that believe they lead. Two sides with one each: split brain.
    pub leaders: Vec<Vec<NodeId>>,
}

/// Column names for [`ElectionReport::cells`].
pub const REPORT_HEADER: [&str; 6] = [
    "algorithm",
    "phase",
    "nodes",
    "election messages",
    "time to elect",
    "leaders per side",
];

impl ElectionReport {
    /// The report as a table row (see [`REPORT_HEADER`]).
    pub fn cells(&self) -> Vec<String> {
        let sides: Vec<String> = self
            .leaders
            .iter()
            .map(|side| {
                let ids: Vec<String> = side.iter().map(NodeId::to_string).collect();
                format!("{{{}}}", ids.join(","))
            })
            .collect();
        vec![
            self.algorithm.name().to_owned(),
            self.phase.name().to_owned(),
            self.nodes.to_string(),
            self.messages.to_string(),
            self.time_to_elect
                .map_or_else(|| "none".to_owned(), |t| format!("{} ms", t.as_millis())),
            sides.join(" | "),
        ]
    }
}

/// Both algorithms through every phase of Episode 17's scenario: four
/// reports each, bully first.
pub fn compare(seed: u64) -> Vec<ElectionReport> {
    let scenario = Scenario::episode_17(seed);
    [Algorithm::Bully, Algorithm::Ring]
        .into_iter()
        .flat_map(|algorithm| {
            simulate(algorithm, &scenario).expect("Episode 17's scenario is valid")
        })
        .collect()
}

/// One algorithm through every phase: start and leader crash on one
/// cluster, then partition and heal on a fresh one (whose leader is the
/// highest id again).
pub fn simulate(algorithm: Algorithm, scenario: &Scenario) -> Result<Vec<ElectionReport>> {
    let n = scenario.nodes;
    if !(3..=MAX_NODES as u64).contains(&n) {
        return Err(Error::Invalid {
            field: "scenario.nodes",
            reason: format!("must be in 3..={MAX_NODES} (two sides to partition), got {n}"),
        });
    }
    let top = NodeId(n);
    let lowest = 0;
    let mut reports = Vec::new();

    let mut world = World::new(algorithm, scenario, scenario.seed)?;
    let start = world.phase(scenario, |w| w.campaign(lowest));
    reports.push(world.report(Phase::Start, start));
    let crash = world.phase(scenario, |w| w.alive[top.0 as usize - 1] = false);
    reports.push(world.report(Phase::LeaderCrash, crash));

    let mut world = World::new(algorithm, scenario, scenario.seed.wrapping_add(1))?;
    world.phase(scenario, |w| w.campaign(lowest));
    let partition = world.phase(scenario, |w| {
        for side in &mut w.side[n as usize - 2..] {
            *side = 1;
        }
    });
    reports.push(world.report(Phase::Partition, partition));
    let heal = world.phase(scenario, |w| w.side.fill(0));
    reports.push(world.report(Phase::Heal, heal));
    Ok(reports)
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    Arrive {
        to: usize,
        message: Message,
        sent_at: u64,
    },
    Undeliverable {
        from: usize,
        to: NodeId,
        message: Message,
    },
}

/// Nodes, the network between them, and a queue of events by time.
#[derive(Debug)]
struct World {
    nodes: Vec<Node>,
    alive: Vec<bool>,
    /// Which side of a partition each node is on; all 0 when whole.
    side: Vec<u8>,
    now: u64,
    events: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    rng: SmallRng,
    timing: Timing,
    latency: (u64, u64),
}

/// How far into a phase it ended, and how the counters stood at its start.
#[derive(Clone, Copy, Debug)]
struct PhaseRun {
    time_to_elect: Option<Duration>,
    messages_before: u64,
    heartbeats_before: u64,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl World {
    fn new(algorithm: Algorithm, scenario: &Scenario, seed: u64) -> Result<Self> {
        let n = scenario.nodes;
        let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let nodes = members
            .iter()
            .map(|&id| Node::new(algorithm, id, members.clone(), scenario.timing, seed))
            .collect::<Result<_>>()?;
        let mut world = Self {
            nodes,
            alive: vec![true; n as usize],
            side: vec![0; n as usize],
            now: 0,
            events: BTreeMap::new(),
            sequence: 0,
            rng: SmallRng::seed_from_u64(seed),
            timing: scenario.timing,
            latency: (nanos(scenario.min_latency), nanos(scenario.max_latency)),
        };
        // Nodes boot at random points of the first tick, not in lockstep.
        for i in 0..world.nodes.len() {
            let offset = world
                .rng
                .random_range(0..nanos(scenario.timing.tick).max(1));
            world.schedule(offset, Event::Tick(i));
        }
        Ok(world)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.sequence += 1;
        self.events.insert((at, self.sequence), event);
    }

    fn campaign(&mut self, i: usize) {
        let out = self.nodes[i].campaign();
        self.send(out);
    }

    fn send(&mut self, out: Vec<Outgoing>) {
        for Outgoing { to, message } in out {
            let (low, high) = self.latency;
            let latency = self.rng.random_range(low..=high.max(low));
            let to = to.0 as usize - 1;
            let sent_at = self.now;
            self.schedule(
                sent_at + latency,
                Event::Arrive {
                    to,
                    message,
                    sent_at,
                },
            );
        }
    }

    fn step(&mut self, (at, _): (u64, u64), event: Event) {
        self.now = at;
        match event {
            Event::Tick(i) if self.alive[i] => {
                let out = self.nodes[i].tick();
                self.send(out);
                self.schedule(at + nanos(self.timing.tick), Event::Tick(i));
            }
            // A crashed node's clock stops.
            Event::Tick(_) => {}
            Event::Arrive {
                to,
                message,
                sent_at,
            } => {
                let from = message.from.0 as usize - 1;
                if self.alive[to] && self.side[to] == self.side[from] {
                    let out = self.nodes[to]
                        .receive(message)
                        .expect("cores only message members");
                    self.send(out);
                } else {
                    // A crash (a power cut) and a partition look the same
                    // from here: silence, until the call's deadline passes.
                    let at = (sent_at + nanos(self.timing.deliver_timeout)).max(at);
                    self.schedule(
                        at,
                        Event::Undeliverable {
                            from,
                            to: NodeId(to as u64 + 1),
                            message,
                        },
                    );
                }
            }
            Event::Undeliverable { from, to, message } if self.alive[from] => {
                let out = self.nodes[from].undeliverable(to, message);
                self.send(out);
            }
            Event::Undeliverable { .. } => {}
        }
    }

    /// Runs until `until` (absolute), or until `done` holds; returns when.
    fn run_until(&mut self, until: u64, done: impl Fn(&Self) -> bool) -> Option<u64> {
        loop {
            if done(self) {
                return Some(self.now);
            }
            let Some((&key, _)) = self.events.first_key_value() else {
                break;
            };
            if key.0 > until {
                break;
            }
            let (key, event) = self.events.pop_first().expect("just looked at it");
            self.step(key, event);
        }
        self.now = self.now.max(until);
        None
    }

    /// Live nodes by side, sides in order.
    fn sides(&self) -> Vec<Vec<usize>> {
        let mut sides: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for i in (0..self.nodes.len()).filter(|&i| self.alive[i]) {
            sides.entry(self.side[i]).or_default().push(i);
        }
        sides.into_values().collect()
    }

    /// Every side has one leader, and all of that side's live nodes follow it.
    fn agreed(&self) -> bool {
        self.sides().iter().all(|side| {
            let leader = self.nodes[side[0]].leader();
            leader.is_some_and(|leader| side.iter().any(|&i| self.nodes[i].id() == leader))
                && side.iter().all(|&i| self.nodes[i].leader() == leader)
        })
    }

    fn counters(&self) -> (u64, u64) {
        self.nodes.iter().fold((0, 0), |(messages, beats), node| {
            let view = node.view();
            (
                messages + view.election_messages(),
                beats + view.heartbeats(),
            )
        })
    }

    /// Applies `event`, then runs until every side agrees (plus the
    /// settle time).
    fn phase(&mut self, scenario: &Scenario, event: impl FnOnce(&mut Self)) -> PhaseRun {
        let (messages_before, heartbeats_before) = self.counters();
        let started = self.now;
        event(self);
        let elected = self.run_until(started + nanos(scenario.give_up), Self::agreed);
        let settled = self.now + nanos(scenario.settle);
        self.run_until(settled, |_| false);
        PhaseRun {
            time_to_elect: elected.map(|at| Duration::from_nanos(at - started)),
            messages_before,
            heartbeats_before,
        }
    }

    fn report(&self, phase: Phase, run: PhaseRun) -> ElectionReport {
        let (messages, heartbeats) = self.counters();
        ElectionReport {
            algorithm: self.nodes[0].view().algorithm,
            phase,
            nodes: self.nodes.len(),
            messages: messages - run.messages_before,
            heartbeats: heartbeats - run.heartbeats_before,
            time_to_elect: run.time_to_elect,
            leaders: self
                .sides()
                .iter()
                .map(|side| {
                    side.iter()
                        .map(|&i| self.nodes[i].view())
                        .filter(|view| view.leads())
                        .map(|view| view.id)
                        .collect()
                })
                .collect(),
        }
    }
}
