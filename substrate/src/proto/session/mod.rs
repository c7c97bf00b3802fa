//! The reliable unicast session, sans-IO.
//!
//! An [`Endpoint`] holds every session of one node and is the [`Protocol`] a driver runs: it
//! finds a session by the connection id in each datagram (never by the sender's address),
//! accepts peers' Hellos, and multiplexes its sessions' datagrams.
//!
//! A session binds two [`NodeId`]s and carries independent streams of messages. Each stream is
//! reliable and ordered: fragments carry sequence numbers, the receiver NAKs gaps after a delay
//! that scales with the RTT, and the sender repairs them from a bounded retransmit window.
//! Acknowledgements carry the receiver's flow-control limit, so its buffered bytes never exceed
//! its window; `offer` reports backpressure instead of queueing without bound. A token bucket
//! paces each stream at a configurable rate (where reservations will plug in). A gap the sender
//! can no longer repair becomes [`Event::MessagesLost`] with the exact range: every message
//! number is either delivered or reported lost.
//!
//! A valid datagram from a new address starts path validation (challenge and response, after
//! RFC 9000 §9); only once the peer answers from there does the session send there, and it says
//! so with [`Event::PathMigrated`]. Heartbeats keep idle sessions alive and measure the RTT;
//! silence for the idle timeout closes the session with [`Event::PeerTimedOut`].
//!
//! Without authentication (the security work adds it), anyone who learns a connection id can
//! inject frames; path validation still stops them from redirecting the session to an address
//! they cannot receive at.
//!
//! # Example
//!
//! Two endpoints on the in-memory network (feature `testing`); on the engine the same calls
//! apply, with the shard driving the endpoint instead of the harness.
//!
//! ```
//! use bytes::Bytes;
//! use substrate::id::{NodeId, StreamId};
//! use substrate::proto::session::{Endpoint, EndpointConfig, Event};
//! use substrate::testing::{Cluster, LinkConfig, Loss};
//! use substrate::time::Duration;
//!
//! let link = LinkConfig::default().latency(Duration::from_millis(5)).loss(Loss::Uniform(0.05));
//! let mut net = Cluster::new(7, link);
//! let endpoint = |n| Endpoint::new(EndpointConfig::new(NodeId::from_u64(n))).unwrap();
//! let (a, b) = (net.add_node(endpoint(1)), net.add_node(endpoint(2)));
//!
//! let to = net.locator(b);
//! let session = net.with_node(a, |e, now, rng| e.connect(now, to, rng)).unwrap();
//! net.run_for(Duration::from_millis(100)).unwrap();
//! assert!(net.events(a).contains(&Event::Connected { session, peer: NodeId::from_u64(2) }));
//!
//! let stream = StreamId(1);
//! for i in 0..100u32 {
//!     let msg = Bytes::from(i.to_be_bytes().to_vec());
//!     net.with_node(a, |e, now, _| e.offer(now, session, stream, msg)).unwrap();
//! }
//! net.run_for(Duration::from_secs(2)).unwrap();
//!
//! // b learned of the session from the peer's Hello; read everything, in order.
//! let at_b = net.node(b).sessions().next().unwrap();
//! let got: Vec<u64> = net.with_node(b, |e, _, _| {
//!     std::iter::from_fn(|| e.recv(at_b, stream)).map(|m| m.number).collect()
//! });
//! assert_eq!(got, (0..100).collect::<Vec<_>>());
//! ```

mod config;
mod conn;
mod event;
mod recv;
mod rtt;
mod send;
mod stats;

use std::collections::VecDeque;

use bytes::Bytes;

pub use config::{
    ConfigError, DEFAULT_GATHER_MIN_BYTES, EndpointConfig, MAX_WINDOW_BYTES, MIN_DATAGRAM_BYTES,
    SessionConfig,
};
pub use event::{CloseCause, ConnectError, Event, Message, OfferError};
pub use stats::{EndpointStats, SessionStats};

use crate::collections::{HashMap, HashSet};
use crate::id::{ConnectionId, Locator, NodeId, SessionHandle, StreamId};
use crate::proto::Protocol;
use crate::proto::rate::Rate;
use crate::proto::{Gather, Transmit};
use crate::rand::Rng;
use crate::time::{Duration, Instant};
use crate::wire::{
    Close, CloseCode, DecodeError, Frame, HandshakeStage, Header, SUPPORTED_VERSIONS, VERSION_1,
    decode_datagram,
};
use conn::{Role, Session};

/// Most stateless replies (refusals) waiting to be sent; more are dropped and counted.
const MAX_PENDING_REPLIES: usize = 64;

/// Most Hellos of ended sessions remembered, to refuse their late or replayed copies.
const MAX_RETIRED_HELLOS: usize = 4096;

/// What each data fragment costs against flow control, the receive window, the send buffer
/// and the retransmit window, on top of its payload. It stands for the per-fragment memory a
/// receiver spends, so that windows bound memory even for empty or tiny messages.
pub const FRAGMENT_OVERHEAD_BYTES: u64 = 64;

/// A fragment's (or message's) charged size: payload plus [`FRAGMENT_OVERHEAD_BYTES`].
pub(crate) fn charged(payload_bytes: usize) -> u64 {
    payload_bytes as u64 + FRAGMENT_OVERHEAD_BYTES
}

/// All sessions of one node, and the [`Protocol`] that drivers run for them.
///
/// As a [`Protocol`], it delivers a message that came in one fragment as a slice of the datagram
/// it came in, without copying (only reassembly copies, counted in
/// [`EndpointStats::payload_bytes_copied`]). It writes datagrams of at most
/// `min(buf.len(), max_datagram_bytes)` bytes. Data fragments are cut for the session's
/// `max_datagram_bytes`, so a driver should pass buffers at least that long: with shorter ones
/// every control frame still goes out, but a fragment that does not fit waits for a buffer that
/// holds it.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    sessions: Vec<Option<Session>>,
    /// Free slots, reused oldest first (handles carry a generation, so reuse is safe anyway).
    free: VecDeque<u32>,
    by_cid: HashMap<ConnectionId, SessionHandle>,
    by_hello: HashMap<(NodeId, ConnectionId), SessionHandle>,
    /// Per slot, how many sessions have used it: the generation of the next handle.
    generations: Vec<u32>,
    /// Hellos of sessions that ended recently, with when they may be forgotten.
    retired: VecDeque<((NodeId, ConnectionId), Instant)>,
    /// The keys in `retired`, for a lookup per Hello that does not scan the queue.
    retired_keys: HashSet<(NodeId, ConnectionId)>,
    /// The latest time the driver passed in.
    now: Instant,
    replies: VecDeque<(Locator, ConnectionId, CloseCode, &'static str)>,
    events: VecDeque<Event>,
    next_turn: usize,
    stats: EndpointStats,
    /// The frames of the datagram being handled; kept only for its allocation.
    frame_scratch: Vec<Frame<'static>>,
}

/// A snapshot of one session, for tools and tests.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// The peer, once known.
    pub peer: Option<NodeId>,
    /// Where the session sends now.
    pub path: Locator,
    /// Whether the handshake is complete and the session not closing.
    pub established: bool,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Counters.
    pub stats: SessionStats,
}

impl Endpoint {
    /// An endpoint with no sessions.
    ///
    /// # Errors
    /// [`ConfigError`] if the configuration is incoherent.
    pub fn new(config: EndpointConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            sessions: Vec::new(),
            free: VecDeque::new(),
            by_cid: HashMap::default(),
            by_hello: HashMap::default(),
            generations: Vec::new(),
            retired: VecDeque::new(),
            retired_keys: HashSet::default(),
            now: Instant::ZERO,
            replies: VecDeque::new(),
            events: VecDeque::new(),
            next_turn: 0,
            stats: EndpointStats::default(),
            frame_scratch: Vec::new(),
        })
    }

    /// This node's identity.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Opens a session to whoever listens at `remote`; the peer's identity arrives with
    /// [`Event::Connected`], and from then on messages may be offered (before it, `offer`
    /// reports `NotConnected`: the largest message depends on the peer's window).
    ///
    /// # Errors
    /// [`ConnectError::SessionLimit`] if the endpoint is full.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: Locator,
        rng: &mut Rng,
    ) -> Result<SessionHandle, ConnectError> {
        let cid = self.fresh_cid(rng);
        let handle = self.allocate().ok_or(ConnectError::SessionLimit)?;
        let config = &self.config.session;
        let node = self.config.node_id;
        let s = Session::new(handle, node, Role::Initiator, now, config, cid, remote).initiate();
        self.install(s);
        Ok(handle)
    }

    /// Queues `payload` as the next message on `stream`; returns its message number.
    ///
    /// # Errors
    /// [`OfferError`], which hands `payload` back: `BackPressured` when the stream's send buffer
    /// is full (retry after [`Event::Writable`]), and misuse otherwise.
    pub fn offer(
        &mut self,
        now: Instant,
        session: SessionHandle,
        stream: StreamId,
        payload: Bytes,
    ) -> Result<u64, OfferError<Bytes>> {
        self.offer_parts(now, session, stream, Bytes::new(), payload)
            .map_err(|e| match e {
                OfferError::BackPressured((_, b)) => OfferError::BackPressured(b),
                OfferError::NotConnected((_, b)) => OfferError::NotConnected(b),
                OfferError::Closed((_, b)) => OfferError::Closed(b),
                OfferError::MessageTooLarge((_, b)) => OfferError::MessageTooLarge(b),
                OfferError::StreamLimit((_, b)) => OfferError::StreamLimit(b),
            })
    }

    /// Queues the message `head` followed by `body` as the next message on `stream`, without
    /// joining the two: the receiver gets one message of their concatenation, exactly as if it
    /// had been offered whole ([`offer`](Self::offer) is the case of an empty head). Fragments
    /// are cut from the concatenation as for any message. A fragment's part of `body` is sent
    /// without a copy, as a gathered part of its datagram, when it is at least
    /// [`SessionConfig::gather_min_bytes`] long; its part of `head` is copied. So a small header
    /// in front of a large shared payload (a group frame's head, say) costs one copy of the
    /// header, not of the payload, and the same `body` can be offered to many sessions.
    ///
    /// # Errors
    /// As [`offer`](Self::offer); the error hands both parts back.
    pub fn offer_parts(
        &mut self,
        now: Instant,
        session: SessionHandle,
        stream: StreamId,
        head: Bytes,
        body: Bytes,
    ) -> Result<u64, OfferError<(Bytes, Bytes)>> {
        let Some(s) = slot(&mut self.sessions, session) else {
            return Err(OfferError::NotConnected((head, body)));
        };
        let config = &self.config.session;
        s.offer(now, config, stream, (head, body), &mut self.events)
    }

    /// The next message delivered in order on `stream`, if any. Reading frees receive window.
    pub fn recv(&mut self, session: SessionHandle, stream: StreamId) -> Option<Message> {
        let s = slot(&mut self.sessions, session)?;
        let m = s.recv(stream);
        if m.is_none() && s.is_finished() {
            self.remove(session);
        }
        m
    }

    /// Sets (or, with `None`, lifts) the pacing rate of a stream this side sends on. Returns
    /// false if the stream does not exist yet (offer on it first).
    pub fn set_rate(
        &mut self,
        now: Instant,
        session: SessionHandle,
        stream: StreamId,
        rate: Option<Rate>,
    ) -> bool {
        slot(&mut self.sessions, session).is_some_and(|s| s.set_rate(now, stream, rate))
    }

    /// Closes a session in order: no more offers; once every stream is acknowledged, a Close is
    /// sent and [`Event::Closed`] reported.
    pub fn close(&mut self, session: SessionHandle) {
        if let Some(s) = slot(&mut self.sessions, session) {
            s.close(CloseCode::Normal, "", true, &mut self.events);
        }
    }

    /// Closes a session now, with `code` and `reason`, dropping unsent data.
    pub fn abort(&mut self, session: SessionHandle, code: CloseCode, reason: &str) {
        if let Some(s) = slot(&mut self.sessions, session) {
            s.close(code, reason, false, &mut self.events);
        }
    }

    /// A snapshot of a session.
    pub fn session_info(&self, session: SessionHandle) -> Option<SessionInfo> {
        let s = self.get(session)?;
        Some(SessionInfo {
            peer: s.peer,
            path: s.path(),
            established: s.is_established(),
            rtt: s.rtt(),
            stats: s.stats,
        })
    }

    /// Bytes the receive half of a stream holds (bounded by the window).
    pub fn buffered_bytes(&self, session: SessionHandle, stream: StreamId) -> Option<u64> {
        self.get(session)?.buffered_bytes(stream)
    }

    /// Bytes the send half of a stream keeps for retransmission (bounded by the retransmit
    /// window).
    pub fn retained_bytes(&self, session: SessionHandle, stream: StreamId) -> Option<u64> {
        self.get(session)?.retained_bytes(stream)
    }

    /// Bytes offered on a stream and not yet sent (bounded by the send buffer).
    pub fn queued_bytes(&self, session: SessionHandle, stream: StreamId) -> Option<u64> {
        self.get(session)?.queued_bytes(stream)
    }

    /// Endpoint counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Handles of the live sessions, in slot order.
    pub fn sessions(&self) -> impl Iterator<Item = SessionHandle> + '_ {
        self.sessions.iter().flatten().map(|s| s.handle)
    }

    // ---- internals ------------------------------------------------------------------------

    fn fresh_cid(&self, rng: &mut Rng) -> ConnectionId {
        loop {
            let cid = ConnectionId::random(rng);
            if !self.by_cid.contains_key(&cid) {
                return cid;
            }
        }
    }

    fn get(&self, h: SessionHandle) -> Option<&Session> {
        self.sessions
            .get(h.slot() as usize)?
            .as_ref()
            .filter(|s| s.handle == h)
    }

    fn allocate(&mut self) -> Option<SessionHandle> {
        if let Some(i) = self.free.pop_front() {
            return Some(SessionHandle::new(i, self.generations[i as usize]));
        }
        if self.sessions.len() >= self.config.max_sessions {
            return None;
        }
        self.sessions.push(None);
        self.generations.push(0);
        Some(SessionHandle::new((self.sessions.len() - 1) as u32, 0))
    }

    fn install(&mut self, s: Session) {
        self.by_cid.insert(s.local_cid, s.handle);
        let i = s.handle.slot() as usize;
        self.sessions[i] = Some(s);
    }

    fn remove(&mut self, handle: SessionHandle) {
        let now = self.now;
        let i = handle.slot() as usize;
        if self.get(handle).is_none() {
            return;
        }
        let Some(s) = self.sessions[i].take() else {
            return;
        };
        self.by_cid.remove(&s.local_cid);
        if let Some(key) = s.hello_key() {
            self.by_hello.remove(&key);
            // A late or replayed copy of this Hello must not open a phantom session.
            if self.retired.len() == MAX_RETIRED_HELLOS {
                if let Some((old, _)) = self.retired.pop_front() {
                    self.retired_keys.remove(&old);
                }
            }
            let until = now + self.config.session.idle_timeout.saturating_mul(3);
            if self.retired_keys.insert(key) {
                self.retired.push_back((key, until));
            }
        }
        self.generations[i] = self.generations[i].wrapping_add(1);
        self.free.push_back(handle.slot());
    }

    /// Frees sessions that are over and fully read.
    fn reap_finished(&mut self) {
        for i in 0..self.sessions.len() {
            if let Some(h) = self.sessions[i]
                .as_ref()
                .filter(|s| s.is_finished())
                .map(|s| s.handle)
            {
                self.remove(h);
            }
        }
    }

    fn refuse(&mut self, to: Locator, cid: ConnectionId, code: CloseCode, reason: &'static str) {
        self.stats.hellos_refused += 1;
        if self.replies.len() >= MAX_PENDING_REPLIES {
            self.stats.replies_dropped += 1;
            return;
        }
        self.replies.push_back((to, cid, code, reason));
    }

    /// A datagram with no connection id: it must be a Hello.
    fn on_hello(&mut self, now: Instant, from: Locator, frames: &[Frame<'_>], rng: &mut Rng) {
        let hello = frames.iter().find_map(|f| match f {
            Frame::Handshake(h) if h.stage == HandshakeStage::Hello => Some(h.clone()),
            _ => None,
        });
        let Some(hello) = hello else {
            self.stats.datagrams_invalid += 1;
            self.stats.invalid_protocol += 1;
            return;
        };
        if hello.source_cid == ConnectionId::NONE {
            self.stats.datagrams_invalid += 1;
            self.stats.invalid_protocol += 1;
            return;
        }
        let key = (hello.node_id, hello.source_cid);
        if let Some(&h) = self.by_hello.get(&key) {
            if let Some(s) = slot(&mut self.sessions, h) {
                s.on_hello_again(from);
            }
            return;
        }
        while let Some(&(old, _)) = self.retired.front().filter(|&&(_, until)| until <= now) {
            self.retired.pop_front();
            self.retired_keys.remove(&old);
        }
        if self.retired_keys.contains(&key) {
            self.stats.hellos_stale += 1;
            return;
        }
        let common = hello
            .versions
            .iter()
            .copied()
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .max();
        if common.is_none() {
            self.refuse(
                from,
                hello.source_cid,
                CloseCode::VersionMismatch,
                "no common version",
            );
            return;
        }
        if !self.config.accept_incoming {
            self.refuse(
                from,
                hello.source_cid,
                CloseCode::Refused,
                "not accepting sessions",
            );
            return;
        }
        let cid = self.fresh_cid(rng);
        let Some(handle) = self.allocate() else {
            self.refuse(
                from,
                hello.source_cid,
                CloseCode::Refused,
                "session limit reached",
            );
            return;
        };
        let config = &self.config.session;
        let node = self.config.node_id;
        let s = Session::new(handle, node, Role::Responder, now, config, cid, from)
            .answer(config, &hello);
        self.by_hello
            .insert((hello.node_id, hello.source_cid), handle);
        self.install(s);
        self.stats.sessions_accepted += 1;
        self.events.push_back(Event::Connected {
            session: handle,
            peer: hello.node_id,
        });
    }
}

impl Protocol for Endpoint {
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng) {
        self.now = now;
        self.stats.datagrams_received += 1;
        let max = self.config.session.max_datagram_bytes;
        if datagram.len() > max {
            // No peer is told it may send more than this (the handshake advertises it).
            let len = datagram.len() as u64;
            let max = max as u64;
            return self.stats.count_invalid(DecodeError::Oversized {
                field: "datagram",
                len,
                max,
            });
        }
        let (header, frames) = match decode_datagram(datagram) {
            Ok(x) => x,
            Err(e) => return self.stats.count_invalid(e),
        };
        // Decode every frame first (once, into a reused list): a datagram with a malformed
        // frame has no effect at all.
        let mut list = recycle(std::mem::take(&mut self.frame_scratch));
        for f in frames {
            match f {
                Ok(f) => list.push(f),
                Err(e) => {
                    self.frame_scratch = recycle(list);
                    return self.stats.count_invalid(e);
                }
            }
        }
        if header.destination == ConnectionId::NONE {
            self.on_hello(now, from, &list, rng);
        } else if let Some(&handle) = self.by_cid.get(&header.destination) {
            let config = &self.config.session;
            if let Some(s) = slot(&mut self.sessions, handle) {
                let copied = s.stats.payload_bytes_copied;
                s.on_datagram(now, from, datagram, &list, config, rng, &mut self.events);
                self.stats.payload_bytes_copied += s.stats.payload_bytes_copied - copied;
                if s.is_finished() {
                    self.remove(handle);
                }
            }
        } else {
            self.stats.unknown_connection += 1;
        }
        self.frame_scratch = recycle(list);
    }

    fn handle_timeout(&mut self, now: Instant, _rng: &mut Rng) {
        self.now = now;
        let config = &self.config.session;
        for s in self.sessions.iter_mut().flatten() {
            if s.next_timeout().is_some_and(|t| now >= t) {
                s.on_timeout(now, config, &mut self.events);
            }
        }
        self.reap_finished();
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.now = now;
        if buf.len() < MIN_DATAGRAM_BYTES {
            return None;
        }
        if let Some((to, cid, code, reason)) = self.replies.pop_front() {
            let header = Header {
                version: VERSION_1,
                flags: 0,
                destination: cid,
            };
            let at = header
                .encode(buf)
                .expect("INVARIANT: buf holds MIN_DATAGRAM_BYTES");
            // Refusal reasons are short literals: header and frame fit MIN_DATAGRAM_BYTES.
            let n = Frame::Close(Close { code, reason })
                .encode(&mut buf[at..])
                .expect("INVARIANT: buf holds MIN_DATAGRAM_BYTES");
            return Some(Transmit {
                destination: to,
                len: at + n,
                gather: Gather::new(),
            });
        }
        let n = self.sessions.len();
        let config = &self.config.session;
        for k in 0..n {
            let i = (self.next_turn + k) % n;
            let Some(s) = self.sessions[i].as_mut() else {
                continue;
            };
            let (copied, gathered) = (
                s.stats.tx_payload_bytes_copied,
                s.stats.payload_bytes_gathered,
            );
            if let Some(w) = s.poll_transmit(now, config, buf, &mut self.events) {
                self.stats.tx_payload_bytes_copied += s.stats.tx_payload_bytes_copied - copied;
                self.stats.payload_bytes_gathered += s.stats.payload_bytes_gathered - gathered;
                self.next_turn = (i + 1) % n;
                return Some(Transmit {
                    destination: w.to,
                    len: w.len,
                    gather: w.gather,
                });
            }
        }
        self.reap_finished();
        None
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .flatten()
            .filter_map(Session::next_timeout)
            .min()
    }
}

/// Empties a frame list and hands back its allocation for frames of another lifetime (the
/// in-place `collect` reuses the buffer, as both element types have one layout).
fn recycle<'b>(mut v: Vec<Frame<'_>>) -> Vec<Frame<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the list is empty"))
        .collect()
}

/// The session behind `h`, if it is still the one `h` was issued for.
fn slot(sessions: &mut [Option<Session>], h: SessionHandle) -> Option<&mut Session> {
    sessions
        .get_mut(h.slot() as usize)?
        .as_mut()
        .filter(|s| s.handle == h)
}
