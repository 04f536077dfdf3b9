//! The sequential specifications histories are judged against.

use std::fmt;
use std::str::FromStr;

use super::history::{Command, Datum, History, Operation, Reply};
use crate::{Error, Result};

/// A data type's behaviour when operations happen one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Per-key strings: `get`, `put`, `append`; absent reads as `""`.
    Kv,
    /// Per-key registers: `read`, `write`; initially absent.
    Register,
    /// One register with compare-and-set, as etcd's: `read`, `write`, `cas`.
    EtcdRegister,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Kv, Model::Register, Model::EtcdRegister];

    pub fn name(self) -> &'static str {
        match self {
            Model::Kv => "kv",
            Model::Register => "register",
            Model::EtcdRegister => "etcd-register",
        }
    }

    /// The model a history's operations call for: key-value operations
    /// mean `kv`, a compare-and-set means `etcd-register`, reads and
    /// writes alone mean `register`.
    pub fn detect(history: &History) -> Result<Self> {
        let kv = history.operations.iter().any(|op| {
            matches!(
                op.command,
                Command::Get | Command::Put(_) | Command::Append(_)
            )
        });
        let cas = history
            .operations
            .iter()
            .any(|op| matches!(op.command, Command::Cas { .. }));
        let model = match (kv, cas) {
            (true, _) => Model::Kv,
            (false, true) => Model::EtcdRegister,
            (false, false) => Model::Register,
        };
        model.validate(history)?;
        Ok(model)
    }

    /// Refuses operations the model does not have.
    pub fn validate(self, history: &History) -> Result<()> {
        for op in &history.operations {
            let fits = match self {
                Model::Kv => matches!(
                    op.command,
                    Command::Get | Command::Put(_) | Command::Append(_)
                ),
                Model::Register => matches!(op.command, Command::Read | Command::Write(_)),
                Model::EtcdRegister => matches!(
                    op.command,
                    Command::Read | Command::Write(_) | Command::Cas { .. }
                ),
            };
            if !fits {
                return Err(Error::ModelMismatch {
                    model: self.name(),
                    operation: op.id,
                    found: op.describe(),
                });
            }
        }
        Ok(())
    }

    pub fn init(self) -> Datum {
        match self {
            Model::Kv => Datum::text(""),
            Model::Register | Model::EtcdRegister => Datum::Absent,
        }
    }

    /// The state after `op` runs on `state`, or `None` if `op`'s recorded
    /// reply is impossible there. An unknown reply is always possible.
    #[inline]
    pub fn step(self, state: &Datum, op: &Operation) -> Option<Datum> {
        match (&op.command, &op.reply) {
            (Command::Get | Command::Read, Reply::Value(seen)) => {
                (seen == state).then(|| state.clone())
            }
            (Command::Get | Command::Read, _) => Some(state.clone()),
            (Command::Put(value) | Command::Write(value), _) => Some(value.clone()),
            (Command::Append(value), _) => Some(append(state, value)),
            (Command::Cas { expected, new }, Reply::Swapped(true)) => {
                (state == expected).then(|| new.clone())
            }
            (Command::Cas { expected, .. }, Reply::Swapped(false)) => {
                (state != expected).then(|| state.clone())
            }
            (Command::Cas { expected, new }, _) => Some(if state == expected {
                new.clone()
            } else {
                state.clone()
            }),
        }
    }

    /// Why `op` cannot run next on `state`, in words.
    pub fn explain(self, state: &Datum, op: &Operation) -> String {
        match (&op.command, &op.reply) {
            (Command::Get | Command::Read, Reply::Value(seen)) => {
                format!("it read {seen}, but the value was {state}")
            }
            (Command::Cas { expected, .. }, Reply::Swapped(true)) => {
                format!("it swapped expecting {expected}, but the value was {state}")
            }
            (Command::Cas { expected, .. }, Reply::Swapped(false)) => {
                format!("it failed to swap, but the value was {expected} as it expected")
            }
            _ => "it could go next, but nothing that must follow it can".to_owned(),
        }
    }
}

fn append(state: &Datum, value: &Datum) -> Datum {
    let head = match state {
        Datum::Str(s) => s.to_string(),
        Datum::Int(n) => n.to_string(),
        Datum::Absent => String::new(),
    };
    let tail = match value {
        Datum::Str(s) => s.to_string(),
        Datum::Int(n) => n.to_string(),
        Datum::Absent => String::new(),
    };
    Datum::text(&(head + &tail))
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| Error::UnknownModel {
                name: name.to_owned(),
            })
    }
}
