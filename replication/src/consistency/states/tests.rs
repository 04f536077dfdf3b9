//! Numbered states against the model they compile.

use super::*;
use std::sync::Arc;

fn op(command: Command, reply: Reply) -> Operation {
    Operation {
        id: 0,
        client: 0,
        key: Some(Arc::from("k")),
        command,
        reply,
        call: 0,
        ret: 1,
    }
}

/// Stepping numbers agrees with [`Model::step`] on values, and equal
/// texts reached by different appends share one number.
#[test]
fn numbered_steps_agree_with_the_model() {
    let s = |t: &str| Datum::text(t);
    let ops = [
        op(Command::Append(s("ab")), Reply::Ok),
        op(Command::Append(s("c")), Reply::Ok),
        op(Command::Append(s("a")), Reply::Ok),
        op(Command::Append(s("bc")), Reply::Ok),
        op(Command::Append(Datum::Int(7)), Reply::Ok),
        op(Command::Put(Datum::Int(5)), Reply::Ok),
        op(Command::Put(s("5")), Reply::Ok),
        op(Command::Get, Reply::Value(s("abc"))),
        op(Command::Get, Reply::Value(s("5"))),
        op(Command::Get, Reply::Value(Datum::Int(5))),
        op(Command::Get, Reply::Unknown),
        op(Command::Append(s("")), Reply::Ok),
    ];
    let refs: Vec<&Operation> = ops.iter().collect();
    let mut states = States::new(Model::Kv, &refs);
    // Every sequence of up to 3 operations, from the initial state.
    let mut frontier = vec![(INIT, Model::Kv.init())];
    for _ in 0..3 {
        let mut next = Vec::new();
        for (id, value) in &frontier {
            for (i, o) in ops.iter().enumerate() {
                let numbered = states.step(*id, i);
                let stepped = Model::Kv.step(value, o);
                assert_eq!(
                    numbered.map(|n| states.value(n)),
                    stepped,
                    "{} on {value}",
                    o.describe()
                );
                if let (Some(n), Some(v)) = (numbered, stepped) {
                    next.push((n, v));
                }
            }
        }
        frontier = next;
    }
    // One number per distinct value.
    for (a, va) in &frontier {
        for (b, vb) in &frontier {
            assert_eq!(a == b, va == vb, "{va} vs {vb}");
        }
    }
}

#[test]
fn register_steps_agree_with_the_model() {
    let i = Datum::Int;
    let ops = [
        op(Command::Write(i(1)), Reply::Ok),
        op(Command::Write(i(2)), Reply::Unknown),
        op(Command::Read, Reply::Value(i(1))),
        op(Command::Read, Reply::Value(Datum::Absent)),
        op(Command::Read, Reply::Unknown),
        op(
            Command::Cas {
                expected: i(1),
                new: i(2),
            },
            Reply::Swapped(true),
        ),
        op(
            Command::Cas {
                expected: i(2),
                new: i(1),
            },
            Reply::Swapped(false),
        ),
        op(
            Command::Cas {
                expected: i(2),
                new: i(3),
            },
            Reply::Unknown,
        ),
    ];
    let refs: Vec<&Operation> = ops.iter().collect();
    let mut states = States::new(Model::EtcdRegister, &refs);
    let mut frontier = vec![(INIT, Model::EtcdRegister.init())];
    for _ in 0..3 {
        let mut next = Vec::new();
        for (id, value) in &frontier {
            for (k, o) in ops.iter().enumerate() {
                let numbered = states.step(*id, k);
                let stepped = Model::EtcdRegister.step(value, o);
                assert_eq!(
                    numbered.map(|n| states.value(n)),
                    stepped,
                    "{} on {value}",
                    o.describe()
                );
                if let (Some(n), Some(v)) = (numbered, stepped) {
                    next.push((n, v));
                }
            }
        }
        frontier = next;
    }
}
