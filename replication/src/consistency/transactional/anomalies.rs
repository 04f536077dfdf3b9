//! Anomaly names (Adya's, as Elle spells them) and the isolation levels
//! each one rules out.
//!
//! | anomaly | what was seen | rules out |
//! |---|---|---|
//! | `G0` | a cycle of write-write edges only (dirty write) | everything |
//! | `G1a` | a read saw a write of an aborted transaction | read committed and up |
//! | `G1b` | a read saw a transaction's intermediate write | read committed and up |
//! | `G1c` | a cycle of ww and wr edges, at least one wr | read committed and up |
//! | `G-single` | a cycle with exactly one rw edge (read skew) | repeatable read, snapshot isolation and up |
//! | `lost-update` | two committed txns read the same version of a key and both wrote it | repeatable read, snapshot isolation and up |
//! | `G2-item` | a cycle with two or more rw edges (write skew) | repeatable read, serializable; **not** snapshot isolation |
//! | `…-realtime`, `…-process` | a cycle that needs real-time or process order | strict serializable only |
//! | `incompatible-order`, `duplicate-elements`, `internal`, `garbage-read` | the data itself is impossible | everything |
//!
//! Pitfall: in Adya's theory snapshot isolation and repeatable read are
//! incomparable: SI allows write skew (G2-item) but forbids some
//! predicate anomalies RR allows. With item-only histories (no predicate
//! reads) only the first half can show, so here every history that is
//! repeatable read is also snapshot isolation, and the chain
//! strict serializable → serializable → snapshot isolation → repeatable
//! read → read committed → read uncommitted is ordered the way the issue
//! and Elle print it. A write-skew history is reported as
//! `snapshot-isolation` with `repeatable_read: false` beside it.

use std::fmt;

/// One named anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anomaly {
    G0,
    G1a,
    G1b,
    G1c,
    GSingle,
    G2Item,
    LostUpdate,
    /// A cycle of the shape named, closed only by real-time order.
    Realtime(CycleShape),
    /// A cycle of the shape named, closed only by process order.
    Process(CycleShape),
    IncompatibleOrder,
    DuplicateElements,
    Internal,
    GarbageRead,
}

/// The shape of a dependency cycle, by the kinds of edge it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CycleShape {
    G0,
    G1c,
    GSingle,
    G2Item,
}

impl CycleShape {
    /// The plain anomaly this shape names.
    pub fn anomaly(self) -> Anomaly {
        match self {
            Self::G0 => Anomaly::G0,
            Self::G1c => Anomaly::G1c,
            Self::GSingle => Anomaly::GSingle,
            Self::G2Item => Anomaly::G2Item,
        }
    }
}

impl Anomaly {
    /// Elle's name: `G0`, `G1a`, `G-single`, `G2-item-realtime`, …
    pub fn name(self) -> String {
        match self {
            Self::G0 => "G0".into(),
            Self::G1a => "G1a".into(),
            Self::G1b => "G1b".into(),
            Self::G1c => "G1c".into(),
            Self::GSingle => "G-single".into(),
            Self::G2Item => "G2-item".into(),
            Self::LostUpdate => "lost-update".into(),
            Self::Realtime(shape) => format!("{}-realtime", shape.anomaly().name()),
            Self::Process(shape) => format!("{}-process", shape.anomaly().name()),
            Self::IncompatibleOrder => "incompatible-order".into(),
            Self::DuplicateElements => "duplicate-elements".into(),
            Self::Internal => "internal".into(),
            Self::GarbageRead => "garbage-read".into(),
        }
    }

    /// Does this anomaly rule out `level`?
    pub fn violates(self, level: Level) -> bool {
        use Level::*;
        match self {
            Self::G0
            | Self::IncompatibleOrder
            | Self::DuplicateElements
            | Self::Internal
            | Self::GarbageRead => true,
            Self::G1a | Self::G1b | Self::G1c => level != ReadUncommitted,
            Self::GSingle | Self::LostUpdate => level >= RepeatableRead,
            Self::G2Item => matches!(level, RepeatableRead | Serializable | StrictSerializable),
            Self::Realtime(_) | Self::Process(_) => level == StrictSerializable,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Isolation levels, weakest first (the order `Ord` uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrictSerializable,
}

impl Level {
    /// Strongest first: the chain `strongest_level` walks.
    pub const CHAIN: [Level; 6] = [
        Level::StrictSerializable,
        Level::Serializable,
        Level::SnapshotIsolation,
        Level::RepeatableRead,
        Level::ReadCommitted,
        Level::ReadUncommitted,
    ];

    /// `serializable`, `snapshot-isolation`, … (the CLI's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadUncommitted => "read-uncommitted",
            Self::ReadCommitted => "read-committed",
            Self::RepeatableRead => "repeatable-read",
            Self::SnapshotIsolation => "snapshot-isolation",
            Self::Serializable => "serializable",
            Self::StrictSerializable => "strict-serializable",
        }
    }

    /// The JSON key: `strict_serializable`, `read_committed`, …
    pub fn json_key(self) -> String {
        self.name().replace('-', "_")
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let wanted = text.replace('_', "-");
        Self::CHAIN
            .into_iter()
            .find(|l| l.name() == wanted)
            .ok_or_else(|| {
                format!(
                    "unknown isolation level {text:?}: use one of {}",
                    Self::CHAIN.map(Level::name).join(", ")
                )
            })
    }
}

/// An anomaly seen directly in the data (not as a cycle), with the
/// transactions involved (indices into the history) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub anomaly: Anomaly,
    pub txns: Vec<usize>,
    pub explanation: String,
}

/// Collects findings, keeping at most `cap` per anomaly (the rest are
/// only counted) so a badly broken history cannot grow the report
/// without bound.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub cap: usize,
    pub kept: Vec<Finding>,
    pub counts: std::collections::BTreeMap<Anomaly, usize>,
}

impl Findings {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// Records one; the explanation is only built when it will be kept.
    pub fn push(&mut self, anomaly: Anomaly, txns: Vec<usize>, explain: impl FnOnce() -> String) {
        let count = self.counts.entry(anomaly).or_insert(0);
        *count += 1;
        if *count <= self.cap {
            self.kept.push(Finding {
                anomaly,
                txns,
                explanation: explain(),
            });
        }
    }
}
