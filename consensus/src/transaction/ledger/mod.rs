//! A ledger of named, non-negative amounts that can be set aside: the
//! state behind `Accounts` (balances, holds) and `Inventory` (stock,
//! reservations), and the participant side of two- and three-phase commit.
//!
//! Episode: 18, "Distributed Transactions" (also 23: the log is the state)
//! Pattern: escrow / idempotent receiver / TCC / atomic-commit participant
//! Test it: cargo test -p consensus transaction_ledger
//!
//! Every change is decided by a `&self` method that returns the record to
//! log, and made by [`Ledger::apply`] — the one function that mutates, the
//! same one that replays the log after a restart. The state is the log,
//! folded.
//!
//! Three ways to set an amount aside:
//! - a **hold** (a TCC *try*): moves funds from `available` to `held`
//!   under an id the caller chooses; *capture* (confirm) removes them,
//!   *release* (cancel) returns them, and a TTL returns them by itself —
//!   so a reservation its owner forgot does not leak;
//! - a **prepared transaction** (2PC phase one): sets its debits aside the
//!   same way and *locks* every entry it touches until the decision
//!   arrives: the blocking that 2PC is known for, made visible;
//! - a **credit** adds funds, once per credit id.
//!
//! Idempotency: ids are idempotency keys. A repeated call with the same id
//! and the same arguments gets the first call's answer; with different
//! arguments it is refused. A release that arrives before its hold (the
//! hold's call was slow, the orchestrator gave up and compensated)
//! records the release, and the late hold is refused — without that, the
//! late hold would set funds aside that nobody will ever release.
//!
//! Bounds: [`MAX_ENTRIES`] entries; [`MAX_OPEN`] live holds and prepared
//! transactions; finished holds, credits and decided transactions are
//! remembered for deduplication in a window of [`MAX_REMEMBERED`] (the
//! oldest are forgotten first: a retry must come within that window;
//! about 400 bytes apiece, a decided transaction keeping its outcome but
//! not its changes); [`MAX_CHANGES`] changes per transaction, each on an
//! entry no other prepared transaction holds. The log is compacted to a
//! snapshot of this state ([`Ledger::snapshot_records`]) once it outgrows
//! both its configured threshold and twice the last snapshot, so it stays
//! within a small multiple of the state. Taking the snapshot costs
//! O(state) under the ledger lock, paid once per at least as many records.

pub mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use prost::Message as _;

use super::{Error, MAX_AMOUNT, Result, check_amount, check_delta, check_id};
use crate::proto::v1::{
    self, Change, CreditReply, CreditRequest, HoldPlaced, HoldReply, HoldRequest, HoldState,
    LedgerEntry, LedgerSnapshotPart, OpenRequest, PrepareRequest, Protocol, SnapshotHold,
    SnapshotTxn, TxnPhase, TxnRef, ledger_record::Record,
};

/// Entries (accounts, items), at most.
pub const MAX_ENTRIES: usize = 100_000;
/// Live holds plus prepared transactions, at most.
pub const MAX_OPEN: usize = 100_000;
/// Finished holds, credits and decided transactions remembered.
pub const MAX_REMEMBERED: usize = 200_000;
/// Changes one transaction may make at one participant.
pub const MAX_CHANGES: usize = 64;
/// The largest snapshot record, roughly (one item may pass it).
pub const SNAPSHOT_PART_BYTES: usize = 1024 * 1024;
/// Participants one transaction may name.
pub const MAX_PARTICIPANTS: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    available: i64,
    held: i64,
    locked_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Hold {
    key: String,
    amount: i64,
    state: HoldState,
    expires_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Txn {
    protocol: Protocol,
    changes: Vec<Change>,
    participants: Vec<String>,
    phase: TxnPhase,
}

/// What deduplication remembers, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Finished {
    Hold(String),
    Credit(String),
    Txn(String),
}

/// What a decision asks for: a record to log (then apply), or nothing —
/// the answer is already known.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<T> {
    Apply(Record),
    Known(T),
}

/// The ledger state.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    entries: BTreeMap<String, Entry>,
    holds: HashMap<String, Hold>,
    /// Live holds with a TTL, by expiry.
    expiries: BTreeSet<(u64, String)>,
    credits: HashMap<String, CreditReply>,
    txns: HashMap<String, Txn>,
    open: usize,
    finished: VecDeque<Finished>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a ledger from its log.
    pub fn replay(records: &[Vec<u8>]) -> Result<Self> {
        let mut ledger = Self::new();
        for bytes in records {
            let record = v1::LedgerRecord::decode(bytes.as_slice())
                .map_err(|err| Error::Log(format!("undecodable ledger record: {err}")))?;
            if let Some(record) = record.record {
                ledger.apply(&record);
            }
        }
        Ok(ledger)
    }

    /// A record as the log stores it.
    pub fn encode(record: Record) -> Vec<u8> {
        v1::LedgerRecord {
            record: Some(record),
        }
        .encode_to_vec()
    }

    pub fn entry(&self, key: &str) -> Result<LedgerEntry> {
        let entry = self.entries.get(key).ok_or_else(|| Error::NotFound {
            what: "entry",
            key: key.to_owned(),
        })?;
        Ok(LedgerEntry {
            key: key.to_owned(),
            available: entry.available,
            held: entry.held,
            locked_by: entry.locked_by.clone().unwrap_or_default(),
        })
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = LedgerEntry> + '_ {
        self.entries.keys().filter_map(|key| self.entry(key).ok())
    }

    /// Live holds (TTL or not) and prepared transactions.
    pub fn open_count(&self) -> usize {
        self.open
    }

    pub fn open(&self, request: &OpenRequest) -> Result<Decision<LedgerEntry>> {
        check_id("key", &request.key)?;
        if !(0..=MAX_AMOUNT).contains(&request.amount) {
            return Err(Error::Invalid {
                field: "amount",
                reason: format!("must be in 0..={MAX_AMOUNT}, got {}", request.amount),
            });
        }
        if self.entries.contains_key(&request.key) {
            return Err(Error::AlreadyExists {
                what: "entry",
                key: request.key.clone(),
            });
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(Error::Full {
                table: "entries",
                max: MAX_ENTRIES,
            });
        }
        Ok(Decision::Apply(Record::Open(request.clone())))
    }

    /// Sets `amount` aside under `hold_id`, until `now_ms + ttl_ms` if the
    /// TTL is not 0.
    pub fn hold(&self, request: &HoldRequest, now_ms: u64) -> Result<Decision<HoldReply>> {
        check_id("hold_id", &request.hold_id)?;
        check_id("key", &request.key)?;
        check_amount("amount", request.amount)?;
        if let Some(hold) = self.holds.get(&request.hold_id) {
            let released_first = hold.state == HoldState::Released && hold.key.is_empty();
            if !released_first && (hold.key != request.key || hold.amount != request.amount) {
                return Err(Error::Invalid {
                    field: "hold_id",
                    reason: format!(
                        "{:?} already names a hold of {} on {:?}",
                        request.hold_id, hold.amount, hold.key
                    ),
                });
            }
            return Ok(Decision::Known(reply(&request.hold_id, hold)));
        }
        let entry = self.unlocked(&request.key)?;
        if entry.available < request.amount {
            return Err(Error::Precondition(format!(
                "{:?} has {} available; cannot hold {}",
                request.key, entry.available, request.amount
            )));
        }
        self.room_for_open()?;
        let expires_at_ms = match request.ttl_ms {
            0 => 0,
            ttl => now_ms.saturating_add(ttl).max(1),
        };
        Ok(Decision::Apply(Record::Hold(HoldPlaced {
            request: Some(request.clone()),
            expires_at_ms,
        })))
    }

    /// Captures (TCC confirm) a held hold.
    pub fn capture(&self, hold_id: &str) -> Result<Decision<HoldReply>> {
        check_id("hold_id", hold_id)?;
        let hold = self.holds.get(hold_id).ok_or_else(|| Error::NotFound {
            what: "hold",
            key: hold_id.to_owned(),
        })?;
        match hold.state {
            HoldState::Held => Ok(Decision::Apply(Record::Capture(v1::HoldRef {
                hold_id: hold_id.to_owned(),
            }))),
            HoldState::Captured => Ok(Decision::Known(reply(hold_id, hold))),
            state => Err(Error::Precondition(format!(
                "hold {hold_id:?} is {}; it can no longer be captured",
                state.as_str_name()
            ))),
        }
    }

    /// Releases (TCC cancel) a hold — or, if it never arrived, records the
    /// release so that it never will.
    pub fn release(&self, hold_id: &str) -> Result<Decision<HoldReply>> {
        check_id("hold_id", hold_id)?;
        match self.holds.get(hold_id) {
            None => Ok(Decision::Apply(Record::Release(v1::HoldRef {
                hold_id: hold_id.to_owned(),
            }))),
            Some(hold) => match hold.state {
                HoldState::Held => Ok(Decision::Apply(Record::Release(v1::HoldRef {
                    hold_id: hold_id.to_owned(),
                }))),
                HoldState::Captured => Err(Error::Precondition(format!(
                    "hold {hold_id:?} was captured; it can no longer be released"
                ))),
                _ => Ok(Decision::Known(reply(hold_id, hold))),
            },
        }
    }

    /// Holds whose TTL has run out by `now_ms`, as expiry records.
    pub fn due_expiries(&self, now_ms: u64) -> Vec<Record> {
        self.expiries
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, hold_id)| {
                Record::Expire(v1::HoldRef {
                    hold_id: hold_id.clone(),
                })
            })
            .collect()
    }

    pub fn credit(&self, request: &CreditRequest) -> Result<Decision<CreditReply>> {
        check_id("credit_id", &request.credit_id)?;
        check_id("key", &request.key)?;
        check_amount("amount", request.amount)?;
        if let Some(done) = self.credits.get(&request.credit_id) {
            if done.key != request.key || done.amount != request.amount {
                return Err(Error::Invalid {
                    field: "credit_id",
                    reason: format!(
                        "{:?} already names a credit of {} to {:?}",
                        request.credit_id, done.amount, done.key
                    ),
                });
            }
            return Ok(Decision::Known(done.clone()));
        }
        let entry = self.unlocked(&request.key)?;
        if entry.available + entry.held > MAX_AMOUNT - request.amount {
            return Err(Error::Overflow {
                key: request.key.clone(),
                max: MAX_AMOUNT,
            });
        }
        Ok(Decision::Apply(Record::Credit(request.clone())))
    }

    /// Phase one. `Ok(Known(false, reason))` is a "no" vote, which needs
    /// no record: under presumed abort a participant may forget a
    /// transaction it refused.
    pub fn prepare(&self, request: &PrepareRequest) -> Result<Decision<(bool, String)>> {
        check_id("txn_id", &request.txn_id)?;
        if request.changes.is_empty() || request.changes.len() > MAX_CHANGES {
            return Err(Error::Invalid {
                field: "changes",
                reason: format!("must hold 1..={MAX_CHANGES} changes"),
            });
        }
        if request.participants.len() > MAX_PARTICIPANTS {
            return Err(Error::Invalid {
                field: "participants",
                reason: format!("at most {MAX_PARTICIPANTS}"),
            });
        }
        for participant in &request.participants {
            check_id("participants", participant)?;
        }
        Protocol::try_from(request.protocol).map_err(|_| Error::Invalid {
            field: "protocol",
            reason: format!("unknown protocol {}", request.protocol),
        })?;
        let mut keys = BTreeSet::new();
        for change in &request.changes {
            check_id("changes.key", &change.key)?;
            check_delta(change.delta)?;
            if !keys.insert(change.key.as_str()) {
                return Err(Error::Invalid {
                    field: "changes",
                    reason: format!("{:?} appears twice", change.key),
                });
            }
        }
        if let Some(txn) = self.txns.get(&request.txn_id) {
            let open = matches!(txn.phase, TxnPhase::Prepared | TxnPhase::PreCommitted);
            if open && txn.changes != request.changes {
                return Err(Error::Invalid {
                    field: "txn_id",
                    reason: format!("{:?} was prepared with other changes", request.txn_id),
                });
            }
            return Ok(Decision::Known(match txn.phase {
                TxnPhase::Aborted => (false, "already aborted".into()),
                _ => (true, String::new()),
            }));
        }
        for change in &request.changes {
            let vote_no = |reason: String| Ok(Decision::Known((false, reason)));
            let Some(entry) = self.entries.get(&change.key) else {
                return vote_no(format!("{:?} not found", change.key));
            };
            if let Some(txn) = &entry.locked_by {
                return vote_no(format!("{:?} is locked by transaction {txn:?}", change.key));
            }
            if change.delta < 0 && entry.available < -change.delta {
                return vote_no(format!(
                    "{:?} has {} available; cannot debit {}",
                    change.key, entry.available, -change.delta
                ));
            }
            if change.delta > 0 && entry.available + entry.held > MAX_AMOUNT - change.delta {
                return vote_no(format!("{:?} would exceed {MAX_AMOUNT}", change.key));
            }
        }
        self.room_for_open()?;
        Ok(Decision::Apply(Record::Prepare(request.clone())))
    }

    /// Three-phase commit's second phase.
    pub fn pre_commit(&self, txn_id: &str) -> Result<Decision<TxnPhase>> {
        check_id("txn_id", txn_id)?;
        if self
            .txns
            .get(txn_id)
            .is_some_and(|txn| txn.protocol != Protocol::ThreePhase)
        {
            return Err(Error::Precondition(format!(
                "transaction {txn_id:?} runs two-phase commit; it has no pre-commit"
            )));
        }
        match self.phase(txn_id) {
            TxnPhase::Prepared => Ok(Decision::Apply(Record::PreCommit(txn_ref(txn_id)))),
            phase @ (TxnPhase::PreCommitted | TxnPhase::Committed) => Ok(Decision::Known(phase)),
            phase => Err(Error::Precondition(format!(
                "transaction {txn_id:?} is {}; it cannot pre-commit",
                phase.as_str_name()
            ))),
        }
    }

    pub fn commit(&self, txn_id: &str) -> Result<Decision<TxnPhase>> {
        check_id("txn_id", txn_id)?;
        match self.phase(txn_id) {
            TxnPhase::Prepared | TxnPhase::PreCommitted => {
                Ok(Decision::Apply(Record::Commit(txn_ref(txn_id))))
            }
            TxnPhase::Committed => Ok(Decision::Known(TxnPhase::Committed)),
            phase => Err(Error::Precondition(format!(
                "transaction {txn_id:?} is {}; it cannot commit",
                phase.as_str_name()
            ))),
        }
    }

    /// Aborts — or, for a transaction never prepared here, records the
    /// abort so that a late prepare votes no.
    pub fn abort(&self, txn_id: &str) -> Result<Decision<TxnPhase>> {
        check_id("txn_id", txn_id)?;
        match self.phase(txn_id) {
            TxnPhase::Committed => Err(Error::Precondition(format!(
                "transaction {txn_id:?} committed; it cannot abort"
            ))),
            TxnPhase::Aborted => Ok(Decision::Known(TxnPhase::Aborted)),
            _ => Ok(Decision::Apply(Record::Abort(txn_ref(txn_id)))),
        }
    }

    /// What this participant knows of a transaction.
    pub fn phase(&self, txn_id: &str) -> TxnPhase {
        self.txns
            .get(txn_id)
            .map_or(TxnPhase::Unknown, |txn| txn.phase)
    }

    /// Transactions prepared (or pre-committed) here and not yet decided:
    /// id, protocol, the other participants.
    pub fn in_doubt(&self) -> Vec<(String, Protocol, TxnPhase, Vec<String>)> {
        let mut open: Vec<_> = self
            .txns
            .iter()
            .filter(|(_, txn)| matches!(txn.phase, TxnPhase::Prepared | TxnPhase::PreCommitted))
            .map(|(id, txn)| {
                (
                    id.clone(),
                    txn.protocol,
                    txn.phase,
                    txn.participants.clone(),
                )
            })
            .collect();
        open.sort();
        open
    }

    /// The answer a record gives once applied.
    pub fn hold_reply(&self, hold_id: &str) -> Option<HoldReply> {
        self.holds.get(hold_id).map(|hold| reply(hold_id, hold))
    }

    pub fn credit_reply(&self, credit_id: &str) -> Option<CreditReply> {
        self.credits.get(credit_id).cloned()
    }

    /// Makes a logged change. Replay calls it too, so it trusts its input
    /// (every record was decided by the methods above) and never fails.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Open(open) => {
                self.entries.insert(
                    open.key.clone(),
                    Entry {
                        available: open.amount,
                        ..Entry::default()
                    },
                );
            }
            Record::Hold(placed) => {
                let Some(request) = &placed.request else {
                    return;
                };
                if let Some(entry) = self.entries.get_mut(&request.key) {
                    entry.available -= request.amount;
                    entry.held += request.amount;
                }
                if placed.expires_at_ms > 0 {
                    self.expiries
                        .insert((placed.expires_at_ms, request.hold_id.clone()));
                }
                self.holds.insert(
                    request.hold_id.clone(),
                    Hold {
                        key: request.key.clone(),
                        amount: request.amount,
                        state: HoldState::Held,
                        expires_at_ms: placed.expires_at_ms,
                    },
                );
                self.open += 1;
            }
            Record::Capture(hold) => self.finish_hold(&hold.hold_id, HoldState::Captured),
            Record::Release(hold) => {
                if self.holds.contains_key(&hold.hold_id) {
                    self.finish_hold(&hold.hold_id, HoldState::Released);
                } else {
                    // Released before it arrived: remembered, holding nothing.
                    self.holds.insert(
                        hold.hold_id.clone(),
                        Hold {
                            key: String::new(),
                            amount: 0,
                            state: HoldState::Released,
                            expires_at_ms: 0,
                        },
                    );
                    self.remember(Finished::Hold(hold.hold_id.clone()));
                }
            }
            Record::Expire(hold) => self.finish_hold(&hold.hold_id, HoldState::Expired),
            Record::Credit(credit) => {
                let Some(entry) = self.entries.get_mut(&credit.key) else {
                    return;
                };
                entry.available += credit.amount;
                self.credits.insert(
                    credit.credit_id.clone(),
                    CreditReply {
                        credit_id: credit.credit_id.clone(),
                        key: credit.key.clone(),
                        amount: credit.amount,
                        available: entry.available,
                    },
                );
                self.remember(Finished::Credit(credit.credit_id.clone()));
            }
            Record::Prepare(prepare) => {
                for change in &prepare.changes {
                    if let Some(entry) = self.entries.get_mut(&change.key) {
                        entry.locked_by = Some(prepare.txn_id.clone());
                        if change.delta < 0 {
                            entry.available += change.delta;
                            entry.held -= change.delta;
                        }
                    }
                }
                self.txns.insert(
                    prepare.txn_id.clone(),
                    Txn {
                        protocol: Protocol::try_from(prepare.protocol).unwrap_or_default(),
                        changes: prepare.changes.clone(),
                        participants: prepare.participants.clone(),
                        phase: TxnPhase::Prepared,
                    },
                );
                self.open += 1;
            }
            Record::PreCommit(txn) => {
                if let Some(txn) = self.txns.get_mut(&txn.txn_id) {
                    txn.phase = TxnPhase::PreCommitted;
                }
            }
            Record::Commit(txn) => self.decide(&txn.txn_id, TxnPhase::Committed),
            Record::Abort(txn) => self.decide(&txn.txn_id, TxnPhase::Aborted),
            Record::Snapshot(part) => self.restore(part),
        }
    }

    /// The whole state as snapshot records, in parts of at most
    /// [`SNAPSHOT_PART_BYTES`] (well under the log's record limit): what
    /// the log is rewritten to when it is compacted.
    pub fn snapshot_records(&self) -> Vec<Vec<u8>> {
        let mut parts = Parts::default();
        for key in self.entries.keys() {
            if let Ok(entry) = self.entry(key) {
                parts.room(entry.encoded_len()).entries.push(entry);
            }
        }
        let mut holds: Vec<(&String, &Hold)> = self.holds.iter().collect();
        holds.sort_by(|a, b| a.0.cmp(b.0));
        for (hold_id, hold) in holds {
            let hold = SnapshotHold {
                hold_id: hold_id.clone(),
                key: hold.key.clone(),
                amount: hold.amount,
                state: hold.state.into(),
                expires_at_ms: hold.expires_at_ms,
            };
            parts.room(hold.encoded_len()).holds.push(hold);
        }
        let mut credits: Vec<&CreditReply> = self.credits.values().collect();
        credits.sort_by(|a, b| a.credit_id.cmp(&b.credit_id));
        for credit in credits {
            parts
                .room(credit.encoded_len())
                .credits
                .push(credit.clone());
        }
        let mut txns: Vec<(&String, &Txn)> = self.txns.iter().collect();
        txns.sort_by(|a, b| a.0.cmp(b.0));
        for (txn_id, txn) in txns {
            let txn = SnapshotTxn {
                txn_id: txn_id.clone(),
                protocol: txn.protocol.into(),
                phase: txn.phase.into(),
                changes: txn.changes.clone(),
                participants: txn.participants.clone(),
            };
            parts.room(txn.encoded_len()).txns.push(txn);
        }
        for finished in &self.finished {
            let tagged = match finished {
                Finished::Hold(id) => format!("h:{id}"),
                Finished::Credit(id) => format!("c:{id}"),
                Finished::Txn(id) => format!("t:{id}"),
            };
            parts.room(tagged.len() + 2).finished.push(tagged);
        }
        parts
            .parts
            .into_iter()
            .map(|part| Ledger::encode(Record::Snapshot(part)))
            .collect()
    }

    /// Applies one snapshot part (to a ledger rebuilt from an empty one).
    fn restore(&mut self, part: &LedgerSnapshotPart) {
        for entry in &part.entries {
            self.entries.insert(
                entry.key.clone(),
                Entry {
                    available: entry.available,
                    held: entry.held,
                    locked_by: (!entry.locked_by.is_empty()).then(|| entry.locked_by.clone()),
                },
            );
        }
        for hold in &part.holds {
            let state = HoldState::try_from(hold.state).unwrap_or_default();
            if state == HoldState::Held {
                self.open += 1;
                if hold.expires_at_ms > 0 {
                    self.expiries
                        .insert((hold.expires_at_ms, hold.hold_id.clone()));
                }
            }
            self.holds.insert(
                hold.hold_id.clone(),
                Hold {
                    key: hold.key.clone(),
                    amount: hold.amount,
                    state,
                    expires_at_ms: hold.expires_at_ms,
                },
            );
        }
        for credit in &part.credits {
            self.credits
                .insert(credit.credit_id.clone(), credit.clone());
        }
        for txn in &part.txns {
            let phase = TxnPhase::try_from(txn.phase).unwrap_or_default();
            if matches!(phase, TxnPhase::Prepared | TxnPhase::PreCommitted) {
                self.open += 1;
            }
            self.txns.insert(
                txn.txn_id.clone(),
                Txn {
                    protocol: Protocol::try_from(txn.protocol).unwrap_or_default(),
                    changes: txn.changes.clone(),
                    participants: txn.participants.clone(),
                    phase,
                },
            );
        }
        for finished in &part.finished {
            let (kind, id) = finished.split_at(finished.len().min(2));
            self.finished.push_back(match kind {
                "h:" => Finished::Hold(id.to_owned()),
                "c:" => Finished::Credit(id.to_owned()),
                _ => Finished::Txn(id.to_owned()),
            });
        }
    }

    fn finish_hold(&mut self, hold_id: &str, state: HoldState) {
        let Some(hold) = self.holds.get_mut(hold_id) else {
            return;
        };
        if hold.state != HoldState::Held {
            return;
        }
        hold.state = state;
        if let Some(entry) = self.entries.get_mut(&hold.key) {
            entry.held -= hold.amount;
            if state != HoldState::Captured {
                entry.available += hold.amount;
            }
        }
        if hold.expires_at_ms > 0 {
            self.expiries
                .remove(&(hold.expires_at_ms, hold_id.to_owned()));
        }
        self.open = self.open.saturating_sub(1);
        self.remember(Finished::Hold(hold_id.to_owned()));
    }

    fn decide(&mut self, txn_id: &str, phase: TxnPhase) {
        let Some(txn) = self.txns.get_mut(txn_id) else {
            // Aborted before it was prepared here: remembered, so a late
            // prepare votes no.
            self.txns.insert(
                txn_id.to_owned(),
                Txn {
                    protocol: Protocol::TwoPhase,
                    changes: Vec::new(),
                    participants: Vec::new(),
                    phase,
                },
            );
            self.remember(Finished::Txn(txn_id.to_owned()));
            return;
        };
        if !matches!(txn.phase, TxnPhase::Prepared | TxnPhase::PreCommitted) {
            return;
        }
        txn.phase = phase;
        // Decided: only the outcome is remembered (a repeated prepare is
        // answered from it), not the changes.
        let changes = std::mem::take(&mut txn.changes);
        for change in &changes {
            if let Some(entry) = self.entries.get_mut(&change.key) {
                entry.locked_by = None;
                match (phase, change.delta < 0) {
                    (TxnPhase::Committed, true) => entry.held += change.delta,
                    (TxnPhase::Committed, false) => entry.available += change.delta,
                    (_, true) => {
                        entry.held += change.delta;
                        entry.available -= change.delta;
                    }
                    (_, false) => {}
                }
            }
        }
        self.open = self.open.saturating_sub(1);
        self.remember(Finished::Txn(txn_id.to_owned()));
    }

    /// Keeps a finished id for deduplication, forgetting the oldest past
    /// the window.
    fn remember(&mut self, finished: Finished) {
        self.finished.push_back(finished);
        while self.finished.len() > MAX_REMEMBERED {
            match self.finished.pop_front() {
                Some(Finished::Hold(id)) => {
                    self.holds.remove(&id);
                }
                Some(Finished::Credit(id)) => {
                    self.credits.remove(&id);
                }
                Some(Finished::Txn(id)) => {
                    self.txns.remove(&id);
                }
                None => break,
            }
        }
    }

    fn unlocked(&self, key: &str) -> Result<&Entry> {
        let entry = self.entries.get(key).ok_or_else(|| Error::NotFound {
            what: "entry",
            key: key.to_owned(),
        })?;
        if let Some(txn) = &entry.locked_by {
            return Err(Error::Locked {
                key: key.to_owned(),
                txn: txn.clone(),
            });
        }
        Ok(entry)
    }

    fn room_for_open(&self) -> Result<()> {
        if self.open >= MAX_OPEN {
            return Err(Error::Full {
                table: "holds and prepared transactions",
                max: MAX_OPEN,
            });
        }
        Ok(())
    }
}

/// Snapshot parts being filled, each up to about [`SNAPSHOT_PART_BYTES`].
#[derive(Default)]
struct Parts {
    parts: Vec<LedgerSnapshotPart>,
    bytes: usize,
}

impl Parts {
    /// The part with room for an item of `bytes`.
    fn room(&mut self, bytes: usize) -> &mut LedgerSnapshotPart {
        if self.parts.is_empty() || self.bytes + bytes > SNAPSHOT_PART_BYTES {
            self.parts.push(LedgerSnapshotPart::default());
            self.bytes = 0;
        }
        self.bytes += bytes + 4;
        let last = self.parts.len() - 1;
        &mut self.parts[last]
    }
}

fn reply(hold_id: &str, hold: &Hold) -> HoldReply {
    HoldReply {
        hold_id: hold_id.to_owned(),
        key: hold.key.clone(),
        amount: hold.amount,
        state: hold.state.into(),
    }
}

fn txn_ref(txn_id: &str) -> TxnRef {
    TxnRef {
        txn_id: txn_id.to_owned(),
    }
}
