//! The ledger state machine alone: holds, credits, votes, replay.

use super::super::ledger::{Decision, Ledger};
use crate::proto::v1::{
    Change, CreditRequest, HoldRequest, HoldState, OpenRequest, PrepareRequest, Protocol, TxnPhase,
    ledger_record::Record,
};
use crate::transaction::Error;

/// Applies what a decision asks for; the records applied, for replay.
fn run<T>(ledger: &mut Ledger, log: &mut Vec<Vec<u8>>, decision: Decision<T>) -> Option<T> {
    match decision {
        Decision::Apply(record) => {
            ledger.apply(&record);
            log.push(Ledger::encode(record));
            None
        }
        Decision::Known(value) => Some(value),
    }
}

fn opened(entries: &[(&str, i64)]) -> (Ledger, Vec<Vec<u8>>) {
    let mut ledger = Ledger::new();
    let mut log = Vec::new();
    for (key, amount) in entries {
        let decision = ledger
            .open(&OpenRequest {
                key: (*key).into(),
                amount: *amount,
            })
            .expect("valid");
        run(&mut ledger, &mut log, decision);
    }
    (ledger, log)
}

fn hold(id: &str, key: &str, amount: i64, ttl_ms: u64) -> HoldRequest {
    HoldRequest {
        hold_id: id.into(),
        key: key.into(),
        amount,
        ttl_ms,
    }
}

fn balance(ledger: &Ledger, key: &str) -> (i64, i64) {
    let entry = ledger.entry(key).expect("exists");
    (entry.available, entry.held)
}

#[test]
fn transaction_ledger_hold_capture_release_move_funds_once() {
    let (mut ledger, mut log) = opened(&[("alice", 100)]);
    let decision = ledger.hold(&hold("h1", "alice", 30, 0), 0).expect("funds");
    run(&mut ledger, &mut log, decision);
    assert_eq!(balance(&ledger, "alice"), (70, 30));
    // The same hold again: answered, not applied.
    let again = ledger.hold(&hold("h1", "alice", 30, 0), 0).expect("dedup");
    assert!(matches!(again, Decision::Known(ref reply) if reply.state == HoldState::Held as i32));
    // The same id for another hold: refused.
    let reused = ledger.hold(&hold("h1", "alice", 31, 0), 0);
    assert!(matches!(reused, Err(Error::Invalid { .. })));
    let decision = ledger.capture("h1").expect("held");
    run(&mut ledger, &mut log, decision);
    assert_eq!(balance(&ledger, "alice"), (70, 0));
    assert!(matches!(ledger.capture("h1"), Ok(Decision::Known(_))));
    assert!(matches!(ledger.release("h1"), Err(Error::Precondition(_))));
    // Too much.
    assert!(matches!(
        ledger.hold(&hold("h2", "alice", 71, 0), 0),
        Err(Error::Precondition(_))
    ));
    let replayed = Ledger::replay(&log).expect("replays");
    assert_eq!(balance(&replayed, "alice"), (70, 0));
    assert_eq!(replayed.open_count(), 0);
}

#[test]
fn transaction_ledger_release_before_hold_refuses_the_late_hold() {
    let (mut ledger, mut log) = opened(&[("alice", 100)]);
    let decision = ledger.release("late").expect("recorded");
    run(&mut ledger, &mut log, decision);
    let late = ledger
        .hold(&hold("late", "alice", 10, 0), 0)
        .expect("answered");
    match late {
        Decision::Known(reply) => assert_eq!(reply.state, HoldState::Released as i32),
        Decision::Apply(_) => panic!("a hold released before it arrived must not be placed"),
    }
    assert_eq!(balance(&ledger, "alice"), (100, 0));
}

#[test]
fn transaction_ledger_tcc_reservation_expires_and_frees_stock() {
    let (mut ledger, mut log) = opened(&[("widget", 5)]);
    let decision = ledger
        .hold(&hold("r1", "widget", 4, 1_000), 10_000)
        .expect("stock");
    run(&mut ledger, &mut log, decision);
    assert_eq!(balance(&ledger, "widget"), (1, 4));
    assert!(ledger.due_expiries(10_999).is_empty(), "not yet due");
    let due = ledger.due_expiries(11_000);
    assert_eq!(due.len(), 1);
    for record in due {
        ledger.apply(&record);
        log.push(Ledger::encode(record));
    }
    assert_eq!(balance(&ledger, "widget"), (5, 0), "the stock came back");
    assert!(matches!(ledger.capture("r1"), Err(Error::Precondition(_))));
    let replayed = Ledger::replay(&log).expect("replays");
    assert_eq!(balance(&replayed, "widget"), (5, 0));
}

#[test]
fn transaction_ledger_credit_applies_once_and_refuses_overflow() {
    let (mut ledger, mut log) = opened(&[("bob", 0)]);
    let credit = CreditRequest {
        credit_id: "c1".into(),
        key: "bob".into(),
        amount: 25,
    };
    let decision = ledger.credit(&credit).expect("valid");
    run(&mut ledger, &mut log, decision);
    assert!(matches!(ledger.credit(&credit), Ok(Decision::Known(ref r)) if r.available == 25));
    assert_eq!(balance(&ledger, "bob"), (25, 0));
    let huge = CreditRequest {
        credit_id: "c2".into(),
        key: "bob".into(),
        amount: crate::transaction::MAX_AMOUNT,
    };
    assert!(matches!(ledger.credit(&huge), Err(Error::Overflow { .. })));
    for amount in [0, -5] {
        let bad = CreditRequest {
            amount,
            ..credit.clone()
        };
        assert!(matches!(ledger.credit(&bad), Err(Error::Invalid { .. })));
    }
}

fn prepare(txn: &str, changes: &[(&str, i64)]) -> PrepareRequest {
    PrepareRequest {
        txn_id: txn.into(),
        protocol: Protocol::TwoPhase.into(),
        changes: changes
            .iter()
            .map(|(key, delta)| Change {
                key: (*key).into(),
                delta: *delta,
            })
            .collect(),
        participants: vec!["a".into(), "b".into()],
    }
}

#[test]
fn transaction_ledger_prepared_transaction_locks_until_decided() {
    let (mut ledger, mut log) = opened(&[("alice", 100), ("bob", 0)]);
    let decision = ledger
        .prepare(&prepare("t1", &[("alice", -40), ("bob", 40)]))
        .expect("valid");
    assert!(matches!(decision, Decision::Apply(Record::Prepare(_))));
    run(&mut ledger, &mut log, decision);
    assert_eq!(ledger.phase("t1"), TxnPhase::Prepared);
    assert_eq!(balance(&ledger, "alice"), (60, 40));
    // Locked: holds, credits and other transactions wait.
    assert!(matches!(
        ledger.hold(&hold("h", "alice", 1, 0), 0),
        Err(Error::Locked { .. })
    ));
    let other = ledger
        .prepare(&prepare("t2", &[("bob", 1)]))
        .expect("valid");
    assert!(
        matches!(other, Decision::Known((false, _))),
        "votes no on a locked entry"
    );
    // The same prepare again votes yes without applying twice.
    let again = ledger
        .prepare(&prepare("t1", &[("alice", -40), ("bob", 40)]))
        .expect("valid");
    assert!(matches!(again, Decision::Known((true, _))));
    let decision = ledger.commit("t1").expect("prepared");
    run(&mut ledger, &mut log, decision);
    assert_eq!(balance(&ledger, "alice"), (60, 0));
    assert_eq!(balance(&ledger, "bob"), (40, 0));
    assert!(matches!(ledger.abort("t1"), Err(Error::Precondition(_))));
    let replayed = Ledger::replay(&log).expect("replays");
    assert_eq!(replayed.phase("t1"), TxnPhase::Committed);
    assert_eq!(balance(&replayed, "bob"), (40, 0));
    assert!(
        replayed
            .entry("alice")
            .expect("exists")
            .locked_by
            .is_empty()
    );
}

#[test]
fn transaction_ledger_abort_before_prepare_makes_the_late_prepare_vote_no() {
    let (mut ledger, mut log) = opened(&[("alice", 100)]);
    let decision = ledger.abort("t9").expect("recorded");
    run(&mut ledger, &mut log, decision);
    let late = ledger.prepare(&prepare("t9", &[("alice", -1)]));
    assert!(
        matches!(
            late,
            Err(Error::Invalid { .. }) | Ok(Decision::Known((false, _)))
        ),
        "{late:?}"
    );
    let decision = ledger
        .prepare(&prepare("t3", &[("alice", -500)]))
        .expect("valid");
    assert!(
        matches!(decision, Decision::Known((false, _))),
        "insufficient funds: no"
    );
    assert_eq!(balance(&ledger, "alice"), (100, 0));
}

#[test]
fn transaction_ledger_refuses_bad_input_precisely() {
    let (ledger, _) = opened(&[("alice", 100)]);
    let long = "x".repeat(crate::transaction::MAX_ID_BYTES + 1);
    assert!(matches!(
        ledger.hold(&hold("", "alice", 1, 0), 0),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.hold(&hold(&long, "alice", 1, 0), 0),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.hold(&hold("h", "nobody", 1, 0), 0),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        ledger.hold(&hold("h", "alice", -1, 0), 0),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.open(&OpenRequest {
            key: "alice".into(),
            amount: 1
        }),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        ledger.open(&OpenRequest {
            key: "carol".into(),
            amount: -1
        }),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.prepare(&prepare("t", &[("alice", -1), ("alice", 1)])),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.prepare(&prepare("t", &[])),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        ledger.capture("nope"),
        Err(Error::NotFound { .. })
    ));
}

/// Compaction: a snapshot of every kind of state, replayed into an empty
/// ledger, answers exactly as the original does — and carries on alike.
#[test]
fn transaction_ledger_snapshot_replays_to_the_same_ledger() {
    let (mut ledger, mut log) = opened(&[("alice", 100), ("bob", 5), ("carol", 7)]);
    let mut apply = |ledger: &mut Ledger, record: Record| {
        ledger.apply(&record);
        log.push(Ledger::encode(record));
    };
    for (id, amount, ttl) in [("live", 10, 0), ("ttl", 5, 1_000), ("done", 3, 0)] {
        if let Ok(Decision::Apply(record)) = ledger.hold(&hold(id, "alice", amount, ttl), 0) {
            apply(&mut ledger, record);
        }
    }
    for decision in [ledger.capture("done"), ledger.release("never-held")] {
        if let Ok(Decision::Apply(record)) = decision {
            apply(&mut ledger, record);
        }
    }
    let credit = CreditRequest {
        credit_id: "c1".into(),
        key: "bob".into(),
        amount: 4,
    };
    if let Ok(Decision::Apply(record)) = ledger.credit(&credit) {
        apply(&mut ledger, record);
    }
    for (txn, changes) in [("open", vec![("carol", -2)]), ("closed", vec![("bob", 1)])] {
        if let Ok(Decision::Apply(record)) = ledger.prepare(&prepare(txn, &changes)) {
            apply(&mut ledger, record);
        }
    }
    if let Ok(Decision::Apply(record)) = ledger.commit("closed") {
        apply(&mut ledger, record);
    }

    let snapshot = Ledger::replay(&ledger.snapshot_records()).expect("replays");
    for key in ["alice", "bob", "carol"] {
        assert_eq!(snapshot.entry(key), ledger.entry(key), "{key}");
    }
    for id in ["live", "ttl", "done", "never-held"] {
        assert_eq!(snapshot.hold_reply(id), ledger.hold_reply(id), "{id}");
    }
    assert_eq!(snapshot.credit_reply("c1"), ledger.credit_reply("c1"));
    for txn in ["open", "closed"] {
        assert_eq!(snapshot.phase(txn), ledger.phase(txn), "{txn}");
    }
    assert_eq!(snapshot.open_count(), ledger.open_count());
    assert_eq!(snapshot.in_doubt(), ledger.in_doubt());
    assert_eq!(snapshot.due_expiries(2_000), ledger.due_expiries(2_000));
    // And it goes on the same way: the prepared transaction commits.
    let mut continued = snapshot.clone();
    if let Ok(Decision::Apply(record)) = continued.commit("open") {
        continued.apply(&record);
    }
    assert_eq!(continued.entry("carol").expect("exists").available, 5);
    assert_eq!(
        Ledger::replay(&log).expect("replays").entry("alice"),
        ledger.entry("alice")
    );
}
