//! The recipe's client side: an [`Etcd`] over gRPC, and a [`Session`] — a
//! lease kept alive in the background, as `clientv3/concurrency` keeps
//! one. Works against a dslab node or a real etcd alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use observability::rpc::RpcChannel;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

use super::recipe::{self, Etcd, Held};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use crate::proto::mvccpb::event::EventType;

/// How long one wait for a predecessor's deletion may take.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// An etcd endpoint, as the recipes use it.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    channel: RpcChannel,
}

impl EtcdClient {
    pub fn new(channel: RpcChannel) -> Self {
        Self { channel }
    }

    pub fn channel(&self) -> RpcChannel {
        self.channel.clone()
    }

    /// Takes the lock `name` for `session`, waiting for its turn.
    pub async fn lock(&self, name: &[u8], session: &Session) -> Result<Held, Status> {
        recipe::acquire(self, name, session.lease(), &[]).await
    }

    /// Releases a lock taken by [`EtcdClient::lock`].
    pub async fn unlock(&self, held: &Held) -> Result<bool, Status> {
        recipe::release(self, held).await
    }
}

#[tonic::async_trait]
impl Etcd for EtcdClient {
    fn release_later(&self, held: Held) {
        let client = self.clone();
        // A runtime shutting down drops its tasks; nothing is left to
        // release then but the lease's own expiry.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = recipe::release(&client, &held).await;
        });
    }

    async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(KvClient::new(self.channel.clone())
            .txn(txn)
            .await?
            .into_inner())
    }

    async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(KvClient::new(self.channel.clone())
            .range(range)
            .await?
            .into_inner())
    }

    async fn wait_deleted(&self, key: &[u8], after: i64) -> Result<(), Status> {
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: key.to_vec(),
                start_revision: after + 1,
                ..WatchCreateRequest::default()
            })),
        };
        // The request stream stays open (a closed one would end the
        // watch); it ends when this call returns.
        let (requests, inbox) = tokio::sync::mpsc::channel(1);
        requests
            .send(create)
            .await
            .map_err(|_| Status::cancelled("watch request stream closed"))?;
        // A waiter may wait long: the channel's default deadline is for
        // ordinary calls, not for this one.
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(inbox));
        request.set_timeout(MAX_WAIT);
        let mut responses = WatchClient::new(self.channel.clone())
            .watch(request)
            .await?
            .into_inner();
        loop {
            let response = match responses.message().await {
                Ok(Some(response)) => response,
                // The stream broke (its node failed, or it sat idle past
                // the server's limit): gone is gone; otherwise the caller
                // decides whether to queue again.
                ended => {
                    let now = self
                        .range(RangeRequest {
                            key: key.to_vec(),
                            ..RangeRequest::default()
                        })
                        .await?;
                    return match ended {
                        _ if now.kvs.is_empty() => Ok(()),
                        Err(status) => Err(status),
                        _ => Err(Status::unavailable("the watch stream ended")),
                    };
                }
            };
            if response.canceled {
                // Compacted past `after`: whether the key is gone now is
                // all that is left to know.
                let now = self
                    .range(RangeRequest {
                        key: key.to_vec(),
                        ..RangeRequest::default()
                    })
                    .await?;
                return if now.kvs.is_empty() {
                    Ok(())
                } else {
                    Err(Status::aborted(response.cancel_reason))
                };
            }
            if response
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                drop(requests);
                return Ok(());
            }
        }
    }
}

/// A lease kept alive by a background task until dropped, revoked or
/// lost. The lease is the session: every lock taken with it goes when it
/// goes.
///
/// [`Session::valid_until`] is the client's own, conservative view of the
/// lease: a TTL after the moment it *sent* the last keep-alive the server
/// acknowledged. The server renewed the lease later than that, so on
/// clocks that run at the same rate the server cannot expire it sooner. A
/// holder that stops acting at `valid_until` stops before anyone else can
/// be given what it held — the client half of a leader lease. (Clocks that
/// drift need a margin; this does not add one.)
#[derive(Debug)]
pub struct Session {
    lease: i64,
    ttl: i64,
    alive: Arc<AtomicBool>,
    valid_until: Arc<Mutex<Instant>>,
    keeper: JoinHandle<()>,
    channel: RpcChannel,
}

impl Session {
    /// Grants a lease of `ttl` seconds and keeps it alive (a keep-alive
    /// every third of the TTL, as etcd's client does).
    pub async fn start(channel: RpcChannel, ttl: i64) -> Result<Self, Status> {
        let asked = Instant::now();
        let granted = LeaseClient::new(channel.clone())
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await?
            .into_inner();
        let alive = Arc::new(AtomicBool::new(true));
        let valid_until = Arc::new(Mutex::new(asked + seconds(granted.ttl)));
        let keeper = tokio::spawn(keep_alive(
            channel.clone(),
            granted.id,
            granted.ttl,
            alive.clone(),
            valid_until.clone(),
        ));
        Ok(Self {
            lease: granted.id,
            ttl: granted.ttl,
            alive,
            valid_until,
            keeper,
            channel,
        })
    }

    pub fn lease(&self) -> i64 {
        self.lease
    }

    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// False once the server said the lease is gone.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Until when the lease surely holds, by this client's clock.
    pub fn valid_until(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the keep-alives without revoking: what a paused or crashed
    /// process does to its lease.
    pub fn freeze(&self) {
        self.keeper.abort();
    }

    /// Ends the session: stops the keep-alives and revokes the lease
    /// (which deletes every key attached to it).
    pub async fn close(self) -> Result<(), Status> {
        self.keeper.abort();
        LeaseClient::new(self.channel.clone())
            .lease_revoke(LeaseRevokeRequest { id: self.lease })
            .await?;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Sends a keep-alive every third of the TTL; a failed one is retried
/// sooner. Ends when the server answers TTL 0.
async fn keep_alive(
    channel: RpcChannel,
    lease: i64,
    ttl: i64,
    alive: Arc<AtomicBool>,
    valid_until: Arc<Mutex<Instant>>,
) {
    let every = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
    let mut client = LeaseClient::new(channel);
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        let sent = Instant::now();
        let request = tokio_stream::once(LeaseKeepAliveRequest { id: lease });
        let answer = match client.lease_keep_alive(request).await {
            Ok(answers) => answers.into_inner().message().await,
            Err(status) => Err(status),
        };
        wait = match answer {
            Ok(Some(answer)) if answer.ttl <= 0 => {
                alive.store(false, Ordering::Release);
                return;
            }
            Ok(Some(answer)) => {
                *valid_until.lock().unwrap_or_else(PoisonError::into_inner) =
                    sent + seconds(answer.ttl);
                every
            }
            // A failover or a lost message: try again soon; the lease
            // outlives a few misses.
            _ => every / 4,
        };
    }
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}
