//! `dslab demo clocks`: one exchange of messages, stamped by every clock.

use std::time::Duration;

use observability::demo::{DemoResult, Narrator};
use observability::telemetry::SpanCapture;

use super::ReplicaId;
use super::hlc::{HlcTimestamp, HybridClock};
use super::lamport::LamportClock;
use super::ntp::NtpExchange;
use super::physical::{ManualClock, PhysicalClock};
use super::vector::{Causality, VectorClock};
use crate::crdt::lww::{HlcLww, NaiveWallClockLww};
use crate::crdt::{Crdt, LwwRegister};

const MS: u64 = 1_000_000;
/// True time at the start of the demo, in nanoseconds (2026-12-01).
const START_NS: u64 = 1_795_000_000_000 * MS;

/// One process: its clocks, and a physical clock `skew_ms` off true time.
struct Process {
    name: &'static str,
    id: ReplicaId,
    physical: ManualClock,
    skew_ns: i64,
    lamport: LamportClock,
    vector: VectorClock,
    hlc: HybridClock<ManualClock>,
}

impl Process {
    fn new(name: &'static str, id: u64, skew_ms: i64) -> Self {
        let physical = ManualClock::new(START_NS.saturating_add_signed(skew_ms * MS as i64));
        Self {
            name,
            id: ReplicaId(id),
            physical: physical.clone(),
            skew_ns: skew_ms * MS as i64,
            lamport: LamportClock::new(),
            vector: VectorClock::new(),
            hlc: HybridClock::new(physical, Duration::from_secs(1)),
        }
    }

    fn at(&self, true_ms: u64) {
        self.physical
            .set((START_NS + true_ms * MS).saturating_add_signed(self.skew_ns));
    }
}

/// An event as the table shows it.
struct Stamp {
    event: String,
    lamport: u64,
    vector: VectorClock,
    hlc: HlcTimestamp,
    physical_ns: u64,
}

fn local(process: &mut Process, true_ms: u64, event: &str) -> Result<Stamp, crate::Error> {
    process.at(true_ms);
    process.vector.tick(process.id);
    Ok(Stamp {
        event: format!("{}: {event}", process.name),
        lamport: process.lamport.tick(),
        vector: process.vector.clone(),
        hlc: process.hlc.now()?,
        physical_ns: process.physical.now_ns(),
    })
}

fn receive(
    process: &mut Process,
    true_ms: u64,
    event: &str,
    message: &Stamp,
) -> Result<Stamp, crate::Error> {
    process.at(true_ms);
    process.vector.receive(process.id, &message.vector);
    Ok(Stamp {
        event: format!("{}: {event}", process.name),
        lamport: process.lamport.receive(message.lamport),
        vector: process.vector.clone(),
        hlc: process.hlc.update(message.hlc)?,
        physical_ns: process.physical.now_ns(),
    })
}

fn vector_text(vector: &VectorClock) -> String {
    let entries: Vec<String> = [1, 2, 3]
        .iter()
        .map(|&i| vector.get(ReplicaId(i)).to_string())
        .collect();
    format!("[{}]", entries.join(","))
}

fn millis(ns: u64) -> String {
    format!("{:+}", (ns as i128 - START_NS as i128) / i128::from(MS))
}

/// Episodes 20 and 3: Lamport, vector and hybrid clocks on one run.
pub async fn clocks_demo(out: &mut Narrator, _spans: &SpanCapture) -> DemoResult {
    out.section("Episode 20: one run, three logical clocks");
    out.say("A sends to B, B sends to C; C also does something on its own. C's wall clock is 300 ms slow.");
    let mut a = Process::new("A", 1, 0);
    let mut b = Process::new("B", 2, 0);
    let mut c = Process::new("C", 3, -300);
    let a1 = local(&mut a, 0, "local event")?;
    let a2 = local(&mut a, 10, "send m1 to B")?;
    let c1 = local(&mut c, 12, "local event")?;
    let b1 = receive(&mut b, 30, "receive m1", &a2)?;
    let b2 = local(&mut b, 40, "send m2 to C")?;
    let c2 = receive(&mut c, 60, "receive m2", &b2)?;
    let events = [&a1, &a2, &c1, &b1, &b2, &c2];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|stamp| {
            vec![
                stamp.event.clone(),
                stamp.lamport.to_string(),
                vector_text(&stamp.vector),
                format!("{} ms, {}", millis(stamp.hlc.wall_ns), stamp.hlc.logical),
                format!("{} ms", millis(stamp.physical_ns)),
            ]
        })
        .collect();
    out.table(
        &[
            "event",
            "Lamport",
            "vector [A,B,C]",
            "hybrid (wall, logical)",
            "local wall clock",
        ],
        &rows,
    );

    out.check(
        "vector clocks order causally related events: A's first event happened before C's receive",
        a1.vector.compare(&c2.vector) == Causality::Before,
        format!("{} < {}", vector_text(&a1.vector), vector_text(&c2.vector)),
    );
    out.check(
        "vector clocks see concurrency that Lamport clocks hide",
        c1.vector.compare(&a2.vector) == Causality::Concurrent && c1.lamport < a2.lamport,
        format!(
            "C's local event is concurrent with A's send, yet Lamport says {} < {}",
            c1.lamport, a2.lamport
        ),
    );
    out.check(
        "the hybrid clock keeps causality on the slow node",
        c2.hlc > b2.hlc && c2.physical_ns < b2.physical_ns,
        format!(
            "C's receive is stamped {} ms, after B's send, though C's wall clock reads {} ms",
            millis(c2.hlc.wall_ns),
            millis(c2.physical_ns)
        ),
    );

    out.section("Episode 3: NTP cannot see an asymmetric path");
    let exchange = NtpExchange::simulate(0, 0, 30 * MS as i64, MS as i64, 10 * MS as i64);
    let estimate = exchange.estimate();
    out.say("Two clocks that agree exactly; the request takes 30 ms, the reply 10 ms.");
    out.check(
        "NTP's offset estimate is wrong by half the asymmetry",
        estimate.offset_ns == 10 * MS as i64 && estimate.delay_ns == 40 * MS as i64,
        format!(
            "estimated offset {} ms (truth: 0), delay {} ms",
            estimate.offset_ns / MS as i64,
            estimate.delay_ns / MS as i64
        ),
    );

    out.section("Episode 22: last writer wins — by whose clock?");
    out.say("A writes \"first\". C reads it, and 100 ms later writes \"second\". C's clock is 300 ms slow.");
    let (mut wall_a, mut hlc_a): (NaiveWallClockLww<&str>, HlcLww<&str>) =
        (LwwRegister::new(), LwwRegister::new());
    a.at(100);
    wall_a.set(a.id, a.physical.now_ns(), "first");
    let stamp = a.hlc.now()?;
    hlc_a.set(a.id, stamp, "first");
    let (mut wall_c, mut hlc_c) = (wall_a.clone(), hlc_a.clone());
    c.at(150);
    c.hlc.update(stamp)?;
    c.at(250);
    wall_c.set(c.id, c.physical.now_ns(), "second");
    let stamp = c.hlc.now()?;
    hlc_c.set(c.id, stamp, "second");
    wall_a.merge(&wall_c);
    hlc_a.merge(&hlc_c);
    out.table(
        &["stamps", "after merging", "the later write"],
        &[
            vec![
                "wall clock (broken twin)".into(),
                format!("{:?}", wall_a.value()),
                "lost".into(),
            ],
            vec![
                "hybrid logical clock".into(),
                format!("{:?}", hlc_a.value()),
                "kept".into(),
            ],
        ],
    );
    out.check(
        "LWW on skewed wall clocks silently loses the later write; HLC stamps keep it",
        wall_a.value() == Some("first") && hlc_a.value() == Some("second"),
        "C's wall stamp is 200 ms before A's; its hybrid stamp is after",
    );
    Ok(())
}
