//! Lattice laws for every CRDT, property-tested; the broken twins caught.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::lww::{HlcLww, NaiveWallClockLww};
use super::*;
use crate::clock::ReplicaId;
use crate::clock::hlc::HybridClock;
use crate::clock::physical::{ManualClock, PhysicalClock};

pub(super) const REPLICAS: usize = 3;

/// One step of a random run over three replicas.
#[derive(Clone, Debug)]
pub(super) enum Step {
    Mutate { replica: usize, choice: u8 },
    Merge { from: usize, into: usize },
}

pub(super) fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0..REPLICAS, any::<u8>()).prop_map(|(replica, choice)| Step::Mutate { replica, choice }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, into)| Step::Merge { from, into }),
    ];
    proptest::collection::vec(step, 0..40)
}

/// Runs `steps`, checking at every mutation that the delta joined into
/// the old state gives the new one, and that the new state is an
/// inflation of the old. Returns the replicas' final states.
fn drive<C: Crdt + Default>(
    steps: &[Step],
    mutate: impl Fn(&mut C, ReplicaId, u8) -> C,
) -> Result<Vec<C>, TestCaseError> {
    let mut replicas = vec![C::default(); REPLICAS];
    for step in steps {
        match *step {
            Step::Mutate { replica, choice } => {
                let before = replicas[replica].clone();
                let delta = mutate(
                    &mut replicas[replica],
                    ReplicaId(replica as u64 + 1),
                    choice,
                );
                let mut joined = before.clone();
                joined.merge(&delta);
                prop_assert_eq!(&joined, &replicas[replica], "old ⊔ delta = new");
                let mut inflated = before;
                inflated.merge(&replicas[replica]);
                prop_assert_eq!(&inflated, &replicas[replica], "old ⊑ new");
            }
            Step::Merge { from, into } => {
                let other = replicas[from].clone();
                replicas[into].merge(&other);
            }
        }
    }
    Ok(replicas)
}

fn join<C: Crdt>(a: &C, b: &C) -> C {
    let mut joined = a.clone();
    joined.merge(b);
    joined
}

/// Commutative, associative, idempotent — and after every replica has
/// merged every other, all agree.
fn check_laws<C: Crdt>(states: &[C]) -> Result<(), TestCaseError>
where
    C::Value: PartialEq + std::fmt::Debug,
{
    let (a, b, c) = (&states[0], &states[1], &states[2]);
    prop_assert_eq!(join(a, b), join(b, a), "commutative");
    prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)), "associative");
    prop_assert_eq!(&join(a, a), a, "idempotent");
    let everything = join(&join(a, b), c);
    for state in states {
        let converged = join(state, &everything);
        prop_assert_eq!(converged.value(), everything.value(), "converged");
    }
    Ok(())
}

fn element(choice: u8) -> u8 {
    choice % 8
}

/// The two OR-Sets, driven by the same choices: the high bit picks
/// insert or remove.
trait ChosenSetOperation: Sized {
    fn choose(&mut self, replica: ReplicaId, choice: u8) -> Self;
}

impl ChosenSetOperation for OrSet<u8> {
    fn choose(&mut self, replica: ReplicaId, choice: u8) -> Self {
        if choice & 0x80 == 0 {
            self.insert(replica, element(choice))
        } else {
            self.remove(&element(choice))
        }
    }
}

impl ChosenSetOperation for NaiveOrSet<u8> {
    fn choose(&mut self, replica: ReplicaId, choice: u8) -> Self {
        if choice & 0x80 == 0 {
            self.insert(replica, element(choice))
        } else {
            self.remove(&element(choice))
        }
    }
}

proptest! {
    /// Episode 21. G-Counter: per-replica maximum is a lattice join.
    #[test]
    fn crdt_gcounter_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |counter: &mut GCounter, replica, choice| {
            counter.increment(replica, u64::from(choice % 5)).expect("small increments never overflow")
        })?;
        check_laws(&states)?;
    }

    /// Episode 21. PN-Counter: two G-Counters, increments and decrements.
    #[test]
    fn crdt_pncounter_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |counter: &mut PnCounter, replica, choice| {
            counter.add(replica, i64::from(choice % 7) - 3).expect("small amounts never overflow")
        })?;
        check_laws(&states)?;
    }

    /// Episode 21. G-Set: union.
    #[test]
    fn crdt_gset_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |set: &mut GSet<u8>, _, choice| set.insert(element(choice)))?;
        check_laws(&states)?;
    }

    /// Episode 21. 2P-Set: once removed, never back.
    #[test]
    fn crdt_two_phase_set_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |set: &mut TwoPhaseSet<u8>, _, choice| {
            if choice & 0x80 == 0 {
                set.insert(element(choice))
            } else {
                set.remove(&element(choice)).unwrap_or_default()
            }
        })?;
        check_laws(&states)?;
    }

    /// Episode 21. LWW register: a total order on writes makes max a join.
    #[test]
    fn crdt_lww_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |register: &mut LwwRegister<u8, u8>, replica, choice| {
            register.set(replica, choice % 4, element(choice))
        })?;
        check_laws(&states)?;
    }

    /// Episode 21. MV register: dotted siblings.
    #[test]
    fn crdt_mvregister_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |register: &mut MvRegister<u8>, replica, choice| {
            register.write(replica, element(choice))
        })?;
        check_laws(&states)?;
    }

    /// Episode 21. OR-Set without tombstones: dots and a causal context.
    #[test]
    fn crdt_orset_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, OrSet::<u8>::choose)?;
        check_laws(&states)?;
    }

    /// Episode 21. The tombstone OR-Set is correct too — just heavy.
    #[test]
    fn crdt_naive_orset_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, NaiveOrSet::<u8>::choose)?;
        check_laws(&states)?;
    }

    /// Episode 21. The two OR-Sets answer the same for the same run.
    #[test]
    fn crdt_orset_and_naive_orset_agree(steps in steps()) {
        let optimized = drive(&steps, OrSet::<u8>::choose)?;
        let naive = drive(&steps, NaiveOrSet::<u8>::choose)?;
        for (optimized, naive) in optimized.iter().zip(&naive) {
            prop_assert_eq!(optimized.value(), naive.value());
        }
    }

    /// Episode 21. A map of PN-Counters: composition keeps the laws.
    #[test]
    fn crdt_map_obeys_the_lattice_laws(steps in steps()) {
        let states = drive(&steps, |map: &mut CrdtMap<u8, PnCounter>, replica, choice| {
            map.update(choice % 3, |counter| counter.add(replica, i64::from(choice % 5) - 2))
                .expect("small amounts never overflow")
        })?;
        check_laws(&states)?;
    }
}

/// Episode 21. The sum-merged counter: one increment of 5, its state
/// delivered twice (a gossip retry), reads 10 — and merge fails
/// idempotence. The G-Counter, given the same redelivery, reads 5.
#[test]
fn crdt_naive_counter_double_counts_on_redelivery() {
    let a = ReplicaId(1);
    let mut naive_a = NaiveSumCounter::new();
    let delta = naive_a.increment(a, 5);
    let mut naive_b = NaiveSumCounter::new();
    naive_b.merge(&delta);
    naive_b.merge(&delta);
    assert_eq!(naive_b.value(), 10, "redelivery counted twice");
    assert_ne!(join(&naive_a, &naive_a), naive_a, "merge is not idempotent");

    let mut counter_a = GCounter::new();
    let delta = counter_a.increment(a, 5).expect("no overflow");
    let mut counter_b = GCounter::new();
    counter_b.merge(&delta);
    counter_b.merge(&delta);
    counter_b.merge(&counter_a);
    assert_eq!(counter_b.value(), 5);
}

/// Episode 22. Replica B's wall clock runs 200 ms slow. B reads A's
/// value, then writes a new one 100 ms later (real time). With wall-clock
/// stamps, B's write is stamped before A's and merge silently keeps A's:
/// the later write is lost. With hybrid clocks, reading A's state
/// advanced B's clock past A's stamp, and B's write wins.
#[test]
fn crdt_lww_on_skewed_wall_clocks_loses_the_later_write() {
    let (a, b) = (ReplicaId(1), ReplicaId(2));
    let ms = 1_000_000;
    let clock_a = ManualClock::new(1_000 * ms);
    let clock_b = ManualClock::new(800 * ms);

    // The broken twin.
    let mut wall_a: NaiveWallClockLww<&str> = LwwRegister::new();
    wall_a.set(a, clock_a.now_ns(), "first");
    let mut wall_b = wall_a.clone();
    clock_b.advance(100 * ms);
    wall_b.set(b, clock_b.now_ns(), "second, after reading first");
    wall_a.merge(&wall_b);
    assert_eq!(wall_a.value(), Some("first"), "the later write is lost");
    assert_eq!(
        wall_b.value(),
        Some("first"),
        "even on the replica that wrote it"
    );

    // Hybrid logical clocks.
    let clock_b = ManualClock::new(800 * ms);
    let mut hlc_a = HybridClock::new(
        ManualClock::new(1_000 * ms),
        std::time::Duration::from_secs(1),
    );
    let mut hlc_b = HybridClock::new(clock_b.clone(), std::time::Duration::from_secs(1));
    let mut register_a: HlcLww<&str> = LwwRegister::new();
    let stamp = hlc_a.now().expect("counter room");
    register_a.set(a, stamp, "first");
    let mut register_b = register_a.clone();
    hlc_b.update(stamp).expect("within the offset");
    clock_b.advance(100 * ms);
    let stamp = hlc_b.now().expect("counter room");
    register_b.set(b, stamp, "second, after reading first");
    register_a.merge(&register_b);
    assert_eq!(register_a.value(), Some("second, after reading first"));
    assert_eq!(register_a.value(), register_b.value());
}

/// Episode 21's memory overhead. 10,000 add/remove cycles on two
/// replicas that merge every 100 cycles: the tombstone OR-Set holds a
/// tag and a tombstone for every add ever made; the optimized set holds
/// its live elements and one counter per replica.
#[test]
fn crdt_orset_memory_stays_flat_where_tombstones_grow() {
    let (a, b) = (ReplicaId(1), ReplicaId(2));
    let (mut naive_a, mut naive_b) = (NaiveOrSet::new(), NaiveOrSet::new());
    let (mut optimized_a, mut optimized_b) = (OrSet::new(), OrSet::new());
    for cycle in 0..10_000u32 {
        let (replica, naive, optimized) = if cycle % 2 == 0 {
            (a, &mut naive_a, &mut optimized_a)
        } else {
            (b, &mut naive_b, &mut optimized_b)
        };
        let item = cycle % 50;
        naive.insert(replica, item);
        naive.remove(&item);
        optimized.insert(replica, item);
        optimized.remove(&item);
        if cycle % 100 == 99 {
            naive_a.merge(&naive_b);
            naive_b.merge(&naive_a);
            optimized_a.merge(&optimized_b);
            optimized_b.merge(&optimized_a);
        }
    }
    naive_a.insert(a, 7);
    optimized_a.insert(a, 7);
    assert_eq!(naive_a.value(), BTreeSet::from([7]));
    assert_eq!(optimized_a.value(), BTreeSet::from([7]));
    assert_eq!(naive_a.tombstones(), 10_000);
    assert_eq!(naive_a.stored_entries(), 10_001 + 10_000 + 2);
    // One dot for 7, one counter for each replica.
    assert_eq!(optimized_a.stored_entries(), 3);
}
