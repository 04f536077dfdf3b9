//! Transactional histories: the JSONL format, parsed with line-numbered
//! errors, and the in-memory form the checker and the stores share.
//!
//! One transaction per line (the shape of Jepsen's and Elle's histories,
//! with the invocation and completion folded into one record):
//!
//! ```text
//! {"id":0,"process":1,"type":"ok","value":[["append","x",1],["r","y",[1,2]]],"call":10,"return":17}
//! {"id":1,"process":2,"type":"ok","value":[["w","x",1],["r","y",null]],"call":11,"return":15}
//! ```
//!
//! Keys are strings or integers; values are integers. `call`/`return` are
//! optional (only real-time order needs them); an `info` transaction's
//! missing `return` means it may take effect any time after its call.

use std::collections::HashMap;

use serde_json::Value;

use super::parse;

/// Which data model the micro-operations follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataModel {
    /// `["append", k, v]` and `["r", k, [v…]]`: keys hold lists.
    ListAppend,
    /// `["w", k, v]` and `["r", k, v|null]`: keys hold one value.
    RwRegister,
}

impl DataModel {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ListAppend => "list-append",
            Self::RwRegister => "rw-register",
        }
    }
}

impl std::str::FromStr for DataModel {
    type Err = HistoryError;
    fn from_str(name: &str) -> Result<Self, HistoryError> {
        match name {
            "list-append" => Ok(Self::ListAppend),
            "rw-register" => Ok(Self::RwRegister),
            other => Err(HistoryError::UnknownModel(other.to_owned())),
        }
    }
}

/// Did the transaction commit?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`: committed.
    Ok,
    /// `fail`: known not to have committed.
    Fail,
    /// `info`: unknown (a timeout, a lost connection).
    Info,
}

/// A key, interned: its name is `TxnHistory::keys[id]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

/// One micro-operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// List-append: add `element` to the end of `key`'s list.
    Append { key: KeyId, element: i64 },
    /// List-append read; `None` when the value is unknown (not `ok`).
    ReadList {
        key: KeyId,
        elements: Option<Vec<i64>>,
    },
    /// Register write.
    Write { key: KeyId, value: i64 },
    /// Register read; `None` is the initial (never written) state in an
    /// `ok` transaction, and "unknown" in the others.
    ReadRegister { key: KeyId, value: Option<i64> },
}

/// One transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    pub id: u64,
    pub process: u64,
    pub outcome: Outcome,
    pub ops: Vec<MicroOp>,
    pub call: Option<u64>,
    pub ret: Option<u64>,
    /// 1-based line in the file (0 for histories built in memory).
    pub line: usize,
}

/// A whole history: transactions in file order, keys interned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnHistory {
    pub model: DataModel,
    pub txns: Vec<Txn>,
    pub keys: Vec<String>,
}

/// Why a history could not be read. Every variant names its line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    #[error("unknown transactional model {0:?}: use list-append or rw-register")]
    UnknownModel(String),
    #[error("line {line}: malformed JSON: {reason}")]
    Json { line: usize, reason: String },
    #[error("line {line}: {reason}")]
    Field { line: usize, reason: String },
    #[error("line {line}: unknown micro-op {op:?} for {model}")]
    UnknownMicroOp {
        line: usize,
        op: String,
        model: &'static str,
    },
    #[error("line {line}: transaction id {id} already used on line {first}")]
    DuplicateId { line: usize, id: u64, first: usize },
    #[error(
        "line {line}: value {value} written to key {key:?} again (first on line {first}); values must be unique per key"
    )]
    DuplicateWrite {
        line: usize,
        key: String,
        value: i64,
        first: usize,
    },
}

impl TxnHistory {
    /// An empty history to push transactions into.
    pub fn new(model: DataModel) -> Self {
        Self {
            model,
            txns: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// The name of `key`.
    pub fn key_name(&self, key: KeyId) -> &str {
        self.keys.get(key.0 as usize).map_or("?", String::as_str)
    }

    /// Parses one transaction per non-blank line.
    pub fn from_jsonl(text: &str, model: DataModel) -> Result<Self, HistoryError> {
        let mut history = Self::new(model);
        let mut interner: HashMap<String, (KeyId, parse::KeyKind)> = HashMap::new();
        let mut ids: HashMap<u64, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(raw).map_err(|err| HistoryError::Json {
                line,
                reason: err.to_string(),
            })?;
            let txn = parse::parse_txn(&value, line, model, &mut |name, kind| {
                let next = KeyId(history.keys.len() as u32);
                let (id, first_kind) = *interner.entry(name.to_owned()).or_insert_with(|| {
                    history.keys.push(name.to_owned());
                    (next, kind)
                });
                (first_kind == kind).then_some(id)
            })?;
            if let Some(first) = ids.insert(txn.id, line) {
                return Err(HistoryError::DuplicateId {
                    line,
                    id: txn.id,
                    first,
                });
            }
            history.txns.push(txn);
        }
        history.check_unique_writes()?;
        Ok(history)
    }

    /// Inference rests on each written value naming its writer.
    fn check_unique_writes(&self) -> Result<(), HistoryError> {
        let mut seen: HashMap<(KeyId, i64), usize> = HashMap::new();
        for txn in &self.txns {
            for op in &txn.ops {
                let (key, value) = match op {
                    MicroOp::Append { key, element } => (*key, *element),
                    MicroOp::Write { key, value } => (*key, *value),
                    _ => continue,
                };
                if let Some(first) = seen.insert((key, value), txn.line) {
                    return Err(HistoryError::DuplicateWrite {
                        line: txn.line,
                        key: self.key_name(key).to_owned(),
                        value,
                        first,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes the history back as JSONL (the format above).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for txn in &self.txns {
            let ops: Vec<Value> = txn
                .ops
                .iter()
                .map(|op| match op {
                    MicroOp::Append { key, element } => {
                        serde_json::json!(["append", self.key_name(*key), element])
                    }
                    MicroOp::ReadList { key, elements } => {
                        serde_json::json!(["r", self.key_name(*key), elements])
                    }
                    MicroOp::Write { key, value } => {
                        serde_json::json!(["w", self.key_name(*key), value])
                    }
                    MicroOp::ReadRegister { key, value } => {
                        serde_json::json!(["r", self.key_name(*key), value])
                    }
                })
                .collect();
            let mut record = serde_json::json!({
                "id": txn.id, "process": txn.process, "type": outcome_name(txn.outcome), "value": ops,
            });
            if let Some(call) = txn.call {
                record["call"] = call.into();
            }
            if let Some(ret) = txn.ret {
                record["return"] = ret.into();
            }
            out.push_str(&record.to_string());
            out.push('\n');
        }
        out
    }
}

/// `ok`, `fail` or `info`.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}
