//! The `crdts` crate as an oracle: the same random runs driven into our
//! types and theirs must read the same at every step.
//!
//! Two known quirks of `crdts` 7.3 shape these runs. Its `LWWReg` keeps
//! the first of two writes with equal markers (replicas never converge),
//! so LWW runs draw globally unique markers, where both registers agree.
//! And `Orswot` defers a remove whose context it has not seen, which a
//! state-based run with local removes never triggers.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crdts::{CmRDT, CvRDT};
use proptest::prelude::*;

use super::tests::{REPLICAS, Step, steps};
use super::*;
use crate::clock::ReplicaId;
use crate::clock::vector::{Causality, VectorClock};

fn actor(replica: usize) -> u64 {
    replica as u64 + 1
}

fn id(replica: usize) -> ReplicaId {
    ReplicaId(actor(replica))
}

/// Runs `steps` on both sides and compares `read`s after every step.
fn compare<
    Ours: Crdt + Default,
    Theirs: CvRDT + Clone + Default,
    V: PartialEq + std::fmt::Debug,
>(
    steps: &[Step],
    mut mutate: impl FnMut(&mut Ours, &mut Theirs, usize, u8),
    read_ours: impl Fn(&Ours) -> V,
    read_theirs: impl Fn(&Theirs) -> V,
) -> Result<(), TestCaseError> {
    let mut ours = vec![Ours::default(); REPLICAS];
    let mut theirs = vec![Theirs::default(); REPLICAS];
    for (at, step) in steps.iter().enumerate() {
        match *step {
            Step::Mutate { replica, choice } => {
                mutate(&mut ours[replica], &mut theirs[replica], replica, choice);
            }
            Step::Merge { from, into } => {
                let state = ours[from].clone();
                ours[into].merge(&state);
                let state = theirs[from].clone();
                theirs[into].merge(state);
            }
        }
        for replica in 0..REPLICAS {
            prop_assert_eq!(
                read_ours(&ours[replica]),
                read_theirs(&theirs[replica]),
                "replica {} after step {}",
                replica,
                at
            );
        }
    }
    Ok(())
}

proptest! {
    /// Episode 21. G-Counter against `crdts::GCounter`.
    #[test]
    fn crdt_oracle_gcounter_agrees_with_crdts(steps in steps()) {
        compare(
            &steps,
            |ours: &mut GCounter, theirs: &mut crdts::GCounter<u64>, replica, choice| {
                let amount = u64::from(choice % 5);
                ours.increment(id(replica), amount).expect("small increments");
                theirs.apply(theirs.inc_many(actor(replica), amount));
            },
            |ours| ours.value().to_string(),
            |theirs| theirs.read().to_string(),
        )?;
    }

    /// Episode 21. PN-Counter against `crdts::PNCounter`.
    #[test]
    fn crdt_oracle_pncounter_agrees_with_crdts(steps in steps()) {
        compare(
            &steps,
            |ours: &mut PnCounter, theirs: &mut crdts::PNCounter<u64>, replica, choice| {
                let amount = i64::from(choice % 7) - 3;
                ours.add(id(replica), amount).expect("small amounts");
                let op = if amount >= 0 {
                    theirs.inc_many(actor(replica), amount.unsigned_abs())
                } else {
                    theirs.dec_many(actor(replica), amount.unsigned_abs())
                };
                theirs.apply(op);
            },
            |ours| ours.value().to_string(),
            |theirs| theirs.read().to_string(),
        )?;
    }

    /// Episode 21. The optimized OR-Set against `crdts::Orswot`.
    #[test]
    fn crdt_oracle_orset_agrees_with_crdts_orswot(steps in steps()) {
        compare(
            &steps,
            |ours: &mut OrSet<u8>, theirs: &mut crdts::Orswot<u8, u64>, replica, choice| {
                let element = choice % 8;
                if choice & 0x80 == 0 {
                    ours.insert(id(replica), element);
                    let context = theirs.read_ctx().derive_add_ctx(actor(replica));
                    theirs.apply(theirs.add(element, context));
                } else {
                    ours.remove(&element);
                    let context = theirs.contains(&element).derive_rm_ctx();
                    theirs.apply(theirs.rm(element, context));
                }
            },
            |ours| ours.value(),
            |theirs| theirs.read().val.into_iter().collect::<BTreeSet<u8>>(),
        )?;
    }

    /// Episode 21. MV register against `crdts::MVReg`: the same siblings.
    #[test]
    fn crdt_oracle_mvregister_agrees_with_crdts(steps in steps()) {
        compare(
            &steps,
            |ours: &mut MvRegister<u8>, theirs: &mut crdts::MVReg<u8, u64>, replica, choice| {
                ours.write(id(replica), choice);
                let context = theirs.read_ctx().derive_add_ctx(actor(replica));
                theirs.apply(theirs.write(choice, context));
            },
            |ours| ours.value(),
            |theirs| {
                let mut values = theirs.read().val;
                values.sort();
                values
            },
        )?;
    }

    /// Episode 21. LWW register against `crdts::LWWReg`, markers unique.
    #[test]
    fn crdt_oracle_lww_agrees_with_crdts(
        steps in steps(),
        markers in Just((1..=60u64).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut next = markers.into_iter();
        compare(
            &steps,
            |ours: &mut LwwRegister<u8, u64>, theirs: &mut crdts::LWWReg<u8, u64>, replica, choice| {
                let marker = next.next().expect("one marker per step");
                ours.set(id(replica), marker, choice);
                theirs.update(choice, marker);
            },
            |ours| ours.value().unwrap_or_default(),
            |theirs| theirs.val,
        )?;
    }

    /// Episode 20. Vector clocks against `crdts::VClock`: the same
    /// entries, and the same answer to "before, after, equal or
    /// concurrent" for every pair of replicas at every step.
    #[test]
    fn crdt_oracle_vector_clock_agrees_with_crdts(steps in steps()) {
        let mut ours = vec![VectorClock::new(); REPLICAS];
        let mut theirs = vec![crdts::VClock::<u64>::new(); REPLICAS];
        for step in &steps {
            match *step {
                Step::Mutate { replica, .. } => {
                    ours[replica].tick(id(replica));
                    let dot = theirs[replica].inc(actor(replica));
                    theirs[replica].apply(dot);
                }
                Step::Merge { from, into } => {
                    let state = ours[from].clone();
                    ours[into].merge(&state);
                    let state = theirs[from].clone();
                    theirs[into].merge(state);
                }
            }
            for a in 0..REPLICAS {
                for b in 0..REPLICAS {
                    let expected = match theirs[a].partial_cmp(&theirs[b]) {
                        Some(Ordering::Less) => Causality::Before,
                        Some(Ordering::Greater) => Causality::After,
                        Some(Ordering::Equal) => Causality::Equal,
                        None => Causality::Concurrent,
                    };
                    prop_assert_eq!(ours[a].compare(&ours[b]), expected);
                }
                for replica in 0..REPLICAS {
                    prop_assert_eq!(ours[a].get(id(replica)), theirs[a].get(&actor(replica)));
                }
            }
        }
    }
}
