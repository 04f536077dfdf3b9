//! How the embedded backend writes its records into the durable log: a
//! small length-prefixed binary layout, one log record per append so a
//! batch is all-or-nothing after a crash.
//!
//! ```text
//! append:   0x01 stream first_version:u64 count:u16 { type schema:u32 payload }*
//! snapshot: 0x02 stream version:u64 schema:u32 state
//! strings are u16-length-prefixed, payload and state u32-length-prefixed (all LE)
//! ```

use super::{NewEvent, Result, Snapshot, StoreError, StreamName, Version};

const APPEND: u8 = 1;
const SNAPSHOT: u8 = 2;

/// One record of the embedded store's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Append {
        stream: StreamName,
        first_version: Version,
        events: Vec<NewEvent>,
    },
    Snapshot {
        stream: StreamName,
        snapshot: Snapshot,
    },
}

impl Record {
    /// The bytes of this record. Lengths were bounded by validation long
    /// before, far below the prefixes' ranges.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Append {
                stream,
                first_version,
                events,
            } => {
                out.push(APPEND);
                put_short(&mut out, stream.as_str().as_bytes());
                out.extend_from_slice(&first_version.0.to_le_bytes());
                out.extend_from_slice(&(events.len() as u16).to_le_bytes());
                for event in events {
                    put_short(&mut out, event.event_type.as_bytes());
                    out.extend_from_slice(&event.schema_version.to_le_bytes());
                    put_long(&mut out, &event.payload);
                }
            }
            Record::Snapshot { stream, snapshot } => {
                out.push(SNAPSHOT);
                put_short(&mut out, stream.as_str().as_bytes());
                out.extend_from_slice(&snapshot.version.0.to_le_bytes());
                out.extend_from_slice(&snapshot.schema_version.to_le_bytes());
                put_long(&mut out, &snapshot.state);
            }
        }
        out
    }

    /// Reads a record back. The log's CRC already vouches for the bytes,
    /// so a failure here means a writer bug or a foreign file: refuse to
    /// open rather than guess.
    pub(super) fn decode(bytes: &[u8]) -> Result<Record> {
        let mut reader = Reader { bytes, offset: 0 };
        let record = match reader.u8()? {
            APPEND => {
                let stream = reader.stream()?;
                let first_version = Version(reader.u64()?);
                let count = reader.u16()? as usize;
                let mut events = Vec::with_capacity(count.min(super::MAX_EVENTS_PER_APPEND));
                for _ in 0..count {
                    let event_type = reader.text()?;
                    let schema_version = reader.u32()?;
                    let payload = reader.long()?.to_vec();
                    events.push(NewEvent {
                        event_type,
                        schema_version,
                        payload,
                    });
                }
                Record::Append {
                    stream,
                    first_version,
                    events,
                }
            }
            SNAPSHOT => {
                let stream = reader.stream()?;
                let version = Version(reader.u64()?);
                let schema_version = reader.u32()?;
                let state = reader.long()?.to_vec();
                Record::Snapshot {
                    stream,
                    snapshot: Snapshot {
                        version,
                        schema_version,
                        state,
                    },
                }
            }
            tag => return Err(undecodable(format!("unknown record tag {tag}"))),
        };
        if reader.offset != bytes.len() {
            return Err(undecodable("trailing bytes after a record".into()));
        }
        Ok(record)
    }
}

fn undecodable(reason: String) -> StoreError {
    StoreError::Storage {
        reason: format!("undecodable log record: {reason}"),
    }
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| undecodable("truncated".into()))?;
        let taken = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn text(&mut self) -> Result<String> {
        let length = self.u16()? as usize;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| undecodable("a name is not UTF-8".into()))
    }

    fn stream(&mut self) -> Result<StreamName> {
        StreamName::new(self.text()?)
    }

    fn long(&mut self) -> Result<&'a [u8]> {
        let length = self.u32()? as usize;
        self.take(length)
    }
}
