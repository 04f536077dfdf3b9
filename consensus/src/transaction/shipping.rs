//! Shipping: the saga step that fails for reasons of its own.
//!
//! Episode: 18, "Distributed Transactions"
//! Pattern: saga participant / idempotent receiver
//! Test it: cargo test -p consensus transaction_saga_order
//!
//! A shipment is scheduled once per shipment id (the caller's idempotency
//! key) and can be cancelled — the compensation. Two kinds of failure are
//! scriptable: destinations the carrier does not serve (a *business*
//! failure, FailedPrecondition: retrying cannot help, the saga must
//! compensate) and a rate of transient failures (Unavailable: a retry
//! will do). A cancellation that arrives before its shipment records
//! itself, and the late shipment is refused.
//!
//! Bounds: [`MAX_SHIPMENTS`] shipments remembered (the oldest are
//! forgotten first: a retry must come within that window); ids and fields at most
//! [`super::MAX_ID_BYTES`].
//! The log is compacted to the shipments remembered once it outgrows
//! both its threshold and twice the last snapshot.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tonic::{Request, Response, Status};

use super::journal::{Disk, Journal};
use super::{Error, Result, check_id};
use crate::proto::v1::shipping_record::Record;
use crate::proto::v1::shipping_server::{Shipping, ShippingServer};
use crate::proto::v1::{
    ShipRequest, Shipment, ShipmentRef, ShipmentState, ShippingRecord, ShippingSnapshotPart,
};

/// Shipments remembered, at most.
pub const MAX_SHIPMENTS: usize = 200_000;
/// The largest snapshot record, roughly.
pub const SNAPSHOT_PART_BYTES: usize = 1024 * 1024;

/// How the carrier fails.
#[derive(Clone, Debug, Default)]
pub struct ShippingConfig {
    /// Destinations refused with FailedPrecondition.
    pub unserved: BTreeSet<String>,
    /// Share of `Ship` calls refused with Unavailable before doing anything.
    pub transient_failure_rate: f64,
    pub seed: u64,
    /// Log records after which the log is rewritten as a snapshot (once it
    /// has also grown to twice the last snapshot); 0: 100,000.
    pub compact_every: u64,
}

#[derive(Debug, Default)]
struct State {
    shipments: HashMap<String, Shipment>,
    order: VecDeque<String>,
    /// Records appended since the log was last rewritten, and how many the
    /// rewrite wrote.
    records_since_compaction: u64,
    snapshot_records: u64,
}

impl State {
    fn apply(&mut self, record: &Record) {
        let shipment = match record {
            Record::Snapshot(part) => {
                for shipment in &part.shipments {
                    self.remember(shipment.clone());
                }
                return;
            }
            Record::Ship(ship) => Shipment {
                shipment_id: ship.shipment_id.clone(),
                order_id: ship.order_id.clone(),
                destination: ship.destination.clone(),
                state: ShipmentState::Scheduled.into(),
            },
            Record::Cancel(cancel) => match self.shipments.get(&cancel.shipment_id) {
                Some(existing) => Shipment {
                    state: ShipmentState::Cancelled.into(),
                    ..existing.clone()
                },
                None => Shipment {
                    shipment_id: cancel.shipment_id.clone(),
                    state: ShipmentState::Cancelled.into(),
                    ..Shipment::default()
                },
            },
        };
        self.remember(shipment);
    }

    /// Records a shipment's latest state, forgetting the oldest past the
    /// window.
    fn remember(&mut self, shipment: Shipment) {
        if self
            .shipments
            .insert(shipment.shipment_id.clone(), shipment.clone())
            .is_none()
        {
            self.order.push_back(shipment.shipment_id);
        }
        while self.order.len() > MAX_SHIPMENTS {
            if let Some(old) = self.order.pop_front() {
                self.shipments.remove(&old);
            }
        }
    }
}

impl State {
    /// The shipments remembered, oldest first, as snapshot records of
    /// about [`SNAPSHOT_PART_BYTES`] each.
    fn snapshot_records(&self) -> Vec<Vec<u8>> {
        let mut parts: Vec<ShippingSnapshotPart> = Vec::new();
        let mut bytes = 0;
        for shipment in self.order.iter().filter_map(|id| self.shipments.get(id)) {
            let size = shipment.encoded_len() + 4;
            if parts.is_empty() || bytes + size > SNAPSHOT_PART_BYTES {
                parts.push(ShippingSnapshotPart::default());
                bytes = 0;
            }
            bytes += size;
            let last = parts.len() - 1;
            parts[last].shipments.push(shipment.clone());
        }
        parts
            .into_iter()
            .map(|part| {
                ShippingRecord {
                    record: Some(Record::Snapshot(part)),
                }
                .encode_to_vec()
            })
            .collect()
    }
}

/// The Shipping service; clones share it.
#[derive(Clone, Debug)]
pub struct ShippingService {
    state: Arc<Mutex<State>>,
    journal: Journal,
    unserved: Arc<BTreeSet<String>>,
    transient_failure_rate: f64,
    compact_every: u64,
    rng: Arc<Mutex<SmallRng>>,
}

impl ShippingService {
    pub fn start(config: ShippingConfig, disk: Disk) -> Result<Self> {
        let (journal, records) = Journal::open(disk)?;
        let mut state = State::default();
        for bytes in &records {
            let record = ShippingRecord::decode(bytes.as_slice())
                .map_err(|err| Error::Log(format!("undecodable shipping record: {err}")))?;
            if let Some(record) = record.record {
                state.apply(&record);
            }
        }
        state.records_since_compaction = records.len() as u64;
        Ok(Self {
            compact_every: match config.compact_every {
                0 => 100_000,
                every => every,
            },
            state: Arc::new(Mutex::new(state)),
            journal,
            unserved: Arc::new(config.unserved),
            transient_failure_rate: config.transient_failure_rate,
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(config.seed))),
        })
    }

    pub fn into_service(self) -> ShippingServer<Self> {
        ShippingServer::new(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs `record` (applied under the lock), or answers what is known.
    async fn change(
        &self,
        id: &str,
        decide: impl FnOnce(Option<&Shipment>) -> Result<Option<Record>>,
    ) -> Result<Shipment> {
        let slot = self.journal.reserve()?;
        let (written, rewritten, shipment) = {
            let mut state = self.lock();
            // With no record, the answer may repeat a change still on its
            // way to disk: an empty append waits for it.
            let records = match decide(state.shipments.get(id))? {
                None => Vec::new(),
                Some(record) => {
                    state.apply(&record);
                    vec![
                        ShippingRecord {
                            record: Some(record),
                        }
                        .encode_to_vec(),
                    ]
                }
            };
            state.records_since_compaction += records.len() as u64;
            let written = slot.write(records);
            // Compaction, queued under the lock like every record.
            let due = self.compact_every.max(2 * state.snapshot_records);
            let rewritten = if state.records_since_compaction >= due
                && let Ok(slot) = self.journal.reserve()
            {
                let snapshot = state.snapshot_records();
                state.records_since_compaction = 0;
                state.snapshot_records = snapshot.len() as u64;
                Some(slot.rewrite(snapshot))
            } else {
                None
            };
            (written, rewritten, state.shipments.get(id).cloned())
        };
        written.await?;
        if let Some(rewritten) = rewritten {
            tokio::spawn(async move {
                if let Err(err) = rewritten.await {
                    tracing::error!(%err, "compacting the shipping log failed");
                }
            });
        }
        shipment.ok_or_else(|| Error::Log("a logged shipment left no trace".into()))
    }
}

#[tonic::async_trait]
impl Shipping for ShippingService {
    async fn ship(&self, request: Request<ShipRequest>) -> Result<Response<Shipment>, Status> {
        let request = request.into_inner();
        check_id("shipment_id", &request.shipment_id)?;
        check_id("order_id", &request.order_id)?;
        check_id("destination", &request.destination)?;
        let roll: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random();
        if roll < self.transient_failure_rate {
            return Err(Status::unavailable(
                "the carrier's system is busy; try again",
            ));
        }
        let unserved = self.unserved.contains(&request.destination);
        let id = request.shipment_id.clone();
        let shipment = self
            .change(&id, |known| match known {
                Some(known)
                    if known.state == ShipmentState::Scheduled as i32
                        && (known.order_id != request.order_id
                            || known.destination != request.destination) =>
                {
                    Err(Error::Invalid {
                        field: "shipment_id",
                        reason: format!("{id:?} already names another shipment"),
                    })
                }
                Some(_) => Ok(None),
                None if unserved => Err(Error::Precondition(format!(
                    "the carrier does not deliver to {:?}",
                    request.destination
                ))),
                None => Ok(Some(Record::Ship(request.clone()))),
            })
            .await?;
        Ok(Response::new(shipment))
    }

    async fn cancel_shipment(
        &self,
        request: Request<ShipmentRef>,
    ) -> Result<Response<Shipment>, Status> {
        let request = request.into_inner();
        check_id("shipment_id", &request.shipment_id)?;
        let id = request.shipment_id.clone();
        let shipment = self
            .change(&id, |known| match known {
                Some(known) if known.state == ShipmentState::Cancelled as i32 => Ok(None),
                _ => Ok(Some(Record::Cancel(request.clone()))),
            })
            .await?;
        Ok(Response::new(shipment))
    }

    async fn get_shipment(
        &self,
        request: Request<ShipmentRef>,
    ) -> Result<Response<Shipment>, Status> {
        let id = request.into_inner().shipment_id;
        check_id("shipment_id", &id)?;
        let shipment = self
            .lock()
            .shipments
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound {
                what: "shipment",
                key: id,
            })?;
        Ok(Response::new(shipment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot replays to the same shipments, in the same order.
    #[test]
    fn transaction_shipping_snapshot_replays_to_the_same_state() {
        let mut state = State::default();
        for i in 0..50 {
            state.apply(&Record::Ship(ShipRequest {
                shipment_id: format!("s{i}"),
                order_id: format!("o{i}"),
                destination: "paris".into(),
            }));
        }
        state.apply(&Record::Cancel(ShipmentRef {
            shipment_id: "s7".into(),
        }));
        state.apply(&Record::Cancel(ShipmentRef {
            shipment_id: "never-shipped".into(),
        }));
        let mut replayed = State::default();
        for bytes in state.snapshot_records() {
            let record = ShippingRecord::decode(bytes.as_slice()).expect("decodes");
            replayed.apply(&record.record.expect("a record"));
        }
        assert_eq!(replayed.order, state.order);
        assert_eq!(replayed.shipments, state.shipments);
        assert_eq!(
            replayed.shipments["s7"].state,
            ShipmentState::Cancelled as i32
        );
    }
}
