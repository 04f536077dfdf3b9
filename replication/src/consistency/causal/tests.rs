//! Each bad pattern built by hand and caught by name; bad input refused.

use std::time::Duration;

use super::*;
use crate::Error;
use crate::consistency::history::{Command, Datum, Operation, Reply};

/// One step: (client, 'w' or 'r', key, value; 0 reads the initial value).
type Step = (u64, char, &'static str, i64);

/// A history of one-at-a-time operations in the order given (real time
/// plays no part in causal consistency; it only orders each client).
fn history(steps: &[Step]) -> History {
    let operations = steps
        .iter()
        .enumerate()
        .map(|(id, &(client, kind, key, value))| {
            let datum = if value == 0 {
                Datum::Absent
            } else {
                Datum::Int(value)
            };
            let (command, reply) = match kind {
                'w' => (Command::Write(datum), Reply::Ok),
                _ => (Command::Read, Reply::Value(datum)),
            };
            Operation {
                id,
                client,
                key: Some(key.into()),
                command,
                reply,
                call: 2 * id as u64,
                ret: 2 * id as u64 + 1,
            }
        })
        .collect();
    History::new(operations)
}

fn check(steps: &[Step], variant: Variant) -> CausalReport {
    check_causal(&history(steps), variant, Some(Duration::from_secs(10))).expect("valid history")
}

fn patterns(steps: &[Step], variant: Variant) -> Vec<Pattern> {
    check(steps, variant).patterns()
}

/// Episode 19. Client 1 writes x then y; client 2 sees y's new value and
/// then x's initial value: the write to x is causally before that read.
#[test]
fn causal_write_co_init_read_is_caught_with_its_chain() {
    let report = check(
        &[
            (1, 'w', "x", 1),
            (1, 'w', "y", 2),
            (2, 'r', "y", 2),
            (2, 'r', "x", 0),
        ],
        Variant::Cc,
    );
    assert_eq!(report.verdict, CausalVerdict::NotCausal);
    assert_eq!(report.patterns(), [Pattern::WriteCOInitRead]);
    let finding = &report.findings[0];
    assert_eq!(finding.operations, [0, 3]);
    assert_eq!(
        finding.chain,
        "w(x,1)#0 →po w(y,2)#1 →rf r(y)=2#2 →po r(x)=∅#3"
    );
    assert!(
        report.explain().contains("WriteCOInitRead"),
        "{}",
        report.explain()
    );
}

/// The key pattern: x=1 overwritten by x=2, which is causally before a
/// read that still returns 1.
#[test]
fn causal_write_co_read_is_caught() {
    let steps = [
        (1, 'w', "x", 1),
        (2, 'r', "x", 1),
        (2, 'w', "x", 2),
        (2, 'w', "y", 3),
        (3, 'r', "y", 3),
        (3, 'r', "x", 1),
    ];
    let report = check(&steps, Variant::Cc);
    assert_eq!(report.patterns(), [Pattern::WriteCORead]);
    assert_eq!(report.findings[0].operations, [0, 2, 5]);
    assert_eq!(
        report.findings[0].chain,
        "w(x,1)#0 →rf r(x)=1#1 →po w(x,2)#2 →po w(y,3)#3 →rf r(y)=3#4 →po r(x)=1#5"
    );
    // Without the read of y, client 3 may see the writes in any order.
    assert_eq!(patterns(&steps[..4], Variant::Cm), []);
}

#[test]
fn causal_thin_air_read_is_caught() {
    assert_eq!(
        patterns(&[(1, 'w', "x", 1), (2, 'r', "x", 7)], Variant::Cc),
        [Pattern::ThinAirRead]
    );
}

/// A read that returns a value its own client writes only later: the
/// read is causally before the write it read from.
#[test]
fn causal_cyclic_co_is_caught_with_the_cycle() {
    let report = check(
        &[
            (1, 'r', "x", 1),
            (1, 'w', "y", 2),
            (2, 'r', "y", 2),
            (2, 'w', "x", 1),
        ],
        Variant::Cc,
    );
    assert_eq!(report.patterns(), [Pattern::CyclicCO]);
    let chain = &report.findings[0].chain;
    // Four steps round the cycle, back where it started.
    assert_eq!(chain.matches('→').count(), 4, "{chain}");
    let first = chain.split(' ').next().expect("a name");
    assert!(chain.ends_with(first), "{chain}");
}

/// Client 3 sees x=2 then x=1, client 4 the reverse: fine for CC (each
/// read alone is explained), but no one order of the writes explains all
/// (CCv), and client 3's own session cannot be serialized (CM).
#[test]
fn causal_variants_separate_cc_from_ccv_and_cm() {
    let steps = [
        (1, 'w', "x", 1),
        (1, 'w', "y", 1),
        (2, 'w', "x", 2),
        (2, 'w', "z", 2),
        (3, 'r', "y", 1),
        (3, 'r', "x", 2),
        (3, 'r', "z", 2),
        (3, 'r', "x", 1),
    ];
    assert_eq!(patterns(&steps, Variant::Cc), []);
    assert_eq!(patterns(&steps, Variant::Ccv), [Pattern::CyclicCF]);
    assert_eq!(patterns(&steps, Variant::Cm), [Pattern::CyclicHB]);
}

/// A read of y's initial value that client 3's later read of x=2 puts
/// after the write of y: CC and CCv accept, CM refuses.
#[test]
fn causal_write_hb_init_read_is_caught_by_cm_only() {
    let steps = [
        (1, 'w', "y", 1),
        (1, 'w', "x", 1),
        (1, 'w', "k", 1),
        (2, 'w', "x", 2),
        (2, 'w', "z", 1),
        (3, 'r', "z", 1),
        (3, 'r', "y", 0),
        (3, 'r', "k", 1),
        (3, 'r', "x", 2),
    ];
    assert_eq!(patterns(&steps, Variant::Cc), []);
    assert_eq!(patterns(&steps, Variant::Ccv), []);
    let report = check(&steps, Variant::Cm);
    assert_eq!(report.patterns(), [Pattern::WriteHBInitRead]);
    assert_eq!(report.findings[0].operations, [0, 6]);
}

#[test]
fn causal_accepts_a_causal_history_and_reports_json() {
    let steps = [
        (1, 'w', "x", 1),
        (2, 'w', "x", 2),
        (3, 'r', "x", 1),
        (3, 'r', "x", 2),
        (4, 'r', "x", 2),
        (4, 'r', "y", 0),
    ];
    for variant in Variant::ALL {
        let report = check(&steps, variant);
        assert_eq!(report.verdict, CausalVerdict::Causal, "{variant}");
        let json = report.to_json();
        assert_eq!(json["verdict"], "causal");
        assert_eq!(json["model"], "register");
        assert!(json["elapsed_ms"].is_number());
        assert_eq!(json["patterns"], serde_json::json!([]));
    }
}

/// A zero budget answers Unknown, never a verdict it did not reach.
#[test]
fn causal_zero_budget_is_unknown() {
    let steps = [(1, 'w', "x", 1), (2, 'r', "x", 1)];
    let report = check_causal(&history(&steps), Variant::Cc, Some(Duration::ZERO)).expect("valid");
    assert!(
        matches!(report.verdict, CausalVerdict::Unknown { .. }),
        "{report:?}"
    );
    assert_eq!(report.to_json()["verdict"], "unknown");
}

#[test]
fn causal_refuses_histories_it_cannot_judge() {
    let twice = history(&[(1, 'w', "x", 1), (2, 'w', "x", 1)]);
    assert!(matches!(
        check_causal(&twice, Variant::Cc, None),
        Err(Error::NotDifferentiated {
            first: 0,
            second: 1,
            ..
        })
    ));
    let mut initial = history(&[(1, 'w', "x", 1)]);
    initial.operations[0].command = Command::Write(Datum::Absent);
    assert!(matches!(
        check_causal(&initial, Variant::Cc, None),
        Err(Error::WritesInitialValue { operation: 0, .. })
    ));
    let mut overlapping = history(&[(1, 'w', "x", 1), (1, 'w', "x", 2)]);
    overlapping.operations[0].ret = 5;
    assert!(matches!(
        check_causal(&overlapping, Variant::Cc, None),
        Err(Error::OverlappingClientOperations {
            client: 1,
            first: 0,
            second: 1
        })
    ));
    let mut cas = history(&[(1, 'w', "x", 1), (1, 'w', "x", 2)]);
    cas.operations[1].command = Command::Cas {
        expected: Datum::Int(1),
        new: Datum::Int(2),
    };
    cas.operations[1].reply = Reply::Swapped(true);
    assert!(matches!(
        check_causal(&cas, Variant::Cc, None),
        Err(Error::ModelMismatch { operation: 1, .. })
    ));
}

/// Key-value histories work too: put writes, get reads, "" is initial.
#[test]
fn causal_reads_kv_histories() {
    let text = [
        r#"{"client":1,"op":"put","key":"x","value":"a","output":"ok","call":0,"return":1}"#,
        r#"{"client":1,"op":"put","key":"y","value":"b","output":"ok","call":2,"return":3}"#,
        r#"{"client":2,"op":"get","key":"y","output":"b","call":4,"return":5}"#,
        r#"{"client":2,"op":"get","key":"x","output":"","call":6,"return":7}"#,
    ]
    .join("\n");
    let history = History::from_jsonl(&text).expect("valid");
    let report = check_causal(&history, Variant::Cc, None).expect("valid");
    assert_eq!(report.patterns(), [Pattern::WriteCOInitRead]);
    assert_eq!(report.model, Model::Kv);
}

/// Session guarantees come along: a stale read after the reader's own
/// write breaks read-your-writes, after a newer read monotonic reads; a
/// chain through another client is causal only.
#[test]
fn causal_stale_reads_name_the_session_guarantee() {
    use crate::consistency::session::Guarantee;
    let session = |steps: &[Step]| {
        let report = check(steps, Variant::Cc);
        assert_eq!(
            report.verdict,
            CausalVerdict::NotCausal,
            "{}",
            report.explain()
        );
        report.findings[0].session
    };
    let own = [
        (1, 'w', "x", 1),
        (2, 'r', "x", 1),
        (2, 'w', "x", 2),
        (2, 'r', "x", 1),
    ];
    assert_eq!(session(&own), Some(Guarantee::ReadYourWrites));
    assert_eq!(
        session(&[(1, 'w', "x", 1), (1, 'r', "x", 0)]),
        Some(Guarantee::ReadYourWrites)
    );
    let newer = [
        (1, 'w', "x", 1),
        (1, 'w', "x", 2),
        (2, 'r', "x", 2),
        (2, 'r', "x", 1),
    ];
    assert_eq!(session(&newer), Some(Guarantee::MonotonicReads));
    let report = check(&newer, Variant::Cc);
    assert!(
        report.explain().contains("(breaks monotonic reads)"),
        "{}",
        report.explain()
    );
    assert_eq!(
        report.to_json()["findings"][0]["session_guarantee"],
        "monotonic reads"
    );
    let through_others = [
        (1, 'w', "x", 1),
        (1, 'w', "y", 2),
        (2, 'r', "y", 2),
        (2, 'r', "x", 0),
    ];
    assert_eq!(session(&through_others), None);
}

/// A write whose outcome the client never learned may never have taken
/// effect, or may have taken effect after the client's later operations:
/// neither reading the initial value afterwards (nobody read the write)
/// nor another client's read of it ordering it before the writer's next
/// operation is a violation. Linearizable, so causal.
#[test]
fn causal_unknown_outcome_writes_are_not_program_ordered_before_later_operations() {
    let unread = History::from_jsonl(concat!(
        r#"{"id":0,"client":1,"op":"put","key":"x","value":"1","expected":null,"output":null,"call":0,"return":1}"#,
        "\n",
        r#"{"id":1,"client":1,"op":"get","key":"x","value":null,"expected":null,"output":"","call":2,"return":3}"#,
    ))
    .expect("valid history");
    let late = History::from_jsonl(concat!(
        r#"{"id":0,"client":1,"op":"put","key":"x","value":"1","expected":null,"output":null,"call":0,"return":null}"#,
        "\n",
        r#"{"id":1,"client":1,"op":"put","key":"y","value":"2","expected":null,"output":"ok","call":2,"return":3}"#,
        "\n",
        r#"{"id":2,"client":2,"op":"get","key":"y","value":null,"expected":null,"output":"2","call":4,"return":5}"#,
        "\n",
        r#"{"id":3,"client":2,"op":"get","key":"x","value":null,"expected":null,"output":"","call":6,"return":7}"#,
        "\n",
        r#"{"id":4,"client":3,"op":"get","key":"x","value":null,"expected":null,"output":"1","call":8,"return":9}"#,
    ))
    .expect("valid history");
    for history in [unread, late] {
        for variant in [Variant::Cc, Variant::Ccv, Variant::Cm] {
            let report = check_causal(&history, variant, None).expect("valid history");
            assert_eq!(
                report.verdict,
                CausalVerdict::Causal,
                "{}",
                report.explain()
            );
        }
    }
}
