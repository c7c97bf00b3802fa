//! One session with one peer: handshake, path, heartbeats, idle timeout, close, and the streams.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::FRAGMENT_OVERHEAD_BYTES;
use super::config::{MIN_DATAGRAM_BYTES, SessionConfig};
use super::event::{CloseCause, Event, Message, OfferError};
use super::recv::{Borrowed, Received, RecvStream};
use super::rtt::RttEstimator;
use super::send::{
    FragmentRef, SendStream, data_body_len, data_frame_len, min_later_fragment_bytes,
};
use super::stats::SessionStats;
use crate::id::{ConnectionId, Locator, NodeId, SessionHandle, StreamId};
use crate::proto::Gather;
use crate::proto::rate::Rate;
use crate::rand::Rng;
use crate::time::{Duration, Instant, duration_ns};
use crate::wire::{
    Ack, Close, CloseCode, Data, Frame, FrameKind, HEADER_LEN, Handshake, HandshakeStage, Header,
    Heartbeat, Nak, RangeList, SUPPORTED_VERSIONS, VERSION_1, varint_len,
};

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum State {
    /// Initiator waiting for Accept.
    Handshaking,
    Established,
    /// Close sent; answering stray datagrams with it again until the deadline.
    Draining {
        until: Instant,
    },
    Closed,
}

#[derive(Debug)]
struct PathValidation {
    target: Locator,
    token: u64,
    deadline: Instant,
    attempts: u32,
    due: bool,
}

#[derive(Debug)]
struct Closing {
    code: CloseCode,
    reason: String,
    /// Graceful close: wait until every stream is flushed before sending the Close.
    flush: bool,
    frame_due: bool,
    /// Where the Close goes: the path, or where the latest stray datagram came from.
    to: Option<Locator>,
    /// Close frames sent so far, and when to send the next unprompted one.
    sends: u32,
    resend_at: Instant,
}

/// Close frames a draining session sends unprompted (it also answers every stray datagram).
const CLOSE_SENDS: u32 = 3;

/// The id of a session's first heartbeat, which the initiator sends on receiving the Accept.
const FIRST_HEARTBEAT_ID: u64 = 1;

/// Candidate locators validated at once. More than one, so that junk injected from a made-up
/// address cannot hold up the validation of the peer's real new one; the oldest gives way.
const MAX_PATH_VALIDATIONS: usize = 4;

/// Attempts at path validation before the candidate locator is given up.
const PATH_CHALLENGE_ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) handle: SessionHandle,
    local_node: NodeId,
    role: Role,
    pub(crate) state: State,
    pub(crate) local_cid: ConnectionId,
    peer_cid: ConnectionId,
    pub(crate) peer: Option<NodeId>,
    path: Locator,
    validations: Vec<PathValidation>,
    path_response: Option<(Locator, u64)>,
    rtt: RttEstimator,
    send: BTreeMap<StreamId, SendStream>,
    recv: BTreeMap<StreamId, RecvStream>,
    next_stream_turn: StreamId,
    started: Instant,
    last_received: Instant,
    heartbeat_deadline: Instant,
    heartbeat_due: bool,
    heartbeat_reply: Option<u64>,
    heartbeat_outstanding: Option<(u64, Instant)>,
    next_heartbeat_id: u64,
    handshake_due: bool,
    handshake_deadline: Option<Instant>,
    /// The peer has shown it holds this session: the initiator got the Accept, or the responder
    /// got a datagram on its own connection id. Until then only handshake frames are sent.
    confirmed: bool,
    /// Streams that already had a NAK acted on in the datagram being processed.
    nak_streams_seen: Vec<StreamId>,
    /// Whether the datagram being processed advanced a stream (see `on_datagram`).
    datagram_fresh: bool,
    /// When a datagram from the current path last advanced a stream or answered a heartbeat.
    heard_on_path: Instant,
    /// Whether the datagram being processed answered our outstanding heartbeat.
    datagram_answers: bool,
    /// When the only handshake frame so far went out. The answer to it (the Accept, or the
    /// initiator's first datagram after the Accept) gives the first RTT sample; none if it had to
    /// be sent again (Karn).
    handshake_sent_at: Option<Instant>,
    handshakes_sent: u32,
    handshake_backoff: u32,
    closing: Option<Closing>,
    peer_window_bytes: u64,
    max_datagram_bytes: usize,
    idle_timeout: Duration,
    pub(crate) stats: SessionStats,
    nak_scratch: Vec<core::ops::Range<u64>>,
}

impl Session {
    /// Turns a fresh session into an initiator that opens with a Hello.
    pub(crate) fn initiate(mut self) -> Self {
        self.state = State::Handshaking;
        self.handshake_due = true;
        self
    }

    /// Turns a fresh session into the responder to `hello`; the caller has checked the version.
    pub(crate) fn answer(mut self, config: &SessionConfig, hello: &Handshake<'_>) -> Self {
        self.peer_cid = hello.source_cid;
        self.peer = Some(hello.node_id);
        self.apply_peer_params(config, hello);
        self.state = State::Established;
        self.handshake_due = true;
        self
    }

    /// A session with no peer yet; [`initiate`](Self::initiate) or [`answer`](Self::answer)
    /// makes it one side of a handshake.
    pub(crate) fn new(
        handle: SessionHandle,
        local_node: NodeId,
        role: Role,
        now: Instant,
        config: &SessionConfig,
        local_cid: ConnectionId,
        path: Locator,
    ) -> Self {
        Self {
            handle,
            local_node,
            role,
            state: State::Established,
            local_cid,
            peer_cid: ConnectionId::NONE,
            peer: None,
            path,
            validations: Vec::new(),
            path_response: None,
            rtt: RttEstimator::new(config.initial_rtt),
            send: BTreeMap::new(),
            recv: BTreeMap::new(),
            next_stream_turn: StreamId(0),
            started: now,
            last_received: now,
            heartbeat_deadline: now + config.heartbeat_interval,
            heartbeat_due: false,
            heartbeat_reply: None,
            heartbeat_outstanding: None,
            next_heartbeat_id: FIRST_HEARTBEAT_ID,
            handshake_due: false,
            handshake_deadline: None,
            confirmed: false,
            nak_streams_seen: Vec::new(),
            datagram_fresh: false,
            heard_on_path: now,
            datagram_answers: false,
            handshake_sent_at: None,
            handshakes_sent: 0,
            handshake_backoff: 0,
            closing: None,
            peer_window_bytes: config.window_bytes,
            max_datagram_bytes: config.max_datagram_bytes,
            idle_timeout: config.idle_timeout,
            stats: SessionStats::default(),
            nak_scratch: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> Locator {
        self.path
    }

    pub(crate) fn rtt(&self) -> Duration {
        self.rtt.smoothed()
    }

    pub(crate) fn is_established(&self) -> bool {
        self.state == State::Established && (self.role == Role::Responder || self.peer.is_some())
    }

    /// Whether the session is over and holds nothing the application has yet to read.
    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Closed && self.recv.values().all(|r| !r.has_ready())
    }

    /// Charged bytes a stream may keep for retransmission. By default as much as may be in
    /// flight, which is capped locally too: the peer's advertised window alone must not set this
    /// side's memory.
    fn retransmit_window(&self, config: &SessionConfig) -> u64 {
        config
            .retransmit_window_bytes
            .unwrap_or(self.peer_window_bytes.min(config.window_bytes))
    }

    /// The cap on charged bytes in flight per stream: in reliable mode the retransmit window
    /// (so nothing is ever evicted); in bounded mode none (eviction bounds memory).
    fn flight_cap(&self, config: &SessionConfig) -> Option<u64> {
        match config.retransmit_window_bytes {
            Some(_) => None,
            None => Some(self.retransmit_window(config)),
        }
    }

    /// The largest message `offer` takes: its fragments, charged, must fit the peer's window
    /// (else it could never be reassembled), the send buffer and the retransmit window.
    fn max_message_bytes(&self, config: &SessionConfig) -> u64 {
        let bound = self
            .peer_window_bytes
            .min(config.send_buffer_bytes)
            .min(self.retransmit_window(config));
        // A message takes at most 2 + len / half fragments (the first may be cut short to fill a
        // datagram; later ones carry at least `half`), each charged the overhead.
        let half = min_later_fragment_bytes(self.max_datagram_bytes) as u64;
        let per_byte = half + FRAGMENT_OVERHEAD_BYTES;
        bound.saturating_sub(2 * FRAGMENT_OVERHEAD_BYTES) * half / per_byte
    }

    fn burst_bytes(&self) -> u64 {
        2 * self.max_datagram_bytes as u64
    }

    fn apply_peer_params(&mut self, config: &SessionConfig, h: &Handshake<'_>) {
        if let Some(w) = h.window_bytes {
            self.peer_window_bytes = w.max(MIN_DATAGRAM_BYTES as u64);
        }
        if let Some(m) = h.max_datagram_bytes {
            let m = usize::try_from(m)
                .unwrap_or(usize::MAX)
                .max(MIN_DATAGRAM_BYTES);
            self.max_datagram_bytes = config.max_datagram_bytes.min(m);
        }
        if let Some(ms) = h.idle_timeout_ms.filter(|&ms| ms > 0) {
            self.idle_timeout = self.idle_timeout.min(Duration::from_millis(ms));
        }
        let (cap, max_datagram) = (self.flight_cap(config), self.max_datagram_bytes);
        for s in self.send.values_mut() {
            s.set_limit(self.peer_window_bytes);
            s.configure(cap, max_datagram);
        }
    }

    // ---- application calls ------------------------------------------------------------------

    /// Queues the message `head` followed by `body` (see `Endpoint::offer_parts`).
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        stream: StreamId,
        payload: (Bytes, Bytes),
        events: &mut VecDeque<Event>,
    ) -> Result<u64, OfferError<(Bytes, Bytes)>> {
        if self.closing.is_some() || matches!(self.state, State::Draining { .. } | State::Closed) {
            return Err(OfferError::Closed(payload));
        }
        if self.peer_cid == ConnectionId::NONE {
            // Until the peer's Accept names its window, no message size is known to be safe.
            return Err(OfferError::NotConnected(payload));
        }
        if (payload.0.len() + payload.1.len()) as u64 > self.max_message_bytes(config) {
            return Err(OfferError::MessageTooLarge(payload));
        }
        if !self.send.contains_key(&stream) {
            if self.send.len() >= config.max_streams as usize {
                return Err(OfferError::StreamLimit(payload));
            }
            let mut s = SendStream::new(
                stream,
                now,
                config.send_buffer_bytes,
                self.peer_window_bytes,
                config.default_rate,
                self.burst_bytes(),
            );
            s.configure(self.flight_cap(config), self.max_datagram_bytes);
            self.send.insert(stream, s);
        }
        let handle = self.handle;
        let s = self
            .send
            .get_mut(&stream)
            .expect("INVARIANT: inserted above");
        match s.offer(payload.0, payload.1) {
            Ok(n) => {
                self.stats.messages_offered += 1;
                Ok(n)
            }
            Err(payload) => {
                self.stats.offers_backpressured += 1;
                if !s.backpressured {
                    s.backpressured = true;
                    events.push_back(Event::Backpressured {
                        session: handle,
                        stream,
                    });
                }
                Err(OfferError::BackPressured(payload))
            }
        }
    }

    pub(crate) fn recv(&mut self, stream: StreamId) -> Option<Message> {
        let m = self.recv.get_mut(&stream)?.take()?;
        self.stats.messages_delivered += 1;
        Some(m)
    }

    pub(crate) fn set_rate(&mut self, now: Instant, stream: StreamId, rate: Option<Rate>) -> bool {
        let burst = self.burst_bytes();
        let Some(s) = self.send.get_mut(&stream) else {
            return false;
        };
        s.set_rate(now, rate, burst);
        true
    }

    pub(crate) fn buffered_bytes(&self, stream: StreamId) -> Option<u64> {
        self.recv.get(&stream).map(RecvStream::buffered_bytes)
    }

    pub(crate) fn retained_bytes(&self, stream: StreamId) -> Option<u64> {
        self.send.get(&stream).map(SendStream::retained_bytes)
    }

    pub(crate) fn queued_bytes(&self, stream: StreamId) -> Option<u64> {
        self.send.get(&stream).map(SendStream::queued_bytes)
    }

    /// Starts a close: graceful (`flush`) waits for every stream to be acknowledged first.
    pub(crate) fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        flush: bool,
        events: &mut VecDeque<Event>,
    ) {
        if matches!(self.state, State::Draining { .. } | State::Closed) {
            return;
        }
        // A pending graceful close may wait forever on a peer that stopped reading: an abort
        // replaces it. Anything else leaves the close already under way alone.
        if self.closing.as_ref().is_some_and(|c| !c.flush || flush) {
            return;
        }
        if self.state == State::Handshaking {
            // The peer holds nothing worth telling (a Close would go to connection id 0).
            self.state = State::Closed;
            let cause = CloseCause::Local(code);
            events.push_back(Event::Closed {
                session: self.handle,
                cause,
            });
            return;
        }
        let mut reason = reason.to_owned();
        // The Close must fit one datagram, with room for its header and fields.
        let fits = self.max_datagram_bytes - HEADER_LEN - 8;
        truncate_utf8(&mut reason, crate::wire::MAX_REASON_BYTES.min(fits));
        // Moving now would be moot.
        self.validations.clear();
        self.closing = Some(Closing {
            code,
            reason,
            flush,
            frame_due: !flush,
            to: None,
            sends: 0,
            resend_at: Instant::MAX,
        });
        self.check_flushed();
    }

    fn check_flushed(&mut self) {
        let flushed = self.send.values().all(SendStream::is_flushed);
        if let Some(c) = &mut self.closing {
            if c.flush && flushed {
                c.flush = false;
                c.frame_due = true;
            }
        }
    }

    // ---- inputs -------------------------------------------------------------------------------

    /// A repeated Hello: the Accept was lost. Answer where the Hello came from (the initiator
    /// may have moved meanwhile). Not a sign of life: replayed Hellos must not keep a session
    /// that never heard from its peer alive, and once the peer is confirmed they are stale.
    pub(crate) fn on_hello_again(&mut self, from: Locator) {
        if self.role == Role::Responder && self.state == State::Established && !self.confirmed {
            self.path = from;
            self.handshake_due = true;
        }
    }

    /// The (peer, peer connection id) of the Hello this responder session answered.
    pub(crate) fn hello_key(&self) -> Option<(NodeId, ConnectionId)> {
        (self.role == Role::Responder).then_some((self.peer?, self.peer_cid))
    }

    /// A datagram for this session whose frames all decoded; `frames` borrow from `datagram`,
    /// which received payloads are kept as zero-copy slices of.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_datagram(
        &mut self,
        now: Instant,
        from: Locator,
        datagram: &Bytes,
        frames: &[Frame<'_>],
        config: &SessionConfig,
        rng: &mut Rng,
        events: &mut VecDeque<Event>,
    ) {
        match self.state {
            State::Closed => return,
            State::Draining { .. } => {
                // The peer has not heard the Close: say it again, to where it speaks from.
                if let Some(c) = &mut self.closing {
                    c.frame_due = true;
                    c.to = Some(from);
                }
                return;
            }
            State::Handshaking | State::Established => {}
        }
        if self.role == Role::Responder && !self.confirmed {
            // The first datagram on our id comes from whoever got the Accept: that is where the
            // initiator is (a replayed Hello may have pointed the path elsewhere).
            self.confirmed = true;
            self.path = from;
            self.heard_on_path = now;
            // Accept to the initiator's immediate heartbeat (id 1) is a round trip; anything
            // later (that heartbeat lost) would inflate it. Probe for a clean sample as well.
            let first_heartbeat = frames.iter().any(|f| {
                matches!(
                    f,
                    Frame::Heartbeat(Heartbeat {
                        id: FIRST_HEARTBEAT_ID,
                        reply: false
                    })
                )
            });
            if let Some(sent) = self.handshake_sent_at.take().filter(|_| first_heartbeat) {
                self.rtt.on_sample(now - sent);
            }
            self.heartbeat_due = true;
        }
        self.nak_streams_seen.clear();
        self.datagram_fresh = false;
        self.datagram_answers = false;
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        self.last_received = now;
        for frame in frames {
            // Before the Accept, only handshake frames count: the peer's data waits for repair,
            // so the application hears `Connected` before anything else of this session.
            if self.state == State::Handshaking && !matches!(frame, Frame::Handshake(_)) {
                continue;
            }
            self.on_frame(now, from, datagram, frame.clone(), config, events);
            if self.state == State::Closed {
                return;
            }
        }
        // A datagram from elsewhere starts a move only if it advanced a stream, or if the
        // current path has gone quiet for a PTO (a peer that moved while its acks were lost
        // sends only repairs and heartbeats). A replayed or reordered stale datagram from an
        // old address, while the path is alive, must not make the session flap back to it.
        // (QUIC lets only the newest packet migrate; without packet numbers this is the proxy.)
        // The path counts as alive only on a datagram that advanced a stream or answered our
        // heartbeat: replays of old datagrams must not hold a session on an address its peer
        // has left.
        if from == self.path {
            if self.datagram_fresh || self.datagram_answers {
                self.heard_on_path = now;
            }
        } else if self.state == State::Established
            && (self.datagram_fresh || now - self.heard_on_path >= self.rtt.pto())
        {
            self.maybe_validate(now, from, rng);
        }
        self.check_flushed();
    }

    fn on_frame(
        &mut self,
        now: Instant,
        from: Locator,
        datagram: &Bytes,
        frame: Frame<'_>,
        config: &SessionConfig,
        events: &mut VecDeque<Event>,
    ) {
        let handle = self.handle;
        match frame {
            Frame::Handshake(h) => self.on_handshake(now, config, &h, events),
            Frame::Data(d) => self.on_data(now, config, datagram, &d, events),
            Frame::Ack(a) => {
                let before = self.send.get(&a.stream).map(SendStream::acked);
                self.datagram_fresh |= before.is_some_and(|b| a.next_sequence > b);
                let ok = self.send.get_mut(&a.stream).is_some_and(|s| {
                    s.on_ack(now, a.next_sequence, a.limit_bytes, &mut self.rtt)
                        .is_ok()
                });
                if !ok {
                    self.stats.frames_invalid += 1;
                }
            }
            Frame::Nak(n) => {
                self.stats.naks_received += 1;
                // One NAK per stream per datagram: a NAK costs a pass over the retained
                // fragments, and a peer must not multiply that by packing a datagram with them.
                if self.nak_streams_seen.contains(&n.stream) {
                    self.stats.naks_ignored += 1;
                    return;
                }
                self.nak_streams_seen.push(n.stream);
                let stale = self.rtt.smoothed();
                let ok = self.send.get_mut(&n.stream).is_some_and(|s| {
                    s.on_nak(now, stale, n.received_end, n.ranges.iter())
                        .is_ok()
                });
                if !ok {
                    self.stats.frames_invalid += 1;
                }
            }
            Frame::Gap(g) => {
                let delay = self.rtt.nak_delay(config.nak_delay_min);
                let Some(r) = self.recv_stream(config, g.stream, events) else {
                    return;
                };
                let copied = r.bytes_copied;
                let gap = r.on_gap(now, &g, delay);
                self.stats.payload_bytes_copied += r.bytes_copied - copied;
                match gap {
                    Some((lost, readable)) => {
                        self.datagram_fresh = true;
                        let stream = g.stream;
                        for range in lost {
                            self.stats.messages_lost += range.end - range.start;
                            events.push_back(Event::MessagesLost {
                                session: handle,
                                stream,
                                range,
                            });
                        }
                        if readable {
                            events.push_back(Event::Readable {
                                session: handle,
                                stream,
                            });
                        }
                    }
                    None => self.stats.frames_invalid += 1,
                }
            }
            Frame::Heartbeat(Heartbeat { id, reply: false }) => self.heartbeat_reply = Some(id),
            Frame::Heartbeat(Heartbeat { id, reply: true }) => {
                if let Some((want, sent)) = self.heartbeat_outstanding {
                    if want == id {
                        self.rtt.on_sample(now - sent);
                        self.heartbeat_outstanding = None;
                        self.datagram_answers = true;
                    }
                }
            }
            Frame::PathChallenge(token) => self.path_response = Some((from, token)),
            Frame::PathResponse(token) => {
                if let Some(i) = self.validations.iter().position(|v| v.token == token) {
                    let v = self.validations.swap_remove(i);
                    // Validations of other candidates are moot once the peer is found.
                    self.validations.clear();
                    let old = core::mem::replace(&mut self.path, v.target);
                    self.heard_on_path = now;
                    events.push_back(Event::PathMigrated {
                        session: handle,
                        from: old,
                        to: v.target,
                    });
                }
            }
            Frame::Close(c) => {
                let reason = c.reason.to_owned();
                events.push_back(Event::Closed {
                    session: handle,
                    cause: CloseCause::Peer {
                        code: c.code,
                        reason,
                    },
                });
                self.state = State::Closed;
            }
            Frame::Unknown { .. } => self.stats.frames_unknown += 1,
        }
    }

    fn on_handshake(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        h: &Handshake<'_>,
        events: &mut VecDeque<Event>,
    ) {
        if self.role != Role::Initiator || h.stage != HandshakeStage::Accept {
            // A stray or repeated handshake frame: harmless, ignored.
            return;
        }
        if self.state != State::Handshaking {
            return;
        }
        let version_ok = h.versions.len() == 1 && SUPPORTED_VERSIONS.contains(&h.versions[0]);
        if !version_ok || h.source_cid == ConnectionId::NONE {
            // Anyone who saw the Hello can forge an Accept: count it and wait for the real one.
            self.stats.frames_invalid += 1;
            return;
        }
        self.peer_cid = h.source_cid;
        self.peer = Some(h.node_id);
        self.apply_peer_params(config, h);
        if let Some(sent) = self.handshake_sent_at.take() {
            self.rtt.on_sample(now - sent);
        }
        self.state = State::Established;
        self.confirmed = true;
        self.handshake_due = false;
        self.handshake_deadline = None;
        // Answer at once, so the responder's first RTT sample (Accept to here) is a round trip.
        self.heartbeat_due = true;
        events.push_back(Event::Connected {
            session: self.handle,
            peer: h.node_id,
        });
    }

    fn on_data(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        datagram: &Bytes,
        d: &Data<'_>,
        events: &mut VecDeque<Event>,
    ) {
        let handle = self.handle;
        let delay = self.rtt.nak_delay(config.nak_delay_min);
        let Some(r) = self.recv_stream(config, d.stream, events) else {
            return;
        };
        let payload = Borrowed::new(datagram, d.payload);
        let copied = r.bytes_copied;
        let received = r.on_data(now, d.sequence, d.flags, d.message, payload, delay);
        self.stats.payload_bytes_copied += r.bytes_copied - copied;
        match received {
            Received::Accepted { readable } => {
                self.datagram_fresh = true;
                if readable {
                    events.push_back(Event::Readable {
                        session: handle,
                        stream: d.stream,
                    });
                }
            }
            Received::Duplicate => self.stats.fragments_duplicate += 1,
            Received::OverWindow => self.stats.fragments_over_window += 1,
            Received::Invalid => self.stats.frames_invalid += 1,
        }
    }

    /// The receive half of `stream`, created on first sight within the stream limit; past the
    /// limit the session is closed, since the peer broke the agreed bound.
    fn recv_stream(
        &mut self,
        config: &SessionConfig,
        stream: StreamId,
        events: &mut VecDeque<Event>,
    ) -> Option<&mut RecvStream> {
        if !self.recv.contains_key(&stream) {
            if self.recv.len() >= config.max_streams as usize {
                self.stats.frames_invalid += 1;
                self.close(CloseCode::StreamLimit, "too many streams", false, events);
                return None;
            }
            let r = RecvStream::new(stream, config.window_bytes);
            self.recv.insert(stream, r);
        }
        self.recv.get_mut(&stream)
    }

    /// A valid datagram came from a locator other than the current path: probe it before moving
    /// there (RFC 9000 §9: never send to an unvalidated address on a peer's word alone).
    fn maybe_validate(&mut self, now: Instant, from: Locator, rng: &mut Rng) {
        if self.validations.iter().any(|v| v.target == from) {
            return;
        }
        if self.validations.len() == MAX_PATH_VALIDATIONS {
            self.validations.remove(0);
            self.stats.path_validations_failed += 1;
        }
        self.validations.push(PathValidation {
            target: from,
            token: rng.next_u64(),
            deadline: now + self.rtt.pto().saturating_mul(2),
            attempts: 1,
            due: true,
        });
        self.stats.path_challenges_sent += 1;
    }

    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        events: &mut VecDeque<Event>,
    ) {
        let handle = self.handle;
        match self.state {
            State::Closed => return,
            State::Draining { until } => {
                if now >= until {
                    self.state = State::Closed;
                } else if let Some(c) = self.closing.as_mut() {
                    if now >= c.resend_at && c.sends < CLOSE_SENDS {
                        c.frame_due = true;
                        c.resend_at = Instant::MAX;
                    }
                }
                return;
            }
            State::Handshaking | State::Established => {}
        }
        // A session whose peer never confirmed it lives only the idle timeout from its start.
        let idle_since = if self.confirmed {
            self.last_received
        } else {
            self.started
        };
        if now >= idle_since + self.idle_timeout {
            events.push_back(Event::PeerTimedOut { session: handle });
            events.push_back(Event::Closed {
                session: handle,
                cause: CloseCause::TimedOut,
            });
            self.state = State::Closed;
            return;
        }
        if self.state == State::Handshaking {
            match self.handshake_deadline {
                Some(d) if now >= d => self.handshake_due = true,
                _ => {}
            }
            return;
        }
        if now >= self.heartbeat_deadline {
            self.heartbeat_due = true;
            self.heartbeat_deadline = now + config.heartbeat_interval;
            // Periodic status: repairs a lost window update, so a blocked sender always resumes.
            for r in self.recv.values_mut() {
                r.ack_pending = true;
            }
        }
        let retry = now + self.rtt.pto().saturating_mul(2);
        let before = self.validations.len();
        self.validations.retain_mut(|v| {
            if now < v.deadline {
                return true;
            }
            v.attempts += 1;
            v.due = true;
            v.deadline = retry;
            v.attempts <= PATH_CHALLENGE_ATTEMPTS
        });
        self.stats.path_validations_failed += (before - self.validations.len()) as u64;
        let (pto, max) = (self.rtt.pto(), config.probe_interval_max);
        for r in self.recv.values_mut() {
            if r.nak_deadline().is_some_and(|d| now >= d) {
                r.on_nak_timer(now, pto, max);
            }
        }
        for s in self.send.values_mut() {
            s.on_timer(now, pto, max);
        }
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let mut t = match self.state {
            State::Closed => return None,
            State::Draining { until } => {
                let resend = self.closing.as_ref().filter(|c| c.sends < CLOSE_SENDS);
                return Some(resend.map_or(until, |c| c.resend_at.min(until)));
            }
            State::Handshaking => {
                let idle = self.started + self.idle_timeout;
                return Some(self.handshake_deadline.map_or(idle, |d| d.min(idle)));
            }
            State::Established if self.confirmed => self.last_received + self.idle_timeout,
            State::Established => self.started + self.idle_timeout,
        };
        t = t.min(self.heartbeat_deadline);
        for v in &self.validations {
            t = t.min(v.deadline);
        }
        for r in self.recv.values() {
            if let Some(d) = r.nak_deadline() {
                t = t.min(d);
            }
        }
        for s in self.send.values() {
            if let Some(d) = s.deadline() {
                t = t.min(d);
            }
        }
        Some(t)
    }

    // ---- output -------------------------------------------------------------------------------

    /// Writes the next datagram at the start of `buf`, at most `max_datagram_bytes` of it
    /// counting the gathered parts; returns where it goes, the length written and the parts (the
    /// body parts of gathered data fragments, sent from where they are). `buf` holds at least
    /// [`MIN_DATAGRAM_BYTES`].
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        buf: &mut [u8],
        events: &mut VecDeque<Event>,
    ) -> Option<Written> {
        if self.state == State::Closed {
            return None;
        }
        let mut w = Writer::new(buf, self.max_datagram_bytes, self.peer_cid);
        if let Some((to, token)) = self.path_response.take() {
            w.put(&Frame::PathResponse(token));
            return Some(self.sent(w, to));
        }
        if let Some(v) = self.validations.iter_mut().find(|v| v.due) {
            v.due = false;
            let (target, token) = (v.target, v.token);
            w.put(&Frame::PathChallenge(token));
            return Some(self.sent(w, target));
        }
        let pto = self.rtt.pto();
        if let Some(c) = self.closing.as_mut().filter(|c| c.frame_due) {
            c.frame_due = false;
            let code = c.code;
            let to = c.to.unwrap_or(self.path);
            // A stray datagram's source gets the code alone: a spoofed one must not draw a
            // reply many times its size.
            let reason = if to == self.path {
                c.reason.as_str()
            } else {
                ""
            };
            // The reason was cut to fit `max_datagram_bytes`; a driver's buffer may be shorter.
            // The frame takes at most 8 bytes besides the reason.
            let reason = utf8_prefix(reason, w.space().saturating_sub(8));
            w.put(&Frame::Close(Close { code, reason }));
            c.sends += 1;
            c.resend_at = now + pto.saturating_mul(1 << c.sends.min(16));
            if !matches!(self.state, State::Draining { .. }) {
                // Drain long enough to hear an idle peer's next heartbeat and answer it.
                let until = now
                    + pto
                        .saturating_mul(3)
                        .max(config.heartbeat_interval + pto * 2);
                self.state = State::Draining { until };
                let cause = CloseCause::Local(code);
                events.push_back(Event::Closed {
                    session: self.handle,
                    cause,
                });
            }
            return Some(self.sent(w, to));
        }
        if matches!(self.state, State::Draining { .. }) {
            return None;
        }
        if self.handshake_due {
            self.handshake_due = false;
            let stage = match self.role {
                Role::Initiator => {
                    w.destination(ConnectionId::NONE);
                    self.handshakes_sent += 1;
                    self.handshake_sent_at = (self.handshakes_sent == 1).then_some(now);
                    let wait = config
                        .initial_rtt
                        .saturating_mul(1 << self.handshake_backoff.min(16));
                    self.handshake_deadline = Some(now + wait.min(config.probe_interval_max));
                    self.handshake_backoff += 1;
                    HandshakeStage::Hello
                }
                Role::Responder => {
                    self.handshakes_sent += 1;
                    self.handshake_sent_at = (self.handshakes_sent == 1).then_some(now);
                    HandshakeStage::Accept
                }
            };
            let versions: &[u8] = match stage {
                HandshakeStage::Hello => SUPPORTED_VERSIONS,
                HandshakeStage::Accept => &[VERSION_1],
            };
            w.put(&Frame::Handshake(Handshake {
                stage,
                node_id: self.local_node,
                source_cid: self.local_cid,
                versions,
                features: 0,
                window_bytes: Some(config.window_bytes),
                max_datagram_bytes: Some(config.max_datagram_bytes as u64),
                idle_timeout_ms: Some(duration_ns(config.idle_timeout) / 1_000_000),
            }));
            return Some(self.sent(w, self.path));
        }
        // Until the peer is confirmed (a datagram on this session's id), a responder sends only
        // its Accept: a forged Hello must not turn it into a traffic source.
        if self.state != State::Established
            || self.peer_cid == ConnectionId::NONE
            || !self.confirmed
        {
            return None;
        }
        self.write_control(now, config, &mut w);
        self.write_data(now, config, &mut w, events);
        if w.is_empty() {
            return None;
        }
        Some(self.sent(w, self.path))
    }

    fn write_control(&mut self, now: Instant, config: &SessionConfig, w: &mut Writer<'_>) {
        let reorder_delay = self.rtt.nak_delay(config.nak_delay_min);
        if let Some(id) = self.heartbeat_reply {
            if w.put(&Frame::Heartbeat(Heartbeat { id, reply: true })) {
                self.heartbeat_reply = None;
                self.stats.heartbeats_sent += 1;
            }
        }
        if self.heartbeat_due {
            let id = self.next_heartbeat_id;
            if w.put(&Frame::Heartbeat(Heartbeat { id, reply: false })) {
                self.heartbeat_due = false;
                self.next_heartbeat_id += 1;
                self.heartbeat_outstanding = Some((id, now));
                self.stats.heartbeats_sent += 1;
            }
        }
        for r in self.recv.values_mut() {
            if r.ack_pending {
                let ack = Ack {
                    stream: r.id,
                    next_sequence: r.next_expected(),
                    limit_bytes: r.limit(),
                };
                if w.put(&Frame::Ack(ack)) {
                    r.on_ack_sent();
                }
            }
            if r.nak_due {
                // Room for the frame's kind, length, stream, received_end and count.
                // Too little room for even one range: the NAK stays due for the next datagram.
                let Some(budget) = w.space().checked_sub(24).filter(|b| *b >= 16) else {
                    continue;
                };
                let received_end = r.missing(now, reorder_delay, budget, &mut self.nak_scratch);
                if self.nak_scratch.is_empty() {
                    r.nak_due = false;
                    continue;
                }
                let ranges = RangeList::Slice(&self.nak_scratch);
                if w.put(&Frame::Nak(Nak {
                    stream: r.id,
                    received_end,
                    ranges,
                })) {
                    r.nak_due = false;
                    self.stats.naks_sent += 1;
                }
            }
        }
    }

    fn write_data(
        &mut self,
        now: Instant,
        config: &SessionConfig,
        w: &mut Writer<'_>,
        events: &mut VecDeque<Event>,
    ) {
        let turn = DataTurn {
            now,
            window: self.retransmit_window(config),
            pto: self.rtt.pto(),
            session: self.handle,
            gather_min_bytes: config.gather_min_bytes,
        };
        // Round robin: start after the stream that sent first last time, wrap around.
        let first = self.next_stream_turn;
        let mut served = None;
        let mut serve = |s: &mut SendStream, stats: &mut SessionStats| {
            if turn.fill(s, w, stats, events) && served.is_none() {
                served = Some(s.id);
            }
            w.space() >= MIN_USEFUL_SPACE
        };
        let mut room = true;
        for s in self.send.range_mut(first..).map(|(_, s)| s) {
            room = serve(s, &mut self.stats);
            if !room {
                break;
            }
        }
        if room {
            for s in self.send.range_mut(..first).map(|(_, s)| s) {
                if !serve(s, &mut self.stats) {
                    break;
                }
            }
        }
        if let Some(id) = served {
            self.next_stream_turn = StreamId(id.0.wrapping_add(1));
        }
    }

    fn sent(&mut self, w: Writer<'_>, to: Locator) -> Written {
        let (len, gather) = w.finish();
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += (len + gather.bytes()) as u64;
        Written { to, len, gather }
    }
}

/// A datagram a session wrote: where it goes, the bytes written at the start of the buffer,
/// and the bytes it carries uncopied (see `Transmit::gather`).
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) to: Locator,
    pub(crate) len: usize,
    pub(crate) gather: Gather,
}

/// Below this much room a datagram is considered full.
const MIN_USEFUL_SPACE: usize = 16;

/// What one datagram's worth of stream data needs to know about its session.
struct DataTurn {
    now: Instant,
    window: u64,
    pto: Duration,
    session: SessionHandle,
    /// Body parts at least this long are gathered, not copied.
    gather_min_bytes: usize,
}

impl DataTurn {
    /// Writes one stream's gap notice, repairs and new data into `w`, as pacing allows.
    /// Returns whether any data went in.
    fn fill(
        &self,
        s: &mut SendStream,
        w: &mut Writer<'_>,
        stats: &mut SessionStats,
        events: &mut VecDeque<Event>,
    ) -> bool {
        if s.wants_gap() {
            if let Some(g) = s.take_gap() {
                if !w.put(&Frame::Gap(g)) {
                    s.restore_gap();
                    return false;
                }
                stats.gaps_sent += 1;
            }
        }
        let mut sent_any = false;
        while s.pacer_ready(self.now) {
            let stream = s.id;
            let (space, datagram) = (w.space(), w.capacity());
            let Some(f) = s.next_fragment(self.now, space, datagram) else {
                break;
            };
            let retransmission = f.retransmission;
            let len = if f.body.len() >= self.gather_min_bytes && w.can_gather() {
                // The body part goes from where it is; only the frame's fields and head are
                // written.
                stats.tx_payload_bytes_copied += f.head.len() as u64;
                stats.payload_bytes_gathered += f.body.len() as u64;
                w.put_gathered(stream, &f)
            } else {
                stats.tx_payload_bytes_copied += f.len() as u64;
                w.put_data(stream, &f)
            };
            debug_assert!(len > 0, "next_fragment sized the frame to fit");
            s.charge(len);
            sent_any = true;
            if retransmission {
                stats.fragments_retransmitted += 1;
            } else {
                stats.fragments_sent += 1;
            }
        }
        if sent_any {
            s.on_sent(self.now, self.pto);
            stats.fragments_evicted += s.evict(self.window);
        }
        if s.backpressured && s.has_room() {
            s.backpressured = false;
            events.push_back(Event::Writable {
                session: self.session,
                stream: s.id,
            });
        }
        sent_any
    }
}

/// The data frame of fragment `f` of `stream`, with `payload` as its payload.
fn data<'a>(stream: StreamId, f: &FragmentRef<'_>, payload: &'a [u8]) -> Data<'a> {
    Data {
        stream,
        sequence: f.sequence,
        flags: f.flags,
        message: f.message,
        payload,
    }
}

/// Writes `v` (at most [`MAX_VARINT`](crate::wire::MAX_VARINT)) at the start of `out` as a
/// minimal QUIC varint (RFC 9000 §16), `varint_len(v)` bytes: the top two bits of the first
/// byte give the length.
fn write_varint(v: u64, out: &mut [u8]) {
    let len = varint_len(v);
    let tagged = v | (u64::from(len.trailing_zeros()) << (8 * len - 2));
    out[..len].copy_from_slice(&tagged.to_be_bytes()[8 - len..]);
}

fn truncate_utf8(s: &mut String, max: usize) {
    let end = utf8_prefix(s, max).len();
    s.truncate(end);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn utf8_prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Fills one datagram at the start of the caller's buffer: header first, then frames while they
/// fit. A gathered data frame's body part is not written: it is recorded as a part of the
/// datagram's [`Gather`], placed after the bytes written so far, and its room is kept in the
/// datagram's limit. Nothing is cleared or zeroed: every byte up to `pos` is written before it
/// is read, and the caller reads only the first `finish()` bytes.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    /// Body parts sent from where they are, placed among the written bytes.
    gather: Gather,
}

impl<'a> Writer<'a> {
    /// A writer over the first `max` bytes of `buf` (all of it, if shorter), which must hold
    /// at least [`MIN_DATAGRAM_BYTES`].
    fn new(buf: &'a mut [u8], max: usize, destination: ConnectionId) -> Self {
        debug_assert!(
            buf.len() >= MIN_DATAGRAM_BYTES,
            "the endpoint checks the buffer"
        );
        let len = buf.len().min(max);
        let mut w = Self {
            buf: &mut buf[..len],
            pos: HEADER_LEN,
            gather: Gather::new(),
        };
        w.destination(destination);
        w
    }

    fn destination(&mut self, destination: ConnectionId) {
        let header = Header {
            version: VERSION_1,
            flags: 0,
            destination,
        };
        header
            .encode(&mut self.buf[..])
            .expect("INVARIANT: buffer is at least MIN_DATAGRAM_BYTES");
    }

    /// Room for frames in the datagram when it holds none.
    fn capacity(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// Where the written bytes must end: the datagram's limit, less the gathered bytes.
    fn end(&self) -> usize {
        self.buf.len() - self.gather.bytes()
    }

    /// Room left for frames, gathered parts counted.
    fn space(&self) -> usize {
        self.end() - self.pos
    }

    /// Whether another body part can be gathered rather than copied.
    fn can_gather(&self) -> bool {
        !self.gather.is_full()
    }

    fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    /// Appends `frame` if it fits; returns whether it did.
    fn put(&mut self, frame: &Frame<'_>) -> bool {
        self.put_len(frame) > 0
    }

    /// Appends `frame` if it fits; returns its length, or 0 if it did not fit.
    fn put_len(&mut self, frame: &Frame<'_>) -> usize {
        let end = self.end();
        match frame.encode(&mut self.buf[self.pos..end]) {
            Ok(n) => {
                self.pos += n;
                n
            }
            Err(_) => 0,
        }
    }

    /// Appends data fragment `f` of `stream`, copying its payload; returns the frame's length,
    /// or 0 if it did not fit.
    fn put_data(&mut self, stream: StreamId, f: &FragmentRef<'_>) -> usize {
        if f.head.is_empty() || f.body.is_empty() {
            // One part: encode straight from it.
            let payload = if f.head.is_empty() {
                &f.body[..]
            } else {
                f.head
            };
            return self.put_len(&Frame::Data(data(stream, f, payload)));
        }
        // Two parts: the prefix and the head part, then the body part after them.
        let n = self.put_fields(stream, f);
        if n > 0 {
            self.buf[self.pos..self.pos + f.body.len()].copy_from_slice(f.body);
            self.pos += f.body.len();
        }
        n
    }

    /// Appends data fragment `f` of `stream` with its body part gathered: the frame's kind,
    /// length and fixed fields and the head part are written, the body part is kept as a view
    /// placed right after them. Returns the frame's whole length (what it takes on the wire), or
    /// 0 if it did not fit or the gather is full.
    fn put_gathered(&mut self, stream: StreamId, f: &FragmentRef<'_>) -> usize {
        if !self.can_gather() {
            return 0;
        }
        let n = self.put_fields(stream, f);
        if n > 0 {
            self.gather.push(self.pos, f.body.clone());
        }
        n
    }

    /// Writes data fragment `f`'s frame up to its body part (kind, length for the whole payload,
    /// fixed fields, head part) if the whole frame fits; returns the whole frame's length, or 0.
    /// The caller puts the body part right after.
    fn put_fields(&mut self, stream: StreamId, f: &FragmentRef<'_>) -> usize {
        let (sequence, message) = (f.sequence, f.message);
        let whole = data_frame_len(stream, sequence, message, f.len());
        if whole > self.space() {
            return 0;
        }
        // Encode the frame with the head part alone as its payload, placed so that its fields
        // land where the whole frame's go, then rewrite its kind and length for the whole
        // payload: the wire encoder stays the one source of the layout of the fields.
        let body = data_body_len(stream, sequence, message, f.len());
        let short_body = data_body_len(stream, sequence, message, f.head.len());
        let shift = varint_len(body as u64) - varint_len(short_body as u64);
        let (at, end) = (self.pos, self.end());
        let Ok(n) = Frame::Data(data(stream, f, f.head)).encode(&mut self.buf[at + shift..end])
        else {
            return 0;
        };
        self.buf[at] = FrameKind::Data as u8;
        write_varint(body as u64, &mut self.buf[at + 1..]);
        self.pos = at + shift + n;
        debug_assert_eq!(self.pos + f.body.len(), at + whole);
        whole
    }

    /// The datagram: its first this many bytes are in the buffer, and the gathered parts go
    /// among them.
    fn finish(self) -> (usize, Gather) {
        (self.pos, self.gather)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DataFlags;

    /// Writes fragment `f` into a fresh datagram, gathered or copied; returns the frame's bytes
    /// as they go on the wire (the parts spliced in), the length reported, and whether it
    /// gathered.
    fn written(gather: bool, stream: StreamId, f: &FragmentRef<'_>) -> (Vec<u8>, usize, bool) {
        let mut buf = vec![0xa5u8; crate::wire::MAX_DATAGRAM_BYTES];
        let mut w = Writer::new(&mut buf, usize::MAX, ConnectionId::NONE);
        let n = if gather {
            w.put_gathered(stream, f)
        } else {
            w.put_data(stream, f)
        };
        let (len, parts) = w.finish();
        let out = parts.to_vec(&buf[..len]);
        (out[HEADER_LEN..].to_vec(), n, !parts.is_empty())
    }

    #[test]
    fn split_data_frames_are_the_frames_the_wire_encoder_writes() {
        // Values on both sides of every varint length, and payloads whose body length crosses
        // one (63/64 and 16,383/16,384 bytes) while the head part alone does not.
        let streams = [0u32, 63, 64, 16_384];
        let numbers = [0u64, 63, 64, 16_383, 16_384, 1 << 30];
        let heads = [0usize, 1, 5, 40];
        let bodies = [1usize, 30, 50, 60, 16_330, 16_340, 16_360, 16_400, 40_000];
        let all: Vec<u8> = (0..41_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for &stream in &streams {
            for &number in &numbers {
                for &h in &heads {
                    for &b in &bodies {
                        let head = &all[..h];
                        let body = Bytes::copy_from_slice(&all[h..h + b]);
                        let f = FragmentRef {
                            sequence: number,
                            flags: DataFlags::WHOLE,
                            message: number / 3,
                            head,
                            body: &body,
                            retransmission: false,
                        };
                        let stream = StreamId(stream);
                        let expected = {
                            let frame = Frame::Data(data(stream, &f, &all[..h + b]));
                            let mut v = vec![0u8; frame.encoded_len()];
                            frame.encode(&mut v).expect("encodes");
                            v
                        };
                        let (gathered, n, tail) = written(true, stream, &f);
                        assert!(tail, "put_gathered keeps the body as a part");
                        assert_eq!(n, expected.len());
                        assert!(
                            gathered == expected,
                            "stream {stream:?} number {number} {h}+{b}"
                        );
                        let (copied, n, tail) = written(false, stream, &f);
                        assert!(!tail, "put_data copies");
                        assert_eq!(n, expected.len());
                        assert!(
                            copied == expected,
                            "stream {stream:?} number {number} {h}+{b}"
                        );
                    }
                }
            }
        }
    }

    /// Frames go on after gathered ones, up to the datagram's limit with the gathered bytes
    /// counted, and the datagram decodes to the frames in the order they were put.
    #[test]
    fn frames_follow_gathered_frames_in_order_within_the_limit() {
        let mut buf = vec![0u8; 1_472];
        let mut w = Writer::new(&mut buf, usize::MAX, ConnectionId::NONE);
        let bodies: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 300])).collect();
        let fragment = |i: usize| FragmentRef {
            sequence: i as u64,
            flags: DataFlags::WHOLE,
            message: i as u64,
            head: b"hd",
            body: &bodies[i],
            retransmission: false,
        };
        let first = w.put_gathered(StreamId(1), &fragment(0));
        assert!(first > 0);
        assert_eq!(
            w.space(),
            1_472 - HEADER_LEN - first,
            "the part's room is kept"
        );
        assert!(w.put(&Frame::PathChallenge(7)));
        assert!(w.put_data(StreamId(1), &fragment(1)) > 0);
        assert!(w.put_gathered(StreamId(1), &fragment(2)) > 0);
        assert!(w.put(&Frame::PathChallenge(8)));
        // Fill the rest with challenges; the last must not overrun the limit.
        while w.put(&Frame::PathChallenge(9)) {}
        assert!(w.space() < 9);
        let (len, parts) = w.finish();
        assert_eq!(parts.parts(), 2);
        assert_eq!(parts.bytes(), 600);
        let datagram = parts.to_vec(&buf[..len]);
        assert!(datagram.len() <= 1_472);
        let (_, frames) = crate::wire::decode_datagram(&datagram).expect("valid");
        let frames: Vec<_> = frames.map(|f| f.expect("valid frame")).collect();
        let payload = |f: &Frame<'_>| match f {
            Frame::Data(d) => Some(d.payload.to_vec()),
            _ => None,
        };
        let mut expected = b"hd".to_vec();
        expected.extend_from_slice(&[0; 300]);
        assert_eq!(payload(&frames[0]), Some(expected));
        assert!(matches!(frames[1], Frame::PathChallenge(7)));
        assert_eq!(payload(&frames[2]).map(|p| p[2]), Some(1));
        assert_eq!(payload(&frames[3]).map(|p| (p.len(), p[2])), Some((302, 2)));
        assert!(matches!(frames[4], Frame::PathChallenge(8)));
        assert!(
            frames[5..]
                .iter()
                .all(|f| matches!(f, Frame::PathChallenge(9)))
        );
    }

    /// A datagram gathers at most `Gather::MAX_PARTS` bodies; past that they are refused by
    /// `put_gathered` and copied by `put_data`.
    #[test]
    fn a_full_gather_refuses_more_parts() {
        let mut buf = vec![0u8; crate::wire::MAX_DATAGRAM_BYTES];
        let mut w = Writer::new(&mut buf, usize::MAX, ConnectionId::NONE);
        let body = Bytes::from(vec![5u8; 64]);
        let f = FragmentRef {
            sequence: 0,
            flags: DataFlags::WHOLE,
            message: 0,
            head: b"",
            body: &body,
            retransmission: false,
        };
        for _ in 0..Gather::MAX_PARTS {
            assert!(w.put_gathered(StreamId(1), &f) > 0);
        }
        assert!(!w.can_gather());
        assert_eq!(w.put_gathered(StreamId(1), &f), 0);
        assert!(w.put_data(StreamId(1), &f) > 0);
        let (len, parts) = w.finish();
        assert_eq!(parts.parts(), Gather::MAX_PARTS);
        let datagram = parts.to_vec(&buf[..len]);
        let (_, frames) = crate::wire::decode_datagram(&datagram).expect("valid");
        assert_eq!(frames.count(), Gather::MAX_PARTS + 1);
    }
}
