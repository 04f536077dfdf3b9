//! Subscriptions: catch up with Ranges, then follow a Watch.
//!
//! A watch from revision r sends every change at r and after, in order,
//! and never skips one — while it lives. It dies with its member, and a
//! watch asked to start below the compacted revision is cancelled. Both
//! end the same way here: back to Ranges from the last position delivered,
//! which the current state always answers in full (events are never
//! deleted), then a new watch from the revision those Ranges were read at.

use std::time::Duration;

use replication::event_sourcing::{
    MAX_READ_EVENTS, Position, StoreError, Subscription, SubscriptionSender,
};
use tokio_stream::wrappers::ReceiverStream;

use super::EtcdEventStore;
use crate::lock::recipe::prefix_end;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use crate::proto::mvccpb::event::EventType;

/// Consecutive failed catch-up reads (each already retried on every
/// member) before the subscription reports the error and ends.
const MAX_FAILED_READS: usize = 5;

/// How long a watch may stay silent before the subscriber checks that
/// the store did not move on without it (a member that crashed may leave
/// the stream open and mute).
const SILENCE_CHECK: Duration = Duration::from_secs(2);

/// How long one watch call may last before it is renewed.
const WATCH_CALL: Duration = Duration::from_secs(3600);

/// Why a watch ended.
enum WatchEnd {
    /// The subscriber dropped its end.
    Gone,
    /// The stream broke, was cancelled or fell silent: catch up again.
    Broken,
}

impl EtcdEventStore {
    pub(crate) fn start_subscription(&self, after: Position) -> Subscription {
        let (tx, subscription) = Subscription::channel();
        let store = self.clone();
        tokio::spawn(async move { store.feed(after, tx).await });
        subscription
    }

    /// Feeds `tx` every event after `last`, until it is dropped or the
    /// store stays unreachable.
    async fn feed(self, mut last: Position, tx: SubscriptionSender) {
        let mut failed = 0;
        loop {
            // Catch up.
            let watch_from = loop {
                if tx.is_closed() {
                    return;
                }
                match self.read_all_after(last, MAX_READ_EVENTS).await {
                    Ok((events, end)) => {
                        failed = 0;
                        for event in events {
                            last = event.position;
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        if let Some(revision) = end {
                            break revision + 1;
                        }
                    }
                    Err(err) => {
                        failed += 1;
                        if failed >= MAX_FAILED_READS
                            || !matches!(err, StoreError::Unavailable { .. })
                        {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                        self.endpoints.pause().await;
                    }
                }
            };
            // Follow.
            match self.follow(watch_from, &mut last, &tx).await {
                WatchEnd::Gone => return,
                WatchEnd::Broken => self.endpoints.pause().await,
            }
        }
    }

    /// Holds a watch on every stream's keys from `revision`, delivering
    /// events after `last`.
    async fn follow(
        &self,
        revision: i64,
        last: &mut Position,
        tx: &SubscriptionSender,
    ) -> WatchEnd {
        let prefix = self.layout.events();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                range_end: prefix_end(&prefix),
                key: prefix,
                start_revision: revision,
                ..WatchCreateRequest::default()
            })),
        };
        // The request stream stays open while the watch lives: closing it
        // would end the watch.
        let (requests, inbox) = tokio::sync::mpsc::channel(1);
        if requests.send(create).await.is_err() {
            return WatchEnd::Broken;
        }
        let mut request = tonic::Request::new(ReceiverStream::new(inbox));
        request.set_timeout(WATCH_CALL);
        let (member, mut client) = self.endpoints.watch_client();
        let mut responses = match client.watch(request).await {
            Ok(responses) => responses.into_inner(),
            Err(_) => {
                self.endpoints.watch_failed(member);
                return WatchEnd::Broken;
            }
        };
        loop {
            let response = match tokio::time::timeout(SILENCE_CHECK, responses.message()).await {
                Ok(Ok(Some(response))) => response,
                Ok(_) => {
                    self.endpoints.watch_failed(member);
                    return WatchEnd::Broken;
                }
                Err(_silent) => {
                    if tx.is_closed() {
                        return WatchEnd::Gone;
                    }
                    // Quiet is fine if nothing happened; if the store has
                    // moved past us, the watch is dead.
                    match self.global_head().await {
                        Ok(head) if head <= *last => continue,
                        _ => {
                            self.endpoints.watch_failed(member);
                            return WatchEnd::Broken;
                        }
                    }
                }
            };
            if response.canceled {
                // Compacted past `revision`, or refused: read instead.
                return WatchEnd::Broken;
            }
            let mut events = Vec::new();
            for event in &response.events {
                if event.r#type != EventType::Put as i32 {
                    continue;
                }
                let Some(kv) = &event.kv else { continue };
                match self.decode(kv) {
                    Ok(event) => events.push(event),
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return WatchEnd::Gone;
                    }
                }
            }
            events.sort_by_key(|event| event.position);
            for event in events {
                if event.position <= *last {
                    continue;
                }
                *last = event.position;
                if tx.send(Ok(event)).await.is_err() {
                    return WatchEnd::Gone;
                }
            }
        }
    }
}
