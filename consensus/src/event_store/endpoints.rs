//! The etcd members a backend talks to, tried in turn.
//!
//! A member that crashed, lost its quorum or stopped leading answers
//! `Unavailable` (or nothing, until the deadline); the next call goes to
//! the next member. Reads are retried here; an append is not, because a
//! Txn that timed out may still have committed — the append decides what
//! a retry means (see [`super::EtcdEventStore`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use observability::rpc::RpcChannel;
use tonic::{Code, Status};

use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::{
    PutRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// Attempts a read makes before its error reaches the caller: enough to
/// try every member of a five-member cluster twice.
pub const READ_ATTEMPTS: usize = 10;

/// The pause between two attempts: about an election's length, so that a
/// retry lands after a new leader is in place rather than during the vote.
const RETRY_PAUSE: Duration = Duration::from_millis(150);

/// Channels to the members, and which one is in use.
#[derive(Clone, Debug)]
pub struct Endpoints {
    channels: Arc<[RpcChannel]>,
    current: Arc<AtomicUsize>,
}

impl Endpoints {
    /// `None` without a channel: a backend needs somewhere to go.
    pub fn new(channels: Vec<RpcChannel>) -> Option<Self> {
        (!channels.is_empty()).then(|| Self {
            channels: channels.into(),
            current: Arc::default(),
        })
    }

    fn channel(&self) -> (usize, RpcChannel) {
        let at = self.current.load(Ordering::Relaxed) % self.channels.len();
        (at, self.channels[at].clone())
    }

    /// Moves on from member `failed` (unless someone already did).
    fn rotate(&self, failed: usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.channels.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub fn watch_client(&self) -> (usize, WatchClient<RpcChannel>) {
        let (at, channel) = self.channel();
        (at, WatchClient::new(channel))
    }

    /// A watch on member `at` failed: the next one goes elsewhere.
    pub fn watch_failed(&self, at: usize) {
        self.rotate(at);
    }

    /// One Txn on the current member; on an error that may be the member's
    /// fault, the next call goes to the next one.
    pub async fn txn_once(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        let (at, channel) = self.channel();
        let result = KvClient::new(channel).txn(txn).await;
        if let Err(status) = &result
            && is_transient(status)
        {
            self.rotate(at);
        }
        result.map(tonic::Response::into_inner)
    }

    /// One Put on the current member (moving on after a transient error).
    pub async fn put(&self, put: PutRequest) -> Result<(), Status> {
        let (at, channel) = self.channel();
        let result = KvClient::new(channel).put(put).await;
        if let Err(status) = &result
            && is_transient(status)
        {
            self.rotate(at);
        }
        result.map(drop)
    }

    /// A Range, retried on other members while the cluster is between
    /// leaders (reads change nothing, so retrying is always safe).
    pub async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status> {
        let mut attempt = 0;
        loop {
            let (at, channel) = self.channel();
            match KvClient::new(channel).range(range.clone()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if is_transient(&status) && attempt + 1 < READ_ATTEMPTS => {
                    self.rotate(at);
                    attempt += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(status) => return Err(status),
            }
        }
    }

    /// Sleeps between two attempts of a caller's own retry loop.
    pub async fn pause(&self) {
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Errors after which another attempt (on another member) may succeed:
/// no leader, a leader change, a stopped or unreachable member, a timeout.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}
