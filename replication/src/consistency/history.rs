//! Histories: what clients asked, what they were told, and when.
//!
//! One operation per line of JSON (the format `replication/conformance/README.md`
//! documents, which dslab also writes):
//!
//! ```json
//! {"id":0,"client":3,"op":"put","key":"k","value":"v","expected":null,"output":"ok","call":10,"return":17}
//! ```
//!
//! An `output` of `null` means the client never learned the outcome (a
//! timeout, a lost connection): the operation may have taken effect at
//! any moment after its call, or never. Such operations are the reason a
//! checker must search: treating them as failed finds bugs that are not
//! there, treating them as succeeded misses bugs that are.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A value in a register or key: absent, an integer, or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    Absent,
    Int(i64),
    Str(Arc<str>),
}

impl Datum {
    pub fn text(s: &str) -> Self {
        Datum::Str(s.into())
    }

    /// The JSON form: `null`, a number or a string.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Absent => Value::Null,
            Datum::Int(n) => Value::from(*n),
            Datum::Str(s) => Value::from(&**s),
        }
    }

    fn from_json(value: &Value, what: &str) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(Datum::Absent),
            Value::Number(n) => n
                .as_i64()
                .map(Datum::Int)
                .ok_or_else(|| format!("{what}: {n} is not an integer")),
            Value::String(s) => Ok(Datum::Str(s.as_str().into())),
            other => Err(format!(
                "{what}: expected null, an integer or a string, got {other}"
            )),
        }
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Absent => f.write_str("∅"),
            Datum::Int(n) => write!(f, "{n}"),
            Datum::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Key-value: read a key (absent reads as `""`).
    Get,
    Put(Datum),
    /// Key-value: append to the string at a key.
    Append(Datum),
    /// Register: read.
    Read,
    Write(Datum),
    /// Register: compare-and-set.
    Cas {
        expected: Datum,
        new: Datum,
    },
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Never learned: may have taken effect, or not.
    Unknown,
    /// A write or append was acknowledged.
    Ok,
    /// A read returned this value.
    Value(Datum),
    /// A compare-and-set swapped (true) or found another value (false).
    Swapped(bool),
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub id: usize,
    pub client: u64,
    pub key: Option<Arc<str>>,
    pub command: Command,
    pub reply: Reply,
    /// When the client invoked it.
    pub call: u64,
    /// When it completed; `u64::MAX` if it never did (or its outcome is
    /// unknown: the effect may land at any time after the call).
    pub ret: u64,
}

impl Operation {
    /// A short human form: `put(k, "v") → ok`.
    pub fn describe(&self) -> String {
        let key = self
            .key
            .as_deref()
            .map(|k| format!("{k:?}"))
            .unwrap_or_default();
        let sep = if key.is_empty() { "" } else { ", " };
        let call = match &self.command {
            Command::Get => format!("get({key})"),
            Command::Put(v) => format!("put({key}{sep}{v})"),
            Command::Append(v) => format!("append({key}{sep}{v})"),
            Command::Read => format!("read({key})"),
            Command::Write(v) => format!("write({key}{sep}{v})"),
            Command::Cas { expected, new } => format!("cas({key}{sep}{expected} → {new})"),
        };
        let reply = match &self.reply {
            Reply::Unknown => "?".to_owned(),
            Reply::Ok => "ok".to_owned(),
            Reply::Value(v) => v.to_string(),
            Reply::Swapped(s) => s.to_string(),
        };
        format!("{call} → {reply}")
    }
}

/// The wire form of one line.
#[derive(Debug, Deserialize, Serialize)]
struct Line {
    id: Option<usize>,
    client: u64,
    op: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    expected: Value,
    #[serde(default)]
    output: Value,
    call: u64,
    #[serde(rename = "return", default)]
    ret: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

/// A whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub operations: Vec<Operation>,
}

impl History {
    pub fn new(operations: Vec<Operation>) -> Self {
        Self { operations }
    }

    /// The operation with this id: at its position when ids are
    /// positions, found by binary search when they increase with gaps (as
    /// [`History::from_jsonl`] keeps them), by a scan otherwise.
    pub fn operation(&self, id: usize) -> Option<&Operation> {
        match self.operations.get(id) {
            Some(op) if op.id == id => Some(op),
            _ => match self.operations.binary_search_by_key(&id, |op| op.id) {
                Ok(position) => Some(&self.operations[position]),
                Err(_) => self.operations.iter().find(|op| op.id == id),
            },
        }
    }

    /// Refuses a history in which two operations share an id: verdicts and
    /// explanations name operations by id, so ids must say which one.
    pub fn validate_ids(&self) -> Result<()> {
        let mut ids: Vec<usize> = self.operations.iter().map(|op| op.id).collect();
        ids.sort_unstable();
        match ids.windows(2).find(|pair| pair[0] == pair[1]) {
            Some(pair) => Err(Error::DuplicateOperationId { id: pair[0] }),
            None => Ok(()),
        }
    }

    /// Parses JSON lines; blank lines are skipped. Errors name the line.
    /// Ids are kept as written (explanations quote them) and must increase
    /// down the file; a line without one takes the next number.
    pub fn from_jsonl(text: &str) -> Result<Self> {
        let mut operations: Vec<Operation> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line_no = index + 1;
            let bad = |reason: String| Error::BadHistory {
                line: line_no,
                reason,
            };
            let line: Line = serde_json::from_str(raw).map_err(|err| bad(err.to_string()))?;
            let value = Datum::from_json(&line.value, "value").map_err(bad)?;
            let command = match line.op.as_str() {
                "get" => Command::Get,
                "put" => Command::Put(value),
                "append" => Command::Append(value),
                "read" => Command::Read,
                "write" => Command::Write(value),
                "cas" => Command::Cas {
                    expected: Datum::from_json(&line.expected, "expected").map_err(bad)?,
                    new: value,
                },
                other => {
                    return Err(bad(format!(
                        "unknown op {other:?} (get, put, append, read, write, cas)"
                    )));
                }
            };
            let reply = match (&command, &line.output) {
                (_, Value::Null) => Reply::Unknown,
                (Command::Get, Value::String(s)) => Reply::Value(Datum::text(s)),
                (Command::Read, Value::Object(fields)) => Reply::Value(
                    Datum::from_json(fields.get("value").unwrap_or(&Value::Null), "output.value")
                        .map_err(bad)?,
                ),
                (Command::Read, other) => {
                    Reply::Value(Datum::from_json(other, "output").map_err(bad)?)
                }
                (Command::Put(_) | Command::Append(_) | Command::Write(_), Value::String(s))
                    if s == "ok" =>
                {
                    Reply::Ok
                }
                (Command::Cas { .. }, Value::Bool(swapped)) => Reply::Swapped(*swapped),
                (_, other) => {
                    return Err(bad(format!("output {other} does not fit op {:?}", line.op)));
                }
            };
            if line.ret.is_some_and(|ret| ret < line.call) {
                return Err(bad("returns before it was called".into()));
            }
            let ret = match reply {
                Reply::Unknown => u64::MAX,
                _ => line
                    .ret
                    .ok_or_else(|| bad("a completed operation needs a return time".into()))?,
            };
            let previous = operations.last().map(|op| op.id);
            let id = match (line.id, previous) {
                (None, None) => 0,
                (None, Some(previous)) => previous
                    .checked_add(1)
                    .ok_or_else(|| bad("no id after the largest possible one".into()))?,
                (Some(id), Some(previous)) if id <= previous => {
                    return Err(bad(format!(
                        "id {id} repeats or goes back: ids must increase down the file (the previous was {previous})"
                    )));
                }
                (Some(id), _) => id,
            };
            operations.push(Operation {
                id,
                client: line.client,
                key: line.key.map(Into::into),
                command,
                reply,
                call: line.call,
                ret,
            });
        }
        Ok(Self { operations })
    }

    /// Writes the history as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.operations {
            let (name, value, expected) = match &op.command {
                Command::Get => ("get", Value::Null, Value::Null),
                Command::Put(v) => ("put", v.to_json(), Value::Null),
                Command::Append(v) => ("append", v.to_json(), Value::Null),
                Command::Read => ("read", Value::Null, Value::Null),
                Command::Write(v) => ("write", v.to_json(), Value::Null),
                Command::Cas { expected, new } => ("cas", new.to_json(), expected.to_json()),
            };
            let output = match (&op.command, &op.reply) {
                (_, Reply::Unknown) => Value::Null,
                (_, Reply::Ok) => Value::from("ok"),
                (Command::Read, Reply::Value(v)) => serde_json::json!({ "value": v.to_json() }),
                (_, Reply::Value(v)) => v.to_json(),
                (_, Reply::Swapped(s)) => Value::from(*s),
            };
            let line = Line {
                id: Some(op.id),
                client: op.client,
                op: name.to_owned(),
                key: op.key.as_deref().map(str::to_owned),
                value,
                expected,
                output,
                call: op.call,
                ret: (op.ret != u64::MAX).then_some(op.ret),
                status: None,
            };
            // Every field serializes: plain numbers, strings and JSON values.
            out.push_str(&serde_json::to_string(&line).expect("history lines always serialize"));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_json_lines() {
        let text = concat!(
            r#"{"id":0,"client":1,"op":"put","key":"k","value":"v","expected":null,"output":"ok","call":1,"return":2}"#,
            "\n",
            r#"{"id":1,"client":2,"op":"get","key":"k","value":null,"expected":null,"output":"v","call":3,"return":4}"#,
            "\n",
            "\n",
            r#"{"id":2,"client":3,"op":"cas","key":null,"value":5,"expected":null,"output":null,"call":5,"return":null}"#,
            "\n",
            r#"{"id":3,"client":3,"op":"read","key":null,"value":null,"expected":null,"output":{"value":null},"call":6,"return":9}"#,
            "\n",
        );
        let history = History::from_jsonl(text).expect("valid");
        assert_eq!(history.operations.len(), 4);
        assert_eq!(history.operations[2].reply, Reply::Unknown);
        assert_eq!(history.operations[2].ret, u64::MAX);
        assert_eq!(history.operations[3].reply, Reply::Value(Datum::Absent));
        assert_eq!(
            History::from_jsonl(&history.to_jsonl()).expect("round trip"),
            history
        );
    }

    /// Ids from the file are kept, so explanations quote the file's
    /// numbers; a repeated or decreasing id is refused, naming its line.
    #[test]
    fn history_keeps_file_ids_and_refuses_repeats() {
        let line = |id: usize| {
            format!(
                r#"{{"id":{id},"client":1,"op":"put","key":"k","value":"v","output":"ok","call":{id},"return":{id}}}"#
            )
        };
        let gappy = [line(3), line(7), line(8)].join("\n");
        let history = History::from_jsonl(&gappy).expect("increasing ids");
        let ids: Vec<usize> = history.operations.iter().map(|op| op.id).collect();
        assert_eq!(ids, [3, 7, 8]);
        assert_eq!(history.operation(7).map(|op| op.call), Some(7));
        for (bad, line_no) in [
            ([line(1), line(1)].join("\n"), 2),
            ([line(0), line(2), line(1)].join("\n"), 3),
        ] {
            match History::from_jsonl(&bad) {
                Err(Error::BadHistory { line, reason }) => {
                    assert_eq!(line, line_no, "{reason}");
                    assert!(reason.contains("ids must increase"), "{reason}");
                }
                other => panic!("expected a bad-history error, got {other:?}"),
            }
        }
        let largest = format!(
            "{}\n{}",
            r#"{"id":18446744073709551615,"client":1,"op":"put","key":"k","value":"v","output":"ok","call":1,"return":2}"#,
            r#"{"client":1,"op":"put","key":"k","value":"v","output":"ok","call":3,"return":4}"#
        );
        assert!(matches!(
            History::from_jsonl(&largest),
            Err(Error::BadHistory { line: 2, .. })
        ));
        let mut duplicated = history.clone();
        duplicated.operations[1].id = 3;
        assert_eq!(
            duplicated.validate_ids(),
            Err(Error::DuplicateOperationId { id: 3 })
        );
    }

    #[test]
    fn history_errors_name_the_line() {
        let text = "\n{\"client\":1,\"op\":\"put\",\"key\":\"k\",\"value\":\"v\",\"output\":\"ok\",\"call\":1,\"return\":2}\n{\"client\":1,\"op\":\"jump\",\"call\":1,\"return\":2}\n";
        match History::from_jsonl(text) {
            Err(Error::BadHistory { line, reason }) => {
                assert!(line == 3 && reason.contains("jump"), "{line}: {reason}")
            }
            other => panic!("expected a bad-history error, got {other:?}"),
        }
        for bad in [
            "not json",
            r#"{"client":1,"op":"put","value":"v","output":"ok","call":5,"return":2}"#,
            r#"{"client":1,"op":"get","output":7,"call":1,"return":2}"#,
        ] {
            assert!(
                matches!(
                    History::from_jsonl(bad),
                    Err(Error::BadHistory { line: 1, .. })
                ),
                "{bad}"
            );
        }
    }
}
