//! Sagas: a long transaction as a sequence of local ones, each undone by
//! a compensation if a later one fails.
//!
//! Episode: 18, "Distributed Transactions" (also 40: idempotent retries, 23)
//! Pattern: saga (orchestrated) / compensating transaction
//! Try it:  cargo run -- demo saga
//! Test it: cargo test -p consensus transaction_saga && cargo test --test bank_transfer_saga
//!
//! A saga gives up isolation — other calls see the money held, the stock
//! reserved — to never block and never lock across services. What it
//! keeps is the promise that it ends in one of two states: *completed*
//! (every step done) or *compensated* (every step that may have run,
//! undone, in reverse order).
//!
//! A definition ([`SagaDefinition`]) is an ordered list of steps, each an
//! action RPC and, for steps that can be undone, a compensating RPC. The
//! steps come in three kinds (Garcia-Molina and Salem's sagas, as
//! Richardson's *Microservices Patterns* names them):
//! - **compensatable** steps come first: they reserve (a hold, a
//!   reservation) and can be undone;
//! - the **pivot** is the point of no return: once it succeeds the saga
//!   only goes forward;
//! - **retriable** steps come after it and cannot fail for business
//!   reasons (capturing a hold that is there); they are retried until they
//!   succeed.
//!
//! The two sagas here:
//! - `transfer` (params `from`, `to`: `PARTICIPANT/ACCOUNT`, `amount`):
//!   hold at the source → credit the destination (pivot) → capture the hold;
//! - `order` (params `customer`, `sku`, `quantity`, `price`,
//!   `destination`): reserve stock → hold the payment → ship (pivot) →
//!   capture the payment → confirm the reservation.
//!
//! **Idempotency keys.** Every call carries an id derived from the saga id
//! and the step (`SAGA/STEP`), the same on every attempt, so a retry
//! after a lost reply is answered with the first attempt's result. The
//! broken twin ([`Keys::FreshPerAttempt`]) sends each attempt of a credit
//! under a new id — what a client does when it treats a retry as a new
//! request — and credits twice when a reply is lost.
//!
//! **The saga log** ([`orchestrator`]) holds three kinds of record: the
//! START of each saga, forced to disk before its first step runs; the
//! COMPENSATING turn, forced before its first compensation; and, lazily
//! (synced by the next forced write), which steps ran and how it ended.
//! Because every step is idempotent, an orchestrator that crashes
//! anywhere resumes by running the saga again from its log: steps already
//! done answer with their first result.
//!
//! **Choreography** ([`choreography`]), the alternative: no orchestrator;
//! each service reacts to the others' events (`StockReserved` → the
//! payment service holds; `ShippingFailed` → it releases, and inventory
//! cancels). No single point of control or failure, no central log to
//! replay — and no single place that knows where an order is, a flow that
//! exists only as the sum of subscriptions, and cycles that are easy to
//! create. Orchestration puts the flow in one readable definition, with
//! one log to resume from, which is why it carries the scenarios here.
//!
//! Bounds: saga ids at most [`MAX_SAGA_ID_BYTES`] (step ids append to
//! them); params at most [`MAX_PARAMS`], each value at most
//! [`super::MAX_ID_BYTES`].

pub mod choreography;
pub mod orchestrator;

use std::collections::HashMap;

use super::{Error, MAX_AMOUNT, Result, check_id};

/// The longest saga id.
pub const MAX_SAGA_ID_BYTES: usize = 96;
/// Params one saga may carry.
pub const MAX_PARAMS: usize = 8;
/// The participant names the `order` saga uses.
pub const ACCOUNTS: &str = "accounts";
pub const INVENTORY: &str = "inventory";
pub const SHIPPING: &str = "shipping";

/// How ids are made for each call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keys {
    /// One id per step, on every attempt.
    #[default]
    PerStep,
    /// The broken twin: a fresh id per attempt of a credit.
    FreshPerAttempt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Compensatable,
    Pivot,
    Retriable,
}

/// One RPC to one participant. `id` is the idempotency key (a hold,
/// credit or shipment id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Hold {
        participant: String,
        id: String,
        key: String,
        amount: i64,
    },
    Capture {
        participant: String,
        id: String,
    },
    Release {
        participant: String,
        id: String,
    },
    Credit {
        participant: String,
        id: String,
        key: String,
        amount: i64,
    },
    Reserve {
        participant: String,
        id: String,
        sku: String,
        quantity: i64,
    },
    Confirm {
        participant: String,
        id: String,
    },
    Cancel {
        participant: String,
        id: String,
    },
    Ship {
        participant: String,
        id: String,
        order_id: String,
        destination: String,
    },
    CancelShipment {
        participant: String,
        id: String,
    },
}

impl Call {
    pub fn participant(&self) -> &str {
        match self {
            Call::Hold { participant, .. }
            | Call::Capture { participant, .. }
            | Call::Release { participant, .. }
            | Call::Credit { participant, .. }
            | Call::Reserve { participant, .. }
            | Call::Confirm { participant, .. }
            | Call::Cancel { participant, .. }
            | Call::Ship { participant, .. }
            | Call::CancelShipment { participant, .. } => participant,
        }
    }

    /// The same call under another id (the broken twin's retries).
    pub fn with_id_suffix(&self, suffix: &str) -> Call {
        let mut call = self.clone();
        match &mut call {
            Call::Hold { id, .. }
            | Call::Capture { id, .. }
            | Call::Release { id, .. }
            | Call::Credit { id, .. }
            | Call::Reserve { id, .. }
            | Call::Confirm { id, .. }
            | Call::Cancel { id, .. }
            | Call::Ship { id, .. }
            | Call::CancelShipment { id, .. } => id.push_str(suffix),
        }
        call
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub kind: StepKind,
    pub action: Call,
    pub compensation: Option<Call>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaDefinition {
    pub saga_type: String,
    pub steps: Vec<Step>,
}

/// The saga types this orchestrator knows.
pub const SAGA_TYPES: [&str; 2] = ["transfer", "order"];

/// Builds the definition of a saga from its type and params, refusing
/// anything it cannot run with InvalidArgument.
pub fn define(
    saga_id: &str,
    saga_type: &str,
    params: &HashMap<String, String>,
) -> Result<SagaDefinition> {
    check_id("saga_id", saga_id)?;
    if saga_id.len() > MAX_SAGA_ID_BYTES {
        return Err(invalid(
            "saga_id",
            format!("is {} bytes; at most {MAX_SAGA_ID_BYTES}", saga_id.len()),
        ));
    }
    if params.len() > MAX_PARAMS {
        return Err(invalid("params", format!("at most {MAX_PARAMS}")));
    }
    for (name, value) in params {
        check_id("params", name)?;
        check_id("params", value)?;
    }
    let id = |step: &str| format!("{saga_id}/{step}");
    let steps = match saga_type {
        "transfer" => {
            let (from_participant, from) = ledger_address(params, "from")?;
            let (to_participant, to) = ledger_address(params, "to")?;
            let amount = positive(params, "amount")?;
            if (from_participant.as_str(), from.as_str()) == (to_participant.as_str(), to.as_str())
            {
                return Err(invalid("to", "must differ from `from`".into()));
            }
            vec![
                Step {
                    name: "hold funds",
                    kind: StepKind::Compensatable,
                    action: Call::Hold {
                        participant: from_participant.clone(),
                        id: id("hold"),
                        key: from,
                        amount,
                    },
                    compensation: Some(Call::Release {
                        participant: from_participant.clone(),
                        id: id("hold"),
                    }),
                },
                Step {
                    name: "credit destination",
                    kind: StepKind::Pivot,
                    action: Call::Credit {
                        participant: to_participant,
                        id: id("credit"),
                        key: to,
                        amount,
                    },
                    compensation: None,
                },
                Step {
                    name: "capture funds",
                    kind: StepKind::Retriable,
                    action: Call::Capture {
                        participant: from_participant,
                        id: id("hold"),
                    },
                    compensation: None,
                },
            ]
        }
        "order" => {
            let customer = required(params, "customer")?.to_owned();
            let sku = required(params, "sku")?.to_owned();
            let quantity = positive(params, "quantity")?;
            let price = positive(params, "price")?;
            let destination = required(params, "destination")?.to_owned();
            let total = quantity
                .checked_mul(price)
                .filter(|total| *total <= MAX_AMOUNT)
                .ok_or_else(|| {
                    invalid("price", format!("quantity × price exceeds {MAX_AMOUNT}"))
                })?;
            vec![
                Step {
                    name: "reserve stock",
                    kind: StepKind::Compensatable,
                    action: Call::Reserve {
                        participant: INVENTORY.into(),
                        id: id("reservation"),
                        sku,
                        quantity,
                    },
                    compensation: Some(Call::Cancel {
                        participant: INVENTORY.into(),
                        id: id("reservation"),
                    }),
                },
                Step {
                    name: "hold payment",
                    kind: StepKind::Compensatable,
                    action: Call::Hold {
                        participant: ACCOUNTS.into(),
                        id: id("payment"),
                        key: customer,
                        amount: total,
                    },
                    compensation: Some(Call::Release {
                        participant: ACCOUNTS.into(),
                        id: id("payment"),
                    }),
                },
                Step {
                    name: "ship",
                    kind: StepKind::Pivot,
                    action: Call::Ship {
                        participant: SHIPPING.into(),
                        id: id("shipment"),
                        order_id: saga_id.to_owned(),
                        destination,
                    },
                    compensation: Some(Call::CancelShipment {
                        participant: SHIPPING.into(),
                        id: id("shipment"),
                    }),
                },
                Step {
                    name: "capture payment",
                    kind: StepKind::Retriable,
                    action: Call::Capture {
                        participant: ACCOUNTS.into(),
                        id: id("payment"),
                    },
                    compensation: None,
                },
                Step {
                    name: "confirm reservation",
                    kind: StepKind::Retriable,
                    action: Call::Confirm {
                        participant: INVENTORY.into(),
                        id: id("reservation"),
                    },
                    compensation: None,
                },
            ]
        }
        other => {
            return Err(invalid(
                "saga_type",
                format!("{other:?} is not one of {SAGA_TYPES:?}"),
            ));
        }
    };
    Ok(SagaDefinition {
        saga_type: saga_type.to_owned(),
        steps,
    })
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::Invalid { field, reason }
}

fn required<'a>(params: &'a HashMap<String, String>, name: &'static str) -> Result<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| invalid("params", format!("missing {name:?}")))
}

fn positive(params: &HashMap<String, String>, name: &'static str) -> Result<i64> {
    let text = required(params, name)?;
    let value: i64 = text.parse().map_err(|_| {
        invalid(
            "params",
            format!("{name} must be a whole number, got {text:?}"),
        )
    })?;
    if !(1..=MAX_AMOUNT).contains(&value) {
        return Err(invalid(
            "params",
            format!("{name} must be in 1..={MAX_AMOUNT}, got {value}"),
        ));
    }
    Ok(value)
}

/// `PARTICIPANT/KEY`.
fn ledger_address(
    params: &HashMap<String, String>,
    name: &'static str,
) -> Result<(String, String)> {
    let text = required(params, name)?;
    match text.split_once('/') {
        Some((participant, key)) if !participant.is_empty() && !key.is_empty() => {
            Ok((participant.to_owned(), key.to_owned()))
        }
        _ => Err(invalid(
            "params",
            format!("{name} must be PARTICIPANT/ACCOUNT, got {text:?}"),
        )),
    }
}
