//! Clock tests: causality against a ground truth, hybrid clocks under
//! skew, NTP's blind spot, commit-wait, siblings.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use proptest::prelude::*;

use super::ReplicaId;
use super::dotted::Siblings;
use super::hlc::{HlcTimestamp, HybridClock};
use super::lamport::LamportClock;
use super::ntp::NtpExchange;
use super::physical::{ManualClock, TokioClock};
use super::truetime::TrueTime;
use super::vector::{Causality, VectorClock, VersionVector};
use crate::Error;

/// One step of a random message-passing run.
#[derive(Clone, Debug)]
enum Step {
    Local(usize),
    Send {
        from: usize,
        to: usize,
    },
    /// Deliver the pending message at this position (modulo the queue).
    Deliver(usize),
}

fn steps(processes: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (0..processes).prop_map(Step::Local),
        (0..processes, 0..processes).prop_map(|(from, to)| Step::Send { from, to }),
        any::<usize>().prop_map(Step::Deliver),
    ];
    proptest::collection::vec(step, 1..60)
}

/// An event of the run, with every clock's stamp and the ground truth:
/// the set of events that happened before it.
struct Event {
    process: usize,
    physical_ns: u64,
    true_ns: u64,
    vector: VectorClock,
    lamport: u64,
    hlc: HlcTimestamp,
    before: BTreeSet<usize>,
}

/// A message in flight: its sender's event and stamps.
struct Message {
    to: usize,
    send_event: usize,
    vector: VectorClock,
    lamport: u64,
    hlc: HlcTimestamp,
}

struct Process {
    vector: VectorClock,
    lamport: LamportClock,
    hlc: HybridClock<ManualClock>,
    last_event: Option<usize>,
}

/// Runs `steps` over processes whose physical clocks are skewed by
/// `skews_ns` from a true time that advances 1 ms per step.
fn run(steps: &[Step], skews_ns: &[u64], max_offset: Duration) -> Vec<Event> {
    let true_start_ns = 1_000_000_000_000;
    let mut processes: Vec<Process> = skews_ns
        .iter()
        .map(|&skew| Process {
            vector: VectorClock::new(),
            lamport: LamportClock::new(),
            hlc: HybridClock::new(ManualClock::new(true_start_ns + skew), max_offset),
            last_event: None,
        })
        .collect();
    let mut events: Vec<Event> = Vec::new();
    let mut in_flight: Vec<Message> = Vec::new();
    for (tick, step) in steps.iter().enumerate() {
        let true_now_ns = true_start_ns + tick as u64 * 1_000_000;
        for (process, &skew) in processes.iter_mut().zip(skews_ns) {
            process.hlc.physical().set(true_now_ns + skew);
        }
        let (at, received) = match *step {
            Step::Local(at) | Step::Send { from: at, .. } => (at, None),
            Step::Deliver(position) if !in_flight.is_empty() => {
                let message = in_flight.remove(position % in_flight.len());
                (message.to, Some(message))
            }
            Step::Deliver(_) => continue,
        };
        let id = ReplicaId(at as u64);
        let process = &mut processes[at];
        let mut before: BTreeSet<usize> = BTreeSet::new();
        if let Some(last) = process.last_event {
            before.extend(&events[last].before);
            before.insert(last);
        }
        let (lamport, hlc) = match &received {
            Some(message) => {
                before.extend(&events[message.send_event].before);
                before.insert(message.send_event);
                process.vector.receive(id, &message.vector);
                let hlc = process
                    .hlc
                    .update(message.hlc)
                    .expect("skews stay within the offset");
                (process.lamport.receive(message.lamport), hlc)
            }
            None => {
                process.vector.tick(id);
                let hlc = process.hlc.now().expect("the counter never runs out here");
                (process.lamport.tick(), hlc)
            }
        };
        let event = events.len();
        events.push(Event {
            process: at,
            physical_ns: true_now_ns + skews_ns[at],
            true_ns: true_now_ns,
            vector: process.vector.clone(),
            lamport,
            hlc,
            before,
        });
        process.last_event = Some(event);
        if let Step::Send { to, .. } = *step {
            in_flight.push(Message {
                to,
                send_event: event,
                vector: process.vector.clone(),
                lamport,
                hlc,
            });
        }
    }
    events
}

proptest! {
    /// Episode 20. Random runs of four processes exchanging messages
    /// delivered in any order, their wall clocks up to 50 ms apart: vector
    /// clocks order two events exactly when one happened before the other
    /// (computed from the messages), and call the rest concurrent; Lamport
    /// and hybrid timestamps respect happened-before (but cannot see
    /// concurrency) — the hybrid ones whatever the skew.
    #[test]
    fn clock_happened_before_matches_message_causality(
        steps in steps(4),
        skews_ms in proptest::collection::vec(0u64..=50, 4),
    ) {
        let skews_ns: Vec<u64> = skews_ms.iter().map(|ms| ms * 1_000_000).collect();
        let events = run(&steps, &skews_ns, Duration::from_millis(50));
        for (b, later) in events.iter().enumerate() {
            for (a, earlier) in events.iter().enumerate() {
                let happened_before = later.before.contains(&a);
                let expected = if a == b {
                    Causality::Equal
                } else if happened_before {
                    Causality::Before
                } else if earlier.before.contains(&b) {
                    Causality::After
                } else {
                    Causality::Concurrent
                };
                prop_assert_eq!(earlier.vector.compare(&later.vector), expected, "events {} and {}", a, b);
                if happened_before {
                    prop_assert!(earlier.lamport < later.lamport);
                    prop_assert!(earlier.hlc < later.hlc);
                }
            }
        }
    }

    /// Episode 3. Processes whose clocks run up to 50 ms ahead of true
    /// time: hybrid timestamps never go backwards on a process, never
    /// fall behind its physical clock, and never run more than the worst
    /// skew ahead of true time — however messages carry them around.
    #[test]
    fn clock_hlc_stays_within_the_skew_of_true_time(
        steps in steps(4),
        skews_ms in proptest::collection::vec(0u64..=50, 4),
    ) {
        let skews_ns: Vec<u64> = skews_ms.iter().map(|ms| ms * 1_000_000).collect();
        let worst_skew_ns = skews_ns.iter().copied().max().unwrap_or(0);
        let events = run(&steps, &skews_ns, Duration::from_millis(50));
        let mut last_on: Vec<Option<HlcTimestamp>> = vec![None; 4];
        for event in &events {
            if let Some(previous) = last_on[event.process] {
                prop_assert!(event.hlc > previous, "hlc went backwards on r{}", event.process);
            }
            last_on[event.process] = Some(event.hlc);
            prop_assert!(event.hlc.wall_ns >= event.physical_ns);
            prop_assert!(event.hlc.wall_ns <= event.true_ns + worst_skew_ns);
        }
    }

    /// Episode 3. Whatever the true offset and the path delays, NTP's
    /// offset estimate is off by exactly half the asymmetry, and its
    /// delay is the true round trip.
    #[test]
    fn clock_ntp_estimate_error_is_half_the_asymmetry(
        t1 in 0i64..1_000_000_000_000,
        true_offset in -1_000_000_000i64..1_000_000_000,
        out in 0i64..500_000_000,
        hold in 0i64..10_000_000,
        back in 0i64..500_000_000,
    ) {
        let estimate = NtpExchange::simulate(t1, true_offset, out, hold, back).estimate();
        // Exactly half, rounded down to the nanosecond.
        let asymmetry = out - back;
        prop_assert_eq!(estimate.offset_ns - true_offset, asymmetry.div_euclid(2));
        prop_assert_eq!(estimate.delay_ns, out + back);
    }
}

/// Episode 3. A clock 10 s ahead sends a timestamp; a hybrid clock
/// allowing 500 ms of offset refuses it with a typed error and keeps its
/// state, so one broken clock cannot drag the cluster into the future.
#[test]
fn clock_hlc_refuses_a_timestamp_from_the_far_future() {
    let physical = ManualClock::new(1_000_000_000);
    let mut clock = HybridClock::new(physical, Duration::from_millis(500));
    let before = clock.now().expect("a fresh clock has counter room");
    let far_future = HlcTimestamp {
        wall_ns: 11_000_000_000,
        logical: 0,
    };
    let refused = clock.update(far_future);
    assert_eq!(
        refused,
        Err(Error::ClockTooFarAhead {
            ahead: Duration::from_secs(10),
            max_offset: Duration::from_millis(500),
        })
    );
    assert_eq!(clock.last(), before);
    // Within the offset, the remote time is adopted and ticked past.
    let near = HlcTimestamp {
        wall_ns: 1_400_000_000,
        logical: 7,
    };
    assert_eq!(
        clock.update(near),
        Ok(HlcTimestamp {
            wall_ns: 1_400_000_000,
            logical: 8
        })
    );
}

/// Episode 20. While physical time stands still, the logical counter
/// orders events; when it moves on, the counter resets.
#[test]
fn clock_hlc_counts_events_within_one_physical_tick() {
    let physical = ManualClock::new(5_000);
    let mut clock = HybridClock::new(physical.clone(), Duration::from_millis(1));
    let stamps: Vec<HlcTimestamp> = (0..3).map(|_| clock.now().expect("counter room")).collect();
    assert_eq!(
        stamps
            .iter()
            .map(|stamp| (stamp.wall_ns, stamp.logical))
            .collect::<Vec<_>>(),
        vec![(5_000, 0), (5_000, 1), (5_000, 2)]
    );
    physical.advance(1);
    assert_eq!(clock.now().map(|stamp| stamp.logical), Ok(0));
}

/// Episode 3 (Spanner). Five clocks each within 5 ms of true time.
/// With commit-wait, a transaction that starts after another has
/// committed — on any clock — always draws a larger timestamp. Without
/// the wait, a slow clock right after a fast one draws a smaller one:
/// the order a user saw is not the order the timestamps tell.
#[tokio::test(start_paused = true)]
async fn clock_truetime_commit_wait_orders_commits_across_clocks() {
    let epsilon = Duration::from_millis(5);
    let skews_ms = [-5i64, 5, 0, -3, 4];
    let clocks: Vec<TrueTime<TokioClock>> = skews_ms
        .iter()
        .map(|ms| TrueTime::new(TokioClock::new(1_000_000_000_000, ms * 1_000_000), epsilon))
        .collect();
    let mut last_commit = 0;
    for round in 0..20 {
        let clock = &clocks[round % clocks.len()];
        let started = tokio::time::Instant::now();
        let commit = clock.commit().await;
        assert!(
            commit > last_commit,
            "round {round}: {commit} after {last_commit}"
        );
        last_commit = commit;
        // The wait costs about 2ε, the price of the guarantee.
        assert!(started.elapsed() <= 2 * epsilon + Duration::from_millis(1));
    }
    // The same sequence without the wait: the fast clock commits, then
    // the slow clock, a moment later, picks an earlier timestamp.
    let fast = clocks[1].now().latest_ns;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let slow = clocks[0].now().latest_ns;
    assert!(
        slow < fast,
        "without commit-wait the later commit is stamped earlier"
    );
}

/// Episode 20 (Riak). Two clients read the same empty key and write
/// through the same server. Tagging each value with the server's version
/// vector makes the second write look newer and erase the first;
/// dotted siblings keep both until a client that has read both resolves
/// them.
#[test]
fn clock_dotted_siblings_keep_concurrent_writes_through_one_server() {
    let server = ReplicaId(1);
    // The broken way: one vector per value, the server's, incremented.
    let mut server_vector = VersionVector::new();
    server_vector.tick(server);
    let first_tag = server_vector.clone();
    server_vector.tick(server);
    let second_tag = server_vector.clone();
    assert_eq!(
        first_tag.compare(&second_tag),
        Causality::Before,
        "the first write looks obsolete"
    );

    // Dotted: both clients wrote with the empty context they read.
    let mut key: Siblings<&str> = Siblings::new();
    let (_, empty) = key.read();
    key.write(server, &empty, "cart: milk");
    key.write(server, &empty, "cart: eggs");
    let (values, context) = key.read();
    assert_eq!(values, vec![&"cart: milk", &"cart: eggs"]);
    // A client that read both resolves them with one write.
    key.write(server, &context, "cart: milk, eggs");
    assert_eq!(key.values().collect::<Vec<_>>(), vec![&"cart: milk, eggs"]);
}

/// Episode 20. Deltas of sibling writes merged out of order, twice, on
/// another replica converge to the writer's state.
#[test]
fn clock_dotted_deltas_converge_in_any_order() {
    let (a, b) = (ReplicaId(1), ReplicaId(2));
    let mut writer: Siblings<u32> = Siblings::new();
    let mut deltas = VecDeque::new();
    for value in 0..5 {
        let (_, context) = writer.read();
        deltas.push_back(writer.write(a, &context, value));
    }
    let (_, stale) = (Vec::<u32>::new(), VersionVector::new());
    deltas.push_back(writer.write(b, &stale, 99));
    let mut reader: Siblings<u32> = Siblings::new();
    for delta in deltas.iter().rev().chain(deltas.iter()) {
        reader.merge(delta);
    }
    assert_eq!(reader, writer);
    assert_eq!(reader.values().collect::<Vec<_>>(), vec![&4, &99]);
    assert_eq!(reader.context().cloud_len(), 0);
}
