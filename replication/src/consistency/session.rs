//! Session guarantees: what one client may expect of a weaker store.
//!
//! Terry et al. (1994) named four promises a store can make to each
//! client session even when it is not linearizable:
//!
//! - **read-your-writes**: a read sees every write this client made before it;
//! - **monotonic reads**: a later read never sees an older state than an earlier one;
//! - **monotonic writes**: this client's writes take effect in the order it made them;
//! - **writes-follow-reads**: a write is ordered after everything the client had read.
//!
//! To check them the checker needs the order of versions, which a plain
//! register hides (two writes of `5` are indistinguishable). Append-only
//! keys reveal it: every value is the list of appends so far, so "newer
//! than" is "extends". This is why Jepsen's Elle tests with list-append,
//! and why these checkers take `get` / `append` histories whose appended
//! tokens are unique (like `"x 3 7 y"`: client 3's seventh append).

use std::collections::BTreeMap;
use std::fmt;

use super::history::{Command, Datum, History, Operation, Reply};
use crate::{Error, Result};

/// The four session guarantees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guarantee {
    ReadYourWrites,
    MonotonicReads,
    MonotonicWrites,
    WritesFollowReads,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::ReadYourWrites => "read-your-writes",
            Guarantee::MonotonicReads => "monotonic reads",
            Guarantee::MonotonicWrites => "monotonic writes",
            Guarantee::WritesFollowReads => "writes-follow-reads",
        })
    }
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionViolation {
    pub guarantee: Guarantee,
    pub client: u64,
    /// The operations involved, earliest first.
    pub operations: Vec<usize>,
    pub explanation: String,
}

impl SessionViolation {
    /// The violation as JSON, for `dslab check --json --sessions`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "guarantee": self.guarantee.to_string(),
            "client": self.client,
            "operations": self.operations,
            "explanation": self.explanation,
        })
    }
}

fn text(datum: &Datum) -> String {
    match datum {
        Datum::Str(s) => s.to_string(),
        Datum::Int(n) => n.to_string(),
        Datum::Absent => String::new(),
    }
}

/// Checks all four guarantees; returns every violation found.
pub fn check_sessions(history: &History) -> Result<Vec<SessionViolation>> {
    for op in &history.operations {
        if !matches!(op.command, Command::Get | Command::Append(_)) {
            return Err(Error::ModelMismatch {
                model: "session (get/append)",
                operation: op.id,
                found: op.describe(),
            });
        }
    }
    // Only operations the client saw complete can be relied on.
    let done = |op: &&Operation| op.reply != Reply::Unknown;
    let mut sessions: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
    for op in history.operations.iter().filter(done) {
        sessions.entry(op.client).or_default().push(op);
    }
    let reads: Vec<(&Operation, String)> = history
        .operations
        .iter()
        .filter(done)
        .filter_map(|op| match &op.reply {
            Reply::Value(v) if op.command == Command::Get => Some((op, text(v))),
            _ => None,
        })
        .collect();

    let mut violations = Vec::new();
    for (&client, ops) in &mut sessions {
        ops.sort_by_key(|op| op.call);
        // Per key: this client's appends so far, and its last read.
        let mut appended: BTreeMap<Option<&str>, Vec<(usize, String)>> = BTreeMap::new();
        let mut last_read: BTreeMap<Option<&str>, (usize, String)> = BTreeMap::new();
        for op in ops.iter() {
            let key = op.key.as_deref();
            match (&op.command, &op.reply) {
                (Command::Append(token), Reply::Ok) => {
                    let token = text(token);
                    // Writes-follow-reads: wherever this append shows up,
                    // it must come after what the client had read.
                    if let Some((read_id, seen)) = last_read.get(&key) {
                        for (other, value) in reads.iter().filter(|(r, _)| r.key.as_deref() == key)
                        {
                            if let Some(at) = value.find(&token)
                                && !value[..at].starts_with(seen.as_str())
                            {
                                violations.push(SessionViolation {
                                        guarantee: Guarantee::WritesFollowReads,
                                        client,
                                        operations: vec![*read_id, op.id, other.id],
                                        explanation: format!(
                                            "client {client} read {seen:?} then appended {token:?}, but read #{} shows the append without all it had read: {value:?}",
                                            other.id
                                        ),
                                    });
                            }
                        }
                    }
                    appended.entry(key).or_default().push((op.id, token));
                }
                (Command::Get, Reply::Value(value)) => {
                    let value = text(value);
                    for (write_id, token) in appended.get(&key).into_iter().flatten() {
                        if !value.contains(token.as_str()) {
                            violations.push(SessionViolation {
                                guarantee: Guarantee::ReadYourWrites,
                                client,
                                operations: vec![*write_id, op.id],
                                explanation: format!("client {client} appended {token:?} and then read {value:?}, without it"),
                            });
                        }
                    }
                    if let Some((earlier_id, earlier)) = last_read.get(&key)
                        && !value.starts_with(earlier.as_str())
                    {
                        violations.push(SessionViolation {
                                guarantee: Guarantee::MonotonicReads,
                                client,
                                operations: vec![*earlier_id, op.id],
                                explanation: format!("client {client} read {earlier:?} and later {value:?}, which does not extend it"),
                            });
                    }
                    last_read.insert(key, (op.id, value));
                }
                _ => {}
            }
        }
        // Monotonic writes: in every read, this client's appends to a key
        // appear in the order it made them.
        for (key, tokens) in &appended {
            for pair in tokens.windows(2) {
                let ((first_id, first), (second_id, second)) = (&pair[0], &pair[1]);
                for (read, value) in reads.iter().filter(|(r, _)| r.key.as_deref() == *key) {
                    if let Some(at_second) = value.find(second.as_str()) {
                        let in_order = value
                            .find(first.as_str())
                            .is_some_and(|at_first| at_first < at_second);
                        if !in_order {
                            violations.push(SessionViolation {
                                guarantee: Guarantee::MonotonicWrites,
                                client,
                                operations: vec![*first_id, *second_id, read.id],
                                explanation: format!(
                                    "client {client} appended {first:?} before {second:?}, but read #{} shows {value:?}",
                                    read.id
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, client: u64, command: Command, reply: Reply, call: u64) -> Operation {
        Operation {
            id,
            client,
            key: Some("k".into()),
            command,
            reply,
            call,
            ret: call + 1,
        }
    }

    fn append(id: usize, client: u64, token: &str, call: u64) -> Operation {
        op(
            id,
            client,
            Command::Append(Datum::text(token)),
            Reply::Ok,
            call,
        )
    }

    fn get(id: usize, client: u64, seen: &str, call: u64) -> Operation {
        op(
            id,
            client,
            Command::Get,
            Reply::Value(Datum::text(seen)),
            call,
        )
    }

    fn violated(ops: Vec<Operation>) -> Vec<Guarantee> {
        let mut found: Vec<Guarantee> = check_sessions(&History::new(ops))
            .expect("append history")
            .into_iter()
            .map(|v| v.guarantee)
            .collect();
        found.dedup();
        found
    }

    #[test]
    fn session_a_well_behaved_history_keeps_every_promise() {
        let ops = vec![
            append(0, 1, "a", 0),
            get(1, 1, "a", 2),
            append(2, 2, "b", 4),
            get(3, 1, "ab", 6),
            get(4, 2, "ab", 8),
        ];
        assert!(violated(ops).is_empty());
    }

    #[test]
    fn session_stale_read_breaks_read_your_writes() {
        assert_eq!(
            violated(vec![append(0, 1, "a", 0), get(1, 1, "", 2)]),
            [Guarantee::ReadYourWrites]
        );
    }

    #[test]
    fn session_going_back_in_time_breaks_monotonic_reads() {
        let ops = vec![append(0, 2, "a", 0), get(1, 1, "a", 2), get(2, 1, "", 4)];
        assert_eq!(violated(ops), [Guarantee::MonotonicReads]);
    }

    #[test]
    fn session_reordered_appends_break_monotonic_writes() {
        let ops = vec![
            append(0, 1, "a", 0),
            append(1, 1, "b", 2),
            get(2, 2, "ba", 4),
        ];
        assert_eq!(violated(ops), [Guarantee::MonotonicWrites]);
    }

    #[test]
    fn session_write_before_what_was_read_breaks_writes_follow_reads() {
        let ops = vec![
            append(0, 2, "a", 0),
            get(1, 1, "a", 2),
            append(2, 1, "b", 4),
            get(3, 3, "b", 6),
        ];
        assert_eq!(violated(ops), [Guarantee::WritesFollowReads]);
    }

    #[test]
    fn session_unknown_appends_are_not_required() {
        let unknown = op(0, 1, Command::Append(Datum::text("a")), Reply::Unknown, 0);
        assert!(
            violated(vec![unknown, get(1, 1, "", 2)]).is_empty(),
            "it may never have happened"
        );
    }

    #[test]
    fn session_checks_refuse_overwrites() {
        let put = op(0, 1, Command::Put(Datum::text("a")), Reply::Ok, 0);
        assert!(matches!(
            check_sessions(&History::new(vec![put])),
            Err(Error::ModelMismatch { .. })
        ));
    }
}
