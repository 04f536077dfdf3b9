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
//! tokens tell themselves apart (like `"[3.7]"`: client 3's seventh
//! append). Reads are split into the appends they saw, never searched as
//! text: `"1"` is not found inside `"12"`.
//!
//! Bounds: a read is checked against the earlier reads its appends
//! depend on, each comparison up to that read's length, so the work grows
//! with (reads × appends per key × read length) at worst; the cross-key
//! check keeps, per append, what its client knew on every key (memory up
//! to appends × keys). Reports stop at [`MAX_VIOLATIONS`], each quoting at
//! most 80 characters of a read. A history is read whole into memory:
//! this is for the test-sized histories of a lab, not for a week of
//! production traffic.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

mod tokens;

use super::history::{Command, Datum, History, Operation, Reply};
use crate::{Error, Result};
use tokens::{KeyTokens, Read, text};

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

/// The most violations reported; a broken store can produce one per
/// read, and the first few say everything.
pub const MAX_VIOLATIONS: usize = 1_000;

/// What a client knew, per key, when it made one append: its own last
/// append there, and the last read it made there. Writes-follow-reads and
/// monotonic writes say the append must never be seen without them.
#[derive(Clone, Default)]
struct Context {
    /// key → (the client's previous append to it)
    appended: BTreeMap<Option<Arc<str>>, usize>,
    /// key → (the read, by position in the reads list)
    read: BTreeMap<Option<Arc<str>>, usize>,
}

/// Collects violations up to [`MAX_VIOLATIONS`].
struct Report(Vec<SessionViolation>);

impl Report {
    fn push(&mut self, guarantee: Guarantee, client: u64, operations: Vec<usize>, why: String) {
        if self.0.len() < MAX_VIOLATIONS {
            self.0.push(SessionViolation {
                guarantee,
                client,
                operations,
                explanation: why,
            });
        }
    }
}

/// Checks all four guarantees; returns the violations found (at most
/// [`MAX_VIOLATIONS`]).
///
/// Appended values are tokens: non-empty, unique per key, none a prefix
/// of another (`"[3.7]"`, `"x 3 7 y"`; not `"1"` beside `"12"`), so that
/// every read splits into the appends it saw in exactly one way. A history
/// that breaks this is refused with [`Error::AmbiguousTokens`]; a read
/// that is not a sequence of appended tokens, with [`Error::UnparseableRead`].
pub fn check_sessions(history: &History) -> Result<Vec<SessionViolation>> {
    for op in &history.operations {
        // Tokens are strings: an integer can be neither split nor joined.
        let numeric = matches!(op.command, Command::Append(Datum::Int(_)))
            || matches!(op.reply, Reply::Value(Datum::Int(_)));
        if numeric || !matches!(op.command, Command::Get | Command::Append(_)) {
            return Err(Error::ModelMismatch {
                model: "session (get/append of string tokens)",
                operation: op.id,
                found: op.describe(),
            });
        }
    }
    history.validate_ids()?;
    // Every append, finished or not, may show up in a read.
    let mut tokens_by_key: BTreeMap<Option<Arc<str>>, Vec<(&str, usize)>> = BTreeMap::new();
    for op in &history.operations {
        if let Command::Append(token) = &op.command {
            tokens_by_key
                .entry(op.key.clone())
                .or_default()
                .push((text(token), op.id));
        }
    }
    let tokens: BTreeMap<Option<Arc<str>>, KeyTokens> = tokens_by_key
        .into_iter()
        .map(|(key, list)| KeyTokens::new(list).map(|t| (key, t)))
        .collect::<Result<_>>()?;
    let no_tokens = KeyTokens { sorted: Vec::new() };

    // Only operations the client saw complete can be relied on.
    let mut reads: Vec<Read> = Vec::new();
    for op in &history.operations {
        if let (Command::Get, Reply::Value(value)) = (&op.command, &op.reply) {
            let key_tokens = tokens.get(&op.key).unwrap_or(&no_tokens);
            let seen = key_tokens.parse(op, text(value))?;
            reads.push(Read::new(op, seen)?);
        }
    }
    let appends: BTreeMap<usize, &Operation> = history
        .operations
        .iter()
        .filter(|op| matches!(op.command, Command::Append(_)))
        .map(|op| (op.id, op))
        .collect();
    let token_of = |id: usize| {
        appends
            .get(&id)
            .and_then(|op| match &op.command {
                Command::Append(token) => Some(text(token).to_owned()),
                _ => None,
            })
            .unwrap_or_default()
    };

    // Each client's session: its completed operations in program order.
    let mut sessions: BTreeMap<u64, Vec<Step>> = BTreeMap::new();
    for op in history.operations.iter() {
        match (&op.command, &op.reply) {
            (Command::Append(_), Reply::Ok) => {
                sessions
                    .entry(op.client)
                    .or_default()
                    .push(Step::Append(op));
            }
            (Command::Get, Reply::Value(_)) => {}
            _ => {}
        }
    }
    for (at, read) in reads.iter().enumerate() {
        sessions
            .entry(read.op.client)
            .or_default()
            .push(Step::Read(at));
    }
    let call_of = |step: &Step| match step {
        Step::Append(op) => op.call,
        Step::Read(at) => reads[*at].op.call,
    };
    for steps in sessions.values_mut() {
        steps.sort_by_key(call_of);
    }

    let mut report = Report(Vec::new());
    // What each append's client knew when it appended.
    let mut contexts: BTreeMap<usize, Context> = BTreeMap::new();
    for (&client, steps) in &sessions {
        let mut known = Context::default();
        for step in steps {
            match *step {
                Step::Append(op) => {
                    contexts.insert(op.id, known.clone());
                    known.appended.insert(op.key.clone(), op.id);
                }
                Step::Read(at) => {
                    let read = &reads[at];
                    let key = &read.op.key;
                    // Read-your-writes: every earlier append of this client
                    // to the key. Its appends to a key form a chain (checked
                    // below), so the latest one stands for them all.
                    if let Some(&own) = known.appended.get(key)
                        && read.position(own).is_none()
                    {
                        report.push(
                            Guarantee::ReadYourWrites,
                            client,
                            vec![own, read.op.id],
                            format!(
                                "client {client} appended {:?} and then read {:?}, without it",
                                token_of(own),
                                text_of(read.op)
                            ),
                        );
                    }
                    // Monotonic reads: never an older state than before.
                    if let Some(&earlier) = known.read.get(key) {
                        let earlier = &reads[earlier];
                        let mut prefixes = HashMap::new();
                        if !read.extends_before(earlier, read.seen.len(), &mut prefixes) {
                            report.push(
                                Guarantee::MonotonicReads,
                                client,
                                vec![earlier.op.id, read.op.id],
                                format!(
                                    "client {client} read {:?} and later {:?}, which does not extend it",
                                    text_of(earlier.op),
                                    text_of(read.op)
                                ),
                            );
                        }
                    }
                    known.read.insert(key.clone(), at);
                }
            }
        }
    }

    // Same key: wherever an append shows up, its client's previous append
    // to that key (monotonic writes) and everything its client had read
    // there (writes-follow-reads) show up before it.
    for read in &reads {
        let key = &read.op.key;
        let mut prefixes = HashMap::new();
        for (position, &append) in read.seen.iter().enumerate() {
            let Some(context) = contexts.get(&append) else {
                continue;
            };
            let writer = appends.get(&append).map_or(0, |op| op.client);
            if let Some(&previous) = context.appended.get(key)
                && read.position(previous).is_none_or(|p| p > position)
            {
                report.push(
                    Guarantee::MonotonicWrites,
                    writer,
                    vec![previous, append, read.op.id],
                    format!(
                        "client {writer} appended {:?} before {:?}, but read #{} shows {:?}",
                        token_of(previous),
                        token_of(append),
                        read.op.id,
                        text_of(read.op)
                    ),
                );
            }
            if let Some(&source) = context.read.get(key)
                && !read.extends_before(&reads[source], position, &mut prefixes)
            {
                let source = &reads[source];
                report.push(
                    Guarantee::WritesFollowReads,
                    writer,
                    vec![source.op.id, append, read.op.id],
                    format!(
                        "client {writer} read {:?} then appended {:?}, but read #{} shows the append without all it had read: {:?}",
                        text_of(source.op),
                        token_of(append),
                        read.op.id,
                        text_of(read.op)
                    ),
                );
            }
        }
    }

    // Across keys a single read shows one key only, so the promise is
    // observed through a session: a client that saw an append to y, and
    // then reads x, must find there what the appender had written to or
    // read from x before appending — Terry et al.'s "if W2 is in a
    // server's database, so are the writes it follows". Pitfall: this
    // reads the observer's later read as showing the state that held the
    // append; if the observer's reads across keys are not monotonic, the
    // missing write is blamed on the writer's guarantee.
    for (&observer, steps) in &sessions {
        // key x → the appends the observer must find there next time.
        let mut owed: BTreeMap<Option<Arc<str>>, BTreeMap<usize, Debt>> = BTreeMap::new();
        let mut previous_seen: BTreeMap<Option<Arc<str>>, usize> = BTreeMap::new();
        for step in steps {
            let Step::Read(at) = *step else { continue };
            let read = &reads[at];
            let key = &read.op.key;
            // A debt is checked by the observer's next read of its key,
            // then settled: later reads that drop it again break
            // monotonic reads, which is reported on its own.
            for debt in owed.remove(key).into_iter().flat_map(BTreeMap::into_values) {
                if read.position(debt.required).is_none() {
                    let (guarantee, premise) = match debt.followed_read {
                        Some(source) => (
                            Guarantee::WritesFollowReads,
                            format!("read #{source} (which saw {:?})", token_of(debt.required)),
                        ),
                        None => (
                            Guarantee::MonotonicWrites,
                            format!("appended {:?}", token_of(debt.required)),
                        ),
                    };
                    let writer = appends.get(&debt.because).map_or(0, |op| op.client);
                    report.push(
                        guarantee,
                        writer,
                        vec![debt.required, debt.because, debt.shown_by, read.op.id],
                        format!(
                            "client {writer} {premise} before appending {:?}; client {observer} saw that append in read #{} and then read {:?} without {:?}",
                            token_of(debt.because),
                            debt.shown_by,
                            text_of(read.op),
                            token_of(debt.required)
                        ),
                    );
                }
            }
            // Appends this read shows for the first time create new debts.
            let already = previous_seen.get(key).copied().unwrap_or(0);
            for &append in read.seen.iter().skip(already) {
                let Some(context) = contexts.get(&append) else {
                    continue;
                };
                for (other, &required) in &context.appended {
                    if other != key {
                        owed.entry(other.clone())
                            .or_default()
                            .entry(required)
                            .or_insert(Debt {
                                required,
                                because: append,
                                shown_by: read.op.id,
                                followed_read: None,
                            });
                    }
                }
                // What the writer read there: its newest token stands for
                // the rest (a read missing an older one while holding the
                // newest breaks monotonic writes or reads, reported above).
                for (other, &source) in &context.read {
                    let source = &reads[source];
                    if other != key
                        && let Some(&required) = source.seen.last()
                    {
                        owed.entry(other.clone())
                            .or_default()
                            .entry(required)
                            .or_insert(Debt {
                                required,
                                because: append,
                                shown_by: read.op.id,
                                followed_read: Some(source.op.id),
                            });
                    }
                }
            }
            previous_seen.insert(key.clone(), read.seen.len().max(already));
        }
    }
    Ok(report.0)
}

/// One step of a session, in program order.
enum Step<'h> {
    Append(&'h Operation),
    /// A completed read, by position in the parsed reads.
    Read(usize),
}

/// An append an observer must find, and why.
struct Debt {
    required: usize,
    because: usize,
    shown_by: usize,
    followed_read: Option<usize>,
}

/// What a read returned, as an explanation quotes it: at most
/// [`QUOTED_CHARS`] characters, so that a thousand violations of one long
/// read do not each carry a copy of it.
fn text_of(op: &Operation) -> String {
    let value = match &op.reply {
        Reply::Value(value) => text(value),
        _ => "",
    };
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// The longest read value an explanation quotes whole.
const QUOTED_CHARS: usize = 80;

#[cfg(test)]
mod tests;
