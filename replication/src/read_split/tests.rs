//! Read/write splitting, recorded and checked for session guarantees.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use observability::sim::for_each_seed;

use super::*;
use crate::consistency::History;
use crate::consistency::recorder::{KvClient, Recorder};
use crate::consistency::session::{Guarantee, check_sessions};

/// A paused-clock runtime: replica lags and think times are simulated,
/// so a seed replays the same interleaving.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
}

/// Three clients append and read back, with seeded think times, against
/// three replicas with seeded lags; returns the history and the split's stats.
fn record<C, F>(seed: u64, session: F) -> (History, SplitStats)
where
    C: KvClient + 'static,
    F: Fn(ReadWriteSplit) -> C,
{
    paused_runtime().block_on(async {
        let mut rng = SmallRng::seed_from_u64(seed);
        // One near replica (it catches up within a token read's wait) and
        // two far ones.
        let lags: Vec<Duration> = [2..10, 10..80, 10..80]
            .into_iter()
            .map(|range| Duration::from_millis(rng.random_range(range)))
            .collect();
        let split = ReadWriteSplit::new(&lags, Duration::from_millis(10)).expect("three replicas");
        let recorder = Recorder::new();
        let tasks: Vec<_> = (0..3u64)
            .map(|client| {
                let mut kv = recorder.client(client, session(split.clone()));
                let mut rng = SmallRng::seed_from_u64(seed ^ ((client + 1) * 0x9E37_79B9));
                tokio::spawn(async move {
                    for i in 0..20 {
                        let key = if rng.random_bool(0.5) { "x" } else { "y" };
                        let _ = kv.append(key, &format!("<{client}:{i}>")).await;
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..8))).await;
                        let _ = kv.get(key).await;
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..8))).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a client task finishes");
        }
        (recorder.history(), split.stats())
    })
}

/// Episode 30. Reads split off to lagging replicas: without tokens a
/// client misses its own writes (the session checker finds
/// read-your-writes violations); with session position tokens the same
/// workload has no session violation at all — across seeds.
#[test]
fn read_split_tokens_keep_read_your_writes_the_twin_does_not() {
    for_each_seed(|seed| {
        let (naive, _) = record(seed, NaiveSession::new);
        let violations = check_sessions(&naive)?;
        assert!(
            violations
                .iter()
                .any(|v| v.guarantee == Guarantee::ReadYourWrites),
            "seed {seed}: the token-less twin must read stale: {violations:?}"
        );

        let (tokens, stats) = record(seed, Session::new);
        assert_eq!(tokens.operations.len(), 120);
        let violations = check_sessions(&tokens)?;
        assert!(violations.is_empty(), "seed {seed}: {violations:?}");
        // The tokens did work: some reads waited or fell back, and
        // replicas still served reads.
        assert!(stats.waited + stats.primary_fallbacks > 0, "{stats:?}");
        assert!(stats.replica_reads > 0, "{stats:?}");
        Ok(())
    });
}

/// A token read is served by a replica at or past the token: straight
/// away if one is there, after a bounded wait if one gets there in time,
/// and by the primary otherwise.
#[test]
fn read_split_token_reads_wait_bounded_then_fall_back() {
    paused_runtime().block_on(async {
        let split = ReadWriteSplit::new(
            &[Duration::from_millis(5), Duration::from_secs(10)],
            Duration::from_millis(20),
        )
        .expect("two replicas");
        let token = split.append("k", "a").expect("room");
        assert_eq!(token, Position(1));
        // Nobody has it yet; replica 0 gets there within the wait.
        let read = split.read("k", Some(token)).await.expect("served");
        assert_eq!(read.value, "a");
        assert_eq!(read.served_by, ServedBy::Replica(0));
        assert!(read.position >= token);
        // Replica 0 is caught up: the next read goes straight to it,
        // though it is replica 1's turn.
        let read = split.read("k", Some(token)).await.expect("served");
        assert_eq!(read.served_by, ServedBy::Replica(0));
        // A new write, and replica 1's turn: nobody has the write yet,
        // the read waits on replica 1, which lags 10 s; the wait runs
        // out and the primary answers.
        let token = split.append("k", "b").expect("room");
        let _ = split.read("k", None).await.expect("advances the turn");
        let read = split.read("k", Some(token)).await.expect("served");
        assert_eq!(
            (read.value.as_str(), read.served_by),
            ("ab", ServedBy::Primary)
        );
        // Without a token, the lagging replica answers stale.
        let _ = split.read("k", None).await.expect("advances the turn");
        let stale = split.read("k", None).await.expect("served");
        assert_eq!(
            (stale.value.as_str(), stale.served_by),
            ("", ServedBy::Replica(1))
        );
        let stats = split.stats();
        assert_eq!((stats.waited, stats.primary_fallbacks), (1, 1), "{stats:?}");
    });
}

/// Bad input: a token the primary never issued, an oversized key, a
/// split with no replicas and a full backlog are typed errors.
#[test]
fn read_split_refuses_bad_tokens_and_bounds_its_backlog() {
    paused_runtime().block_on(async {
        assert!(matches!(
            ReadWriteSplit::new(&[], Duration::ZERO),
            Err(Error::NoReplicas)
        ));
        let split =
            ReadWriteSplit::new(&[Duration::from_secs(3600)], Duration::ZERO).expect("one replica");
        let ahead = split.read("k", Some(Position(7))).await;
        assert!(
            matches!(
                ahead,
                Err(Error::PositionAhead {
                    token: 7,
                    primary: 0
                })
            ),
            "{ahead:?}"
        );
        let long = "k".repeat(crate::register::MAX_KEY_BYTES + 1);
        assert!(matches!(
            split.read(&long, None).await,
            Err(Error::TooLarge { .. })
        ));
        for i in 0..MAX_BACKLOG {
            split.put("k", &i.to_string()).expect("fits the backlog");
        }
        let full = split.put("k", "one too many");
        assert!(matches!(full, Err(Error::BacklogFull { .. })), "{full:?}");
        assert_eq!(
            tonic::Status::from(full.expect_err("full")).code(),
            tonic::Code::ResourceExhausted
        );
        // The refused write changed nothing on the primary.
        let read = split
            .read("k", Some(Position(MAX_BACKLOG as u64)))
            .await
            .expect("primary");
        assert_eq!(read.value, (MAX_BACKLOG - 1).to_string());
    });
}
