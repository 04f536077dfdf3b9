//! `etcdserverpb.Watch`: one bidirectional stream per client, carrying any
//! number of watchers, each delivering the changes to a key range in
//! revision order.
//!
//! Episode: 16, "Distributed Locking" (also 13)
//! Pattern: change notification / watch on a replicated store
//! Try it:  cargo run -- serve raft-kv --listen 127.0.0.1:2379, then
//!          `etcdctl watch --prefix /locks` and `etcdctl put /locks/a 1`
//! Test it: cargo test -p consensus watch_
//!
//! A watcher is only a cursor: the next (revision, sub-revision) it has
//! not delivered. Every time this node applies an entry, each watcher
//! reads the changes at or after its cursor from the store's history
//! ([`crate::mvcc::changes`]), sends them, and moves its cursor past them.
//! Because the cursor walks the applied log — the same on every replica —
//! a watcher never skips or repeats a change, on a follower as on the
//! leader, across leader changes, and across reconnects: a client that
//! saw revision R and reconnects with `start_revision = R + 1` to any
//! member gets exactly what it missed. The price of an old start revision
//! is a scan of the history, until the compaction makes it impossible
//! (then the watcher is cancelled with the compaction's revision, and the
//! client must read the current state and watch from there).
//!
//! Messages as etcd 3.4 sends them: `created` (with the watch id and the
//! store's revision in the header) before any event; a create that cannot
//! be served is answered `created` and `canceled` at once, with a reason;
//! a progress request is answered with `watch_id = -1` and a revision up
//! to which every watcher of the stream has delivered.
//!
//! Bounds: at most [`MAX_WATCH_STREAMS`] streams per node and
//! [`MAX_WATCHERS_PER_STREAM`] watchers per stream; about
//! [`MAX_EVENTS_PER_RESPONSE`] events per response (more only to keep a
//! revision whole: a delete of many keys arrives in one response); a
//! stream wakes only for revisions that touch its ranges (the member's
//! hub, `watch_hub`, decides), so idle streams cost writes next to
//! nothing; the stream holds
//! at most [`OUTBOX`] responses for a slow reader — beyond that its
//! watchers simply wait, their cursors in place, so a slow client costs
//! memory for nothing but its cursors.
//!
//! Simplified: `fragment` is accepted and ignored; progress
//! notifications are sent every
//! [`WatchService::progress_interval`] to watchers that asked, whether or
//! not they were idle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Api;
use super::watch_hub::{Registration, WatchHub};
use crate::mvcc::changes::{Change, Position};
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::{Watch, WatchServer};
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::proto::mvccpb::{Event, event::EventType};

/// The most watch streams one node serves at once.
pub const MAX_WATCH_STREAMS: usize = 4096;
/// The most watchers one stream may hold.
pub const MAX_WATCHERS_PER_STREAM: usize = 1024;
/// The most events one response carries.
pub const MAX_EVENTS_PER_RESPONSE: usize = 1000;
/// Responses a stream holds for a slow reader.
pub const OUTBOX: usize = 16;

/// etcd's text for a create whose range is empty.
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const COMPACTED: &str = "mvcc: required revision has been compacted";

/// The Watch service of one node.
#[derive(Clone, Debug)]
pub struct WatchService {
    api: Api,
    progress_interval: Duration,
    streams: Arc<Semaphore>,
    hub: WatchHub,
}

impl WatchService {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            hub: WatchHub::start(api.node.clone()),
            api,
            // etcd's default `--experimental-watch-progress-notify-interval`.
            progress_interval: Duration::from_secs(600),
            streams: Arc::new(Semaphore::new(MAX_WATCH_STREAMS)),
        }
    }

    /// How often watchers created with `progress_notify` hear the
    /// revision even when nothing changed.
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.progress_interval = every.max(Duration::from_millis(10));
        self
    }

    pub fn into_service(self) -> WatchServer<Self> {
        WatchServer::new(self)
    }
}

/// One watcher: its range, its options and its cursor.
#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    next: Position,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

impl Watcher {
    fn wants(&self, change: &Change) -> bool {
        if change.version.is_tombstone() {
            !self.no_delete
        } else {
            !self.no_put
        }
    }
}

/// Why a stream ended.
enum Closed {
    /// The client went away (or hung up).
    Client,
    /// The node stopped.
    Node,
}

struct StreamState {
    /// Wakes the stream when a revision touches one of its ranges.
    registration: Registration,
    api: Api,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.api.check_serving(true)?;
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "this member serves {MAX_WATCH_STREAMS} watch streams already"
            )));
        };
        let requests = request.into_inner();
        let (out, stream) = mpsc::channel(OUTBOX);
        let state = StreamState {
            registration: self.hub.register(),
            api: self.api.clone(),
            watchers: BTreeMap::new(),
            next_id: 0,
            out,
        };
        let progress_interval = self.progress_interval;
        tokio::spawn(async move {
            state.run(requests, progress_interval).await;
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

impl StreamState {
    async fn run(mut self, mut requests: Streaming<WatchRequest>, progress_every: Duration) {
        let status = self.api.node.watch_status();
        let mut progress = tokio::time::interval(progress_every);
        progress.tick().await;
        let closed = loop {
            // Deliver first: a watcher with more than one response's worth
            // keeps the loop turning without waiting for a new entry.
            let more = match self.deliver().await {
                Ok(more) => more,
                Err(closed) => break closed,
            };
            tokio::select! {
                biased;
                request = requests.next() => match request {
                    Some(Ok(request)) => {
                        if let Err(closed) = self.handle(request).await {
                            break closed;
                        }
                    }
                    // A malformed or oversized message ends the stream
                    // with its status; a hang-up just ends it.
                    Some(Err(status)) => {
                        let _ = self.out.send(Err(status)).await;
                        break Closed::Client;
                    }
                    None => break Closed::Client,
                },
                () = self.registration.wake.notified(), if !more => {
                    if status.borrow().stopped {
                        break Closed::Node;
                    }
                }
                _ = progress.tick() => {
                    if let Err(closed) = self.notify_progress().await {
                        break closed;
                    }
                }
                () = std::future::ready(()), if more => {}
            }
        };
        if let Closed::Node = closed {
            let _ = self.out.send(Err(crate::Error::Stopped.into())).await;
        }
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.out
            .send(Ok(response))
            .await
            .map_err(|_| Closed::Client)
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.publish_ranges();
                    self.send(WatchResponse {
                        header: Some(self.api.header(0)),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..WatchResponse::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Every watcher has delivered everything before its cursor.
                let current = self.api.node.read_state(|state| state.mvcc.revision());
                let through = self
                    .watchers
                    .values()
                    .map(|w| w.next.0 - 1)
                    .min()
                    .unwrap_or(current)
                    .min(current);
                self.send(WatchResponse {
                    header: Some(self.api.header(through.max(1))),
                    watch_id: -1,
                    ..WatchResponse::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    /// Tells the hub which ranges this stream's watchers cover. Done
    /// before the next delivery, so no change falls between the two.
    fn publish_ranges(&self) {
        self.registration.set_ranges(
            self.watchers
                .values()
                .map(|w| (w.key.clone(), w.range_end.clone()))
                .collect(),
        );
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Closed> {
        let refuse = |reason: String| WatchResponse {
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..WatchResponse::default()
        };
        let empty_range = !create.range_end.is_empty()
            && create.range_end != [0]
            && create.range_end <= create.key;
        let refused = if empty_range {
            Some(EMPTY_RANGE.to_owned())
        } else if create.watch_id != 0 && self.watchers.contains_key(&create.watch_id) {
            Some(DUPLICATE_ID.to_owned())
        } else if create.watch_id < 0 {
            Some(format!("dslab: watch id {} is negative", create.watch_id))
        } else if self.watchers.len() >= MAX_WATCHERS_PER_STREAM {
            Some(format!(
                "dslab: too many watchers on one stream (at most {MAX_WATCHERS_PER_STREAM})"
            ))
        } else {
            None
        };
        let revision = self.api.node.read_state(|state| state.mvcc.revision());
        if let Some(reason) = refused {
            return self
                .send(WatchResponse {
                    header: Some(self.api.header(revision)),
                    ..refuse(reason)
                })
                .await;
        }
        let id = if create.watch_id > 0 {
            create.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            // Ids are not reused within a stream, as etcd's are not.
            self.next_id += 1;
            self.next_id - 1
        };
        let start = if create.start_revision > 0 {
            create.start_revision
        } else {
            revision + 1
        };
        let filters = |wanted: FilterType| {
            create
                .filters
                .iter()
                .any(|f| FilterType::try_from(*f) == Ok(wanted))
        };
        self.watchers.insert(
            id,
            Watcher {
                no_put: filters(FilterType::Noput),
                no_delete: filters(FilterType::Nodelete),
                key: create.key,
                range_end: create.range_end,
                next: (start, 0),
                prev_kv: create.prev_kv,
                progress_notify: create.progress_notify,
            },
        );
        self.publish_ranges();
        self.send(WatchResponse {
            header: Some(self.api.header(revision)),
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        })
        .await
    }

    /// Sends each watcher at most one response of new events; answers
    /// whether any has more waiting. Each watcher reads the store under
    /// its own short hold of the state lock, and the task yields between
    /// watchers, so a stream of many watchers catching up cannot hold up
    /// the Raft loop or a runtime worker for long.
    async fn deliver(&mut self) -> Result<bool, Closed> {
        let mut more = false;
        let mut compacted = Vec::new();
        let mut responses = Vec::new();
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get_mut(&id) else {
                continue;
            };
            let read = self.api.node.read_state(|state| {
                let revision = state.mvcc.revision();
                let compact = state.mvcc.compact_revision();
                if watcher.next.0 > revision {
                    return None;
                }
                if watcher.next.0 < compact {
                    return Some(Err(compact));
                }
                let changes = state.mvcc.changes_since(
                    &watcher.key,
                    &watcher.range_end,
                    watcher.next,
                    MAX_EVENTS_PER_RESPONSE,
                    watcher.prev_kv,
                );
                Some(Ok((revision, changes)))
            });
            let (revision, changes) = match read {
                None => continue,
                Some(Err(compact)) => {
                    compacted.push((id, compact));
                    continue;
                }
                Some(Ok(read)) => read,
            };
            watcher.next = match changes.last() {
                // A full batch ends on a whole revision: go on after it.
                Some(last) if changes.len() >= MAX_EVENTS_PER_RESPONSE => {
                    more = true;
                    (last.position().0 + 1, 0)
                }
                _ => (revision + 1, 0),
            };
            let events: Vec<Event> = changes
                .into_iter()
                .filter(|change| watcher.wants(change))
                .map(event)
                .collect();
            if !events.is_empty() {
                responses.push(WatchResponse {
                    header: Some(crate::mvcc::header(revision)),
                    watch_id: id,
                    events,
                    ..WatchResponse::default()
                });
            }
            tokio::task::yield_now().await;
        }
        for (id, compact_revision) in compacted {
            self.watchers.remove(&id);
            self.send(WatchResponse {
                header: Some(self.api.header(0)),
                watch_id: id,
                canceled: true,
                compact_revision,
                cancel_reason: COMPACTED.to_owned(),
                ..WatchResponse::default()
            })
            .await?;
        }
        for mut response in responses {
            response.header = self.api.fill(response.header);
            self.send(response).await?;
        }
        Ok(more)
    }

    async fn notify_progress(&mut self) -> Result<(), Closed> {
        let current = self.api.node.read_state(|state| state.mvcc.revision());
        let notified: Vec<(i64, i64)> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(id, w)| (*id, (w.next.0 - 1).min(current)))
            .collect();
        for (id, through) in notified {
            self.send(WatchResponse {
                header: Some(self.api.header(through.max(1))),
                watch_id: id,
                ..WatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }
}

/// A change as etcd's `Event`: a deletion carries the key and the
/// revision that deleted it.
fn event(change: Change) -> Event {
    let kind = if change.version.is_tombstone() {
        EventType::Delete
    } else {
        EventType::Put
    };
    Event {
        r#type: kind as i32,
        kv: Some(change.version.key_value(&change.key, true)),
        prev_kv: change.prev.map(|prev| prev.key_value(&change.key, true)),
    }
}
