//! [`GroupStack`]: a [`GroupNode`] over real Phyla sessions, composed into one sans-IO
//! [`Protocol`] at the datagram level.
//!
//! The group protocols assume reliable, ordered links between NodeIds and are told when a link
//! gives up ([`GroupNode::handle_unreachable`]). Here each link is a unicast session of the
//! substrate's [`Endpoint`]: the stack keeps one session per peer (bounded), opens it on the first
//! frame for that peer, queues frames until the handshake completes and while the session is
//! back-pressured, carries each group frame as one session message on [`GROUP_STREAM`], and
//! turns session failures into `handle_unreachable`. Because the composition is itself a
//! [`Protocol`], the same value runs on the engine's shards and on
//! [`substrate::testing::Cluster`] (the full-stack simulation mode, see [`fullstack`]).
//!
//! # Link semantics
//! A link either carries every frame, in order, or is reported broken. Frames are never dropped
//! silently: when a per-peer queue overflows, or a session ends while frames may still have been
//! in flight on it, the frames are counted in [`StackStats::frames_dropped`], the sessions to that
//! peer are aborted (overflow) or forgotten, and the group layer is told the peer is unreachable.
//!
//! # Simultaneous opens
//! Two nodes that open a session to each other at once end up with two sessions for the pair.
//! Each side sends on the first of them that is established (ties in event order, so the choice
//! is deterministic) and keeps sending on it for as long as it lives, so its frames are never
//! reordered across sessions; it receives on both.
//!
//! # Copies
//! A `Data` frame stays two buffers all the way to the driver: its head and its payload (shared
//! by every child it goes to, and for a forwarding node a slice of the datagram it arrived in)
//! are queued as a pair and offered with [`Endpoint::offer_parts`], so the stack joins nothing
//! ([`StackStats::payload_bytes_copied`] stays 0). The session copies the head into the datagram
//! and, when the payload is at least [`SessionConfig::gather_min_bytes`], hands the payload to
//! the driver as a gathered part of the datagram, uncopied; its own counters
//! ([`substrate::proto::session::EndpointStats`]) say how many bytes went each way.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use substrate::id::{Locator, NodeId, SessionHandle, StreamId};
use substrate::proto::session::{
    CloseCause, ConfigError as SessionConfigError, Endpoint, EndpointConfig, Event, OfferError,
    SessionConfig,
};
use substrate::proto::{Protocol, Transmit};
use substrate::rand::Rng;
use substrate::time::{Duration, Instant};
use substrate::wire::CloseCode;
use thiserror::Error;

use crate::GroupId;
use crate::config::{ConfigError, GroupConfig};
use crate::event::GroupEvent;
use crate::node::{GroupError, GroupNode, GroupTransmit};
use crate::wire::{MessageId, NodeRef};

mod contact;
pub mod fullstack;

/// The session stream that carries group frames: one group frame per session message.
pub const GROUP_STREAM: StreamId = StreamId(1);

/// The close code a stack sends when it breaks a link on purpose (a per-peer queue overflowed):
/// the peer then reports this node unreachable too, so both sides agree the link is gone.
pub const LINK_BROKEN: CloseCode = CloseCode::Other(0x0100);

/// Sub-stream of the construction `Rng` that the stack keeps for work triggered inside
/// `poll_transmit` (which is handed no `Rng`).
const OWN_RNG_STREAM: u64 = 0x5354_4143_4b00_0001;

/// Settings of a [`GroupStack`] beyond the group's own [`GroupConfig`].
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Settings of every session.
    pub session: SessionConfig,
    /// Most peers with sessions at once. Past it, the least recently active peer with nothing
    /// queued is closed gracefully to make room (it is reopened on its next frame).
    pub max_peers: usize,
    /// Most frames queued for one peer (while its session is being opened, or back-pressured).
    /// Past it the link is broken: frames counted as dropped, peer reported unreachable.
    pub max_queued_frames: usize,
    /// A peer with no frame sent or received for this long has its sessions closed gracefully
    /// (each idle session costs a heartbeat per second). `None` keeps them open.
    pub link_idle_timeout: Option<Duration>,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            max_peers: 256,
            max_queued_frames: 4096,
            link_idle_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Why a [`GroupStack`] could not be built.
#[derive(Clone, Copy, Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum StackError {
    /// The group configuration does not validate.
    #[error(transparent)]
    Group(#[from] ConfigError),
    /// The session configuration does not validate.
    #[error(transparent)]
    Session(#[from] SessionConfigError),
    /// A stack setting is out of range.
    #[error("invalid stack setting: {0}")]
    Invalid(&'static str),
}

/// Counters of one [`GroupStack`]'s link layer (the group's own are in [`GroupNode::stats`]).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct StackStats {
    /// Group frames handed to a session.
    pub frames_sent: u64,
    /// Group frames received from sessions and handed to the group.
    pub frames_received: u64,
    /// Payload bytes the stack copied to join a `Data` head and its payload into one message.
    /// Stays 0: frames go to sessions as (head, payload) pairs ([`Endpoint::offer_parts`]);
    /// the session's send-side copies are in its `EndpointStats`.
    pub payload_bytes_copied: u64,
    /// Sessions this node opened.
    pub sessions_opened: u64,
    /// Sessions peers opened to this node.
    pub sessions_accepted: u64,
    /// Sessions that ended (any cause).
    pub sessions_closed: u64,
    /// Offers refused by a back-pressured session; the frame waited in the peer's queue.
    pub offers_backpressured: u64,
    /// Most frames queued for one peer at any time.
    pub max_queue_len: u64,
    /// Frames that never reached a session: queue overflow, or their link failed first.
    pub frames_dropped: u64,
    /// Frames larger than a session can carry (dropped; a configuration error).
    pub frames_too_large: u64,
    /// Frames the group addressed to this node itself (dropped).
    pub frames_to_self: u64,
    /// Per-peer queues that overflowed (each broke its link).
    pub queue_overflows: u64,
    /// Peers closed to stay within `max_peers`.
    pub peers_evicted: u64,
    /// Peers closed after `link_idle_timeout` of silence.
    pub peers_idle_closed: u64,
    /// `handle_unreachable` calls made on the group.
    pub unreachable_reported: u64,
    /// Sessions opened to a locator where another node than the intended one answered.
    pub identity_mismatches: u64,
    /// Messages received on a stream other than [`GROUP_STREAM`] (dropped).
    pub foreign_messages: u64,
    /// Messages a session reported lost (each breaks its link).
    pub session_messages_lost: u64,
    /// `connect` refusals (endpoint at its session limit).
    pub connect_failures: u64,
}

impl StackStats {
    /// Adds `other`'s counters to these (`max_queue_len` takes the larger), to total a cluster.
    pub fn accumulate(&mut self, other: &Self) {
        let Self {
            frames_sent,
            frames_received,
            payload_bytes_copied,
            sessions_opened,
            sessions_accepted,
            sessions_closed,
            offers_backpressured,
            max_queue_len,
            frames_dropped,
            frames_too_large,
            frames_to_self,
            queue_overflows,
            peers_evicted,
            peers_idle_closed,
            unreachable_reported,
            identity_mismatches,
            foreign_messages,
            session_messages_lost,
            connect_failures,
        } = other;
        self.frames_sent += frames_sent;
        self.frames_received += frames_received;
        self.payload_bytes_copied += payload_bytes_copied;
        self.sessions_opened += sessions_opened;
        self.sessions_accepted += sessions_accepted;
        self.sessions_closed += sessions_closed;
        self.offers_backpressured += offers_backpressured;
        self.max_queue_len = self.max_queue_len.max(*max_queue_len);
        self.frames_dropped += frames_dropped;
        self.frames_too_large += frames_too_large;
        self.frames_to_self += frames_to_self;
        self.queue_overflows += queue_overflows;
        self.peers_evicted += peers_evicted;
        self.peers_idle_closed += peers_idle_closed;
        self.unreachable_reported += unreachable_reported;
        self.identity_mismatches += identity_mismatches;
        self.foreign_messages += foreign_messages;
        self.session_messages_lost += session_messages_lost;
        self.connect_failures += connect_failures;
    }
}

/// One session, as the stack sees it.
#[derive(Clone, Debug)]
struct Link {
    /// The peer, once the session is established.
    peer: Option<NodeId>,
    /// For a session this node opened: the peer it was opened for.
    intended: Option<NodeId>,
    /// Where the session sends now.
    path: Locator,
    established: bool,
    /// This node closed (or aborted) it; its end is expected, not a failure.
    closing: bool,
    /// When a frame was last offered on it.
    last_offer: Option<Instant>,
}

/// One peer: its sessions and the frames waiting for one.
#[derive(Clone, Debug)]
struct Peer {
    /// Every live session to the peer (at most a few: simultaneous opens).
    links: Vec<SessionHandle>,
    /// The session frames go out on.
    send: Option<SessionHandle>,
    /// A session being opened.
    connecting: Option<SessionHandle>,
    /// Frames waiting for `send` (not yet established, or back-pressured), oldest first, each as
    /// its head and its payload (empty except for `Data`), offered as two parts.
    queue: VecDeque<(Bytes, Bytes)>,
    /// Where to open a session to the peer.
    locator: Option<Locator>,
    /// When a frame was last sent to or received from the peer.
    last_active: Instant,
}

/// A [`GroupNode`] over Phyla sessions: a sans-IO [`Protocol`] whose datagrams are the session
/// layer's and whose events are the group's.
///
/// # The drive contract
/// As for every [`Protocol`]: after any input (a datagram, a timeout, or a call on
/// [`join`](Self::join), [`publish`](Self::publish), [`leave`](Self::leave) or
/// [`group_mut`](Self::group_mut)), drain `poll_transmit` and `poll_event` until both are
/// `None`, then honour `poll_timeout`. The stack pumps the group's frames into sessions before
/// every input returns, and again from `poll_transmit` (for calls made through `group_mut`),
/// so a driver needs nothing beyond the contract.
#[derive(Debug)]
pub struct GroupStack {
    core: Core,
    /// For work triggered inside `poll_transmit`, which is handed no `Rng`: forked from the
    /// construction `Rng`, so a run stays a function of its seed.
    rng: Rng,
}

#[derive(Debug)]
struct Core {
    id: NodeId,
    endpoint: Endpoint,
    group: GroupNode,
    config: StackConfig,
    peers: BTreeMap<NodeId, Peer>,
    links: BTreeMap<SessionHandle, Link>,
    /// Peers to report unreachable once the current batch of work is done (deduplicated).
    unreachable: Vec<NodeId>,
    /// Joins waiting for their contact's identity.
    contacts: Vec<contact::PendingContact>,
    next_sweep: Option<Instant>,
    stats: StackStats,
}

impl GroupStack {
    /// A stack for the node `id` (its locator is the one it advertises in group frames), with
    /// a fresh [`GroupNode`] and an [`Endpoint`] that accepts sessions.
    ///
    /// # Errors
    /// [`StackError`] if a configuration does not validate.
    pub fn new(
        id: NodeRef,
        group: GroupConfig,
        config: StackConfig,
        rng: &mut Rng,
    ) -> Result<Self, StackError> {
        if config.max_peers == 0 {
            return Err(StackError::Invalid("max_peers (> 0)"));
        }
        if config.max_queued_frames == 0 {
            return Err(StackError::Invalid("max_queued_frames (> 0)"));
        }
        if config.link_idle_timeout.is_some_and(|d| d.is_zero()) {
            return Err(StackError::Invalid("link_idle_timeout (non-zero)"));
        }
        let mut ec = EndpointConfig::new(id.id);
        ec.session = config.session.clone();
        // Room for a simultaneous open with every peer, and for sessions still closing.
        ec.max_sessions = config.max_peers.saturating_mul(3).saturating_add(16);
        let endpoint = Endpoint::new(ec)?;
        let group = GroupNode::new(id, group, rng)?;
        let own = rng.fork(OWN_RNG_STREAM);
        Ok(Self {
            core: Core {
                id: id.id,
                endpoint,
                group,
                config,
                peers: BTreeMap::new(),
                links: BTreeMap::new(),
                unreachable: Vec::new(),
                contacts: Vec::new(),
                next_sweep: None,
                stats: StackStats::default(),
            },
            rng: own,
        })
    }

    /// The group node.
    pub fn group(&self) -> &GroupNode {
        &self.core.group
    }

    /// The group node, for calls on its API. Its frames go out on the next `poll_transmit`,
    /// which the drive contract makes the driver call.
    pub fn group_mut(&mut self) -> &mut GroupNode {
        &mut self.core.group
    }

    /// The session endpoint (read-only: sessions belong to the stack).
    pub fn endpoint(&self) -> &Endpoint {
        &self.core.endpoint
    }

    /// Link-layer counters.
    pub fn stats(&self) -> &StackStats {
        &self.core.stats
    }

    /// Peers with at least one session or queued frame.
    pub fn peer_count(&self) -> usize {
        self.core.peers.len()
    }

    /// Frames queued for `peer`, waiting for its session.
    pub fn queued_frames(&self, peer: NodeId) -> usize {
        self.core.peers.get(&peer).map_or(0, |p| p.queue.len())
    }

    /// The session frames to `peer` go out on, once one is established.
    pub fn session_to(&self, peer: NodeId) -> Option<SessionHandle> {
        self.core.peers.get(&peer).and_then(|p| p.send)
    }

    /// [`GroupNode::join`], then pumps the resulting frames into sessions.
    ///
    /// # Errors
    /// As [`GroupNode::join`].
    pub fn join(
        &mut self,
        now: Instant,
        group: GroupId,
        contact: Option<NodeRef>,
        rng: &mut Rng,
    ) -> Result<(), GroupError> {
        let r = self.core.group.join(now, group, contact, rng);
        self.core.pump(now, rng);
        r
    }

    /// [`GroupNode::publish`], then pumps the resulting frames into sessions.
    ///
    /// # Errors
    /// As [`GroupNode::publish`].
    pub fn publish(
        &mut self,
        now: Instant,
        group: GroupId,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<MessageId, GroupError> {
        let r = self.core.group.publish(now, group, payload, rng);
        self.core.pump(now, rng);
        r
    }

    /// [`GroupNode::leave`], then pumps the resulting frames into sessions.
    pub fn leave(&mut self, now: Instant, group: GroupId, rng: &mut Rng) {
        self.core.group.leave(now, group, rng);
        self.core.pump(now, rng);
    }
}

impl Protocol for GroupStack {
    type Event = GroupEvent;

    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng) {
        self.core.endpoint.handle_datagram(now, from, datagram, rng);
        self.core.pump(now, rng);
    }

    fn handle_timeout(&mut self, now: Instant, rng: &mut Rng) {
        self.core.endpoint.handle_timeout(now, rng);
        self.core.group.handle_timeout(now, rng);
        if self.core.next_sweep.is_some_and(|t| now >= t) {
            self.core.sweep(now);
        }
        self.core.dial_contacts(now, rng);
        self.core.pump(now, rng);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            if let Some(t) = self.core.endpoint.poll_transmit(now, buf) {
                return Some(t);
            }
            // Session events raised while sending (Writable, local closes) and group frames
            // from calls made through `group_mut` are handled here, then sent.
            if !self.core.pump(now, &mut self.rng) {
                return None;
            }
        }
    }

    fn poll_event(&mut self) -> Option<GroupEvent> {
        self.core.group.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.core.endpoint.poll_timeout(),
            self.core.group.poll_timeout(),
            self.core.next_sweep,
            self.core.next_contact_retry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Core {
    /// Moves work between the layers until none is left: session events into the group, group
    /// frames into sessions, pending unreachable reports into the group. Returns whether
    /// anything was done.
    fn pump(&mut self, now: Instant, rng: &mut Rng) -> bool {
        let mut any = false;
        loop {
            let mut progress = false;
            while let Some(e) = self.endpoint.poll_event() {
                progress = true;
                self.on_session_event(now, e, rng);
            }
            while let Some(t) = self.group.poll_transmit() {
                progress = true;
                self.send_frame(now, t, rng);
            }
            for peer in core::mem::take(&mut self.unreachable) {
                progress = true;
                self.stats.unreachable_reported += 1;
                self.group.handle_unreachable(now, peer, rng);
            }
            if !progress {
                return any;
            }
            any = true;
        }
    }

    fn report_unreachable(&mut self, peer: NodeId) {
        if !self.unreachable.contains(&peer) {
            self.unreachable.push(peer);
        }
    }

    // ---- sending --------------------------------------------------------------------------

    fn send_frame(&mut self, now: Instant, t: GroupTransmit, rng: &mut Rng) {
        if t.to == self.id {
            self.stats.frames_to_self += 1;
            return;
        }
        // Head and payload stay apart (the payload is shared, never joined to the head).
        let message = (t.frame, t.payload);
        let peer = self.peer_entry(now, t.to);
        if let Some(l) = t.locator {
            peer.locator = Some(l);
        }
        peer.last_active = now;
        if !self.enqueue(t.to, message) {
            return;
        }
        self.flush(now, t.to, rng);
    }

    /// Appends a frame (head, payload) to a peer's queue; on overflow breaks the link and returns
    /// false.
    fn enqueue(&mut self, id: NodeId, message: (Bytes, Bytes)) -> bool {
        let max = self.config.max_queued_frames;
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if peer.queue.len() < max {
            peer.queue.push_back(message);
            self.stats.max_queue_len = self.stats.max_queue_len.max(peer.queue.len() as u64);
            return true;
        }
        self.stats.queue_overflows += 1;
        self.stats.frames_dropped += 1;
        self.break_link(id);
        false
    }

    /// Aborts every session to `id`, drops its queue and reports it unreachable.
    fn break_link(&mut self, id: NodeId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.stats.frames_dropped += peer.queue.len() as u64;
        for h in peer.links {
            if let Some(l) = self.links.get_mut(&h) {
                l.closing = true;
            }
            self.endpoint.abort(h, LINK_BROKEN, "group link broken");
        }
        self.report_unreachable(id);
    }

    /// Offers a peer's queued frames on its send session, opening one if it has none.
    fn flush(&mut self, now: Instant, id: NodeId, rng: &mut Rng) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(h) = peer.send else {
            if peer.connecting.is_none() && !peer.queue.is_empty() {
                self.open(now, id, rng);
            }
            return;
        };
        let mut gone = false;
        while let Some((head, payload)) = peer.queue.pop_front() {
            match self
                .endpoint
                .offer_parts(now, h, GROUP_STREAM, head, payload)
            {
                Ok(_) => {
                    self.stats.frames_sent += 1;
                    if let Some(l) = self.links.get_mut(&h) {
                        l.last_offer = Some(now);
                    }
                }
                Err(OfferError::BackPressured(m)) => {
                    self.stats.offers_backpressured += 1;
                    peer.queue.push_front(m);
                    break;
                }
                Err(OfferError::MessageTooLarge(_)) => self.stats.frames_too_large += 1,
                Err(
                    OfferError::NotConnected(m)
                    | OfferError::Closed(m)
                    | OfferError::StreamLimit(m),
                ) => {
                    // The session is ending; its Closed event decides what happens next.
                    peer.queue.push_front(m);
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            peer.send = None;
            let next = self.usable_link(id, Some(h));
            if let Some(p) = self.peers.get_mut(&id) {
                p.send = next;
            }
            if next.is_some() {
                self.flush(now, id, rng);
            }
        }
    }

    /// Opens a session to `id` at its known locator, or reports it unreachable without one.
    fn open(&mut self, now: Instant, id: NodeId, rng: &mut Rng) {
        let Some(locator) = self.peers.get(&id).and_then(|p| p.locator) else {
            self.give_up(id);
            return;
        };
        let mut result = self.endpoint.connect(now, locator, rng);
        if result.is_err() && self.evict_one(Some(id)) {
            result = self.endpoint.connect(now, locator, rng);
        }
        match result {
            Ok(h) => {
                self.stats.sessions_opened += 1;
                self.links.insert(
                    h,
                    Link {
                        peer: None,
                        intended: Some(id),
                        path: locator,
                        established: false,
                        closing: false,
                        last_offer: None,
                    },
                );
                if let Some(p) = self.peers.get_mut(&id) {
                    p.connecting = Some(h);
                    p.links.push(h);
                }
            }
            Err(_) => {
                self.stats.connect_failures += 1;
                self.give_up(id);
            }
        }
    }

    /// Forgets a peer that cannot be reached: its queued frames are dropped (counted) and the
    /// group is told. Sessions still open to it stay (they may carry its frames to us).
    fn give_up(&mut self, id: NodeId) {
        if let Some(p) = self.peers.get_mut(&id) {
            self.stats.frames_dropped += p.queue.len() as u64;
            p.queue.clear();
            if p.links.is_empty() {
                self.peers.remove(&id);
            }
        }
        self.report_unreachable(id);
    }

    /// The peer entry for `id`, created (evicting the least recently active peer if full).
    fn peer_entry(&mut self, now: Instant, id: NodeId) -> &mut Peer {
        if !self.peers.contains_key(&id) {
            if self.peers.len() >= self.config.max_peers {
                self.evict_one(Some(id));
            }
            if self.next_sweep.is_none() {
                self.next_sweep = self.config.link_idle_timeout.map(|d| now + d / 2);
            }
        }
        self.peers.entry(id).or_insert_with(|| Peer {
            links: Vec::new(),
            send: None,
            connecting: None,
            queue: VecDeque::new(),
            locator: None,
            last_active: now,
        })
    }

    /// Closes the least recently active peer with nothing queued (never `keep`). Returns
    /// whether one was closed.
    fn evict_one(&mut self, keep: Option<NodeId>) -> bool {
        let victim = self
            .peers
            .iter()
            .filter(|(id, p)| Some(**id) != keep && p.queue.is_empty())
            .min_by_key(|(_, p)| p.last_active)
            .map(|(id, _)| *id);
        let Some(victim) = victim else {
            return false;
        };
        self.stats.peers_evicted += 1;
        self.close_peer(victim);
        true
    }

    /// Closes every session to `id` gracefully and forgets it.
    fn close_peer(&mut self, id: NodeId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        for h in peer.links {
            if let Some(l) = self.links.get_mut(&h) {
                l.closing = true;
            }
            self.endpoint.close(h);
        }
    }

    /// Closes peers silent for `link_idle_timeout`.
    fn sweep(&mut self, now: Instant) {
        let Some(idle) = self.config.link_idle_timeout else {
            self.next_sweep = None;
            return;
        };
        let quiet: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.queue.is_empty() && now.saturating_duration_since(p.last_active) >= idle
            })
            .map(|(id, _)| *id)
            .collect();
        for id in quiet {
            self.stats.peers_idle_closed += 1;
            self.close_peer(id);
        }
        self.next_sweep = (!self.peers.is_empty()).then(|| now + idle / 2);
    }

    /// An established session to `id` that is not closing, other than `except`.
    fn usable_link(&self, id: NodeId, except: Option<SessionHandle>) -> Option<SessionHandle> {
        let peer = self.peers.get(&id)?;
        peer.links.iter().copied().find(|h| {
            Some(*h) != except
                && self
                    .links
                    .get(h)
                    .is_some_and(|l| l.established && !l.closing)
        })
    }

    // ---- session events -------------------------------------------------------------------

    fn on_session_event(&mut self, now: Instant, e: Event, rng: &mut Rng) {
        match e {
            Event::Connected { session, peer } => {
                self.on_connected(now, session, peer, rng);
                self.contact_connected(now, session, peer, rng);
            }
            Event::Readable { session, stream } => self.receive(now, session, stream, rng),
            Event::Writable { session, .. } => {
                let peer = self.links.get(&session).and_then(|l| l.peer);
                if let Some(id) = peer {
                    if self.peers.get(&id).is_some_and(|p| p.send == Some(session)) {
                        self.flush(now, id, rng);
                    }
                }
            }
            Event::PathMigrated { session, to, .. } => {
                if let Some(l) = self.links.get_mut(&session) {
                    l.path = to;
                    if let Some(p) = l.peer.and_then(|id| self.peers.get_mut(&id)) {
                        p.locator = Some(to);
                    }
                }
            }
            Event::MessagesLost { session, range, .. } => {
                // The link promised every frame in order and broke that promise.
                self.stats.session_messages_lost += range.end.saturating_sub(range.start);
                if let Some(id) = self.links.get(&session).and_then(|l| l.peer) {
                    self.break_link(id);
                }
            }
            Event::Closed { session, cause } => {
                self.contact_closed(now, session, &cause);
                self.on_closed(now, session, cause, rng);
            }
            Event::Backpressured { .. } | Event::PeerTimedOut { .. } => {}
        }
    }

    fn on_connected(&mut self, now: Instant, session: SessionHandle, id: NodeId, rng: &mut Rng) {
        let path = match self.links.get_mut(&session) {
            Some(l) => {
                // A session this node opened.
                l.established = true;
                l.peer = Some(id);
                let (intended, path) = (l.intended, l.path);
                if let Some(x) = intended {
                    let mine = self
                        .peers
                        .get_mut(&x)
                        .filter(|p| p.connecting == Some(session));
                    if let Some(p) = mine {
                        p.connecting = None;
                        if x != id {
                            // Someone else holds that locator now: the intended peer is not
                            // there, and its frames must not go to whoever is.
                            self.stats.identity_mismatches += 1;
                            p.links.retain(|h| *h != session);
                            self.give_up(x);
                        }
                    }
                }
                path
            }
            None => {
                // A peer opened it.
                self.stats.sessions_accepted += 1;
                let Some(path) = self.endpoint.session_info(session).map(|i| i.path) else {
                    return;
                };
                self.links.insert(
                    session,
                    Link {
                        peer: Some(id),
                        intended: None,
                        path,
                        established: true,
                        closing: false,
                        last_offer: None,
                    },
                );
                path
            }
        };
        let peer = self.peer_entry(now, id);
        if !peer.links.contains(&session) {
            peer.links.push(session);
        }
        if peer.locator.is_none() {
            peer.locator = Some(path);
        }
        if peer.send.is_none() {
            peer.send = Some(session);
            self.flush(now, id, rng);
        }
    }

    /// Hands every message waiting on `stream` of `session` to the group.
    fn receive(&mut self, now: Instant, session: SessionHandle, stream: StreamId, rng: &mut Rng) {
        while let Some(m) = self.endpoint.recv(session, stream) {
            if stream != GROUP_STREAM {
                self.stats.foreign_messages += 1;
                continue;
            }
            let Some((id, path)) = self
                .links
                .get(&session)
                .and_then(|l| Some((l.peer?, l.path)))
            else {
                self.stats.foreign_messages += 1;
                continue;
            };
            if let Some(p) = self.peers.get_mut(&id) {
                p.last_active = now;
            }
            self.stats.frames_received += 1;
            let from = NodeRef {
                id,
                locator: Some(path),
            };
            self.group.handle_frame(now, from, &m.payload, rng);
        }
    }

    fn on_closed(
        &mut self,
        now: Instant,
        session: SessionHandle,
        cause: CloseCause,
        rng: &mut Rng,
    ) {
        // What the peer sent before the end still counts, and reading it frees the handle.
        self.receive(now, session, GROUP_STREAM, rng);
        self.stats.sessions_closed += 1;
        let Some(link) = self.links.remove(&session) else {
            return;
        };
        if link.closing {
            return;
        }
        let Some(id) = link.peer.or(link.intended) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.links.retain(|h| *h != session);
        let was_send = peer.send == Some(session);
        let was_connecting = peer.connecting == Some(session);
        if was_send {
            peer.send = None;
        }
        if was_connecting {
            peer.connecting = None;
        }
        // Frames offered recently may not have been acknowledged: the link may have lost them.
        let grace = self.config.session.idle_timeout;
        let recent = link
            .last_offer
            .is_some_and(|t| now.saturating_duration_since(t) < grace);
        let failed = was_connecting
            || match cause {
                CloseCause::TimedOut => true,
                CloseCause::Peer { code, .. } => code != CloseCode::Normal || (was_send && recent),
                CloseCause::Local(_) => was_send,
            };
        let links_left = !peer.links.is_empty();
        if failed && (was_send || was_connecting || !links_left) {
            self.give_up(id);
            if let Some(p) = self.peers.get_mut(&id) {
                p.send = None;
            }
            let next = self.usable_link(id, None);
            if let Some(p) = self.peers.get_mut(&id) {
                p.send = next;
            }
            return;
        }
        if self.peers.get(&id).is_some_and(|p| p.send.is_none()) {
            let next = self.usable_link(id, None);
            if let Some(p) = self.peers.get_mut(&id) {
                p.send = next;
            }
        }
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.links.is_empty() && peer.queue.is_empty() && peer.connecting.is_none() {
            self.peers.remove(&id);
        } else {
            self.flush(now, id, rng);
        }
    }
}
