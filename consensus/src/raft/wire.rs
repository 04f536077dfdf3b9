//! Raft messages and membership changes off the wire, decoded safely.
//!
//! raft-rs 0.7 speaks protobuf 2.28, whose parser recurses without limit
//! on nested groups (RUSTSEC-2024-0437): a few megabytes of crafted bytes
//! overflow the stack and abort the process. Peers are reached over the
//! network, so their bytes are decoded with prost (generated from raft's
//! own schema, `proto/eraftpb`), which bounds nesting and refuses what is
//! malformed, and only then copied field by field into raft-rs's types.
//! The same goes for the membership changes inside log entries, which a
//! peer's append carries too. raft-rs's encoder is used only on our own
//! data.

// raft-rs's protobuf-2 types are filled field by field: their message
// fields are set through setters, which a struct literal cannot call.
#![allow(clippy::field_reassign_with_default)]

use prost::Message as _;
use protobuf::ProtobufEnum;
use raft::eraftpb;

use crate::proto::eraftpb as wire;
use crate::{Error, Result};

fn malformed(what: &str) -> Error {
    Error::Transport(format!("unknown {what}"))
}

fn enum_value<E: ProtobufEnum>(value: i32, what: &str) -> Result<E> {
    E::from_i32(value).ok_or_else(|| malformed(what))
}

/// The highest term a message may carry. Each election adds one; no
/// cluster reaches 2^48 of them, and raft-rs computes `term + 1` unchecked
/// (a term of `u64::MAX` wraps and panics every node it reaches).
pub const MAX_TERM: u64 = 1 << 48;

/// Decodes one peer message.
pub fn decode_message(bytes: &[u8]) -> Result<eraftpb::Message> {
    let decoded = wire::Message::decode(bytes).map_err(|e| Error::Transport(e.to_string()))?;
    message(decoded)
}

fn term(term: u64) -> Result<u64> {
    if term > MAX_TERM {
        return Err(Error::Transport(format!("term {term} is out of range")));
    }
    Ok(term)
}

fn message(m: wire::Message) -> Result<eraftpb::Message> {
    let mut out = eraftpb::Message::default();
    out.set_msg_type(enum_value(m.msg_type, "message type")?);
    out.to = m.to;
    out.from = m.from;
    out.term = term(m.term)?;
    out.log_term = term(m.log_term)?;
    out.index = m.index;
    out.set_entries(
        m.entries
            .into_iter()
            .map(entry)
            .collect::<Result<Vec<_>>>()?
            .into(),
    );
    out.commit = m.commit;
    out.commit_term = term(m.commit_term)?;
    if let Some(s) = m.snapshot {
        out.set_snapshot(snapshot(s)?);
    }
    out.request_snapshot = m.request_snapshot;
    out.reject = m.reject;
    out.reject_hint = m.reject_hint;
    out.context = m.context.into();
    out.deprecated_priority = m.deprecated_priority;
    out.priority = m.priority;
    Ok(out)
}

fn entry(e: wire::Entry) -> Result<eraftpb::Entry> {
    let mut out = eraftpb::Entry::default();
    out.set_entry_type(enum_value(e.entry_type, "entry type")?);
    out.term = term(e.term)?;
    out.index = e.index;
    out.data = e.data.into();
    out.context = e.context.into();
    out.sync_log = e.sync_log;
    Ok(out)
}

fn snapshot(s: wire::Snapshot) -> Result<eraftpb::Snapshot> {
    let mut out = eraftpb::Snapshot::default();
    out.data = s.data.into();
    if let Some(meta) = s.metadata {
        let mut m = eraftpb::SnapshotMetadata::default();
        m.index = meta.index;
        m.term = term(meta.term)?;
        if let Some(cs) = meta.conf_state {
            m.set_conf_state(conf_state(cs));
        }
        out.set_metadata(m);
    }
    Ok(out)
}

fn conf_state(cs: wire::ConfState) -> eraftpb::ConfState {
    let mut out = eraftpb::ConfState::default();
    out.voters = cs.voters;
    out.learners = cs.learners;
    out.voters_outgoing = cs.voters_outgoing;
    out.learners_next = cs.learners_next;
    out.auto_leave = cs.auto_leave;
    out
}

/// Decodes the membership change an `EntryConfChange` or
/// `EntryConfChangeV2` entry carries, as a V2 change.
pub fn decode_conf_change(entry: &eraftpb::Entry) -> Result<eraftpb::ConfChangeV2> {
    let mut out = eraftpb::ConfChangeV2::default();
    match entry.get_entry_type() {
        eraftpb::EntryType::EntryConfChange => {
            let cc = wire::ConfChange::decode(entry.get_data())
                .map_err(|e| Error::Transport(e.to_string()))?;
            let mut single = eraftpb::ConfChangeSingle::default();
            single.set_change_type(enum_value(cc.change_type, "conf change type")?);
            single.node_id = cc.node_id;
            out.set_changes(vec![single].into());
            out.context = cc.context.into();
        }
        eraftpb::EntryType::EntryConfChangeV2 => {
            // An empty V2 entry is raft-rs's own "leave the joint
            // configuration": it decodes to the empty change, as it must.
            let cc = wire::ConfChangeV2::decode(entry.get_data())
                .map_err(|e| Error::Transport(e.to_string()))?;
            out.set_transition(enum_value(cc.transition, "conf change transition")?);
            let changes = cc
                .changes
                .into_iter()
                .map(|c| {
                    let mut single = eraftpb::ConfChangeSingle::default();
                    single.set_change_type(enum_value(c.change_type, "conf change type")?);
                    single.node_id = c.node_id;
                    Ok(single)
                })
                .collect::<Result<Vec<_>>>()?;
            out.set_changes(changes.into());
            out.context = cc.context.into();
        }
        eraftpb::EntryType::EntryNormal => {
            return Err(Error::Transport("not a membership change".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use protobuf::Message as _;

    use super::*;

    /// What raft-rs encodes, prost decodes to the same message.
    #[test]
    fn raft_wire_round_trips_raft_rs_encoding() {
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.log_term = 6;
        m.index = 41;
        m.commit = 40;
        let mut e = eraftpb::Entry::default();
        e.term = 7;
        e.index = 42;
        e.data = b"put k v".to_vec().into();
        m.set_entries(vec![e].into());
        let mut snap = eraftpb::Snapshot::default();
        snap.data = b"state".to_vec().into();
        let mut meta = eraftpb::SnapshotMetadata::default();
        meta.index = 40;
        meta.term = 6;
        let mut cs = eraftpb::ConfState::default();
        cs.voters = vec![1, 2, 3];
        cs.learners = vec![4];
        meta.set_conf_state(cs);
        snap.set_metadata(meta);
        m.set_snapshot(snap);
        m.context = b"ctx".to_vec().into();
        let bytes = m.write_to_bytes().expect("encodes");
        assert_eq!(decode_message(&bytes).expect("decodes"), m);
    }

    /// Bytes that nest groups far deeper than any message would are
    /// refused, not parsed into a stack overflow.
    #[test]
    fn raft_wire_refuses_deeply_nested_input() {
        let mut bytes = vec![0x3a, 0x80, 0x80, 0x40]; // field 7 (entries), 1 MiB
        bytes.extend(std::iter::repeat_n(0x0b, 1 << 20)); // start-group, forever
        assert!(decode_message(&bytes).is_err());
        assert!(decode_message(&[0xff, 0xff, 0xff]).is_err());
    }

    /// A term no cluster could reach is refused before raft-rs computes
    /// `term + 1` with it.
    #[test]
    fn raft_wire_refuses_impossible_terms() {
        let heartbeat = |term: u64| {
            let mut m = eraftpb::Message::default();
            m.set_msg_type(eraftpb::MessageType::MsgHeartbeat);
            m.term = term;
            m.write_to_bytes().expect("encodes")
        };
        assert!(decode_message(&heartbeat(MAX_TERM)).is_ok());
        assert!(decode_message(&heartbeat(MAX_TERM + 1)).is_err());
        assert!(decode_message(&heartbeat(u64::MAX)).is_err());
    }

    /// A membership change that does not decode, or names a change type
    /// raft-rs does not have, is refused rather than applied as something
    /// else.
    #[test]
    fn raft_wire_refuses_malformed_membership_changes() {
        let entry = |kind, data: &[u8]| {
            let mut e = eraftpb::Entry::default();
            e.set_entry_type(kind);
            e.data = data.to_vec().into();
            e
        };
        use eraftpb::EntryType::{EntryConfChange, EntryConfChangeV2, EntryNormal};
        let unknown_type = wire::ConfChangeV2 {
            changes: vec![wire::ConfChangeSingle {
                change_type: 9,
                node_id: 2,
            }],
            ..wire::ConfChangeV2::default()
        }
        .encode_to_vec();
        for bad in [
            entry(EntryConfChangeV2, &[0xff, 0xff, 0xff]),
            entry(EntryConfChange, &[0x08]),
            entry(EntryConfChangeV2, &unknown_type),
            entry(EntryNormal, b""),
        ] {
            assert!(decode_conf_change(&bad).is_err(), "{bad:?} decoded");
        }
        // The empty V2 change is raft-rs's "leave joint": valid.
        assert!(decode_conf_change(&entry(EntryConfChangeV2, b"")).is_ok());
    }
}
