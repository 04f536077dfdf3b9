//! Every named anomaly built by hand and named correctly, with the level
//! it leaves; the bad-input errors; the budget.

use std::time::Duration;

use super::*;

fn parse(model: DataModel, lines: &[&str]) -> TxnHistory {
    TxnHistory::from_jsonl(&lines.join("\n"), model).expect("valid history")
}

fn run(model: DataModel, lines: &[&str], options: &CheckOptions) -> (TxnHistory, Report) {
    let history = parse(model, lines);
    let report = check(&history, options);
    (history, report)
}

fn names(report: &Report) -> Vec<String> {
    report.anomalies.keys().map(|a| a.name()).collect()
}

/// Checks list-append `lines` and asserts the anomaly is named and the
/// strongest level is `strongest`.
fn expect(lines: &[&str], anomaly: Anomaly, strongest: Strongest) -> (TxnHistory, Report) {
    let (history, report) = run(DataModel::ListAppend, lines, &CheckOptions::default());
    assert!(
        report.anomalies.contains_key(&anomaly),
        "expected {anomaly}, got {:?}\n{}",
        names(&report),
        report.explain(&history, Level::Serializable)
    );
    assert_eq!(report.strongest_level(), strongest, "{:?}", names(&report));
    assert!(report.complete);
    (history, report)
}

#[test]
fn transactional_g0_is_a_write_cycle() {
    let (_, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["append","y",2]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["append","x",2],["append","y",1]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1,2]],["r","y",[1,2]]]}"#,
        ],
        Anomaly::G0,
        Strongest::None,
    );
    let cycle = &report.cycles[0];
    assert_eq!(cycle.anomaly, Anomaly::G0);
    assert_eq!(cycle.steps.len(), 2);
    assert_eq!(report.level(Level::ReadUncommitted), LevelVerdict::Violated);
}

#[test]
fn transactional_g1a_aborted_read() {
    let (_, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"fail","value":[["append","x",1]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[1]]]}"#,
        ],
        Anomaly::G1a,
        Strongest::Level(Level::ReadUncommitted),
    );
    assert!(report.findings[0].explanation.contains("aborted"));
}

#[test]
fn transactional_g1b_intermediate_read_is_not_also_a_g_single() {
    let (_, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["append","x",2]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[1]]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1,2]]]}"#,
        ],
        Anomaly::G1b,
        Strongest::Level(Level::ReadUncommitted),
    );
    assert_eq!(names(&report), ["G1b"]);
}

#[test]
fn transactional_g1c_circular_information_flow() {
    let (history, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["r","y",[1]]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["append","y",1],["r","x",[1]]]}"#,
        ],
        Anomaly::G1c,
        Strongest::Level(Level::ReadUncommitted),
    );
    let text = report.explain(&history, Level::ReadCommitted);
    assert!(
        text.contains("T0 —wr→ T1: T1 read x ending at 1, appended by T0"),
        "{text}"
    );
}

#[test]
fn transactional_g_single_read_skew_explained_edge_by_edge() {
    let (history, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[]],["r","y",[1]]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["append","x",1],["append","y",1]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]]]}"#,
        ],
        Anomaly::GSingle,
        Strongest::Level(Level::ReadCommitted),
    );
    assert_eq!(names(&report), ["G-single"]);
    let text = report.explain(&history, Level::Serializable);
    assert!(
        text.contains("T0 —rw→ T1: T0 read x empty and T1 appended 1 next"),
        "{text}"
    );
    let json = report.to_json(&history, Level::Serializable);
    assert_eq!(json["verdict"], "not_serializable");
    assert_eq!(json["strongest_level"], "read_committed");
    assert_eq!(json["levels"]["snapshot_isolation"], false);
    assert_eq!(json["cycles"][0]["steps"].as_array().map(Vec::len), Some(2));
}

#[test]
fn transactional_lost_update_is_named() {
    expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[]],["append","x",1]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]],["append","x",2]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1,2]]]}"#,
        ],
        Anomaly::LostUpdate,
        Strongest::Level(Level::ReadCommitted),
    );
}

#[test]
fn transactional_write_skew_is_g2_item_and_still_snapshot_isolation() {
    let (history, report) = expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[]],["r","y",[]],["append","x",1]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]],["r","y",[]],["append","y",1]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]],["r","y",[1]]]}"#,
        ],
        Anomaly::G2Item,
        Strongest::Level(Level::SnapshotIsolation),
    );
    assert_eq!(names(&report), ["G2-item"]);
    let json = report.to_json(&history, Level::SnapshotIsolation);
    assert_eq!(json["verdict"], "snapshot_isolation");
    assert_eq!(json["levels"]["repeatable_read"], false);
    assert_eq!(json["levels"]["read_committed"], true);
}

#[test]
fn transactional_incompatible_order() {
    expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["append","x",2]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1,2]]]}"#,
            r#"{"id":3,"process":3,"type":"ok","value":[["r","x",[2,1]]]}"#,
        ],
        Anomaly::IncompatibleOrder,
        Strongest::None,
    );
}

#[test]
fn transactional_internal_duplicate_and_garbage() {
    expect(
        &[r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["r","x",[]]]}"#],
        Anomaly::Internal,
        Strongest::None,
    );
    expect(
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[1,1]]]}"#,
        ],
        Anomaly::DuplicateElements,
        Strongest::None,
    );
    expect(
        &[r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[7]]]}"#],
        Anomaly::GarbageRead,
        Strongest::None,
    );
}

#[test]
fn transactional_serial_history_is_strict_serializable_with_realtime() {
    let lines = [
        r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["r","y",[]]],"call":0,"return":1}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[1]],["append","y",5]],"call":2,"return":3}"#,
        r#"{"id":2,"process":0,"type":"fail","value":[["append","x",9]],"call":4,"return":5}"#,
        r#"{"id":3,"process":2,"type":"info","value":[["append","x",3],["r","y",null]],"call":4}"#,
        r#"{"id":4,"process":1,"type":"ok","value":[["r","x",[1]],["r","y",[5]]],"call":6,"return":7}"#,
    ];
    let options = CheckOptions {
        realtime: true,
        process_order: true,
        ..CheckOptions::default()
    };
    let (_, report) = run(DataModel::ListAppend, &lines, &options);
    assert!(report.anomalies.is_empty(), "{:?}", names(&report));
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::StrictSerializable)
    );
    // Without real-time edges strict serializability is not judged.
    let (_, plain) = run(DataModel::ListAppend, &lines, &CheckOptions::default());
    assert_eq!(
        plain.strongest_level(),
        Strongest::Level(Level::Serializable)
    );
    assert_eq!(
        plain.level(Level::StrictSerializable),
        LevelVerdict::Unknown
    );
}

#[test]
fn transactional_stale_read_is_serializable_but_not_strict() {
    let lines = [
        r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1]],"call":0,"return":1}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]]],"call":2,"return":3}"#,
        r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]]],"call":4,"return":5}"#,
    ];
    let options = CheckOptions {
        realtime: true,
        ..CheckOptions::default()
    };
    let (history, report) = run(DataModel::ListAppend, &lines, &options);
    assert_eq!(names(&report), ["G-single-realtime"]);
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::Serializable)
    );
    assert!(
        report
            .explain(&history, Level::StrictSerializable)
            .contains("returned at 1, before T1 was called at 2")
    );
}

#[test]
fn transactional_rw_register_write_skew_and_lost_update() {
    let skew = [
        r#"{"id":0,"process":0,"type":"ok","value":[["r","x",null],["r","y",null],["w","x",1]]}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",null],["r","y",null],["w","y",2]]}"#,
    ];
    let (_, report) = run(DataModel::RwRegister, &skew, &CheckOptions::default());
    assert_eq!(names(&report), ["G2-item"]);
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::SnapshotIsolation)
    );
    let lost = [
        r#"{"id":0,"process":0,"type":"ok","value":[["r","x",null],["w","x",1]]}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",null],["w","x",2]]}"#,
        r#"{"id":2,"process":2,"type":"ok","value":[["r","x",1],["w","x",3]]}"#,
    ];
    let (_, report) = run(DataModel::RwRegister, &lost, &CheckOptions::default());
    assert!(
        report.anomalies.contains_key(&Anomaly::LostUpdate),
        "{:?}",
        names(&report)
    );
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::ReadCommitted)
    );
    let aborted = [
        r#"{"id":0,"process":0,"type":"fail","value":[["w","x",1]]}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["r","x",1]]}"#,
        r#"{"id":2,"process":1,"type":"ok","value":[["w","y",1],["w","y",2]]}"#,
        r#"{"id":3,"process":2,"type":"ok","value":[["r","y",1]]}"#,
    ];
    let (_, report) = run(DataModel::RwRegister, &aborted, &CheckOptions::default());
    assert_eq!(names(&report), ["G1a", "G1b"]);
}

#[test]
fn transactional_budget_exhaustion_is_unknown_not_a_pass() {
    let lines = [
        r#"{"id":0,"process":0,"type":"ok","value":[["r","x",[]],["r","y",[1]]]}"#,
        r#"{"id":1,"process":1,"type":"ok","value":[["append","x",1],["append","y",1]]}"#,
        r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]]]}"#,
    ];
    let options = CheckOptions {
        budget: Some(Duration::ZERO),
        ..CheckOptions::default()
    };
    let (history, report) = run(DataModel::ListAppend, &lines, &options);
    assert!(!report.complete);
    assert_eq!(report.level(Level::Serializable), LevelVerdict::Unknown);
    assert_eq!(report.strongest_level(), Strongest::Unknown);
    assert_eq!(
        report.to_json(&history, Level::Serializable)["verdict"],
        "unknown"
    );
}

/// Cycles are told apart by shape as well as by transactions: a G2-item
/// through T0, T1, T2 found first must not hide the G-single through the
/// same three (T1 —rw→ T2 —ww→ T0 —wr→ T1), which snapshot isolation
/// forbids.
#[test]
fn transactional_g_single_is_not_hidden_by_a_g2_item_on_the_same_transactions() {
    let (_, report) = run(
        DataModel::ListAppend,
        &[
            r#"{"id":0,"process":0,"type":"ok","value":[["r","y",[]],["append","x",1],["append","w",2]]}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[1]],["r","z",[]],["append","y",1]]}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["append","z",1],["append","w",1]]}"#,
            r#"{"id":3,"process":3,"type":"ok","value":[["r","w",[1,2]],["r","z",[1]],["r","y",[1]]]}"#,
        ],
        &CheckOptions::default(),
    );
    assert!(
        report.anomalies.contains_key(&Anomaly::GSingle),
        "{:?}",
        names(&report)
    );
    assert_eq!(
        report.level(Level::SnapshotIsolation),
        LevelVerdict::Violated
    );
    assert_eq!(
        report.strongest_level(),
        Strongest::Level(Level::ReadCommitted)
    );
}

/// A transaction of unknown outcome may have committed after its
/// process's next one: process order gives it no outgoing edge.
#[test]
fn transactional_process_order_skips_unknown_outcomes() {
    let options = CheckOptions {
        realtime: true,
        process_order: true,
        ..CheckOptions::default()
    };
    let (_, report) = run(
        DataModel::ListAppend,
        &[
            r#"{"id":0,"process":1,"type":"info","value":[["append","x",1]],"call":0}"#,
            r#"{"id":1,"process":1,"type":"ok","value":[["r","x",[]]],"call":2,"return":3}"#,
            r#"{"id":2,"process":2,"type":"ok","value":[["r","x",[1]]],"call":10,"return":11}"#,
        ],
        &options,
    );
    assert!(report.anomalies.is_empty(), "{:?}", names(&report));
    assert_eq!(report.level(Level::StrictSerializable), LevelVerdict::Holds);
}
