//! The heartbeat monitor as a gRPC service, and the sender peers run.
//!
//! `HeartbeatMonitor` is a plain tonic service over [`Monitor`]: hosted on
//! an [`crate::rpc::RpcServer`], it gets tracing, RED metrics, deadlines,
//! size limits, health and reflection like every other dslab service.
//! Time is tokio's, so turmoil's simulated clock drives it in tests.
//!
//! Status codes, chosen on purpose:
//! - an undeclared sender or peer: `NotFound`. The monitor does not know
//!   that name; it does not judge who asked (that would be
//!   `PermissionDenied`, and nothing here authenticates a *sender* — a
//!   [`PeerSecret`] only tells members from strangers, `Unauthenticated`);
//! - an empty, oversized or non-ASCII id, an unknown detector:
//!   `InvalidArgument`;
//! - a Declare beyond `max_peers`: `ResourceExhausted`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::{Request, Response, Status};

use super::monitor::{DetectorKind, Monitor, MonitorConfig, PeerReport};
use crate::Error;
use crate::proto::heartbeat_client::HeartbeatClient;
use crate::proto::heartbeat_server::{Heartbeat, HeartbeatServer};
use crate::proto::{
    BeatReply, BeatRequest, DeclareReply, DeclareRequest, Detector, ForgetReply, ForgetRequest,
    PeerStatus, StatusRequest, SuspectsReply, SuspectsRequest,
};
use crate::rpc::RpcChannel;
use crate::rpc::peer_secret::PeerSecret;

/// The `observability.v1.Heartbeat` service: a [`Monitor`] behind a lock.
#[derive(Clone, Debug)]
pub struct HeartbeatMonitor {
    monitor: Arc<Mutex<Monitor>>,
    secret: Option<PeerSecret>,
}

impl HeartbeatMonitor {
    pub fn new(config: MonitorConfig) -> crate::Result<Self> {
        Ok(Self {
            monitor: Arc::new(Mutex::new(Monitor::new(config)?)),
            secret: None,
        })
    }

    /// Refuses Declare, Forget and Beat without the cluster's secret, so
    /// a stranger can neither fake a heartbeat nor fill the peer table.
    pub fn with_peer_secret(mut self, secret: PeerSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Starts watching `peer` now (as the Declare RPC does).
    pub fn declare(&self, peer: &str) -> crate::Result<bool> {
        self.lock().declare(peer, Instant::now())
    }

    /// What the monitor believes about every peer, now.
    pub fn reports(&self) -> Vec<PeerReport> {
        self.lock().reports(Instant::now())
    }

    pub fn into_service(self) -> HeartbeatServer<Self> {
        HeartbeatServer::new(self)
    }

    fn lock(&self) -> MutexGuard<'_, Monitor> {
        // Nothing under this lock panics or awaits; a poisoned lock would
        // still hold a consistent monitor.
        self.monitor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn watched(&self) -> u32 {
        u32::try_from(self.lock().watched()).unwrap_or(u32::MAX)
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl From<PeerReport> for PeerStatus {
    fn from(report: PeerReport) -> Self {
        Self {
            peer: report.peer,
            phi: report.phi,
            suspected_by_phi: report.suspected_by_phi,
            suspected_by_timeout: report.suspected_by_timeout,
            silence_micros: micros(report.silence),
            heartbeats: report.heartbeats,
            stale: report.stale,
            missed: report.missed,
            incarnation: report.incarnation,
            sequence: report.sequence,
            mean_interval_micros: micros(report.mean_interval),
            std_dev_micros: micros(report.std_dev),
            window_samples: u32::try_from(report.window_samples).unwrap_or(u32::MAX),
        }
    }
}

#[tonic::async_trait]
impl Heartbeat for HeartbeatMonitor {
    async fn declare(
        &self,
        request: Request<DeclareRequest>,
    ) -> Result<Response<DeclareReply>, Status> {
        PeerSecret::authenticate(self.secret.as_ref(), &request)?;
        let added = self.declare(&request.into_inner().peer)?;
        Ok(Response::new(DeclareReply {
            added,
            watched: self.watched(),
        }))
    }

    async fn forget(
        &self,
        request: Request<ForgetRequest>,
    ) -> Result<Response<ForgetReply>, Status> {
        PeerSecret::authenticate(self.secret.as_ref(), &request)?;
        let removed = self.lock().forget(&request.into_inner().peer)?;
        Ok(Response::new(ForgetReply { removed }))
    }

    async fn beat(&self, request: Request<BeatRequest>) -> Result<Response<BeatReply>, Status> {
        // The arrival time is taken before anything else: it is the
        // measurement every later verdict rests on.
        let arrived = Instant::now();
        PeerSecret::authenticate(self.secret.as_ref(), &request)?;
        let beat = request.into_inner();
        let accepted = self
            .lock()
            .beat(&beat.sender, beat.incarnation, beat.sequence, arrived)?;
        Ok(Response::new(BeatReply { accepted }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<PeerStatus>, Status> {
        let report = self
            .lock()
            .status(&request.into_inner().peer, Instant::now())?;
        Ok(Response::new(report.into()))
    }

    async fn suspects(
        &self,
        request: Request<SuspectsRequest>,
    ) -> Result<Response<SuspectsReply>, Status> {
        let raw = request.into_inner().detector;
        let detector = match Detector::try_from(raw) {
            Ok(Detector::PhiAccrual) => DetectorKind::PhiAccrual,
            Ok(Detector::FixedTimeout) => DetectorKind::FixedTimeout,
            Err(_) => return Err(Error::UnknownDetector(raw).into()),
        };
        let monitor = self.lock();
        let suspects = monitor
            .suspects(detector, Instant::now())
            .into_iter()
            .map(PeerStatus::from)
            .collect();
        let watched = u32::try_from(monitor.watched()).unwrap_or(u32::MAX);
        Ok(Response::new(SuspectsReply { suspects, watched }))
    }
}

/// Fault injection for a sender: while stalled it sends nothing, as a
/// process frozen by a garbage-collection pause or a stopped VM would.
#[derive(Clone, Debug)]
pub struct Stall(Arc<watch::Sender<bool>>);

impl Default for Stall {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Stall {
    pub fn freeze(&self) {
        self.0.send_replace(true);
    }

    pub fn thaw(&self) {
        self.0.send_replace(false);
    }

    /// Waits while frozen; `true` if it had to.
    async fn until_thawed(&self) -> bool {
        let mut stalled = self.0.subscribe();
        if !*stalled.borrow_and_update() {
            return false;
        }
        // The sender half lives in `self`, so the channel cannot close.
        let _ = stalled.wait_for(|frozen| !frozen).await;
        true
    }
}

/// A peer's side: one Beat per interval to a monitor, forever.
#[derive(Clone, Debug)]
pub struct HeartbeatSender {
    client: HeartbeatClient<RpcChannel>,
    sender: String,
    incarnation: u64,
    interval: Duration,
    secret: Option<PeerSecret>,
    stall: Stall,
}

impl HeartbeatSender {
    /// Beats as `sender` every `interval` over `monitor`. `incarnation`
    /// must grow across restarts (a start time in seconds will do).
    pub fn new(
        monitor: RpcChannel,
        sender: impl Into<String>,
        incarnation: u64,
        interval: Duration,
    ) -> Self {
        Self {
            client: HeartbeatClient::new(monitor),
            sender: sender.into(),
            incarnation,
            interval,
            secret: None,
            stall: Stall::default(),
        }
    }

    pub fn with_peer_secret(mut self, secret: PeerSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// The switch that freezes this sender (for fault injection).
    pub fn stall(&self) -> Stall {
        self.stall.clone()
    }

    /// Uses `stall` as this sender's switch, so that it can be held
    /// before the sender starts (or across its restarts).
    pub fn with_stall(mut self, stall: Stall) -> Self {
        self.stall = stall;
        self
    }

    /// Sends heartbeats until the task is dropped. Failures are only
    /// logged: the monitor learns of them from the silence, which is the
    /// point.
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sequence = 0u64;
        loop {
            ticks.tick().await;
            if self.stall.until_thawed().await {
                // After a stall, beat at once and keep the rhythm from
                // there: no burst of make-up heartbeats, each of which
                // would record a near-zero interval.
                ticks.reset();
            }
            let mut beat = Request::new(BeatRequest {
                sender: self.sender.clone(),
                incarnation: self.incarnation,
                sequence,
            });
            // A heartbeat later than the next one is worthless: it would
            // only be refused as stale.
            beat.set_timeout(self.interval);
            if let Some(secret) = &self.secret {
                secret.attach(&mut beat);
            }
            if let Err(status) = self.client.beat(beat).await {
                tracing::debug!(sender = %self.sender, sequence, %status, "heartbeat failed");
            }
            // Every attempt gets a number, so the monitor counts the lost.
            sequence = sequence.wrapping_add(1);
        }
    }
}
