//! Two- and three-phase commit under coordinator crashes, participant
//! crashes and partitions.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use observability::sim::{self, SimResult, Simulation, faults};
use replication::log::MemDisk;
use tonic::Code;

use super::{address, channel, commit_peers, coordinator_host, ledger_host};
use crate::proto::v1::accounts_client::AccountsClient;
use crate::proto::v1::transaction_coordinator_client::TransactionCoordinatorClient;
use crate::proto::v1::transaction_participant_client::TransactionParticipantClient;
use crate::proto::v1::{
    Branch, Change, HoldRequest, KeyRequest, OpenRequest, Protocol, TxnPhase, TxnRef, TxnRequest,
};
use crate::transaction::two_phase::HaltPoint;

/// Hosts a test script asks to restart (crash, then start again).
type Restarts = Rc<RefCell<Vec<&'static str>>>;

/// The cluster: coordinator on n1, ledger `a` (alice: 100) on n2, ledger
/// `b` (bob: 0) on n3.
fn cluster(seed: u64, halts: Vec<HaltPoint>) -> Simulation<'static> {
    let mut sim = Simulation::builder(seed)
        .hosts(3)
        .duration(Duration::from_secs(120))
        .build();
    let participants = BTreeMap::from([
        ("a".to_owned(), address("n2")),
        ("b".to_owned(), address("n3")),
    ]);
    coordinator_host(
        &mut sim,
        "n1",
        participants,
        MemDisk::new(),
        Rc::new(RefCell::new(VecDeque::from(halts))),
    );
    ledger_host(&mut sim, "n2", "a", commit_peers(), MemDisk::new());
    ledger_host(&mut sim, "n3", "b", commit_peers(), MemDisk::new());
    sim
}

/// Runs the simulation, restarting the hosts the script asks for.
fn run(mut sim: Simulation<'static>, restarts: Restarts) -> SimResult {
    while !sim.step()? {
        let asked: Vec<&str> = restarts.borrow_mut().drain(..).collect();
        for host in asked {
            sim.restart(host);
        }
    }
    Ok(())
}

async fn open_accounts() -> SimResult {
    AccountsClient::new(channel("n2"))
        .open(OpenRequest {
            key: "alice".into(),
            amount: 100,
        })
        .await?;
    AccountsClient::new(channel("n3"))
        .open(OpenRequest {
            key: "bob".into(),
            amount: 0,
        })
        .await?;
    Ok(())
}

fn transfer(txn: &str, protocol: Protocol) -> TxnRequest {
    let branch = |participant: &str, key: &str, delta: i64| Branch {
        participant: participant.into(),
        changes: vec![Change {
            key: key.into(),
            delta,
        }],
    };
    TxnRequest {
        txn_id: txn.into(),
        protocol: protocol.into(),
        branches: vec![branch("a", "alice", -30), branch("b", "bob", 30)],
    }
}

async fn phase(host: &str, txn: &str) -> Result<TxnPhase, tonic::Status> {
    let status = TransactionParticipantClient::new(channel(host))
        .status(TxnRef { txn_id: txn.into() })
        .await?
        .into_inner();
    Ok(TxnPhase::try_from(status.phase).unwrap_or_default())
}

/// Both participants' phases, polled until both have decided (or `within`
/// passes).
async fn decided(txn: &str, within: Duration) -> Result<(TxnPhase, TxnPhase), tonic::Status> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let phases = (phase("n2", txn).await?, phase("n3", txn).await?);
        // Unknown is not decided either: the prepare may not have arrived.
        let done = |p: TxnPhase| matches!(p, TxnPhase::Committed | TxnPhase::Aborted);
        if (done(phases.0) && done(phases.1)) || tokio::time::Instant::now() > deadline {
            return Ok(phases);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn balances() -> Result<(i64, i64, bool), tonic::Status> {
    let alice = AccountsClient::new(channel("n2"))
        .balance(KeyRequest {
            key: "alice".into(),
        })
        .await?
        .into_inner();
    let bob = AccountsClient::new(channel("n3"))
        .balance(KeyRequest { key: "bob".into() })
        .await?
        .into_inner();
    let locked = !alice.locked_by.is_empty() || !bob.locked_by.is_empty();
    Ok((
        alice.available + alice.held,
        bob.available + bob.held,
        locked,
    ))
}

/// Shows 2PC blocking, then recovery: the coordinator stops at `halt`,
/// both participants stay prepared and locked however long they wait
/// (one of them crashing and recovering in doubt meanwhile); the
/// coordinator restarts and both reach its decision.
fn coordinator_crash_then_recovery(halt: HaltPoint, expected: TxnPhase) {
    sim::for_each_seed(|seed| {
        let mut sim = cluster(seed, vec![halt]);
        let restarts: Restarts = Rc::default();
        let asks = restarts.clone();
        sim.client(async move {
            open_accounts().await?;
            let mut coordinator = TransactionCoordinatorClient::new(channel("n1"));
            let down = coordinator
                .execute(transfer("t1", Protocol::TwoPhase))
                .await
                .expect_err("the coordinator halts mid-protocol");
            assert_eq!(down.code(), Code::Unavailable);
            // In doubt: prepared, locked, and it stays that way.
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(
                decided("t1", Duration::ZERO).await?,
                (TxnPhase::Prepared, TxnPhase::Prepared)
            );
            let blocked = AccountsClient::new(channel("n2"))
                .hold(HoldRequest {
                    hold_id: "h".into(),
                    key: "alice".into(),
                    amount: 1,
                    ttl_ms: 0,
                })
                .await
                .expect_err("alice is locked by the transaction in doubt");
            assert_eq!(blocked.code(), Code::Aborted, "{blocked:?}");
            // A participant that crashes in doubt recovers in doubt.
            asks.borrow_mut().push("n3");
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(phase("n3", "t1").await?, TxnPhase::Prepared);
            assert!(balances().await?.2, "still locked");
            // The coordinator comes back and recovers from its log.
            asks.borrow_mut().push("n1");
            let phases = decided("t1", Duration::from_secs(10)).await?;
            assert_eq!(
                phases,
                (expected, expected),
                "both reach the coordinator's decision"
            );
            let (alice, bob, locked) = balances().await?;
            assert!(!locked, "the locks are released");
            match expected {
                TxnPhase::Committed => assert_eq!((alice, bob), (70, 30)),
                _ => assert_eq!((alice, bob), (100, 0)),
            }
            // Executing it again answers the decision; nothing moves twice.
            let again = coordinator
                .execute(transfer("t1", Protocol::TwoPhase))
                .await?;
            assert_eq!(again.into_inner().phase, expected as i32);
            assert_eq!(balances().await?.0 + balances().await?.1, 100);
            Ok(())
        });
        run(sim, restarts)
    });
}

#[test]
fn transaction_commit_two_phase_crash_before_decision_blocks_then_presumes_abort() {
    coordinator_crash_then_recovery(HaltPoint::AfterVotes, TxnPhase::Aborted);
}

#[test]
fn transaction_commit_two_phase_crash_after_decision_blocks_then_commits_everywhere() {
    coordinator_crash_then_recovery(HaltPoint::AfterDecision, TxnPhase::Committed);
}

#[test]
fn transaction_commit_two_phase_commits_and_aborts_without_faults() {
    sim::for_each_seed(|seed| {
        let mut sim = cluster(seed, Vec::new());
        sim.client(async move {
            open_accounts().await?;
            let mut coordinator = TransactionCoordinatorClient::new(channel("n1"));
            let done = coordinator
                .execute(transfer("t1", Protocol::TwoPhase))
                .await?;
            assert_eq!(done.into_inner().phase, TxnPhase::Committed as i32);
            assert_eq!(balances().await?, (70, 30, false));
            // alice has 70: a second transfer of 30 commits, then one of
            // 100 cannot — `a` votes no and nothing moves anywhere.
            let mut too_much = transfer("t2", Protocol::TwoPhase);
            too_much.branches[0].changes[0].delta = -100;
            too_much.branches[1].changes[0].delta = 100;
            let refused = coordinator.execute(too_much).await?;
            assert_eq!(refused.into_inner().phase, TxnPhase::Aborted as i32);
            assert_eq!(balances().await?, (70, 30, false));
            assert_eq!(phase("n3", "t2").await?, TxnPhase::Aborted, "b was told");
            // The same id for another transaction is refused, not answered.
            let mut reused = transfer("t1", Protocol::TwoPhase);
            reused.branches[0].changes[0].delta = -50;
            reused.branches[1].changes[0].delta = 50;
            let refused = coordinator.execute(reused).await.expect_err("reused id");
            assert_eq!(refused.code(), Code::AlreadyExists);
            // A caller that gives up does not abandon the transaction: it
            // runs to its decision and releases its locks.
            let mut impatient = tonic::Request::new(transfer("t3", Protocol::TwoPhase));
            impatient.set_timeout(Duration::from_micros(1));
            let _ = coordinator.execute(impatient).await;
            // (Unless the deadline passed before the call even arrived.)
            let phases = decided("t3", Duration::from_secs(10)).await?;
            let (alice, bob, locked) = balances().await?;
            assert!(!locked, "no locks left behind");
            match phases {
                (TxnPhase::Committed, TxnPhase::Committed) => assert_eq!((alice, bob), (40, 60)),
                (TxnPhase::Unknown, TxnPhase::Unknown) => assert_eq!((alice, bob), (70, 30)),
                other => panic!("t3 ended {other:?}"),
            }
            let unknown = coordinator
                .outcome(TxnRef {
                    txn_id: "never".into(),
                })
                .await?;
            assert_eq!(
                unknown.into_inner().phase,
                TxnPhase::Aborted as i32,
                "presumed abort"
            );
            Ok(())
        });
        sim.run()
    });
}

#[test]
fn transaction_commit_three_phase_does_not_block_when_the_coordinator_dies() {
    sim::for_each_seed(|seed| {
        // Pre-commit reached `a` only; the coordinator never comes back.
        let mut sim = cluster(seed, vec![HaltPoint::AfterPreCommit { delivered: 1 }]);
        sim.client(async move {
            open_accounts().await?;
            let mut coordinator = TransactionCoordinatorClient::new(channel("n1"));
            let _ = coordinator
                .execute(transfer("t1", Protocol::ThreePhase))
                .await;
            // `b` learns from `a` that everyone voted yes; `a` times out
            // pre-committed. Both commit, no coordinator needed.
            let phases = decided("t1", Duration::from_secs(10)).await?;
            assert_eq!(phases, (TxnPhase::Committed, TxnPhase::Committed));
            assert_eq!(balances().await?, (70, 30, false));
            Ok(())
        });
        sim.run()
    });
}

/// The broken side of three-phase commit, caught: a partition between the
/// participants looks like a crash to each side, and each side decides
/// alone — `a` (pre-committed) commits, `b` (only prepared, unable to
/// reach anyone who knows more) aborts. Money is created out of nothing.
#[test]
fn transaction_commit_three_phase_splits_its_decision_under_a_partition() {
    sim::for_each_seed(|seed| {
        let mut sim = cluster(seed, vec![HaltPoint::AfterPreCommit { delivered: 1 }]);
        sim.client(async move {
            open_accounts().await?;
            let mut coordinator = TransactionCoordinatorClient::new(channel("n1"));
            let _ = coordinator
                .execute(transfer("t1", Protocol::ThreePhase))
                .await;
            faults::partition("n2", "n3");
            let phases = decided("t1", Duration::from_secs(10)).await?;
            faults::heal("n2", "n3");
            assert_eq!(
                phases,
                (TxnPhase::Committed, TxnPhase::Aborted),
                "the atomicity check catches a split decision"
            );
            let (alice, bob, _) = balances().await?;
            assert_eq!(
                (alice, bob),
                (70, 0),
                "30 vanished: debited at a, never credited at b"
            );
            Ok(())
        });
        sim.run()
    });
}
