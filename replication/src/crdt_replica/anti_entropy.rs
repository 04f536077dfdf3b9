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
//! Every message also carries the sender's own context, so a replica
//! learns what a peer has from the peer's gossip as well as from its
//! replies; and before a large catch-up for a peer it has not heard from
//! in the last round (random fanout: it may have had most of it from
//! others), a replica asks first with an empty message.
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
//! [`MAX_GOSSIP_BYTES`] (one object or delta more at most) and at most
//! [`MAX_DELTAS_PER_MESSAGE`] deltas. Merges are
//! refused only past what every member's admissions add up to —
//! [`MAX_MEMBERS`] × the object and byte limits — since refusing an honest
//! peer's merge would stop convergence; what a merge can add is bounded
//! by the message it came in. What a replica has seen out of order is
//! bounded by [`MAX_SEEN_CLOUD_DOTS`]. Merging a message costs at most the
//! size of the objects it touches, once per object (its deltas are joined
//! first), on the blocking pool, one message at a time.
//!
//! A peer may not claim updates of this replica's current run that it
//! never made (that would make its next real update look seen); beyond
//! that, members are trusted: gossip is not authenticated (see the
//! module's `Simplified:`).
//!
//! [`MAX_OBJECTS`]: super::MAX_OBJECTS
//! [`MAX_REPLICA_BYTES`]: super::MAX_REPLICA_BYTES
//! [`MAX_OBJECT_BYTES`]: super::MAX_OBJECT_BYTES
//! [`MAX_BUFFERED_DELTA_BYTES`]: super::MAX_BUFFERED_DELTA_BYTES
//! [`MAX_GOSSIP_BYTES`]: super::MAX_GOSSIP_BYTES
//! [`MAX_DELTAS_PER_MESSAGE`]: super::MAX_DELTAS_PER_MESSAGE
//! [`MAX_MEMBERS`]: super::MAX_MEMBERS
//! [`MAX_SEEN_CLOUD_DOTS`]: super::MAX_SEEN_CLOUD_DOTS

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use super::codec::{self, Members};
use super::object::{Object, ObjectKey, Operation};
use super::{
    AntiEntropy, MAX_BUFFERED_DELTA_BYTES, MAX_DELTAS_PER_MESSAGE, MAX_GOSSIP_BYTES, MAX_MEMBERS,
    MAX_OBJECT_BYTES, MAX_OBJECTS, MAX_REPLICA_BYTES, MAX_SEEN_CLOUD_DOTS, actor_of,
};
use crate::clock::ReplicaId;
use crate::clock::dotted::{CausalContext, Dot};
use crate::clock::hlc::HybridClock;
use crate::clock::physical::PhysicalClock;
use crate::proto;
use crate::{Error, Result};

/// A catch-up of more deltas than this, for a peer not heard from in the
/// last round, asks the peer what it has first.
const ASK_FIRST_BEYOND_DELTAS: usize = 16;

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
    /// The gossip round in which we last learned what the peer has seen.
    heard_in_round: u64,
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
    /// Who this run's updates are by: the member and its incarnation.
    actor: ReplicaId,
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
            actor: actor_of(id, incarnation),
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
        // Applied in place: every operation checks before it mutates, so
        // a refused one leaves the object as it was.
        let mut created = None;
        let object = match self.objects.get_mut(&key) {
            Some(stored) => &mut stored.object,
            None => created.insert(Object::empty(key.kind)),
        };
        let delta = object.apply(self.actor, operation, &mut self.clock)?;
        let value = object.value();
        // A remove of an absent element changes nothing: no dot spent,
        // and no empty object created.
        let changed = delta != Object::empty(key.kind);
        if changed {
            let dot = self.seen.next_dot(self.actor);
            self.buffer_delta(dot, &key.name, &delta);
        }
        match created {
            Some(object) if changed => self.store(key, object),
            Some(_) => {}
            None => self.remeasure(&key),
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

    /// Updates the size of an object changed in place.
    fn remeasure(&mut self, key: &ObjectKey) {
        if let Some(stored) = self.objects.get_mut(key) {
            let bytes = codec::encode(&key.name, &stored.object).encoded_len();
            self.state_bytes = self.state_bytes - stored.bytes + bytes;
            stored.bytes = bytes;
        }
    }

    fn buffer_delta(&mut self, dot: Dot, name: &str, delta: &Object) {
        let delta = proto::Delta {
            dot: Some(proto::Dot {
                replica: dot.replica.0,
                counter: dot.counter,
            }),
            object: Some(codec::encode(name, delta)),
        };
        self.buffer_wire_delta(dot, delta);
    }

    /// Keeps a delta, in its wire form, for the peers that lack it.
    fn buffer_wire_delta(&mut self, dot: Dot, delta: proto::Delta) {
        if self.buffer.contains_key(&dot) {
            return;
        }
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
        let mut request = proto::GossipRequest {
            from: self.id.0,
            to_incarnation: view.incarnation.unwrap_or(0),
            sender_seen: Some(codec::context(&self.seen)),
            from_incarnation: self.incarnation,
            ..Default::default()
        };
        // A peer not heard from yet first gets an empty message: its reply
        // says what it has and which incarnation it is, so no full state
        // is sent to a peer that may not need it, or to a run that ended.
        let missing = match (&view.transfer, self.mode, view.incarnation) {
            (_, _, None) => Some(Vec::new()),
            (None, AntiEntropy::Delta, _) => self.missing_deltas(&view.seen),
            _ => None,
        };
        // With random peers, what we know of this one may be rounds old:
        // it may have had most of these updates from others meanwhile.
        // Before a large catch-up, ask first (an empty message) and ship
        // what its reply says is still missing.
        let stale = view.heard_in_round + 1 < self.stats.rounds;
        let missing = match missing {
            Some(deltas) if stale && deltas.len() > ASK_FIRST_BEYOND_DELTAS => Some(Vec::new()),
            Some(deltas) => Some(deltas),
            None if stale && view.transfer.is_none() && self.mode == AntiEntropy::Delta => {
                Some(Vec::new())
            }
            None => None,
        };
        let sent = match missing {
            Some(missing) => {
                let mut bytes = 0;
                for dot in missing {
                    let Some(buffered) = self.buffer.get(&dot) else {
                        continue;
                    };
                    if request.deltas.len() == MAX_DELTAS_PER_MESSAGE
                        || (bytes > 0 && bytes + buffered.bytes > MAX_GOSSIP_BYTES)
                    {
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
    /// leaves the replica's state unchanged (its hybrid clock may have
    /// moved on to a valid stamp's time).
    pub fn receive(&mut self, request: &proto::GossipRequest) -> Result<proto::GossipReply> {
        let from = self.members.member(request.from)?;
        if from == self.id {
            return Err(Error::MalformedState {
                reason: "a replica gossiping with itself".into(),
            });
        }
        if request.deltas.len() > MAX_DELTAS_PER_MESSAGE {
            return Err(Error::TooMany {
                what: "deltas in one gossip message",
                count: request.deltas.len(),
                max: MAX_DELTAS_PER_MESSAGE,
            });
        }
        let mut deltas = Vec::with_capacity(request.deltas.len());
        for delta in &request.deltas {
            let dot = self.members.dot(delta.dot.as_ref())?;
            self.check_own_dot(dot)?;
            let state = delta.object.as_ref().ok_or_else(|| Error::MalformedState {
                reason: "a delta without a state".into(),
            })?;
            let (key, object) = self.members.object(state)?;
            deltas.push((dot, key, object, delta));
        }
        let objects = request
            .objects
            .iter()
            .map(|state| self.members.object(state))
            .collect::<Result<Vec<_>>>()?;
        // A claim covers the full state of the incarnation it was meant
        // for; a receiver that restarted since has not merged the chunks
        // before it, and must not adopt it.
        let claim = match &request.full_state_seen {
            Some(context) if request.to_incarnation == self.incarnation => {
                let claim = self.members.context(Some(context))?;
                self.check_own_context(&claim)?;
                Some(claim)
            }
            _ => None,
        };
        let sender_seen = self.members.context(request.sender_seen.as_ref())?;
        self.check_own_context(&sender_seen)?;
        let keys = deltas
            .iter()
            .map(|(_, key, _, _)| key)
            .chain(objects.iter().map(|(key, _)| key));
        self.check_growth(request, keys, claim.as_ref())?;
        let stamps = deltas
            .iter()
            .map(|(_, _, object, _)| object)
            .chain(objects.iter().map(|(_, object)| object))
            .filter_map(codec::stamp);
        for stamp in stamps.clone() {
            self.clock.check(stamp)?;
        }
        for stamp in stamps {
            // Refused stamps were caught above; a counter exhausted on a
            // stuck local clock leaves the stamp for the next message.
            let _ = self.clock.update(stamp);
        }

        // Deltas for one object are joined first (they are small states),
        // so a big object is merged and measured once per message, not
        // once per delta.
        let mut joined: BTreeMap<ObjectKey, Object> = BTreeMap::new();
        for (dot, key, object, wire) in deltas {
            if self.seen.contains(&dot) {
                continue;
            }
            self.seen.insert(dot);
            self.buffer_wire_delta(dot, wire.clone());
            match joined.get_mut(&key) {
                Some(group) => group.merge(&object)?,
                None => {
                    joined.insert(key, object);
                }
            }
        }
        for (key, object) in joined.into_iter().chain(objects) {
            self.merge_object(key, &object)?;
        }
        if let Some(claim) = claim {
            self.seen.merge(&claim);
        }
        self.learn(from, request.from_incarnation, sender_seen);
        Ok(self.reply())
    }

    /// Refuses a dot of this replica's own actor that it never issued: a
    /// peer claiming it would make the next real update look seen.
    fn check_own_dot(&self, dot: Dot) -> Result<()> {
        if dot.replica == self.actor && dot.counter > self.seen.version_vector().get(self.actor) {
            return Err(Error::MalformedState {
                reason: format!("update {} of this replica was never made", dot.counter),
            });
        }
        Ok(())
    }

    fn check_own_context(&self, context: &CausalContext) -> Result<()> {
        let issued = self.seen.version_vector().get(self.actor);
        let highest = context
            .cloud()
            .filter(|dot| dot.replica == self.actor)
            .map(|dot| dot.counter)
            .chain([context.version_vector().get(self.actor)])
            .max()
            .unwrap_or(0);
        if highest > issued {
            return Err(Error::MalformedState {
                reason: format!("update {highest} of this replica was never made"),
            });
        }
        Ok(())
    }

    /// Refuses a message that could take the replica past the hard bounds
    /// (every member's admissions together): a merge adds at most what it
    /// carries.
    fn check_growth<'k>(
        &self,
        request: &proto::GossipRequest,
        keys: impl Iterator<Item = &'k ObjectKey>,
        claim: Option<&CausalContext>,
    ) -> Result<()> {
        let new_objects: BTreeSet<&ObjectKey> = keys
            .filter(|key| !self.objects.contains_key(*key))
            .collect();
        if !new_objects.is_empty()
            && self.objects.len() + new_objects.len() > MAX_MEMBERS * MAX_OBJECTS
        {
            return Err(Error::TooManyObjects {
                max: MAX_MEMBERS * MAX_OBJECTS,
            });
        }
        if self.state_bytes + request.encoded_len() > MAX_MEMBERS * MAX_REPLICA_BYTES {
            return Err(Error::ReplicaFull {
                max_bytes: MAX_MEMBERS * MAX_REPLICA_BYTES,
            });
        }
        let cloud = self.seen.cloud_len()
            + claim.map_or(0, CausalContext::cloud_len)
            + request.deltas.len();
        if cloud > MAX_SEEN_CLOUD_DOTS {
            return Err(Error::TooMany {
                what: "updates seen out of order",
                count: cloud,
                max: MAX_SEEN_CLOUD_DOTS,
            });
        }
        Ok(())
    }

    fn merge_object(&mut self, key: ObjectKey, state: &Object) -> Result<()> {
        match self.objects.get_mut(&key) {
            Some(stored) => {
                stored.object.merge(state)?;
                self.remeasure(&key);
            }
            None => self.store(key, state.clone()),
        }
        Ok(())
    }

    fn reply(&self) -> proto::GossipReply {
        proto::GossipReply {
            seen: Some(codec::context(&self.seen)),
            incarnation: self.incarnation,
        }
    }

    /// What a peer has seen, as it told us in its own gossip: what we
    /// would otherwise learn only from its replies to ours, which with
    /// random fanout may come rarely — and meanwhile we would keep
    /// resending it updates it got from others.
    /// False when `incarnation` is a run of the peer we did not know: a
    /// restarted peer has lost what it had, so what we knew is forgotten.
    fn learn(&mut self, peer: ReplicaId, incarnation: u64, seen: CausalContext) -> bool {
        let Some(view) = self.peers.get_mut(&peer) else {
            return false;
        };
        view.heard_in_round = self.stats.rounds;
        if view.incarnation == Some(incarnation) {
            view.seen.merge(&seen);
            return true;
        }
        *view = PeerView {
            incarnation: Some(incarnation),
            seen,
            transfer: None,
            heard_in_round: self.stats.rounds,
        };
        false
    }

    /// A peer's answer to what we `sent`: what it has seen now.
    pub fn acknowledge(
        &mut self,
        peer: ReplicaId,
        sent: &Sent,
        reply: &proto::GossipReply,
    ) -> Result<()> {
        let seen = self.members.context(reply.seen.as_ref())?;
        self.check_own_context(&seen)?;
        if !self.learn(peer, reply.incarnation, seen) {
            return Ok(());
        }
        let view = self
            .peers
            .get_mut(&peer)
            .ok_or(Error::UnknownReplica { replica: peer })?;
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
            actor: self.actor.0,
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
