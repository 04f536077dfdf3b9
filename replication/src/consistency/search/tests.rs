//! The prunings against the plain search: same verdict on every history.

use std::time::Duration;

use proptest::prelude::*;

use super::super::checker::{self, Verdict};
use super::super::history::{Command, Datum, History, Operation, Reply};
use super::super::model::Model;
use super::Pruning;

/// A random register history (not necessarily linearizable): reads,
/// writes and compare-and-sets of small values with overlapping
/// intervals, about a third of the writes and swaps of unknown outcome.
fn register_history() -> impl Strategy<Value = History> {
    let op = (0u8..3, 0i64..3, 0i64..3, 0u8..4, 0u64..60, 1u64..30);
    proptest::collection::vec(op, 1..13).prop_map(|ops| {
        let ops = ops
            .into_iter()
            .enumerate()
            .map(|(id, (kind, a, b, outcome, call, length))| {
                let unknown = outcome == 0;
                let (command, reply) = match kind {
                    0 => (
                        Command::Read,
                        Reply::Value(if a == 0 { Datum::Absent } else { Datum::Int(a) }),
                    ),
                    1 => (Command::Write(Datum::Int(a)), Reply::Ok),
                    _ => (
                        Command::Cas {
                            expected: Datum::Int(a),
                            new: Datum::Int(b),
                        },
                        Reply::Swapped(outcome % 2 == 1),
                    ),
                };
                let unknown = unknown && kind != 0;
                Operation {
                    id,
                    client: id as u64,
                    key: None,
                    command,
                    reply: if unknown { Reply::Unknown } else { reply },
                    call,
                    ret: if unknown { u64::MAX } else { call + length },
                }
            })
            .collect();
        History::new(ops)
    })
}

/// A random one-key string history: gets of values some appends could
/// build, puts and appends, some appends of unknown outcome.
fn kv_history() -> impl Strategy<Value = History> {
    let op = (0u8..3, 0u8..4, 0u8..4, 0u64..60, 1u64..30);
    proptest::collection::vec(op, 1..12).prop_map(|ops| {
        let pieces = ["a", "b", "ab", ""];
        let reads = ["", "a", "ab", "ba"];
        let ops = ops
            .into_iter()
            .enumerate()
            .map(|(id, (kind, v, outcome, call, length))| {
                let (command, reply) = match kind {
                    0 => (Command::Get, Reply::Value(Datum::text(reads[v as usize]))),
                    1 => (Command::Put(Datum::text(pieces[v as usize])), Reply::Ok),
                    _ => (Command::Append(Datum::text(pieces[v as usize])), Reply::Ok),
                };
                let unknown = outcome == 0 && kind != 0;
                Operation {
                    id,
                    client: id as u64,
                    key: Some("k".into()),
                    command,
                    reply: if unknown { Reply::Unknown } else { reply },
                    call,
                    ret: if unknown { u64::MAX } else { call + length },
                }
            })
            .collect();
        History::new(ops)
    })
}

fn verdicts(history: &History, model: Model) -> (Verdict, Verdict) {
    let check = |pruning| {
        checker::check_with(
            history,
            model,
            Some(Duration::from_secs(10)),
            usize::MAX,
            pruning,
        )
        .expect("valid")
        .verdict
    };
    (check(Pruning::Full), check(Pruning::MemoOnly))
}

fn same_verdict(history: &History, model: Model) -> Result<(), TestCaseError> {
    let (pruned, plain) = verdicts(history, model);
    let holds = |v: &Verdict| matches!(v, Verdict::Linearizable { .. });
    let settled = !matches!(plain, Verdict::Unknown { .. });
    prop_assert!(settled, "the plain search settles it");
    prop_assert_eq!(
        holds(&pruned),
        holds(&plain),
        "pruned {:?}, plain {:?}",
        pruned,
        plain
    );
    if let Verdict::Linearizable { witness } = pruned {
        super::super::tests::assert_valid_witness(
            history,
            model,
            witness.values().flatten().copied().collect(),
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Episode 19. Skipping optional operations that change nothing, and
    /// placing identical ones in call order, never changes a verdict on
    /// compare-and-set registers with unknown outcomes.
    #[test]
    fn consistency_pruned_search_agrees_on_registers(history in register_history()) {
        same_verdict(&history, Model::EtcdRegister)?;
    }

    /// The same on strings built by appends, some of unknown outcome.
    #[test]
    fn consistency_pruned_search_agrees_on_appends(history in kv_history()) {
        same_verdict(&history, Model::Kv)?;
    }
}
