//! The nouns of an event store: streams, versions, positions, events.

use serde::{Deserialize, Serialize};

use super::{
    MAX_EVENT_TYPE_BYTES, MAX_EVENTS_PER_APPEND, MAX_STREAM_NAME_BYTES, Result, StoreError,
};

/// The name of a stream: one aggregate's history ("account-42").
///
/// 1 to [`MAX_STREAM_NAME_BYTES`] bytes of ASCII letters, digits and
/// `-_.:@`. No `/`, so a backend on a key-value store can build keys
/// such as `prefix/stream/version` without escaping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(String);

impl StreamName {
    /// Checks `name` against the rules above.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_STREAM_NAME_BYTES {
            Some("it is longer than the limit")
        } else if !name.bytes().all(is_name_byte) {
            Some("only ASCII letters, digits and -_.:@ are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidStreamName {
                name: shortened(&name),
                reason,
            }),
            None => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.:@".contains(&byte)
}

/// At most 64 characters of a name that was refused, for the message:
/// an error must not echo a megabyte back.
pub(super) fn shortened(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl TryFrom<String> for StreamName {
    type Error = StoreError;
    fn try_from(name: String) -> Result<Self> {
        Self::new(name)
    }
}

impl From<StreamName> for String {
    fn from(name: StreamName) -> Self {
        name.0
    }
}

impl std::str::FromStr for StreamName {
    type Err = StoreError;
    fn from_str(name: &str) -> Result<Self> {
        Self::new(name)
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many events a stream holds; an event's version is its 1-based
/// place in its stream. [`Version::NONE`] is the version of a stream that
/// does not exist yet. Versions are dense: a stream at version 5 holds
/// exactly the events 1..=5.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version(pub u64);

impl Version {
    /// A stream with no events (one that does not exist).
    pub const NONE: Version = Version(0);

    /// The version after this one.
    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The condition an append carries: optimistic concurrency.
///
/// A writer reads a stream at version v, decides, and appends "if the
/// stream is still at v". If another writer got there first the append
/// fails with [`StoreError::WrongExpectedVersion`] and nothing is written;
/// the writer re-reads and decides again. This is a compare-and-set on
/// the stream's version: of N concurrent appenders expecting v, exactly
/// one wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the version (no concurrency check). Creates the
    /// stream if needed.
    Any,
    /// Append only if the stream is at exactly this version;
    /// `Exact(Version::NONE)` means "only if the stream does not exist".
    Exact(Version),
}

/// Where an event sits in the store's global order (across all streams).
///
/// Positions are **increasing, not necessarily contiguous**: the
/// embedded backend numbers events 1, 2, 3…; a backend on etcd may derive
/// them from revisions ([`Position::from_revision`]) and skip numbers.
/// Every reader must only rely on "a later event has a larger position".
/// [`Position::START`] is before every event.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event: `read_all(Position::START, …)` reads from
    /// the beginning.
    pub const START: Position = Position(0);

    /// The position of the `index`-th event (0-based) of a batch written
    /// at store revision `revision`, for backends whose whole batch shares
    /// one revision (an etcd `Txn`): `revision * MAX_EVENTS_PER_APPEND +
    /// index`. Increasing in (revision, index); `None` on overflow or an
    /// index outside a batch.
    pub fn from_revision(revision: u64, index: usize) -> Option<Position> {
        if index >= MAX_EVENTS_PER_APPEND {
            return None;
        }
        revision
            .checked_mul(MAX_EVENTS_PER_APPEND as u64)?
            .checked_add(index as u64)
            .map(Position)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// An event a writer proposes: what happened, in which schema version,
/// and its data as a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened, past tense ("Deposited"): 1 to
    /// [`MAX_EVENT_TYPE_BYTES`] bytes of ASCII letters, digits and `-_.`.
    pub event_type: String,
    /// The version of this event type's schema, from 1. Readers upcast
    /// old versions (`upcast`); stored events are never rewritten.
    pub schema_version: u32,
    /// The event's data: UTF-8 JSON of at most
    /// [`super::MAX_PAYLOAD_BYTES`].
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// An event whose payload is `data` as JSON.
    pub fn json<T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        schema_version: u32,
        data: &T,
    ) -> Result<Self> {
        let payload = serde_json::to_vec(data).map_err(|err| StoreError::MalformedEvent {
            index: 0,
            reason: format!("the payload does not serialize: {err}"),
        })?;
        Ok(Self {
            event_type: event_type.into(),
            schema_version,
            payload,
        })
    }
}

/// A stored event, as every read returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub stream: StreamName,
    /// Its place in its stream, from 1.
    pub version: Version,
    /// Its place in the global order.
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Vec<u8>,
}

impl RecordedEvent {
    /// The payload parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|err| StoreError::MalformedEvent {
            index: 0,
            reason: format!(
                "{} {} of {}: {err}",
                self.event_type, self.version, self.stream
            ),
        })
    }
}

/// What a successful append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The version of the first appended event.
    pub first_version: Version,
    /// The stream's version now: the last appended event's version.
    pub last_version: Version,
    /// Global positions of the first and last appended events.
    pub first_position: Position,
    pub last_position: Position,
}

/// A stream's state folded up to `version`, so loading an aggregate reads
/// only the events after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last event folded into `state`.
    pub version: Version,
    /// The schema of `state`; a reader that finds an older one ignores
    /// the snapshot and replays (snapshots are a cache, never the truth).
    pub schema_version: u32,
    /// At most [`super::MAX_SNAPSHOT_BYTES`].
    pub state: Vec<u8>,
}

/// Event types: like stream names but without `:@`.
pub(super) fn check_event_type(index: usize, event_type: &str) -> Result<()> {
    let reason = if event_type.is_empty() {
        "the event type is empty"
    } else if event_type.len() > MAX_EVENT_TYPE_BYTES {
        "the event type is longer than the limit"
    } else if !event_type
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
    {
        "the event type may hold only ASCII letters, digits and -_."
    } else {
        return Ok(());
    };
    Err(StoreError::MalformedEvent {
        index,
        reason: format!("{reason}: {:?}", shortened(event_type)),
    })
}
