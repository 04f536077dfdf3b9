//! Upcasting: reading events written under an old schema as the current
//! one, on the way out of the store.
//!
//! Events are immutable — rewriting history in place would break every
//! reader that already saw it, and every replica's checksum. So when an
//! event's shape changes (`Deposited { amount }` becomes `Deposited {
//! amount_cents, currency }`), writers bump its schema version and
//! readers register one step per version, `v1 → v2 → v3`. An old event is
//! upcast step by step to the newest version before any projection or
//! aggregate sees it, so their code only knows the current shape.
//!
//! Pitfall: an event *newer* than the reader knows (written by a newer
//! deployment) cannot be downcast safely; it is refused with
//! [`StoreError::Upcast`] rather than guessed at.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{RecordedEvent, Result, StoreError};

/// One step: the payload at schema version v, to version v + 1.
pub type UpcastStep = fn(Value) -> std::result::Result<Value, String>;

/// The upcasting steps a reader knows, per event type.
#[derive(Clone, Debug, Default)]
pub struct Upcaster {
    /// (event type, from version) → the step to from + 1.
    steps: BTreeMap<(String, u32), UpcastStep>,
    /// The newest schema version per event type that has steps.
    newest: BTreeMap<String, u32>,
}

impl Upcaster {
    /// An upcaster that knows no steps: every event type is at version 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the step from `from_version` to `from_version + 1` of
    /// `event_type`.
    pub fn with_step(mut self, event_type: &str, from_version: u32, step: UpcastStep) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), step);
        let newest = self.newest.entry(event_type.to_owned()).or_insert(1);
        *newest = (*newest).max(from_version.saturating_add(1));
        self
    }

    /// The schema version this reader reads `event_type` at.
    pub fn newest(&self, event_type: &str) -> u32 {
        self.newest.get(event_type).copied().unwrap_or(1)
    }

    /// `event`, at the newest schema version of its type. An event already
    /// there passes through untouched (its payload is not even parsed).
    pub fn upcast(&self, mut event: RecordedEvent) -> Result<RecordedEvent> {
        let newest = self.newest(&event.event_type);
        if event.schema_version == newest {
            return Ok(event);
        }
        let refuse = |schema_version, reason: String| StoreError::Upcast {
            event_type: event.event_type.clone(),
            schema_version,
            reason,
        };
        if event.schema_version > newest {
            return Err(refuse(
                event.schema_version,
                format!("this reader knows versions up to {newest}; it was written by a newer one"),
            ));
        }
        let mut payload: Value = serde_json::from_slice(&event.payload).map_err(|err| {
            refuse(
                event.schema_version,
                format!("the payload is not JSON: {err}"),
            )
        })?;
        // Each step raises the version by one, so this ends within
        // `newest` steps.
        let mut version = event.schema_version;
        while version < newest {
            let step = self
                .steps
                .get(&(event.event_type.clone(), version))
                .ok_or_else(|| refuse(version, format!("no step from version {version}")))?;
            payload = step(payload).map_err(|reason| refuse(version, reason))?;
            version += 1;
        }
        event.payload = serde_json::to_vec(&payload).map_err(|err| {
            refuse(
                version,
                format!("the upcast payload does not serialize: {err}"),
            )
        })?;
        event.schema_version = version;
        Ok(event)
    }
}
