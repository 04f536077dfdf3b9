//! The monitor's bookkeeping, on a hand-driven clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::Error;
use crate::failure_detector::monitor::{DetectorKind, MAX_PEER_ID_BYTES, MAX_PEERS};
use crate::failure_detector::{Monitor, MonitorConfig, PhiConfig};

fn config() -> MonitorConfig {
    MonitorConfig {
        max_peers: 4,
        ..super::fast_config()
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Episode 13. A peer that dies before its first heartbeat is still
/// suspected: its silence counts from the moment it was declared.
#[test]
fn failure_detector_monitor_suspects_a_peer_that_never_beats() {
    let t0 = Instant::now();
    let mut monitor = Monitor::new(config()).expect("valid");
    assert!(monitor.declare("n1", t0).expect("declared"));
    assert!(
        !monitor.declare("n1", t0 + ms(50)).expect("again"),
        "idempotent"
    );
    let early = monitor.status("n1", t0 + ms(200)).expect("watched");
    assert!(
        !early.suspected_by_phi && !early.suspected_by_timeout,
        "{early:?}"
    );
    let late = monitor.status("n1", t0 + ms(5_000)).expect("watched");
    assert!(
        late.suspected_by_phi && late.suspected_by_timeout,
        "{late:?}"
    );
    assert_eq!(late.silence, ms(5_000));
    assert_eq!(
        monitor
            .suspects(DetectorKind::PhiAccrual, t0 + ms(5_000))
            .len(),
        1
    );
}

/// Late duplicates and zombies are counted, not measured; a restart (new
/// incarnation) does not record its downtime as a heartbeat interval;
/// gaps in the sequence are counted as missed heartbeats.
#[test]
fn failure_detector_monitor_sequences_filter_stale_beats_and_count_lost_ones() {
    let t0 = Instant::now();
    let mut monitor = Monitor::new(config()).expect("valid");
    monitor.declare("n1", t0).expect("declared");
    for sequence in 0..10u64 {
        let at = t0 + ms(100 * (sequence + 1));
        assert!(monitor.beat("n1", 1, sequence, at).expect("declared"));
    }
    let before = monitor.status("n1", t0 + ms(1_000)).expect("watched");
    assert_eq!(before.window_samples, 2 + 9, "bootstrap + 9 intervals");
    // A duplicate, a reordered one and a zombie's: all refused as stale.
    for (incarnation, sequence) in [(1, 9), (1, 3), (0, 500)] {
        let fresh = monitor
            .beat("n1", incarnation, sequence, t0 + ms(1_010))
            .expect("declared");
        assert!(!fresh);
    }
    // Heartbeats 10..=12 lost; 13 arrives.
    assert!(monitor.beat("n1", 1, 13, t0 + ms(1_400)).expect("declared"));
    // The peer restarts after 60 s of downtime, sequence from 0.
    assert!(monitor.beat("n1", 2, 0, t0 + ms(61_400)).expect("declared"));
    let after = monitor.status("n1", t0 + ms(61_450)).expect("watched");
    assert_eq!((after.stale, after.missed, after.heartbeats), (3, 3, 12));
    assert_eq!((after.incarnation, after.sequence), (2, 0));
    assert_eq!(
        after.window_samples, 12,
        "one more interval, not the downtime"
    );
    assert!(
        after.phi < 1.0,
        "a restarted peer is trusted again: {after:?}"
    );
}

/// Bad input: undeclared senders, bad ids, a full table — each a typed
/// error, and nothing added.
#[test]
fn failure_detector_monitor_refuses_strangers_bad_ids_and_a_full_table() {
    let t0 = Instant::now();
    let mut monitor = Monitor::new(config()).expect("valid");
    let stranger = monitor.beat("stranger", 1, 0, t0);
    assert!(
        matches!(stranger, Err(Error::UnknownPeer { .. })),
        "{stranger:?}"
    );
    assert_eq!(monitor.watched(), 0, "a heartbeat never adds a peer");
    for bad in [
        String::new(),
        "x".repeat(MAX_PEER_ID_BYTES + 1),
        "has space".into(),
        "tab\t".into(),
        "é".into(),
    ] {
        let refused = monitor.declare(&bad, t0);
        assert!(
            matches!(refused, Err(Error::InvalidPeerId { .. })),
            "{refused:?}"
        );
    }
    assert!(monitor.declare(&"x".repeat(MAX_PEER_ID_BYTES), t0).is_ok());
    for peer in ["a", "b", "c"] {
        monitor.declare(peer, t0).expect("room");
    }
    let full = monitor.declare("d", t0);
    assert!(
        matches!(full, Err(Error::TooManyPeers { max: 4 })),
        "{full:?}"
    );
    assert!(monitor.forget("a").expect("valid id"));
    assert!(!monitor.forget("a").expect("valid id"), "already gone");
    assert!(monitor.declare("d", t0).is_ok(), "room again");
}

/// Absurd settings are refused when the monitor is built.
#[test]
fn failure_detector_monitor_refuses_absurd_settings() {
    for broken in [
        MonitorConfig {
            max_peers: 0,
            ..config()
        },
        MonitorConfig {
            max_peers: MAX_PEERS + 1,
            ..config()
        },
        MonitorConfig {
            timeout: Duration::ZERO,
            ..config()
        },
        MonitorConfig {
            phi: PhiConfig::with_threshold(f64::NAN),
            ..config()
        },
    ] {
        let refused = Monitor::new(broken);
        assert!(
            matches!(refused, Err(Error::InvalidDetectorSetting { .. })),
            "{refused:?}"
        );
    }
}
