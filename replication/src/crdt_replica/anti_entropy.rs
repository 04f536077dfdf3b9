//! The replica's state and its anti-entropy protocol, without IO.
//!
//! Every update gets a dot `(replica, n)` and its delta is kept in a
//! bounded buffer. Each replica remembers, per peer, the set of dots the
//! peer said it has seen (a causal context: a version vector plus the
//! dots beyond a gap), and ships exactly the buffered deltas the peer
//! lacks. A receiver merges each delta it has not seen, records its dot,
//! and buffers it too, so updates travel on through replicas that never
//! talked to their origin. Its reply — what it has now seen — is the
//! acknowledgement: a lost message or a lost reply only means the same
//! deltas go again next round, and merging them twice changes nothing.
//!
//! When a peer lacks an update the sender no longer holds as a delta
//! (evicted from the buffer, or learned inside someone's full state), the
//! sender falls back to shipping its full state, a chunk of objects per
//! round, each chunk acknowledged before the next; the last chunk carries
//! the context the state covers, which the receiver then adopts.
//!
//! Bounds: at most [`MAX_OBJECTS`] objects and [`MAX_REPLICA_BYTES`] of
//! encoded state accepted through this replica's own updates, at most
//! [`MAX_OBJECT_BYTES`] per object; a buffer of at most
//! [`MAX_BUFFERED_DELTA_BYTES`]; gossip messages of about
//! [`MAX_GOSSIP_BYTES`] (one object or delta more at most). Merges from
//! members are never refused for size — refusing would stop convergence —
//! so a replica's state is bounded by the members' admissions together:
//! at most [`MAX_MEMBERS`] × the limits.
//!
//! [`MAX_OBJECTS`]: super::MAX_OBJECTS
//! [`MAX_REPLICA_BYTES`]: super::MAX_REPLICA_BYTES
//! [`MAX_OBJECT_BYTES`]: super::MAX_OBJECT_BYTES
//! [`MAX_BUFFERED_DELTA_BYTES`]: super::MAX_BUFFERED_DELTA_BYTES
//! [`MAX_GOSSIP_BYTES`]: super::MAX_GOSSIP_BYTES
//! [`MAX_MEMBERS`]: super::MAX_MEMBERS

use std::collections::BTreeMap;

use prost::Message;

use super::codec::{self, Members};
use super::object::{Object, ObjectKey, Operation};
use super::{
    AntiEntropy, MAX_BUFFERED_DELTA_BYTES, MAX_GOSSIP_BYTES, MAX_OBJECT_BYTES, MAX_OBJECTS,
    MAX_REPLICA_BYTES,
};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot};
use crate::clock::hlc::HybridClock;
use crate::clock::physical::PhysicalClock;
use crate::proto;
use crate::{Error, Result};

/// What anti-entropy has cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    pub rounds: u64,
    pub delta_messages: u64,
    pub delta_bytes: u64,
    pub full_state_messages: u64,
    pub full_state_bytes: u64,
    pub failed_messages: u64,
}

/// An object and the size of its encoded state.
#[derive(Debug)]
struct Stored {
    object: Object,
    bytes: usize,
}

/// A delta kept for peers that have not seen it, in its wire form.
#[derive(Debug)]
struct Buffered {
    arrival: u64,
    delta: proto::Delta,
    bytes: usize,
}

/// A full-state transfer to one peer in progress.
#[derive(Debug)]
struct Transfer {
    /// What the state covered when the transfer began (objects sent
    /// later only hold more).
    claim: CausalContext,
    /// The last object the peer acknowledged.
    after: Option<ObjectKey>,
}

/// What this replica knows of a peer.
#[derive(Debug, Default)]
struct PeerView {
    incarnation: Option<u64>,
    seen: CausalContext,
    transfer: Option<Transfer>,
}

/// What a gossip message carried, to match its acknowledgement.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    Deltas,
    Chunk {
        start: Option<ObjectKey>,
        last: Option<ObjectKey>,
        last_chunk: bool,
    },
}

/// One replica's objects and anti-entropy bookkeeping.
#[derive(Debug)]
pub struct Replica<C> {
    id: ReplicaId,
    members: Members,
    incarnation: u64,
    mode: AntiEntropy,
    objects: BTreeMap<ObjectKey, Stored>,
    state_bytes: usize,
    seen: CausalContext,
    buffer: BTreeMap<Dot, Buffered>,
    arrivals: BTreeMap<u64, Dot>,
    next_arrival: u64,
    buffer_bytes: usize,
    peers: BTreeMap<ReplicaId, PeerView>,
    clock: HybridClock<C>,
    stats: GossipStats,
}

impl<C: PhysicalClock> Replica<C> {
    /// Replica `id` of a cluster of `members` (which include `id`).
    /// `incarnation` must differ between runs of the same replica.
    pub fn new(
        id: ReplicaId,
        members: Members,
        incarnation: u64,
        mode: AntiEntropy,
        clock: HybridClock<C>,
    ) -> Self {
        let peers = members
            .0
            .iter()
            .filter(|&&member| member != id)
            .map(|&member| (member, PeerView::default()))
            .collect();
        Self {
            id,
            members,
            incarnation,
            mode,
            objects: BTreeMap::new(),
            state_bytes: 0,
            seen: CausalContext::new(),
            buffer: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            next_arrival: 0,
            buffer_bytes: 0,
            peers,
            clock,
            stats: GossipStats::default(),
        }
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn peers(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.peers.keys().copied()
    }

    /// A client's update: the object's new value, and whether the update
    /// changed anything here.
    pub fn update(&mut self, key: ObjectKey, operation: Operation) -> Result<(proto::Value, bool)> {
        codec::check_text("object name", &key.name, super::MAX_NAME_BYTES)?;
        if let Operation::Insert(text) | Operation::Remove(text) | Operation::Assign(text) =
            &operation
        {
            codec::check_text("element", text, super::MAX_ELEMENT_BYTES)?;
        }
        if let Operation::Write { value, .. } = &operation {
            codec::check_text("register value", value, super::MAX_ELEMENT_BYTES)?;
        }
        if operation.kind() != key.kind {
            return Err(Error::OperationMismatch {
                kind: key.kind.to_string(),
                operation: operation.name(),
            });
        }
        // Removes never grow the state, so a full replica still takes them.
        let grows = !matches!(operation, Operation::Remove(_));
        match self.objects.get(&key) {
            _ if !grows => {}
            None if self.objects.len() >= MAX_OBJECTS => {
                return Err(Error::TooManyObjects { max: MAX_OBJECTS });
            }
            Some(stored) if stored.bytes >= MAX_OBJECT_BYTES => {
                return Err(Error::ObjectFull {
                    max_bytes: MAX_OBJECT_BYTES,
                });
            }
            _ if self.state_bytes >= MAX_REPLICA_BYTES => {
                return Err(Error::ReplicaFull {
                    max_bytes: MAX_REPLICA_BYTES,
                });
            }
            _ => {}
        }
        let existing = self.objects.get(&key).map(|stored| stored.object.clone());
        let existed = existing.is_some();
        let mut object = existing.unwrap_or_else(|| Object::empty(key.kind));
        let delta = object.apply(self.id, operation, &mut self.clock)?;
        let value = object.value();
        // A remove of an absent element changes nothing: no dot spent,
        // and no empty object created.
        let changed = delta != Object::empty(key.kind);
        if changed {
            let dot = self.seen.next_dot(self.id);
            self.buffer_delta(dot, &key.name, &delta);
        }
        if changed || existed {
            self.store(key, object);
        }
        Ok((value, changed))
    }

    /// An object's value, and whether any update to it reached here.
    pub fn read(&self, key: &ObjectKey) -> (bool, proto::Value) {
        match self.objects.get(key) {
            Some(stored) => (true, stored.object.value()),
            None => (false, Object::empty(key.kind).value()),
        }
    }

    fn store(&mut self, key: ObjectKey, object: Object) {
        let bytes = codec::encode(&key.name, &object).encoded_len();
        let old = self.objects.insert(key, Stored { object, bytes });
        self.state_bytes = self.state_bytes - old.map_or(0, |old| old.bytes) + bytes;
    }

    fn buffer_delta(&mut self, dot: Dot, name: &str, delta: &Object) {
        let delta = proto::Delta {
            dot: Some(proto::Dot {
                replica: dot.replica.0,
                counter: dot.counter,
            }),
            object: Some(codec::encode(name, delta)),
        };
        let bytes = delta.encoded_len();
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.arrivals.insert(arrival, dot);
        self.buffer.insert(
            dot,
            Buffered {
                arrival,
                delta,
                bytes,
            },
        );
        self.buffer_bytes += bytes;
        // Pitfall: an unbounded buffer is the memory leak of every
        // delta-CRDT system with a dead peer. Past the bound the oldest
        // deltas go; a peer that needed them gets the full state.
        while self.buffer_bytes > MAX_BUFFERED_DELTA_BYTES {
            let Some((_, oldest)) = self.arrivals.pop_first() else {
                break;
            };
            self.unbuffer(oldest);
        }
    }

    fn unbuffer(&mut self, dot: Dot) {
        if let Some(buffered) = self.buffer.remove(&dot) {
            self.arrivals.remove(&buffered.arrival);
            self.buffer_bytes -= buffered.bytes;
        }
    }

    /// The buffered deltas `peer` lacks, or `None` when it lacks an update
    /// that is no longer buffered (it needs the full state).
    fn missing_deltas(&self, peer: &CausalContext) -> Option<Vec<Dot>> {
        let mut missing = Vec::new();
        for (origin, ours) in self.seen.version_vector().iter() {
            let theirs = peer.version_vector().get(origin);
            if ours <= theirs {
                continue;
            }
            let in_range =
                |dot: &Dot| dot.replica == origin && dot.counter > theirs && dot.counter <= ours;
            let held_beyond_gap = peer.cloud().filter(in_range).count() as u64;
            let needed = ours - theirs - held_beyond_gap;
            let from = Dot {
                replica: origin,
                counter: theirs + 1,
            };
            let to = Dot {
                replica: origin,
                counter: ours,
            };
            let before = missing.len();
            missing.extend(
                self.buffer
                    .range(from..=to)
                    .map(|(dot, _)| *dot)
                    .filter(|dot| !peer.contains(dot)),
            );
            if ((missing.len() - before) as u64) < needed {
                return None;
            }
        }
        for dot in self.seen.cloud().filter(|dot| !peer.contains(dot)) {
            if !self.buffer.contains_key(&dot) {
                return None;
            }
            missing.push(dot);
        }
        Some(missing)
    }

    /// The next message for `peer`: the deltas it lacks, or the next
    /// chunk of a full-state transfer.
    pub fn gossip_to(&mut self, peer: ReplicaId) -> Result<(proto::GossipRequest, Sent)> {
        let view = self
            .peers
            .get(&peer)
            .ok_or(Error::UnknownReplica { replica: peer })?;
        let missing = match (&view.transfer, self.mode) {
            (None, AntiEntropy::Delta) => self.missing_deltas(&view.seen),
            _ => None,
        };
        let mut request = proto::GossipRequest {
            from: self.id.0,
            ..Default::default()
        };
        let sent = match missing {
            Some(missing) => {
                let mut bytes = 0;
                for dot in missing {
                    let Some(buffered) = self.buffer.get(&dot) else {
                        continue;
                    };
                    if bytes > 0 && bytes + buffered.bytes > MAX_GOSSIP_BYTES {
                        break;
                    }
                    bytes += buffered.bytes;
                    request.deltas.push(buffered.delta.clone());
                }
                Sent::Deltas
            }
            None => self.next_chunk(peer, &mut request),
        };
        let bytes = request.encoded_len() as u64;
        match sent {
            Sent::Deltas => {
                self.stats.delta_messages += 1;
                self.stats.delta_bytes += bytes;
            }
            Sent::Chunk { .. } => {
                self.stats.full_state_messages += 1;
                self.stats.full_state_bytes += bytes;
            }
        }
        Ok((request, sent))
    }

    fn next_chunk(&mut self, peer: ReplicaId, request: &mut proto::GossipRequest) -> Sent {
        let seen = self.seen.clone();
        let Some(view) = self.peers.get_mut(&peer) else {
            return Sent::Deltas;
        };
        let transfer = view.transfer.get_or_insert(Transfer {
            claim: seen,
            after: None,
        });
        let start = transfer.after.clone();
        let mut remaining = match &start {
            None => self.objects.range(..),
            Some(after) => self.objects.range((
                std::ops::Bound::Excluded(after.clone()),
                std::ops::Bound::Unbounded,
            )),
        }
        .peekable();
        let mut bytes = 0;
        let mut last = start.clone();
        while let Some((key, stored)) = remaining.peek() {
            if bytes > 0 && bytes + stored.bytes > MAX_GOSSIP_BYTES {
                break;
            }
            bytes += stored.bytes;
            request
                .objects
                .push(codec::encode(&key.name, &stored.object));
            last = Some((*key).clone());
            remaining.next();
        }
        let last_chunk = remaining.peek().is_none();
        if last_chunk {
            request.full_state_seen = Some(codec::context(&transfer.claim));
        }
        Sent::Chunk {
            start,
            last,
            last_chunk,
        }
    }

    /// A peer's gossip: merges what is new, answers what is now seen.
    /// Everything is checked before anything is merged, so a bad message
    /// leaves the replica unchanged.
    pub fn receive(&mut self, request: &proto::GossipRequest) -> Result<proto::GossipReply> {
        let from = self.members.check(request.from)?;
        if from == self.id {
            return Err(Error::MalformedState {
                reason: "a replica gossiping with itself".into(),
            });
        }
        let mut deltas = Vec::with_capacity(request.deltas.len());
        for delta in &request.deltas {
            let dot = self.members.dot(delta.dot.as_ref())?;
            let state = delta.object.as_ref().ok_or_else(|| Error::MalformedState {
                reason: "a delta without a state".into(),
            })?;
            let (key, object) = self.members.object(state)?;
            deltas.push((dot, key, object));
        }
        let objects = request
            .objects
            .iter()
            .map(|state| self.members.object(state))
            .collect::<Result<Vec<_>>>()?;
        let claim = request
            .full_state_seen
            .as_ref()
            .map(|context| self.members.context(Some(context)))
            .transpose()?;
        let stamps = deltas
            .iter()
            .map(|(_, _, object)| object)
            .chain(objects.iter().map(|(_, object)| object))
            .filter_map(codec::stamp);
        for stamp in stamps.clone() {
            self.clock.check(stamp)?;
        }
        for stamp in stamps {
            self.clock.update(stamp)?;
        }

        for (dot, key, object) in deltas {
            if self.seen.contains(&dot) {
                continue;
            }
            self.merge_object(key.clone(), &object)?;
            self.seen.insert(dot);
            self.buffer_delta(dot, &key.name, &object);
        }
        for (key, object) in objects {
            self.merge_object(key, &object)?;
        }
        if let Some(claim) = claim {
            self.seen.merge(&claim);
        }
        Ok(self.reply())
    }

    fn merge_object(&mut self, key: ObjectKey, state: &Object) -> Result<()> {
        let mut object = self
            .objects
            .get(&key)
            .map_or_else(|| Object::empty(key.kind), |stored| stored.object.clone());
        object.merge(state)?;
        self.store(key, object);
        Ok(())
    }

    fn reply(&self) -> proto::GossipReply {
        proto::GossipReply {
            seen: Some(codec::context(&self.seen)),
            incarnation: self.incarnation,
        }
    }

    /// A peer's answer to what we `sent`: what it has seen now.
    pub fn acknowledge(
        &mut self,
        peer: ReplicaId,
        sent: &Sent,
        reply: &proto::GossipReply,
    ) -> Result<()> {
        let seen = self.members.context(reply.seen.as_ref())?;
        let view = self
            .peers
            .get_mut(&peer)
            .ok_or(Error::UnknownReplica { replica: peer })?;
        if view.incarnation != Some(reply.incarnation) {
            // A restarted peer has lost what it had: forget what we knew.
            *view = PeerView {
                incarnation: Some(reply.incarnation),
                seen,
                transfer: None,
            };
            return Ok(());
        }
        view.seen.merge(&seen);
        if let (
            Some(transfer),
            Sent::Chunk {
                start,
                last,
                last_chunk,
            },
        ) = (&mut view.transfer, sent)
        {
            // Only the acknowledgement of the chunk that continues the
            // transfer moves it on; a duplicate or a stale one does not.
            if transfer.after == *start {
                transfer.after.clone_from(last);
                if *last_chunk {
                    view.transfer = None;
                }
            }
        }
        Ok(())
    }

    /// Drops buffered deltas every peer has seen.
    fn collect_garbage(&mut self) {
        let everywhere: Vec<Dot> = self
            .buffer
            .keys()
            .filter(|dot| self.peers.values().all(|view| view.seen.contains(dot)))
            .copied()
            .collect();
        for dot in everywhere {
            self.unbuffer(dot);
        }
    }

    /// Counts a gossip round and drops the deltas every peer has seen
    /// (once a round, not per acknowledgement: it walks the buffer).
    pub fn record_round(&mut self) {
        self.stats.rounds += 1;
        self.collect_garbage();
    }

    pub fn record_failure(&mut self) {
        self.stats.failed_messages += 1;
    }

    pub fn status(&self) -> proto::StatusReply {
        proto::StatusReply {
            id: self.id.0,
            seen: Some(codec::context(&self.seen)),
            objects: self.objects.len() as u64,
            state_bytes: self.state_bytes as u64,
            buffered_deltas: self.buffer.len() as u64,
            gossip_rounds: self.stats.rounds,
            delta_messages: self.stats.delta_messages,
            delta_bytes: self.stats.delta_bytes,
            full_state_messages: self.stats.full_state_messages,
            full_state_bytes: self.stats.full_state_bytes,
            failed_messages: self.stats.failed_messages,
        }
    }
}
