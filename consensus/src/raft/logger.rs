//! raft-rs logs through `slog`; dslab logs through `tracing`. This drain
//! forwards every raft-rs record to `tracing` (target `raft`), with its
//! key-values (the node's `raft_id` among them) as one field.

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Level, OwnedKVList, Record};

/// A `slog` drain that writes to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlogToTracing;

/// Collects key-values as `key=value, …`.
struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push_str(", ");
        }
        let _ = write!(self.0, "{key}={value}");
        Ok(())
    }
}

impl Drain for SlogToTracing {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        let fields = fields.0;
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", %fields, "{message}")
            }
            Level::Warning => tracing::warn!(target: "raft", %fields, "{message}"),
            Level::Info => tracing::info!(target: "raft", %fields, "{message}"),
            Level::Debug => tracing::debug!(target: "raft", %fields, "{message}"),
            Level::Trace => tracing::trace!(target: "raft", %fields, "{message}"),
        }
        Ok(())
    }
}

/// The logger to hand raft-rs.
pub fn logger() -> slog::Logger {
    slog::Logger::root(SlogToTracing, slog::o!())
}
