//! The heartbeat monitor's state: declared peers, their detectors and
//! counters. Pure: time is passed in, nothing here touches the network.
//!
//! Each watched peer runs both detectors side by side on the same
//! heartbeats, so a status can show how differently they judge the same
//! silence.
//!
//! Bounds: at most `max_peers` (≤ [`MAX_PEERS`]) peers, ids of 1 to
//! [`MAX_PEER_ID_BYTES`] visible ASCII bytes, one phi window each. A
//! heartbeat from an undeclared sender is refused, never added.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{FailureDetector, FixedTimeout, PhiAccrual, PhiConfig};
use crate::{Error, Result};

/// The most peers one monitor watches.
pub const MAX_PEERS: usize = 1_024;
/// The longest peer id, in bytes.
pub const MAX_PEER_ID_BYTES: usize = 128;

/// How a monitor judges its peers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MonitorConfig {
    pub phi: PhiConfig,
    /// The fixed-timeout detector's timeout.
    pub timeout: Duration,
    /// Peers watched at most: 1..=[`MAX_PEERS`].
    pub max_peers: usize,
}

impl Default for MonitorConfig {
    /// Akka's phi defaults (threshold 8, 3 s pause allowance) for 1 s
    /// heartbeats, and a 5 s timeout: about the same deadline for a
    /// regular peer, so the two verdicts differ only where the peer's
    /// history makes them differ.
    fn default() -> Self {
        Self {
            phi: PhiConfig::default(),
            timeout: Duration::from_secs(5),
            max_peers: MAX_PEERS,
        }
    }
}

/// Which detector's verdict to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorKind {
    PhiAccrual,
    FixedTimeout,
}

/// What the monitor believes about one peer at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerReport {
    pub peer: String,
    pub phi: f64,
    pub suspected_by_phi: bool,
    pub suspected_by_timeout: bool,
    /// Since the last accepted heartbeat, or since the peer was declared.
    pub silence: Duration,
    pub heartbeats: u64,
    pub stale: u64,
    pub missed: u64,
    pub incarnation: u64,
    pub sequence: u64,
    pub mean_interval: Duration,
    pub std_dev: Duration,
    pub window_samples: usize,
}

impl PeerReport {
    pub fn suspected_by(&self, detector: DetectorKind) -> bool {
        match detector {
            DetectorKind::PhiAccrual => self.suspected_by_phi,
            DetectorKind::FixedTimeout => self.suspected_by_timeout,
        }
    }
}

#[derive(Clone, Debug)]
struct Watched {
    phi: PhiAccrual,
    timeout: FixedTimeout,
    /// The last accepted (incarnation, sequence).
    last: Option<(u64, u64)>,
    heartbeats: u64,
    stale: u64,
    missed: u64,
}

/// The peers a monitor watches, and what it has heard from them.
#[derive(Clone, Debug)]
pub struct Monitor {
    config: MonitorConfig,
    peers: BTreeMap<String, Watched>,
}

/// Refuses ids that are empty, longer than [`MAX_PEER_ID_BYTES`], or not
/// visible ASCII. The id itself is never echoed: it may be megabytes of
/// binary.
pub fn check_peer_id(peer: &str) -> Result<()> {
    let reason = if peer.is_empty() {
        "empty".to_owned()
    } else if peer.len() > MAX_PEER_ID_BYTES {
        format!("{} bytes, at most {MAX_PEER_ID_BYTES}", peer.len())
    } else if !peer.bytes().all(|b| b.is_ascii_graphic()) {
        "ids are visible ASCII, without spaces".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidPeerId { reason })
}

impl Monitor {
    pub fn new(config: MonitorConfig) -> Result<Self> {
        config.phi.validate()?;
        FixedTimeout::new(config.timeout)?;
        if config.max_peers == 0 || config.max_peers > MAX_PEERS {
            return Err(Error::InvalidDetectorSetting {
                setting: "max peers",
                value: config.max_peers.to_string(),
                expected: "1..=1024 peers",
            });
        }
        Ok(Self {
            config,
            peers: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// How many peers are watched.
    pub fn watched(&self) -> usize {
        self.peers.len()
    }

    /// Starts watching `peer` at `now`; `false` if it already was.
    pub fn declare(&mut self, peer: &str, now: Instant) -> Result<bool> {
        check_peer_id(peer)?;
        if self.peers.contains_key(peer) {
            return Ok(false);
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(Error::TooManyPeers {
                max: self.config.max_peers,
            });
        }
        let mut phi = PhiAccrual::new(self.config.phi)?;
        let mut timeout = FixedTimeout::new(self.config.timeout)?;
        // Pitfall: a detector that only starts at the first heartbeat never
        // suspects a peer that dies before sending one. The clock starts
        // at declaration instead.
        phi.start(now);
        timeout.start(now);
        self.peers.insert(
            peer.to_owned(),
            Watched {
                phi,
                timeout,
                last: None,
                heartbeats: 0,
                stale: 0,
                missed: 0,
            },
        );
        Ok(true)
    }

    /// Stops watching `peer`; `false` if it was not watched.
    pub fn forget(&mut self, peer: &str) -> Result<bool> {
        check_peer_id(peer)?;
        Ok(self.peers.remove(peer).is_some())
    }

    /// A heartbeat from `sender` arrived at `now`. `Ok(false)`: it was
    /// stale — not above the last accepted (incarnation, sequence).
    pub fn beat(
        &mut self,
        sender: &str,
        incarnation: u64,
        sequence: u64,
        now: Instant,
    ) -> Result<bool> {
        check_peer_id(sender)?;
        let watched = self
            .peers
            .get_mut(sender)
            .ok_or_else(|| Error::UnknownPeer {
                peer: sender.to_owned(),
            })?;
        match watched.last {
            // Pitfall: a late duplicate counted as fresh would record a
            // near-zero interval and shrink the fitted spread, making phi
            // jumpier exactly when the network is misbehaving.
            Some(last) if (incarnation, sequence) <= last => {
                watched.stale += 1;
                return Ok(false);
            }
            // A restarted peer: its downtime is not a heartbeat interval.
            Some((last_incarnation, _)) if incarnation > last_incarnation => {
                watched.phi.start(now);
            }
            Some((_, last_sequence)) => {
                watched.missed = watched.missed.saturating_add(sequence - last_sequence - 1);
            }
            None => {}
        }
        watched.phi.heartbeat(now);
        watched.timeout.heartbeat(now);
        watched.heartbeats += 1;
        watched.last = Some((incarnation, sequence));
        Ok(true)
    }

    /// What the monitor believes about `peer` at `now`.
    pub fn status(&self, peer: &str, now: Instant) -> Result<PeerReport> {
        check_peer_id(peer)?;
        let watched = self.peers.get(peer).ok_or_else(|| Error::UnknownPeer {
            peer: peer.to_owned(),
        })?;
        Ok(report(peer, watched, now))
    }

    /// Every watched peer, in id order.
    pub fn reports(&self, now: Instant) -> Vec<PeerReport> {
        self.peers
            .iter()
            .map(|(peer, watched)| report(peer, watched, now))
            .collect()
    }

    /// The peers `detector` suspects at `now`, in id order.
    pub fn suspects(&self, detector: DetectorKind, now: Instant) -> Vec<PeerReport> {
        self.reports(now)
            .into_iter()
            .filter(|report| report.suspected_by(detector))
            .collect()
    }
}

fn report(peer: &str, watched: &Watched, now: Instant) -> PeerReport {
    let (mean, std_dev) = watched.phi.fitted();
    let mean_interval = mean
        - watched
            .phi
            .config()
            .acceptable_heartbeat_pause
            .as_secs_f64();
    let (incarnation, sequence) = watched.last.unwrap_or_default();
    PeerReport {
        peer: peer.to_owned(),
        phi: watched.phi.phi(now),
        suspected_by_phi: watched.phi.suspect(now),
        suspected_by_timeout: watched.timeout.suspect(now),
        silence: watched.timeout.silence(now).unwrap_or_default(),
        heartbeats: watched.heartbeats,
        stale: watched.stale,
        missed: watched.missed,
        incarnation,
        sequence,
        mean_interval: Duration::try_from_secs_f64(mean_interval).unwrap_or_default(),
        std_dev: Duration::try_from_secs_f64(std_dev).unwrap_or_default(),
        window_samples: watched.phi.samples(),
    }
}
