//! A durable, append-only log: the one record every coordinator,
//! participant, saga orchestrator and event store here keeps on disk.
//!
//! Episode: 18, "Distributed Transactions" (also 23)
//! Pattern: storage / write-ahead log
//! Try it:  cargo test -p replication durable_log
//! Test it: cargo test -p replication durable_log
//!
//! A protocol that promises something after a crash — "I voted yes",
//! "the saga reached step 3", "this event happened" — must write it down
//! before it says so. [`DurableLog::append`] returns only after the record
//! is on disk (`fsync`), so a caller can reply once it has returned. Each
//! record is framed with its length and a CRC-32:
//!
//! ```text
//! [ length: u32 LE ][ crc32(payload): u32 LE ][ payload ]  [ length ]…
//! ```
//!
//! A crash can tear the last write: [`DurableLog::open`] keeps every
//! complete record and cuts the torn tail off, reporting how many bytes it
//! dropped — those records were never acknowledged, since their `fsync`
//! never returned. A damaged record with intact records after it is not a
//! torn write but corruption, and opening refuses
//! ([`Error::LogCorrupt`]) rather than silently dropping acknowledged
//! records, as etcd's WAL does.
//!
//! Bounds: records of at most [`MAX_RECORD_BYTES`]; the log grows until
//! its owner compacts it with [`DurableLog::rewrite`] (an atomic replace).
//!
//! Simplified: one file, no segments or preallocation; every append (or
//! batch, [`DurableLog::append_batch`]) pays one `fsync`, except records
//! its owner marks as lazy ([`DurableLog::append_batch_unsynced`]), which
//! ride along with the next one.

mod disk;
#[cfg(test)]
mod tests;

pub use disk::{FileDisk, LogDisk, MemDisk};

use crate::{Error, Result};

/// The largest record a log accepts.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// Frame header: length and CRC-32, both u32 little-endian.
const HEADER_BYTES: usize = 8;

/// What opening a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every complete record, oldest first.
    pub records: Vec<Vec<u8>>,
    /// Bytes of a torn last write that were cut off.
    pub discarded_bytes: u64,
}

/// An append-only log of byte records on a [`LogDisk`].
#[derive(Debug)]
pub struct DurableLog<D> {
    disk: D,
    records: u64,
    bytes: u64,
}

fn io_error(doing: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |err| Error::LogIo {
        doing,
        reason: err.to_string(),
    }
}

fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if payload.len() > MAX_RECORD_BYTES {
        return Err(Error::TooLarge {
            what: "log record",
            bytes: payload.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let length = u32::try_from(payload.len()).expect("records are far below 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// `payloads`, framed, ready to write in one go.
fn frames(payloads: &[&[u8]]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for payload in payloads {
        frame(payload, &mut bytes)?;
    }
    Ok(bytes)
}

/// Splits `bytes` into records; the offset where the last complete record
/// ends, or the offset of a damaged record that has data after it.
fn parse(bytes: &[u8]) -> std::result::Result<(Vec<Vec<u8>>, usize), usize> {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= HEADER_BYTES {
        let header = &bytes[offset..offset + HEADER_BYTES];
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = offset + HEADER_BYTES;
        let Some(end) = start.checked_add(length).filter(|&end| end <= bytes.len()) else {
            break; // A torn last write: the payload never made it.
        };
        let payload = &bytes[start..end];
        if length > MAX_RECORD_BYTES || crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                break; // The last record, half written.
            }
            return Err(offset);
        }
        records.push(payload.to_vec());
        offset = end;
    }
    Ok((records, offset))
}

impl<D: LogDisk> DurableLog<D> {
    /// Opens the log on `disk`, recovering its records and cutting off a
    /// torn last write.
    pub fn open(mut disk: D) -> Result<(Self, Recovered)> {
        let bytes = disk.read_all().map_err(io_error("reading the log"))?;
        let (records, good) = parse(&bytes).map_err(|offset| Error::LogCorrupt {
            offset: offset as u64,
        })?;
        let discarded_bytes = (bytes.len() - good) as u64;
        if discarded_bytes > 0 {
            disk.truncate(good as u64)
                .map_err(io_error("cutting off a torn write"))?;
        }
        let log = Self {
            disk,
            records: records.len() as u64,
            bytes: good as u64,
        };
        Ok((
            log,
            Recovered {
                records,
                discarded_bytes,
            },
        ))
    }

    /// Appends one record and waits until it is on disk; its index
    /// (0-based, counting every record since the log was created or last
    /// rewritten).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        self.append_batch(&[payload])
    }

    /// Appends several records with one `fsync` (group commit); the index
    /// of the last.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<u64> {
        let bytes = frames(payloads)?;
        self.disk
            .append(&bytes)
            .map_err(io_error("appending to the log"))?;
        self.disk.sync().map_err(io_error("syncing the log"))?;
        self.records += payloads.len() as u64;
        self.bytes += bytes.len() as u64;
        Ok(self.records.saturating_sub(1))
    }

    /// Appends records without waiting for the disk: they become durable
    /// with the next [`Self::append_batch`] (one `fsync` covers both), or
    /// are lost in a crash before it — for records whose loss a restart
    /// tolerates (hints, progress markers). Indexes as `append_batch`.
    pub fn append_batch_unsynced(&mut self, payloads: &[&[u8]]) -> Result<u64> {
        let bytes = frames(payloads)?;
        self.disk
            .append(&bytes)
            .map_err(io_error("appending to the log"))?;
        self.records += payloads.len() as u64;
        self.bytes += bytes.len() as u64;
        Ok(self.records.saturating_sub(1))
    }

    /// Replaces the whole log with `payloads`, atomically: after a crash
    /// the log holds either the old records or the new ones. Owners call
    /// it to compact (a snapshot record, then what follows it).
    pub fn rewrite(&mut self, payloads: &[&[u8]]) -> Result<()> {
        let bytes = frames(payloads)?;
        self.disk
            .replace(&bytes)
            .map_err(io_error("rewriting the log"))?;
        self.records = payloads.len() as u64;
        self.bytes = bytes.len() as u64;
        Ok(())
    }

    /// Records in the log.
    pub fn len(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.bytes
    }
}
