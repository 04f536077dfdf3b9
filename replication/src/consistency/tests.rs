//! The checker against histories with known verdicts.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// The Porcupine histories vendored in `replication/conformance`.
pub(crate) fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/linearizability")
}

/// Episode 19. Every conformance history (Porcupine's test data: Knossos
/// key-value histories and Jepsen's etcd histories) gets its documented
/// verdict, and parses to exactly its documented number of operations.
#[test]
fn consistency_conformance_histories_get_their_documented_verdicts() {
    let dir = conformance_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap_or_else(|err| {
        panic!(
            "the vendored conformance data is missing ({}): {err}",
            dir.display()
        )
    });
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest is JSON");
    let files = manifest["files"].as_array().expect("a list of files");
    assert!(files.len() >= 50, "the manifest lists every file");
    for file in files {
        let name = file["name"].as_str().expect("name");
        let text = std::fs::read_to_string(dir.join(file["file"].as_str().expect("file")))
            .expect("readable");
        let history = History::from_jsonl(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            history.operations.len() as u64,
            file["ops"].as_u64().expect("ops"),
            "{name}: operation count"
        );
        let model: Model = match file["model"].as_str().expect("model") {
            "etcd_register" => Model::EtcdRegister,
            other => other.parse().expect("known model"),
        };
        assert_eq!(
            Model::detect(&history)
                .map(|m| m == model || (m == Model::Register && model == Model::EtcdRegister)),
            Ok(true),
            "{name}: detected model"
        );
        let result = check(&history, model, Some(Duration::from_secs(60))).expect("valid history");
        let expected = file["linearizable"].as_bool().expect("verdict");
        match (&result.verdict, expected) {
            (Verdict::Linearizable { .. }, true) | (Verdict::NotLinearizable(_), false) => {}
            (verdict, _) => panic!("{name}: expected linearizable = {expected}, got {verdict:?}"),
        }
    }
}

fn write(id: usize, client: u64, value: i64, call: u64, ret: u64) -> Operation {
    Operation {
        id,
        client,
        key: None,
        command: Command::Write(Datum::Int(value)),
        reply: Reply::Ok,
        call,
        ret,
    }
}

fn read(id: usize, client: u64, value: Option<i64>, call: u64, ret: u64) -> Operation {
    let seen = value.map_or(Datum::Absent, Datum::Int);
    Operation {
        id,
        client,
        key: None,
        command: Command::Read,
        reply: Reply::Value(seen),
        call,
        ret,
    }
}

fn unknown_write(id: usize, client: u64, value: i64, call: u64) -> Operation {
    Operation {
        id,
        client,
        key: None,
        command: Command::Write(Datum::Int(value)),
        reply: Reply::Unknown,
        call,
        ret: u64::MAX,
    }
}

fn verdict(ops: Vec<Operation>, model: Model) -> Verdict {
    let history = History::new(ops);
    let result = check(&history, model, Some(Duration::from_secs(10))).expect("valid history");
    if let Verdict::Linearizable { witness } = &result.verdict {
        assert_valid_witness(
            &history,
            model,
            witness.values().flatten().copied().collect(),
        );
    }
    result.verdict
}

/// A witness must replay legally and respect real time.
pub(super) fn assert_valid_witness(history: &History, model: Model, order: Vec<usize>) {
    let mut states: std::collections::BTreeMap<Option<std::sync::Arc<str>>, Datum> =
        Default::default();
    for &id in &order {
        let op = &history.operations[id];
        let key = if model == Model::EtcdRegister {
            None
        } else {
            op.key.clone()
        };
        let state = states.entry(key).or_insert_with(|| model.init());
        *state = model
            .step(state, op)
            .unwrap_or_else(|| panic!("witness step #{id} is illegal"));
    }
    for (i, &a) in order.iter().enumerate() {
        for &b in &order[i + 1..] {
            let (a, b) = (&history.operations[a], &history.operations[b]);
            let same_key = model == Model::EtcdRegister || a.key == b.key;
            assert!(
                !(same_key && b.ret < a.call),
                "witness puts #{} before #{}, which returned before it was called",
                a.id,
                b.id
            );
        }
    }
    let known = history
        .operations
        .iter()
        .filter(|op| op.reply != Reply::Unknown)
        .count();
    assert!(
        order.len() >= known,
        "every completed operation is in the witness"
    );
}

fn linearizable(v: &Verdict) -> bool {
    matches!(v, Verdict::Linearizable { .. })
}

#[test]
fn consistency_overlapping_read_may_see_either_value() {
    assert!(linearizable(&verdict(
        vec![write(0, 1, 1, 0, 10), read(1, 2, Some(1), 5, 15)],
        Model::Register
    )));
    assert!(linearizable(&verdict(
        vec![write(0, 1, 1, 0, 10), read(1, 2, None, 5, 15)],
        Model::Register
    )));
}

#[test]
fn consistency_stale_read_is_not_linearizable() {
    let ops = vec![
        write(0, 1, 1, 0, 1),
        write(1, 1, 2, 2, 3),
        read(2, 2, Some(1), 4, 5),
    ];
    let Verdict::NotLinearizable(violation) = verdict(ops, Model::Register) else {
        panic!("a read of an overwritten value after the overwrite completed");
    };
    assert_eq!(violation.longest_prefix, vec![0, 1]);
    assert_eq!(violation.state, Datum::Int(2));
    assert_eq!(violation.blocked.len(), 1);
    assert!(
        violation.blocked[0].1.contains("read 1"),
        "{:?}",
        violation.blocked
    );
}

/// Two clients both see 0 and both swap 0 → 1 successfully: one update
/// was lost, and no order explains two successful swaps.
#[test]
fn consistency_lost_update_is_not_linearizable() {
    let cas = |id, client, call, ret| Operation {
        id,
        client,
        key: None,
        command: Command::Cas {
            expected: Datum::Int(0),
            new: Datum::Int(1),
        },
        reply: Reply::Swapped(true),
        call,
        ret,
    };
    let ops = vec![
        write(0, 1, 0, 0, 1),
        cas(1, 1, 2, 6),
        cas(2, 2, 3, 7),
        read(3, 3, Some(1), 8, 9),
    ];
    assert!(matches!(
        verdict(ops, Model::EtcdRegister),
        Verdict::NotLinearizable(_)
    ));
}

/// An unknown write that a later read observed must be assumed applied.
#[test]
fn consistency_unknown_write_may_have_happened() {
    assert!(linearizable(&verdict(
        vec![unknown_write(0, 1, 1, 0), read(1, 2, Some(1), 5, 6)],
        Model::Register
    )));
}

/// …and one nobody observed may be assumed never to have happened.
#[test]
fn consistency_unknown_write_may_never_have_happened() {
    let ops = vec![
        unknown_write(0, 1, 1, 0),
        read(1, 2, None, 5, 6),
        read(2, 2, None, 7, 8),
    ];
    assert!(linearizable(&verdict(ops, Model::Register)));
}

/// But it cannot happen and then un-happen.
#[test]
fn consistency_unknown_write_cannot_be_undone() {
    let ops = vec![
        unknown_write(0, 1, 1, 0),
        read(1, 2, Some(1), 2, 3),
        read(2, 2, None, 4, 5),
    ];
    assert!(matches!(
        verdict(ops, Model::Register),
        Verdict::NotLinearizable(_)
    ));
}

/// P-compositionality: a violation on one key is found however many other
/// keys are fine, and reported for that key.
#[test]
fn consistency_reports_the_failing_key() {
    let kv = |id, key: &str, command, reply, call, ret| Operation {
        id,
        client: id as u64,
        key: Some(key.into()),
        command,
        reply,
        call,
        ret,
    };
    let mut ops = Vec::new();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        ops.push(kv(
            ops.len(),
            key,
            Command::Put(Datum::text("v")),
            Reply::Ok,
            10 * i as u64,
            10 * i as u64 + 1,
        ));
    }
    ops.push(kv(
        ops.len(),
        "b",
        Command::Get,
        Reply::Value(Datum::text("")),
        100,
        101,
    ));
    let Verdict::NotLinearizable(violation) = verdict(ops, Model::Kv) else {
        panic!("b read empty after its put")
    };
    assert_eq!(violation.key.as_deref(), Some("b"));
}

/// The budget: a history whose search space is astronomically large comes
/// back Unknown — promptly, and never as a pass.
#[test]
fn consistency_budget_expiry_is_unknown_never_a_pass() {
    let mut ops: Vec<Operation> = (0..40)
        .map(|i| write(i, i as u64, i as i64, 0, 1_000))
        .collect();
    ops.push(read(40, 99, Some(999), 2_000, 2_001));
    let history = History::new(ops);
    let budget = Duration::from_millis(200);
    let result = check(&history, Model::Register, Some(budget)).expect("valid");
    assert!(
        matches!(result.verdict, Verdict::Unknown { .. }),
        "{:?}",
        result.verdict
    );
    assert!(
        result.elapsed < budget * 5,
        "gave up promptly: {:?}",
        result.elapsed
    );
    assert!(result.explain(&history).contains("not a pass"));
}

/// A memo that fills up ends the search with Unknown: never a verdict
/// reached by comparing against a truncated (wrong) memo entry.
#[test]
fn consistency_full_memo_is_unknown_never_a_verdict() {
    let mut ops: Vec<Operation> = (0..40)
        .map(|i| write(i, i as u64, i as i64, 0, 1_000))
        .collect();
    ops.push(read(40, 99, Some(999), 2_000, 2_001));
    let history = History::new(ops);
    let result = checker::check_within(&history, Model::Register, None, 10_000).expect("valid");
    assert!(
        matches!(result.verdict, Verdict::Unknown { .. }),
        "{:?}",
        result.verdict
    );
}

/// Operations are named by their ids, which need not be their positions:
/// a violation in a history numbered from 100 quotes 100 and up.
#[test]
fn consistency_violations_quote_operation_ids() {
    let mut ops = vec![
        write(0, 1, 1, 0, 1),
        write(1, 1, 2, 2, 3),
        read(2, 2, Some(1), 4, 5),
    ];
    for op in &mut ops {
        op.id += 100;
    }
    let history = History::new(ops);
    let result = check(&history, Model::Register, None).expect("valid");
    let Verdict::NotLinearizable(violation) = &result.verdict else {
        panic!("a stale read: {:?}", result.verdict)
    };
    assert_eq!(violation.operations, [100, 101, 102]);
    assert!(violation.blocked.iter().any(|(id, _)| *id == 102));
    assert!(result.explain(&history).contains("#102 client 2"));
    let mut duplicated = history.clone();
    duplicated.operations[2].id = 100;
    assert_eq!(
        check(&duplicated, Model::Register, None),
        Err(crate::Error::DuplicateOperationId { id: 100 })
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A random sequential key-value execution: (key, command) pairs; the
    /// replies are computed by running the model.
    fn execution() -> impl Strategy<Value = Vec<(u8, u8)>> {
        proptest::collection::vec((0u8..3, 0u8..3), 1..40)
    }

    /// Builds a history whose operation i takes effect at time 100·i, with
    /// its interval jittered around that point (from `jitter`); every
    /// history built this way has a valid linearization: effect order.
    fn history(execution: &[(u8, u8)], jitter: &[(u8, u8)]) -> History {
        let mut state = std::collections::BTreeMap::<u8, String>::new();
        let ops = execution
            .iter()
            .enumerate()
            .map(|(i, &(key, kind))| {
                let value = state.entry(key).or_default();
                let (command, reply) = match kind {
                    0 => (Command::Get, Reply::Value(Datum::text(value))),
                    1 => {
                        *value = format!("p{i}");
                        (Command::Put(Datum::text(value)), Reply::Ok)
                    }
                    _ => {
                        value.push_str(&format!("a{i}"));
                        (Command::Append(Datum::text(&format!("a{i}"))), Reply::Ok)
                    }
                };
                let point = 100 * i as u64 + 2_000;
                let (before, after) = jitter.get(i).copied().unwrap_or((0, 0));
                Operation {
                    id: i,
                    client: i as u64,
                    key: Some(format!("k{key}").into()),
                    command,
                    reply,
                    call: point - u64::from(before) * 4,
                    ret: point + u64::from(after) * 4 + 1,
                }
            })
            .collect();
        History::new(ops)
    }

    proptest! {
        #[test]
        fn consistency_jittered_sequential_histories_are_linearizable(
            execution in execution(),
            jitter in proptest::collection::vec((any::<u8>(), any::<u8>()), 40),
        ) {
            let history = history(&execution, &jitter);
            let result = check(&history, Model::Kv, Some(Duration::from_secs(10))).expect("valid");
            let Verdict::Linearizable { witness } = &result.verdict else {
                return Err(TestCaseError::fail(format!("{:?}", result.verdict)));
            };
            assert_valid_witness(&history, Model::Kv, witness.values().flatten().copied().collect());
        }

        #[test]
        fn consistency_an_injected_stale_read_is_caught(
            execution in execution(),
            pick in any::<prop::sample::Index>(),
        ) {
            // No jitter: operations do not overlap, so the order is forced.
            let mut history = history(&execution, &[]);
            // Find a get whose key had another value earlier; make it
            // return that older value.
            let mut seen: std::collections::BTreeMap<Option<std::sync::Arc<str>>, Vec<Datum>> = Default::default();
            let mut candidates = Vec::new();
            for op in &history.operations {
                let values = seen.entry(op.key.clone()).or_insert_with(|| vec![Datum::text("")]);
                if let (Command::Get, Reply::Value(current)) = (&op.command, &op.reply)
                    && let Some(older) = values.iter().find(|v| *v != current) {
                        candidates.push((op.id, older.clone()));
                    }
                if let Some(after) = Model::Kv.step(values.last().expect("initial value"), op)
                    && values.last() != Some(&after) {
                        values.push(after);
                    }
            }
            prop_assume!(!candidates.is_empty());
            let (id, older) = candidates[pick.index(candidates.len())].clone();
            history.operations[id].reply = Reply::Value(older);
            let verdict = check(&history, Model::Kv, Some(Duration::from_secs(10))).expect("valid").verdict;
            prop_assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{verdict:?}");
        }
    }
}

/// The timeline page names the verdict and highlights the failing ops.
#[test]
fn consistency_timeline_highlights_the_violation() {
    let history = History::new(vec![
        write(0, 1, 1, 0, 1),
        write(1, 1, 2, 2, 3),
        read(2, 2, Some(1), 4, 5),
        unknown_write(3, 3, 7, 1),
    ]);
    let result = check(&history, Model::Register, None).expect("valid");
    let page = timeline::html(&history, Some(&result), "stale <read>");
    assert!(page.starts_with("<!doctype html>") && page.contains("</svg>"));
    assert!(page.contains("not linearizable"));
    assert!(page.contains("#e53935"), "the blocked read is drawn in red");
    assert!(page.contains("stale &lt;read&gt;"), "titles are escaped");
    assert!(
        page.contains("url(#unknown)"),
        "the unknown write fades out"
    );
}
