//! An event store on etcd's v3 API: the same service, replicated by Raft.
//!
//! Episode: 23, "Event Sourcing Architecture" (also 13)
//! Pattern: replication / event store on a consensus-backed KV
//! Try it:  cargo run -- serve ledger --event-store etcd=127.0.0.1:2379
//! Test it: cargo test -p consensus event_store_
//!
//! [`EtcdEventStore`] implements `replication`'s [`EventStore`] with
//! nothing but etcd's KV and Watch services, so it runs against dslab's
//! Raft KV and against a real etcd alike. Each event is one key
//! (`{prefix}s/{stream}/{version}`, see [`keys`]); the store's revision is
//! the global order.
//!
//! - **append** is one `Txn`: *if* the key of version v+1 does not exist
//!   (and, for v > 0, the key of version v does) *then* put the events'
//!   keys v+1…v+n. etcd applies a Txn atomically at one revision, so of
//!   concurrent appenders expecting v exactly one wins; the others take
//!   the `else` branch, which reads the stream's head in the same atomic
//!   step, so the loser learns the precise error (wrong, future or missing
//!   version) without a second round trip.
//! - **global position** = [`Position::from_revision`]`(revision, index)`:
//!   every event of one Txn shares its revision, and its place in the
//!   batch (stored in the value) orders them. Increasing, not contiguous.
//! - **read_all** is a Range over every stream's keys with
//!   `min_mod_revision` and a sort by modification revision;
//!   **subscribe** catches up with those Ranges, then holds a `Watch` on
//!   the prefix from the next revision, and falls back to Ranges when the
//!   watch breaks or is compacted away. Events are never deleted, so the
//!   current state always holds the whole history and compaction costs a
//!   watcher nothing but a re-read.
//!
//! Pitfall: retrying an append after a timeout. A Txn whose answer was
//! lost (the leader crashed after committing it) may have been applied;
//! sending it again expecting the same version would then fail — and a
//! naive client would report a conflict for its own events, or, with
//! [`ExpectedVersion::Any`], append them twice. Every append carries a
//! random id in each event's value; before retrying, the appender reads
//! the stream after the version it expected and, if its id is there, the
//! first try won. The compare on versions guarantees that at most one of
//! the tries can ever apply.
//!
//! Bounds: `replication::event_sourcing`'s (64 events and 512 KiB per
//! append fit one etcd Txn of 128 operations and 1.5 MiB); an append
//! makes at most [`APPEND_ATTEMPTS`] tries, a read [`READ_ATTEMPTS`];
//! a subscription holds one watch and a buffer of
//! `replication::event_sourcing::SUBSCRIPTION_BUFFER` events.
//!
//! Simplified: `read_all` and `head` scan every stream's keys on the
//! server (etcd has no index by modification revision), so a page costs
//! O(all events); a production store would keep a global index key per
//! revision or read from the watch history only. Snapshots are one key per
//! stream, overwritten; the newest version wins.

mod append;
mod endpoints;
pub mod keys;
mod read;
mod subscribe;
#[cfg(test)]
mod tests;

use observability::rpc::{ClientBuilder, Net, RpcChannel};
use replication::event_sourcing::{
    Appended, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, Result, Snapshot,
    StoreError, StreamName, Subscription, Version,
};
use std::time::Duration;

pub use endpoints::{Endpoints, READ_ATTEMPTS, is_transient};
pub use keys::{DEFAULT_PREFIX, Layout};

/// Tries one append makes (the first and its retries after timeouts or a
/// lost leader) before answering `Unavailable`.
pub const APPEND_ATTEMPTS: usize = 8;

/// How long one call to a member may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// An [`EventStore`] on any etcd v3 endpoint: dslab's Raft KV or etcd.
#[derive(Clone, Debug)]
pub struct EtcdEventStore {
    endpoints: Endpoints,
    layout: Layout,
}

impl EtcdEventStore {
    /// A store under `prefix` on the members behind `channels` (`None`
    /// without any).
    pub fn new(channels: Vec<RpcChannel>, prefix: &str) -> Option<Self> {
        Some(Self {
            endpoints: Endpoints::new(channels)?,
            layout: Layout::new(prefix),
        })
    }

    /// A store on the members at `addresses` (`host:port` or
    /// `http://host:port`), dialed lazily over `net`.
    pub fn connect(net: Net, addresses: &[String], prefix: &str) -> Result<Self> {
        let builder = ClientBuilder::new(net).default_deadline(CALL_TIMEOUT);
        let channels = addresses
            .iter()
            .map(|address| {
                builder
                    .dial(address)
                    .map_err(|err| StoreError::Unavailable {
                        reason: format!("endpoint {address:?}: {err}"),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(channels, prefix).ok_or_else(|| StoreError::Unavailable {
            reason: "no etcd endpoint given".into(),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// A member's refusal or silence, as the event store's error.
pub(crate) fn unavailable(status: &tonic::Status) -> StoreError {
    if status.code() == tonic::Code::ResourceExhausted {
        // etcd's quota ("database space exceeded") and its rate limit.
        return StoreError::StoreFull {
            what: status.message().to_owned(),
        };
    }
    StoreError::Unavailable {
        reason: format!("{:?}: {}", status.code(), status.message()),
    }
}

impl EventStore for EtcdEventStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended> {
        self.append_events(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        after: Version,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.read_stream_after(stream, after, max).await
    }

    async fn read_all(&self, after: Position, max: usize) -> Result<Vec<RecordedEvent>> {
        Ok(self.read_all_after(after, max).await?.0)
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version> {
        Ok(self.head_of(stream).await?.0)
    }

    async fn head(&self) -> Result<Position> {
        self.global_head().await
    }

    async fn subscribe(&self, after: Position) -> Result<Subscription> {
        Ok(self.start_subscription(after))
    }

    async fn save_snapshot(&self, stream: &StreamName, snapshot: Snapshot) -> Result<()> {
        self.put_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>> {
        self.get_snapshot(stream).await
    }
}
