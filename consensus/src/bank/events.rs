//! The ledger's events: their JSON payloads, and the field rules every
//! command and every imported event is checked against. Pure.

use replication::event_sourcing::{NewEvent, RecordedEvent, StreamName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    BankError, MAX_ACCOUNT_ID_BYTES, MAX_AMOUNT_CENTS, MAX_OWNER_BYTES, MAX_REQUEST_ID_BYTES,
};

/// What happened to an account. The payload of each is JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankEvent {
    AccountOpened {
        owner: String,
    },
    Deposited {
        amount_cents: i64,
        request_id: String,
    },
    Withdrawn {
        amount_cents: i64,
        request_id: String,
    },
    TransferSent {
        to: String,
        amount_cents: i64,
        request_id: String,
    },
    TransferReceived {
        from: String,
        amount_cents: i64,
        request_id: String,
    },
}

/// The schema version the ledger writes `Deposited` in (version 1 held
/// whole currency units; see [`super::upcaster`]).
pub const DEPOSITED_SCHEMA: u32 = 2;

fn field<T: serde::de::DeserializeOwned>(payload: &Value, name: &str) -> Result<T, String> {
    let value = payload
        .get(name)
        .ok_or_else(|| format!("the field {name:?} is missing"))?;
    serde_json::from_value(value.clone()).map_err(|err| format!("the field {name:?}: {err}"))
}

impl BankEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            BankEvent::AccountOpened { .. } => "AccountOpened",
            BankEvent::Deposited { .. } => "Deposited",
            BankEvent::Withdrawn { .. } => "Withdrawn",
            BankEvent::TransferSent { .. } => "TransferSent",
            BankEvent::TransferReceived { .. } => "TransferReceived",
        }
    }

    pub fn schema_version(&self) -> u32 {
        match self {
            BankEvent::Deposited { .. } => DEPOSITED_SCHEMA,
            _ => 1,
        }
    }

    /// The event's fields as JSON (without its type, which the store keeps).
    pub fn payload(&self) -> Value {
        match self {
            BankEvent::AccountOpened { owner } => json!({ "owner": owner }),
            BankEvent::Deposited {
                amount_cents,
                request_id,
            }
            | BankEvent::Withdrawn {
                amount_cents,
                request_id,
            } => json!({ "amount_cents": amount_cents, "request_id": request_id }),
            BankEvent::TransferSent {
                to,
                amount_cents,
                request_id,
            } => json!({ "to": to, "amount_cents": amount_cents, "request_id": request_id }),
            BankEvent::TransferReceived {
                from,
                amount_cents,
                request_id,
            } => json!({ "from": from, "amount_cents": amount_cents, "request_id": request_id }),
        }
    }

    pub fn to_new_event(&self) -> NewEvent {
        NewEvent {
            event_type: self.event_type().to_owned(),
            schema_version: self.schema_version(),
            payload: self.payload().to_string().into_bytes(),
        }
    }

    /// Parses a stored event of the current schema (upcast first), and
    /// checks its fields as a command's would be checked.
    pub fn parse(event_type: &str, schema_version: u32, payload: &[u8]) -> Result<Self, String> {
        let payload: Value =
            serde_json::from_slice(payload).map_err(|err| format!("not JSON: {err}"))?;
        let expected = match event_type {
            "Deposited" => DEPOSITED_SCHEMA,
            _ => 1,
        };
        if schema_version != expected {
            return Err(format!(
                "{event_type} is read at schema version {expected}, not {schema_version}"
            ));
        }
        let event = match event_type {
            "AccountOpened" => BankEvent::AccountOpened {
                owner: field(&payload, "owner")?,
            },
            "Deposited" => BankEvent::Deposited {
                amount_cents: field(&payload, "amount_cents")?,
                request_id: field(&payload, "request_id")?,
            },
            "Withdrawn" => BankEvent::Withdrawn {
                amount_cents: field(&payload, "amount_cents")?,
                request_id: field(&payload, "request_id")?,
            },
            "TransferSent" => BankEvent::TransferSent {
                to: field(&payload, "to")?,
                amount_cents: field(&payload, "amount_cents")?,
                request_id: field(&payload, "request_id")?,
            },
            "TransferReceived" => BankEvent::TransferReceived {
                from: field(&payload, "from")?,
                amount_cents: field(&payload, "amount_cents")?,
                request_id: field(&payload, "request_id")?,
            },
            other => return Err(format!("{other:?} is not a ledger event")),
        };
        event.check().map_err(|err| err.to_string())?;
        Ok(event)
    }

    /// Parses a recorded (and upcast) event.
    pub fn from_recorded(event: &RecordedEvent) -> Result<Self, String> {
        Self::parse(&event.event_type, event.schema_version, &event.payload)
    }

    /// The field rules every command checks, for events that arrive whole.
    pub(crate) fn check(&self) -> Result<(), BankError> {
        match self {
            BankEvent::AccountOpened { owner } => check_owner(owner),
            BankEvent::Deposited {
                amount_cents,
                request_id,
            }
            | BankEvent::Withdrawn {
                amount_cents,
                request_id,
            } => {
                check_amount(*amount_cents)?;
                // Upcast version-1 deposits carry no request id.
                if request_id.is_empty() {
                    Ok(())
                } else {
                    check_request_id(request_id)
                }
            }
            BankEvent::TransferSent {
                to: other,
                amount_cents,
                request_id,
            }
            | BankEvent::TransferReceived {
                from: other,
                amount_cents,
                request_id,
            } => {
                check_account_id(other)?;
                check_amount(*amount_cents)?;
                check_request_id(request_id)
            }
        }
    }

    /// The idempotency key this event records in its account, if any.
    /// A received transfer is keyed by its sender too: two senders may
    /// pick the same request id.
    pub(crate) fn request_key(&self) -> Option<String> {
        match self {
            BankEvent::AccountOpened { .. } => None,
            BankEvent::Deposited { request_id, .. }
            | BankEvent::Withdrawn { request_id, .. }
            | BankEvent::TransferSent { request_id, .. } => {
                (!request_id.is_empty()).then(|| request_id.clone())
            }
            BankEvent::TransferReceived {
                from, request_id, ..
            } => Some(received_key(from, request_id)),
        }
    }
}

fn received_key(from: &str, request_id: &str) -> String {
    format!("in:{from}:{request_id}")
}

/// The stream holding `account`'s events.
pub fn stream_of(account: &str) -> Result<StreamName, BankError> {
    check_account_id(account)?;
    StreamName::new(format!("account-{account}")).map_err(|err| BankError::InvalidArgument {
        what: "account",
        reason: err.to_string(),
    })
}

pub fn check_account_id(account: &str) -> Result<(), BankError> {
    let reason = if account.is_empty() {
        "it is empty"
    } else if account.len() > MAX_ACCOUNT_ID_BYTES {
        "it is too long"
    } else if !account
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        "only ASCII letters, digits and -_. are allowed"
    } else {
        return Ok(());
    };
    Err(BankError::InvalidArgument {
        what: "account",
        reason: reason.into(),
    })
}

pub fn check_amount(amount_cents: i64) -> Result<(), BankError> {
    if amount_cents <= 0 || amount_cents > MAX_AMOUNT_CENTS {
        return Err(BankError::InvalidArgument {
            what: "amount_cents",
            reason: format!("{amount_cents} is not in 1..={MAX_AMOUNT_CENTS}"),
        });
    }
    Ok(())
}

pub fn check_request_id(request_id: &str) -> Result<(), BankError> {
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_BYTES {
        return Err(BankError::InvalidArgument {
            what: "request_id",
            reason: format!("an idempotency key of 1 to {MAX_REQUEST_ID_BYTES} bytes is required"),
        });
    }
    Ok(())
}

pub fn check_owner(owner: &str) -> Result<(), BankError> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(BankError::InvalidArgument {
            what: "owner",
            reason: format!("an owner of 1 to {MAX_OWNER_BYTES} bytes is required"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_events_round_trip_and_bad_fields_are_refused() {
        let event = BankEvent::TransferSent {
            to: "b".into(),
            amount_cents: 5,
            request_id: "t1".into(),
        };
        let new = event.to_new_event();
        assert_eq!(
            BankEvent::parse(&new.event_type, new.schema_version, &new.payload),
            Ok(event)
        );
        for (kind, version, payload) in [
            ("Deposited", 2, r#"{"amount_cents":-5,"request_id":"x"}"#),
            ("Deposited", 1, r#"{"amount":5}"#),
            ("Withdrawn", 1, r#"{"amount_cents":5}"#),
            ("Robbed", 1, r#"{}"#),
            ("AccountOpened", 1, "not json"),
        ] {
            assert!(
                BankEvent::parse(kind, version, payload.as_bytes()).is_err(),
                "{kind} {payload}"
            );
        }
    }
}
