//! Parsing one JSONL line into a [`Txn`], every error naming its line.

use serde_json::Value;

use super::history::{DataModel, HistoryError, KeyId, MicroOp, Outcome, Txn};

fn field(line: usize, reason: impl Into<String>) -> HistoryError {
    HistoryError::Field {
        line,
        reason: reason.into(),
    }
}

pub(super) fn parse_txn(
    value: &Value,
    line: usize,
    model: DataModel,
    intern: &mut dyn FnMut(&str, KeyKind) -> Option<KeyId>,
) -> Result<Txn, HistoryError> {
    let object = value
        .as_object()
        .ok_or_else(|| field(line, "expected a JSON object"))?;
    let integer = |name: &str| -> Result<Option<u64>, HistoryError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| field(line, format!("{name:?} must be a non-negative integer"))),
        }
    };
    let id = integer("id")?.ok_or_else(|| field(line, "missing \"id\""))?;
    let process = integer("process")?.ok_or_else(|| field(line, "missing \"process\""))?;
    let outcome = match object.get("type").and_then(Value::as_str) {
        Some("ok") => Outcome::Ok,
        Some("fail") => Outcome::Fail,
        Some("info") => Outcome::Info,
        _ => return Err(field(line, "\"type\" must be \"ok\", \"fail\" or \"info\"")),
    };
    let raw_ops = object
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| field(line, "\"value\" must be a list of micro-ops"))?;
    let mut ops = Vec::with_capacity(raw_ops.len());
    for raw in raw_ops {
        ops.push(parse_micro_op(raw, line, model, outcome, intern)?);
    }
    let (call, ret) = (integer("call")?, integer("return")?);
    if let (Some(c), Some(r)) = (call, ret)
        && r < c
    {
        return Err(field(
            line,
            format!("returns at {r} before its call at {c}"),
        ));
    }
    Ok(Txn {
        id,
        process,
        outcome,
        ops,
        call,
        ret,
        line,
    })
}

fn parse_micro_op(
    raw: &Value,
    line: usize,
    model: DataModel,
    outcome: Outcome,
    intern: &mut dyn FnMut(&str, KeyKind) -> Option<KeyId>,
) -> Result<MicroOp, HistoryError> {
    let parts = raw
        .as_array()
        .filter(|p| p.len() == 3)
        .ok_or_else(|| field(line, format!("micro-op {raw} is not [f, key, value]")))?;
    let name = parts[0].as_str().unwrap_or("");
    let (key_name, kind) = match &parts[1] {
        Value::String(s) => (s.clone(), KeyKind::String),
        Value::Number(n) if n.is_i64() || n.is_u64() => (n.to_string(), KeyKind::Integer),
        other => {
            return Err(field(
                line,
                format!("key {other} is not a string or integer"),
            ));
        }
    };
    // JSON tells 1 from "1"; keys are kept by name, so a file may not
    // spell one name both ways rather than have two keys silently merged.
    let key = intern(&key_name, kind).ok_or_else(|| {
        field(
            line,
            format!(
                "key {} is {kind} here but was {} before; use one spelling",
                parts[1],
                kind.other()
            ),
        )
    })?;
    let int = |v: &Value| {
        v.as_i64()
            .ok_or_else(|| field(line, format!("value {v} in {raw} is not an integer")))
    };
    // Pitfall: a `null` read in an `ok` register transaction is the
    // initial state, which is evidence; in `fail`/`info` it means "we never
    // heard", which is not. Keep the two apart from the start.
    match (model, name) {
        (DataModel::ListAppend, "append") => Ok(MicroOp::Append {
            key,
            element: int(&parts[2])?,
        }),
        (DataModel::ListAppend, "r") => {
            let elements = match &parts[2] {
                Value::Null if outcome != Outcome::Ok => None,
                Value::Array(items) => Some(items.iter().map(int).collect::<Result<_, _>>()?),
                other => {
                    return Err(field(line, format!("read value {other} is not a list")));
                }
            };
            Ok(MicroOp::ReadList { key, elements })
        }
        (DataModel::RwRegister, "w") => Ok(MicroOp::Write {
            key,
            value: int(&parts[2])?,
        }),
        (DataModel::RwRegister, "r") => Ok(MicroOp::ReadRegister {
            key,
            value: match &parts[2] {
                Value::Null => None,
                v => Some(int(v)?),
            },
        }),
        (model, op) => Err(HistoryError::UnknownMicroOp {
            line,
            op: op.to_owned(),
            model: model.name(),
        }),
    }
}

/// How a key was spelt in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    String,
    Integer,
}

impl KeyKind {
    fn other(self) -> Self {
        match self {
            Self::String => Self::Integer,
            Self::Integer => Self::String,
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::String => "a string",
            Self::Integer => "an integer",
        })
    }
}
