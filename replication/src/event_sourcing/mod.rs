//! Event sourcing: an event store with optimistic concurrency and one
//! global order, snapshots, upcasting, projections and CQRS read models.
//!
//! Episode: 23, "Event Sourcing Architecture" (also 22)
//! Pattern: replication / event sourcing, CQRS
//! Try it:  cargo run -- demo event-sourcing
//! Test it: cargo test -p replication event_sourcing
//!
//! Instead of overwriting state, a service appends what happened —
//! `Deposited { amount: 30 }` — to a stream per aggregate (an account),
//! and derives state by folding the events. The log is the truth; every
//! table is a cache that can be rebuilt by replaying it. Two guarantees
//! make that work, and the [`EventStore`] trait states both:
//!
//! - **per-stream optimistic concurrency**: an append says "only if the
//!   stream is still at version v" ([`ExpectedVersion`]). Of concurrent
//!   writers that read the same version, exactly one wins; the others get
//!   [`StoreError::WrongExpectedVersion`], re-read and re-decide. That is
//!   how an overdraft check stays correct without locks.
//! - **one global order**: every event gets a [`Position`] — increasing,
//!   not necessarily contiguous — so a projection can consume all streams
//!   in one sequence and remember where it stopped.
//!
//! The one thing to watch for: events are delivered more than once (a
//! projector crashes after applying an event but before recording its
//! position). A projection must be idempotent — skip what it has seen.
//!
//! The pieces, one file each:
//! - [`EventStore`] (store.rs), its types (types.rs) and [`StoreError`]
//!   with its gRPC codes (error.rs): the contract every backend meets;
//! - [`EmbeddedStore`]: the backend on [`crate::log::DurableLog`] — one
//!   fsynced record per append, so an acknowledged append survives a
//!   crash and a torn one comes back whole or not at all; a writer thread
//!   does the disk work and commits waiting appends with one `fsync`;
//! - [`suite`]: the backend test suite, public so the etcd-API backend in
//!   `consensus` runs the very same cases;
//! - [`Upcaster`]: old event schemas raised to the current one on read;
//! - [`load_aggregate`] and [`SnapshotPolicy`]: snapshots, so loading an
//!   aggregate replays only the events after the latest one;
//! - [`Projector`]: a projection with its position checkpointed together
//!   with its state; [`NaiveProjection`], the broken twin, double-counts
//!   on replay;
//! - [`ReadModel`], [`refresh`] and [`rebuild`]: the CQRS query side,
//!   rebuilt from scratch by replaying the log.
//!
//! Bounds (every backend enforces them through [`validate_append`]):
//! at most [`MAX_EVENTS_PER_APPEND`] events and [`MAX_APPEND_BYTES`] of
//! payload per append, [`MAX_PAYLOAD_BYTES`] per event, stream names of at
//! most [`MAX_STREAM_NAME_BYTES`], event types of at most
//! [`MAX_EVENT_TYPE_BYTES`], snapshots of at most [`MAX_SNAPSHOT_BYTES`];
//! reads return at most [`MAX_READ_EVENTS`] events; a subscription buffers
//! at most [`SUBSCRIPTION_BUFFER`] events and then applies backpressure
//! (the backend waits; nothing is dropped). The per-append limits fit one
//! etcd `Txn` (128 operations, 1.5 MiB). The embedded store holds at most
//! its `max_bytes` ([`DEFAULT_MAX_STORE_BYTES`]: events and snapshots,
//! superseded ones until compaction drops them, so it bounds its log on
//! disk too) and then refuses appends with `ResourceExhausted`; its writer
//! queues at most 64 writes (callers then wait) and commits at most 64 per
//! `fsync`; a projector's checkpoint — so its read model — is at most
//! [`MAX_CHECKPOINT_BYTES`], and its checkpoint log holds at most
//! [`COMPACT_EVERY`] records.
//!
//! Simplified: the embedded store keeps every event in memory, and its
//! compaction drops only superseded snapshots (full of events is full);
//! there is no stream deletion, no event metadata (correlation and
//! causation ids) and no competing consumers. EventStoreDB, Marten and
//! Axon have all three, and page events from disk.

#[cfg(test)]
mod checkpoint_tests;
mod codec;
mod compact;
mod embedded;
mod error;
#[cfg(test)]
mod model_tests;
mod naive;
mod projection;
#[cfg(test)]
mod projection_tests;
mod read_model;
mod snapshot;
mod store;
pub mod suite;
#[cfg(test)]
mod tests;
mod types;
mod upcast;
#[cfg(test)]
mod upcast_tests;
mod writer;
#[cfg(test)]
pub(super) mod writer_tests;

pub use embedded::{DEFAULT_MAX_STORE_BYTES, EmbeddedStore};
pub use error::{Result, StoreError};
pub use naive::NaiveProjection;
pub use projection::{COMPACT_EVERY, MAX_CHECKPOINT_BYTES, Projection, Projector, fold_all};
pub use read_model::{ReadModel, View, rebuild, refresh};
pub use snapshot::{Aggregate, Loaded, SnapshotPolicy, load_aggregate};
pub use store::{
    EventStore, Subscription, SubscriptionSender, check_expected_version, check_read_after,
    check_snapshot, read_limit, validate_append,
};
pub use types::{
    Appended, ExpectedVersion, NewEvent, Position, RecordedEvent, Snapshot, StreamName, Version,
};
pub use upcast::{UpcastStep, Upcaster};

/// The most events one append may carry (an etcd `Txn` holds 128
/// operations: one per event plus the version compare-and-set).
pub const MAX_EVENTS_PER_APPEND: usize = 64;
/// The most payload bytes one event may carry.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// The most payload bytes one append may carry in total.
pub const MAX_APPEND_BYTES: usize = 512 * 1024;
/// The longest stream name, in bytes.
pub const MAX_STREAM_NAME_BYTES: usize = 128;
/// The longest event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;
/// The largest snapshot state, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 512 * 1024;
/// The most events one read returns.
pub const MAX_READ_EVENTS: usize = 1000;
/// Events a subscription buffers before the backend waits for its reader.
pub const SUBSCRIPTION_BUFFER: usize = 256;
