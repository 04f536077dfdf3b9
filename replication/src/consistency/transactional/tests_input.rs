//! Reading histories: bad input named by line, and the JSONL format
//! written back and read again unchanged.

use super::*;

#[test]
fn transactional_bad_input_names_the_line() {
    let ok = r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1]]}"#;
    let cases: [(&str, DataModel, &str); 7] = [
        (
            r#"{"id":1,"process":0,"type":"ok","value":[["#,
            DataModel::ListAppend,
            "line 2: malformed JSON",
        ),
        (
            r#"{"id":1,"process":0,"type":"ok","value":[["w","x",1]]}"#,
            DataModel::ListAppend,
            "line 2: unknown micro-op \"w\"",
        ),
        (
            r#"{"id":0,"process":0,"type":"ok","value":[]}"#,
            DataModel::ListAppend,
            "line 2: transaction id 0 already used on line 1",
        ),
        (
            r#"{"id":1,"process":0,"type":"ok","value":[["append","x",1.5]]}"#,
            DataModel::ListAppend,
            "line 2: value 1.5",
        ),
        (
            r#"{"id":1,"process":0,"type":"ok","value":[["append","x",1]]}"#,
            DataModel::ListAppend,
            "line 2: value 1 written to key \"x\" again",
        ),
        (
            r#"{"id":1,"process":0,"type":"ok","value":[["append","x",2],["r",1,[]],["r","1",[]]]}"#,
            DataModel::ListAppend,
            "line 2: key \"1\" is a string here but was an integer before",
        ),
        (
            r#"{"id":1,"process":0,"type":"maybe","value":[]}"#,
            DataModel::RwRegister,
            "line 2: \"type\"",
        ),
    ];
    for (line, model, wanted) in cases {
        let first = if model == DataModel::ListAppend {
            ok
        } else {
            r#"{"id":0,"process":0,"type":"ok","value":[]}"#
        };
        let err = TxnHistory::from_jsonl(&format!("{first}\n{line}\n"), model).expect_err(wanted);
        assert!(err.to_string().contains(wanted), "{err} lacks {wanted}");
    }
    assert!("graph".parse::<DataModel>().is_err());
    assert!("snapshot_isolation".parse::<Level>().is_ok());
}

#[test]
fn transactional_jsonl_round_trips() {
    let lines = [
        r#"{"id":0,"process":0,"type":"ok","value":[["append","x",1],["r","y",[2]]],"call":1,"return":2}"#,
        r#"{"id":1,"process":3,"type":"info","value":[["append",7,2],["r","x",null]],"call":3}"#,
    ];
    let history =
        TxnHistory::from_jsonl(&lines.join("\n"), DataModel::ListAppend).expect("valid history");
    let again =
        TxnHistory::from_jsonl(&history.to_jsonl(), DataModel::ListAppend).expect("round trip");
    assert_eq!(history.txns.len(), again.txns.len());
    assert_eq!(history.keys, again.keys);
    for (a, b) in history.txns.iter().zip(&again.txns) {
        assert_eq!(
            (a.id, a.process, a.outcome, &a.ops, a.call, a.ret),
            (b.id, b.process, b.outcome, &b.ops, b.call, b.ret)
        );
    }
}
