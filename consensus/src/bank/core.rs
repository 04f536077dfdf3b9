//! The ledger's aggregate, pure: an account folded from its events, and
//! the decisions commands make against it. No IO: the service loads,
//! decides with this, and appends.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use replication::event_sourcing::{Aggregate, RecordedEvent, StoreError, Version};
use serde::{Deserialize, Serialize};

use super::events::BankEvent;
use super::{BankError, MAX_BALANCE_CENTS, MAX_REMEMBERED_REQUESTS};

/// A command already applied: where, and what it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The event it appended, as a fingerprint of the command.
    pub event: BankEvent,
    pub version: Version,
}

/// One account, folded from its events: the aggregate every command
/// decides against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub owner: Option<String>,
    pub balance_cents: i64,
    pub version: Version,
    /// Recent idempotency keys (at most [`MAX_REMEMBERED_REQUESTS`]),
    /// oldest first, and what each did.
    recent: VecDeque<String>,
    applied: BTreeMap<String, Applied>,
    /// Fingerprints of every key that left the window. A retry of one can
    /// no longer be answered with what it did, but it must not be applied
    /// again either: it is refused as too old. A fingerprint collision
    /// (odds 2^-64 per pair) refuses a new command; it never applies an
    /// old one twice. Eight bytes per keyed event, a fraction of the event
    /// the log already stores.
    evicted: BTreeSet<u64>,
}

/// A stable 64-bit FNV-1a fingerprint (snapshots store it, so it must not
/// change between builds the way `DefaultHasher` may).
fn fingerprint(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Account {
    pub fn is_open(&self) -> bool {
        self.owner.is_some()
    }

    /// Folds one event in. Balances are checked arithmetic: a history that
    /// would overflow is refused rather than wrapped.
    pub fn fold(&mut self, event: &BankEvent, version: Version) -> Result<(), BankError> {
        let balance = match event {
            BankEvent::AccountOpened { owner } => {
                self.owner = Some(owner.clone());
                Some(self.balance_cents)
            }
            BankEvent::Deposited { amount_cents, .. }
            | BankEvent::TransferReceived { amount_cents, .. } => {
                self.balance_cents.checked_add(*amount_cents)
            }
            BankEvent::Withdrawn { amount_cents, .. }
            | BankEvent::TransferSent { amount_cents, .. } => {
                self.balance_cents.checked_sub(*amount_cents)
            }
        };
        self.balance_cents = balance.ok_or(BankError::InvalidArgument {
            what: "amount_cents",
            reason: "the balance would overflow".into(),
        })?;
        self.version = version;
        if let Some(key) = event.request_key() {
            self.recent.push_back(key.clone());
            self.applied.insert(
                key,
                Applied {
                    event: event.clone(),
                    version,
                },
            );
            // A bounded window of full answers; older keys keep only a
            // fingerprint, enough to refuse a late retry.
            while self.recent.len() > MAX_REMEMBERED_REQUESTS {
                if let Some(old) = self.recent.pop_front() {
                    self.applied.remove(&old);
                    self.evicted.insert(fingerprint(&old));
                }
            }
        }
        Ok(())
    }

    /// What `event` would do here: `Ok(None)` if it must be appended,
    /// `Ok(Some(applied))` if the same command was applied already, or why
    /// it is refused. The one place the ledger's rules live.
    pub fn decide(&self, account: &str, event: &BankEvent) -> Result<Option<Applied>, BankError> {
        if let Some(key) = event.request_key()
            && let Some(applied) = self.applied.get(&key)
        {
            return if applied.event == *event {
                Ok(Some(applied.clone()))
            } else {
                Err(BankError::RequestIdReused { request_id: key })
            };
        }
        // Pitfall: forgetting a key makes its retry look new, and a new
        // deposit creates money. Refuse what cannot be answered.
        if let Some(key) = event.request_key()
            && self.evicted.contains(&fingerprint(&key))
        {
            return Err(BankError::RequestTooOld { request_id: key });
        }
        match event {
            BankEvent::AccountOpened { owner } => match &self.owner {
                None => Ok(None),
                // Opening again, as the same owner: a retry.
                Some(current) if current == owner => Ok(Some(Applied {
                    event: event.clone(),
                    version: Version(1),
                })),
                Some(_) => Err(BankError::AlreadyOpen {
                    account: account.to_owned(),
                }),
            },
            _ if !self.is_open() => Err(BankError::UnknownAccount {
                account: account.to_owned(),
            }),
            BankEvent::Withdrawn { amount_cents, .. }
            | BankEvent::TransferSent { amount_cents, .. } => {
                if *amount_cents > self.balance_cents {
                    Err(BankError::Overdraft {
                        account: account.to_owned(),
                        balance_cents: self.balance_cents,
                        amount_cents: *amount_cents,
                    })
                } else {
                    Ok(None)
                }
            }
            BankEvent::Deposited { amount_cents, .. }
            | BankEvent::TransferReceived { amount_cents, .. } => {
                check_credit(account, self, *amount_cents).map(|()| None)
            }
        }
    }
}

/// Whether `account` can take `amount_cents` more without passing
/// [`MAX_BALANCE_CENTS`].
pub fn check_credit(account: &str, state: &Account, amount_cents: i64) -> Result<(), BankError> {
    match state.balance_cents.checked_add(amount_cents) {
        Some(after) if after <= MAX_BALANCE_CENTS => Ok(()),
        _ => Err(BankError::InvalidArgument {
            what: "amount_cents",
            reason: format!("{account} would hold more than {MAX_BALANCE_CENTS} cents"),
        }),
    }
}

impl Aggregate for Account {
    // 2: snapshots carry the evicted keys' fingerprints.
    const SNAPSHOT_SCHEMA: u32 = 2;

    fn apply(&mut self, event: &RecordedEvent) -> replication::event_sourcing::Result<()> {
        let malformed = |reason: String| StoreError::MalformedEvent {
            index: 0,
            reason: format!("{} {}: {reason}", event.stream, event.version),
        };
        let bank_event = BankEvent::from_recorded(event).map_err(malformed)?;
        self.fold(&bank_event, event.version)
            .map_err(|err| malformed(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deposit(amount_cents: i64, id: &str) -> BankEvent {
        BankEvent::Deposited {
            amount_cents,
            request_id: id.into(),
        }
    }

    #[test]
    fn bank_account_refuses_overdrafts_and_recognises_retries() {
        let mut account = Account::default();
        let open = BankEvent::AccountOpened {
            owner: "ada".into(),
        };
        assert_eq!(account.decide("a", &open), Ok(None));
        account.fold(&open, Version(1)).expect("applies");
        assert!(matches!(
            account.decide(
                "a",
                &BankEvent::AccountOpened {
                    owner: "bob".into()
                }
            ),
            Err(BankError::AlreadyOpen { .. })
        ));
        account
            .fold(&deposit(500, "r1"), Version(2))
            .expect("applies");
        // The same command again: answered, not applied.
        assert_eq!(
            account.decide("a", &deposit(500, "r1")),
            Ok(Some(Applied {
                event: deposit(500, "r1"),
                version: Version(2)
            }))
        );
        // The same key for another command: refused.
        assert!(matches!(
            account.decide("a", &deposit(7, "r1")),
            Err(BankError::RequestIdReused { .. })
        ));
        let withdraw = BankEvent::Withdrawn {
            amount_cents: 501,
            request_id: "r2".into(),
        };
        assert!(matches!(
            account.decide("a", &withdraw),
            Err(BankError::Overdraft { .. })
        ));
        assert_eq!(account.balance_cents, 500);
    }
}
