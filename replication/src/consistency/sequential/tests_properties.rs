//! The checker against a brute-force one on random small histories, and
//! against every linearizable conformance history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::tests::{assert_witness, history};
use super::*;
use crate::consistency::history::{Command, Operation, Reply};
use crate::consistency::tests::conformance_dir;

/// Tries every order that keeps program order — each unknown-outcome
/// operation placed anywhere after its client's earlier completed
/// operations, or nowhere — and replays it. No memo, no shortcuts.
fn brute_force(history: &History, model: Model) -> bool {
    let mut chains: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
    for op in &history.operations {
        chains.entry(op.client).or_default().push(op);
    }
    let mut completed: Vec<Vec<&Operation>> = Vec::new();
    let mut unknown: Vec<(usize, usize, &Operation)> = Vec::new();
    for ops in chains.values_mut() {
        ops.sort_by_key(|op| op.call);
        let client = completed.len();
        let before = |op: &Operation| {
            ops.iter()
                .filter(|p| p.reply != Reply::Unknown && p.ret <= op.call)
                .count()
        };
        unknown.extend(
            ops.iter()
                .filter(|op| op.reply == Reply::Unknown)
                .map(|op| (client, before(op), *op)),
        );
        completed.push(
            ops.iter()
                .filter(|op| op.reply != Reply::Unknown)
                .copied()
                .collect(),
        );
    }
    let key = |op: &Operation| {
        if model == Model::EtcdRegister {
            None
        } else {
            op.key.clone()
        }
    };
    fn go(
        model: Model,
        key: &dyn Fn(&Operation) -> Option<Arc<str>>,
        completed: &[Vec<&Operation>],
        unknown: &[(usize, usize, &Operation)],
        progress: &mut Vec<usize>,
        used: &mut Vec<bool>,
        states: &BTreeMap<Option<Arc<str>>, Datum>,
    ) -> bool {
        if (0..completed.len()).all(|c| progress[c] == completed[c].len()) {
            return true;
        }
        let step = |op: &Operation| {
            let before = states
                .get(&key(op))
                .cloned()
                .unwrap_or_else(|| model.init());
            model.step(&before, op).map(|after| {
                let mut next = states.clone();
                next.insert(key(op), after);
                next
            })
        };
        for c in 0..completed.len() {
            if let Some(op) = completed[c].get(progress[c])
                && let Some(next) = step(op)
            {
                progress[c] += 1;
                let found = go(model, key, completed, unknown, progress, used, &next);
                progress[c] -= 1;
                if found {
                    return true;
                }
            }
        }
        for (u, &(client, after, op)) in unknown.iter().enumerate() {
            if !used[u]
                && progress[client] >= after
                && let Some(next) = step(op)
            {
                used[u] = true;
                let found = go(model, key, completed, unknown, progress, used, &next);
                used[u] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(
        model,
        &key,
        &completed,
        &unknown,
        &mut vec![0; completed.len()],
        &mut vec![false; unknown.len()],
        &BTreeMap::new(),
    )
}

/// A random execution, run in the listed order (which keeps program
/// order): (client, kind, key, value, corrupt). Kinds: write, write whose
/// outcome is lost (applied or not), read, compare-and-set (etcd only).
/// A read is corrupted — given a random value — when `corrupt` is 0, so
/// about a quarter of reads lie and many histories are not sequential.
fn random_history(etcd: bool, plan: &[(u64, u8, u8, u8, u8)]) -> (History, bool) {
    let model = if etcd {
        Model::EtcdRegister
    } else {
        Model::Register
    };
    let mut states: BTreeMap<u8, Datum> = BTreeMap::new();
    let mut honest = true;
    let datum = |v: u8| {
        if v == 3 {
            Datum::Absent
        } else {
            Datum::Int(i64::from(v))
        }
    };
    let ops: Vec<(u64, &str, Command, Reply)> = plan
        .iter()
        .map(|&(client, kind, key, value, corrupt)| {
            let key = if etcd { 0 } else { key };
            let state = states.entry(key).or_insert_with(|| model.init());
            let (command, reply) = match kind {
                0 | 1 => {
                    *state = datum(value % 3);
                    (Command::Write(datum(value % 3)), Reply::Ok)
                }
                2 => {
                    if corrupt % 2 == 0 {
                        *state = datum(value % 3);
                    }
                    (Command::Write(datum(value % 3)), Reply::Unknown)
                }
                4 if etcd => {
                    let (expected, new) = (datum(value % 4), datum(corrupt % 3));
                    let swapped = *state == expected;
                    if swapped {
                        *state = new.clone();
                    }
                    (Command::Cas { expected, new }, Reply::Swapped(swapped))
                }
                _ if corrupt % 4 == 0 => {
                    honest &= datum(value % 4) == *state;
                    (Command::Read, Reply::Value(datum(value % 4)))
                }
                _ => (Command::Read, Reply::Value(state.clone())),
            };
            let key = match (etcd, key) {
                (true, _) => "",
                (false, 0) => "x",
                (false, _) => "y",
            };
            (client, key, command, reply)
        })
        .collect();
    (history(&ops), honest)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Verdicts agree with the brute force on every small history, and
    /// an execution no read lied about is always sequential.
    #[test]
    fn sequential_agrees_with_brute_force_on_small_histories(
        etcd in any::<bool>(),
        plan in proptest::collection::vec((0u64..3, 0u8..5, 0u8..2, any::<u8>(), any::<u8>()), 1..=7),
    ) {
        let (history, honest) = random_history(etcd, &plan);
        let model = if etcd { Model::EtcdRegister } else { Model::Register };
        let expected = brute_force(&history, model);
        let budget = Some(Duration::from_secs(10));
        let full = check(&history, model, budget).expect("valid history");
        let search = check_within(&history, model, budget, MAX_MEMO_BYTES).expect("valid history");
        for result in [full, search] {
        match &result.verdict {
            SequentialVerdict::Sequential { order } => {
                prop_assert!(expected, "checker says sequential, brute force disagrees:\n{}", history.to_jsonl());
                assert_witness(&history, model, order);
            }
            SequentialVerdict::NotSequential(_) => prop_assert!(
                !expected && !honest,
                "checker says not sequential, brute force disagrees:\n{}",
                history.to_jsonl()
            ),
            SequentialVerdict::Unknown { .. } => prop_assert!(false, "a 7-operation history ran out of budget"),
        }
        }
    }
}

/// Episode 19: linearizable ⇒ sequentially consistent. Every conformance
/// history documented as linearizable is found sequential: always with
/// the linearizability shortcut, and mostly by the global search alone
/// (it searches all keys at once, so some exhaust the budget: counted).
#[test]
fn sequential_every_linearizable_conformance_history_is_sequential() {
    let dir = conformance_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest is JSON");
    let (mut decided, mut undecided) = (0, Vec::new());
    for file in manifest["files"].as_array().expect("files") {
        if file["linearizable"] != true {
            continue;
        }
        let name = file["name"].as_str().expect("name");
        let text = std::fs::read_to_string(dir.join(file["file"].as_str().expect("file")))
            .expect("readable");
        let history = History::from_jsonl(&text).expect("parses");
        let model = match file["model"].as_str().expect("model") {
            "etcd_register" => Model::EtcdRegister,
            other => other.parse().expect("known model"),
        };
        let full = check(&history, model, Some(Duration::from_secs(30)))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let SequentialVerdict::Sequential { order } = &full.verdict else {
            panic!(
                "{name} is linearizable, so it must be sequential:\n{}",
                full.explain(&history)
            )
        };
        assert_witness(&history, model, order);
        let search = check_within(
            &history,
            model,
            Some(Duration::from_secs(1)),
            MAX_MEMO_BYTES,
        )
        .expect("valid");
        match &search.verdict {
            SequentialVerdict::Sequential { order } => {
                assert_witness(&history, model, order);
                decided += 1;
            }
            SequentialVerdict::NotSequential(_) => panic!(
                "{name}: the search refutes a linearizable history:\n{}",
                search.explain(&history)
            ),
            SequentialVerdict::Unknown { .. } => undecided.push(name.to_owned()),
        }
    }
    eprintln!("search alone: decided {decided}, out of budget {undecided:?}");
    assert!(
        decided >= 10 && undecided.len() * 4 <= decided,
        "decided {decided}, out of budget: {undecided:?}"
    );
}
