//! Faults injected where a service sends a message: lost requests, lost
//! replies, duplicates, and links cut by name.
//!
//! Episode: 18, "Distributed Transactions" (also 40: idempotent retries)
//! Pattern: fault injection at the message layer
//!
//! A lost *reply* is the fault that matters here: the call ran, the caller
//! cannot know it did, and retries. Only an idempotency key makes that
//! retry harmless — the broken-twin saga shows what happens without one.
//! turmoil can partition and crash hosts, but it cannot lose one reply and
//! deliver the next, and demos on real TCP cannot partition at all; these
//! faults work on both.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::Status;

/// Probabilities of each fault, per call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MessageFaults {
    /// The request never arrives.
    pub drop_request: f64,
    /// The request runs; its reply never arrives.
    pub drop_reply: f64,
    /// The request arrives twice.
    pub duplicate: f64,
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    DropRequest,
    DropReply,
    Duplicate,
}

/// Links cut between named services, shared by every service a test or
/// demo starts (clones share the cuts): a partition at the message layer.
#[derive(Clone, Debug, Default)]
pub struct LinkCuts {
    cut: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl LinkCuts {
    /// Cuts every link between the names in `side` and those in `rest`.
    pub fn partition(&self, side: &[&str], rest: &[&str]) {
        let mut cut = self.cut.lock().unwrap_or_else(PoisonError::into_inner);
        for a in side {
            for b in rest {
                cut.insert((a.to_string(), b.to_string()));
                cut.insert((b.to_string(), a.to_string()));
            }
        }
    }

    pub fn heal(&self) {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(from.to_owned(), to.to_owned()))
    }
}

/// A seeded source of fates; clones share the generator.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    faults: MessageFaults,
    rng: Arc<Mutex<SmallRng>>,
}

impl FaultInjector {
    pub fn new(faults: MessageFaults, seed: u64) -> Self {
        Self {
            faults,
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
        }
    }

    pub fn fate(&self) -> Fate {
        let MessageFaults {
            drop_request,
            drop_reply,
            duplicate,
        } = self.faults;
        if drop_request + drop_reply + duplicate <= 0.0 {
            return Fate::Deliver;
        }
        let roll: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random();
        if roll < drop_request {
            Fate::DropRequest
        } else if roll < drop_request + drop_reply {
            Fate::DropReply
        } else if roll < drop_request + drop_reply + duplicate {
            Fate::Duplicate
        } else {
            Fate::Deliver
        }
    }

    /// Sends through `call` as the next fate says: not at all, twice, or
    /// once with its reply lost.
    pub async fn send<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        match self.fate() {
            Fate::Deliver => call().await,
            Fate::DropRequest => Err(lost("request")),
            Fate::DropReply => {
                let _ = call().await;
                Err(lost("reply"))
            }
            Fate::Duplicate => {
                let _ = call().await;
                call().await
            }
        }
    }
}

fn lost(what: &str) -> Status {
    Status::unavailable(format!("injected fault: the {what} was lost"))
}
