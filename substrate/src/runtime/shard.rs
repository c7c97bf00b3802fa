//! A shard: one thread's share of a node. It owns a driver, a socket, an [`Endpoint`] with its
//! sessions, and the rings to and from the application, and runs the duty cycle.
//!
//! # The duty cycle ([`Shard::do_work`])
//! 1. drain the command ring and move offered messages from publication rings into sessions;
//! 2. fire due protocol timers;
//! 3. drain the endpoint's transmits into driver slots and its events into the event ring;
//! 4. one driver poll: submit the batch of sends, reap completions and received datagrams (and
//!    wait there, if the idle strategy says so and nothing was ready);
//! 5. feed each datagram to the endpoint, then move delivered messages to subscription rings.
//!    What the datagrams call for (acknowledgements, repairs) is drained at step 3 of the next
//!    cycle, so that in invoker mode it leaves with the application's reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use bytes::Bytes;
use crossbeam_utils::CachePadded;

use super::clock::Clock;
use super::driver::{Driver, DriverStats, SocketId, Wait, Waker};
use super::idle::{IdleStep, Idler};
use super::{Delivery, NodeEvent, SessionId};
use crate::collections::{HashMap, HashSet};
use crate::id::{Locator, SessionHandle, StreamId};
use crate::proto::Protocol;
use crate::proto::rate::Rate;
use crate::proto::session::{Endpoint, EndpointStats, Event, OfferError, SessionStats};
use crate::rand::Rng;
use crate::sync::spsc::{Consumer, Producer};
use crate::time::{Duration, Instant};
use crate::wire::CloseCode;

/// Most commands taken from the ring per cycle.
const COMMANDS_PER_CYCLE: usize = 64;
/// Most messages moved from one publication into its session per cycle.
const OFFERS_PER_CYCLE: usize = 4096;
/// Most messages moved from one stream to its subscription per cycle.
const DELIVERIES_PER_CYCLE: usize = 4096;
/// Most datagrams drained from the endpoint per cycle.
const TRANSMITS_PER_CYCLE: usize = 256;
/// How often per-session counters are published to the application.
const SESSION_COUNTERS_EVERY: Duration = Duration::from_millis(10);
/// Most events held for an application that does not read them; more are dropped and counted.
const MAX_OVERFLOW_EVENTS: usize = 65_536;

/// What the application asks of a shard.
#[derive(Debug)]
pub(crate) enum Command {
    Connect {
        key: SessionId,
        to: SocketAddr,
    },
    Publish {
        key: SessionId,
        stream: StreamId,
        ring: Consumer<Bytes>,
        gauge: Arc<PubGauge>,
    },
    Subscribe {
        stream: StreamId,
        ring: Producer<Delivery>,
        alive: Arc<()>,
    },
    Close {
        key: SessionId,
    },
    Abort {
        key: SessionId,
        code: CloseCode,
    },
    SetRate {
        key: SessionId,
        stream: StreamId,
        rate: Option<Rate>,
    },
    Rebind {
        addr: SocketAddr,
    },
}

/// What a publication and its shard share: how many bytes the shard has taken from the ring.
#[derive(Debug, Default)]
pub(crate) struct PubGauge {
    pub(crate) taken: CachePadded<AtomicU64>,
    /// The session is gone: offers can never be sent.
    pub(crate) closed: AtomicBool,
}

/// Counters a shard publishes for the application (relaxed atomics; a snapshot, not a barrier).
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) cells: [AtomicU64; COUNTER_CELLS],
    pub(crate) sessions: std::sync::Mutex<HashMap<SessionId, SessionStats>>,
}

pub(crate) const COUNTER_CELLS: usize = 24;

/// What the application shares with a shard.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The shard is about to wait in its driver: wake it after pushing to a ring.
    pub(crate) parked: CachePadded<AtomicBool>,
    pub(crate) stop: AtomicBool,
    pub(crate) counters: SharedCounters,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            parked: CachePadded::new(AtomicBool::new(false)),
            stop: AtomicBool::new(false),
            counters: SharedCounters::default(),
        }
    }

    /// The application's half of the parking protocol, after it pushed to or popped from a
    /// ring: wakes the shard if it waits. The fence orders the ring's release store before the
    /// load of `parked` (without it, the store may still sit in a store buffer when the shard
    /// looks at the ring, and both sides miss each other).
    pub(crate) fn wake_if_parked(&self, waker: Option<&Waker>) {
        if let Some(w) = waker {
            fence(Ordering::SeqCst);
            if self.parked.load(Ordering::Relaxed) {
                w.wake();
            }
        }
    }
}

struct Pub {
    session: SessionHandle,
    stream: StreamId,
    ring: Consumer<Bytes>,
    gauge: Arc<PubGauge>,
    held: Option<Bytes>,
    taken: u64,
}

struct Sub {
    /// The subscription holds the other reference; when it is dropped, so is this.
    alive: Arc<()>,
    stream: StreamId,
    ring: Producer<Delivery>,
    /// A message taken from the session that did not fit the ring yet.
    held: Option<Delivery>,
}

/// One shard: driver, socket, sessions, rings.
pub(crate) struct Shard<D: Driver> {
    index: u16,
    driver: D,
    socket: SocketId,
    endpoint: Endpoint,
    clock: Clock,
    rng: Rng,
    idler: Idler,
    commands: Consumer<Command>,
    events: Producer<NodeEvent>,
    /// Events that did not fit the event ring (bounded by what the sessions report).
    overflow: std::collections::VecDeque<NodeEvent>,
    shared: Arc<Shared>,
    keys: HashMap<SessionHandle, SessionId>,
    handles: HashMap<SessionId, SessionHandle>,
    next_accept_key: u64,
    pubs: Vec<Pub>,
    subs: Vec<Sub>,
    /// Streams with messages to deliver.
    readable: HashSet<(SessionHandle, StreamId)>,
    readable_scratch: Vec<(SessionHandle, StreamId)>,
    /// Streams whose session refused an offer until `Writable`.
    blocked: HashSet<(SessionHandle, StreamId)>,
    next_timeout: Option<Instant>,
    counters_published: Instant,
    stats: ShardStats,
}

/// Counters of the shard itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ShardStats {
    pub(crate) cycles: u64,
    pub(crate) messages_offered: u64,
    pub(crate) messages_delivered: u64,
    pub(crate) offers_dropped: u64,
    pub(crate) events_overflowed: u64,
    pub(crate) events_dropped: u64,
    pub(crate) tx_slots_exhausted: u64,
}

impl<D: Driver> std::fmt::Debug for Shard<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("index", &self.index)
            .field("driver", &self.driver.kind())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What a shard starts with.
pub(crate) struct ShardParts<D> {
    pub(crate) index: u16,
    pub(crate) driver: D,
    pub(crate) socket: SocketId,
    pub(crate) endpoint: Endpoint,
    pub(crate) seed: u64,
    pub(crate) idler: Idler,
    pub(crate) commands: Consumer<Command>,
    pub(crate) events: Producer<NodeEvent>,
    pub(crate) shared: Arc<Shared>,
}

impl<D: Driver> Shard<D> {
    pub(crate) fn new(p: ShardParts<D>) -> Self {
        let clock = Clock::new();
        Self {
            index: p.index,
            driver: p.driver,
            socket: p.socket,
            endpoint: p.endpoint,
            clock,
            rng: Rng::with_seed(p.seed),
            idler: p.idler,
            commands: p.commands,
            events: p.events,
            overflow: std::collections::VecDeque::new(),
            shared: p.shared,
            keys: HashMap::default(),
            handles: HashMap::default(),
            next_accept_key: 0,
            pubs: Vec::new(),
            subs: Vec::new(),
            readable: HashSet::default(),
            readable_scratch: Vec::new(),
            blocked: HashSet::default(),
            next_timeout: None,
            counters_published: clock.now(),
            stats: ShardStats::default(),
        }
    }

    /// One duty cycle. With `may_wait`, the driver may wait as the idle strategy says when the
    /// previous cycle found nothing to do. Returns the work done (0 = idle).
    pub(crate) fn do_work(&mut self, may_wait: bool, last_work: usize) -> usize {
        self.stats.cycles += 1;
        let mut now = self.clock.now();
        let mut work = self.drain_commands(now);
        work += self.move_offers(now);
        if self.next_timeout.is_some_and(|t| now >= t) {
            self.endpoint.handle_timeout(now, &mut self.rng);
            work += 1;
        }
        work += self.drain_endpoint(now);

        let wait = if may_wait && work == 0 && last_work == 0 {
            let until = self.next_timeout.map(|t| t.saturating_duration_since(now));
            match self.idler.step(0, until) {
                IdleStep::Spin => Wait::No,
                IdleStep::Yield => {
                    std::thread::yield_now();
                    Wait::No
                }
                IdleStep::Wait(d) => self.prepare_to_park(d),
            }
        } else {
            self.idler.step(work, None);
            Wait::No
        };

        let endpoint = &mut self.endpoint;
        let rng = &mut self.rng;
        let clock = &self.clock;
        let mut received = 0usize;
        let polled = self.driver.poll(wait, |r| {
            // One clock read per batch: the datagrams of one poll arrived together.
            if received == 0 {
                now = clock.now();
            }
            received += 1;
            endpoint.handle_datagram(now, Locator::Udp(r.from), &r.datagram, rng);
        });
        if matches!(wait, Wait::For(_)) {
            self.shared.parked.store(false, Ordering::Relaxed);
        }
        match polled {
            Ok(n) => work += n,
            Err(e) => {
                self.emit(NodeEvent::DriverFailed {
                    shard: self.index,
                    error: e.to_string(),
                });
            }
        }
        if received > 0 {
            // Events only: transmits wait for the next cycle, after the application had a chance
            // to answer, so an acknowledgement rides on the reply instead of its own datagram.
            work += self.drain_events();
        }
        work += self.deliver();
        self.next_timeout = self.endpoint.poll_timeout();
        if work > 0
            || now.saturating_duration_since(self.counters_published) > SESSION_COUNTERS_EVERY
        {
            self.publish_counters(now);
        }
        work
    }

    /// Says the shard is about to wait, then checks nothing arrived meanwhile (no lost wake-up:
    /// the application pushes or pops, then reads `parked`; we set `parked`, then look at the
    /// rings; a SeqCst fence on each side between the two).
    fn prepare_to_park(&mut self, d: Duration) -> Wait {
        self.shared.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let blocked = &self.blocked;
        let pending = !self.commands.is_empty()
            // Offers to move (a backpressured stream waits for `Writable`, a datagram).
            || self
                .pubs
                .iter_mut()
                .any(|p| !blocked.contains(&(p.session, p.stream)) && !p.ring.is_empty())
            // Deliveries held for a full ring that the application has since read from.
            || self
                .subs
                .iter_mut()
                .any(|s| s.held.is_some() && s.ring.has_room())
            // Events held for a full event ring, likewise.
            || (!self.overflow.is_empty() && self.events.has_room());
        if pending {
            self.shared.parked.store(false, Ordering::Relaxed);
            Wait::No
        } else {
            Wait::For(d)
        }
    }

    fn emit(&mut self, e: NodeEvent) {
        if self.overflow.is_empty() {
            if let Err(full) = self.events.try_push(e) {
                self.stats.events_overflowed += 1;
                self.overflow.push_back(full.0);
            }
        } else if self.overflow.len() < MAX_OVERFLOW_EVENTS {
            self.stats.events_overflowed += 1;
            self.overflow.push_back(e);
        } else {
            // The application has not read events for a long time: drop, and count it.
            self.stats.events_dropped += 1;
        }
    }

    fn flush_overflow(&mut self) {
        while let Some(e) = self.overflow.pop_front() {
            if let Err(full) = self.events.try_push(e) {
                self.overflow.push_front(full.0);
                break;
            }
        }
    }

    fn drain_commands(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while n < COMMANDS_PER_CYCLE {
            let Some(c) = self.commands.try_pop() else {
                break;
            };
            n += 1;
            self.command(now, c);
        }
        n
    }

    fn command(&mut self, now: Instant, c: Command) {
        match c {
            Command::Connect { key, to } => {
                match self.endpoint.connect(now, Locator::Udp(to), &mut self.rng) {
                    Ok(h) => {
                        self.keys.insert(h, key);
                        self.handles.insert(key, h);
                    }
                    Err(e) => self.emit(NodeEvent::ConnectFailed {
                        session: key,
                        error: e.to_string(),
                    }),
                }
            }
            Command::Publish {
                key,
                stream,
                ring,
                gauge,
            } => match self.handles.get(&key) {
                Some(&session) => self.pubs.push(Pub {
                    session,
                    stream,
                    ring,
                    gauge,
                    held: None,
                    taken: 0,
                }),
                None => self.emit(NodeEvent::Closed {
                    session: key,
                    cause: "no such session".into(),
                }),
            },
            Command::Subscribe {
                stream,
                ring,
                alive,
            } => {
                // Messages that arrived before anyone subscribed are waiting in their sessions.
                let sessions: Vec<_> = self.endpoint.sessions().collect();
                self.readable
                    .extend(sessions.into_iter().map(|s| (s, stream)));
                self.subs.push(Sub {
                    alive,
                    stream,
                    ring,
                    held: None,
                });
            }
            Command::Close { key } => {
                if let Some(&h) = self.handles.get(&key) {
                    self.endpoint.close(h);
                }
            }
            Command::Abort { key, code } => {
                if let Some(&h) = self.handles.get(&key) {
                    self.endpoint.abort(h, code, "aborted by the application");
                }
            }
            Command::SetRate { key, stream, rate } => {
                if let Some(&h) = self.handles.get(&key) {
                    self.endpoint.set_rate(now, h, stream, rate);
                }
            }
            Command::Rebind { addr } => match self.driver.bind(addr) {
                Ok(socket) => {
                    let old = std::mem::replace(&mut self.socket, socket);
                    self.driver.close(old);
                    let locator = self.driver.local_addr(socket).unwrap_or(addr);
                    self.emit(NodeEvent::LocatorChanged {
                        shard: self.index,
                        locator,
                    });
                }
                Err(e) => self.emit(NodeEvent::DriverFailed {
                    shard: self.index,
                    error: e.to_string(),
                }),
            },
        }
    }

    /// Moves messages from publication rings into their sessions while the sessions take them.
    fn move_offers(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        let mut i = 0;
        while i < self.pubs.len() {
            let p = &mut self.pubs[i];
            if self.blocked.contains(&(p.session, p.stream)) {
                i += 1;
                continue;
            }
            let mut n = 0;
            let mut gone = false;
            while n < OFFERS_PER_CYCLE {
                let Some(m) = p.held.take().or_else(|| p.ring.try_pop()) else {
                    break;
                };
                let len = m.len() as u64;
                match self.endpoint.offer(now, p.session, p.stream, m) {
                    Ok(_) => {
                        n += 1;
                        p.taken += len;
                    }
                    Err(OfferError::BackPressured(m)) => {
                        p.held = Some(m);
                        self.blocked.insert((p.session, p.stream));
                        break;
                    }
                    Err(OfferError::NotConnected(m)) if connecting(&self.endpoint, p.session) => {
                        p.held = Some(m);
                        break;
                    }
                    Err(e) => {
                        // Closed, too large or over the stream limit: these messages can never
                        // be sent. Count them and say so once.
                        p.taken += len;
                        self.stats.offers_dropped += 1;
                        let key = self.keys.get(&p.session).copied();
                        let stream = p.stream;
                        let reason = e.to_string();
                        gone = matches!(e, OfferError::Closed(_) | OfferError::NotConnected(_));
                        if let Some(key) = key {
                            self.emit(NodeEvent::OfferRejected {
                                session: key,
                                stream,
                                reason,
                            });
                        }
                        break;
                    }
                }
            }
            let p = &mut self.pubs[i];
            if gone {
                // Nothing left in this publication can be sent: say so to its `offer`, and
                // count what is thrown away.
                p.gauge.closed.store(true, Ordering::Release);
                while let Some(m) = p.ring.try_pop() {
                    p.taken += m.len() as u64;
                    self.stats.offers_dropped += 1;
                }
            }
            if n > 0 || gone {
                p.gauge.taken.store(p.taken, Ordering::Release);
            }
            moved += n;
            self.stats.messages_offered += n as u64;
            // A publication the application dropped, fully drained, or whose session is gone.
            if gone || (Arc::strong_count(&p.gauge) == 1 && p.held.is_none() && p.ring.is_empty()) {
                self.pubs.swap_remove(i);
            } else {
                i += 1;
            }
        }
        moved
    }

    /// Drains transmits into driver slots (gathered parts ride along, uncopied) and events to
    /// the application.
    fn drain_endpoint(&mut self, now: Instant) -> usize {
        let mut n = 0;
        let copied = self.endpoint.stats().tx_payload_bytes_copied;
        while n < TRANSMITS_PER_CYCLE {
            let Some((slot, buf)) = self.driver.tx_acquire() else {
                self.stats.tx_slots_exhausted += 1;
                break;
            };
            match self.endpoint.poll_transmit(now, buf) {
                Some(t) => {
                    let Locator::Udp(to) = t.destination;
                    self.driver
                        .send_gather(self.socket, to, slot, t.len, t.gather);
                    n += 1;
                }
                None => {
                    self.driver.tx_abandon(slot);
                    break;
                }
            }
        }
        let copied = self.endpoint.stats().tx_payload_bytes_copied - copied;
        if copied > 0 {
            super::buf::COPIES
                .tx_payload_bytes
                .fetch_add(copied, Ordering::Relaxed);
        }
        n + self.drain_events()
    }

    fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while let Some(e) = self.endpoint.poll_event() {
            n += 1;
            self.on_event(e);
        }
        self.flush_overflow();
        n
    }

    fn key_of(&mut self, h: SessionHandle) -> SessionId {
        if let Some(&k) = self.keys.get(&h) {
            return k;
        }
        let k = SessionId::accepted(self.index, self.next_accept_key);
        self.next_accept_key += 1;
        self.keys.insert(h, k);
        self.handles.insert(k, h);
        k
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected { session, peer } => {
                let session = self.key_of(session);
                self.emit(NodeEvent::Connected { session, peer });
            }
            Event::PathMigrated { session, from, to } => {
                let session = self.key_of(session);
                self.emit(NodeEvent::PathMigrated { session, from, to });
            }
            Event::Readable { session, stream } => {
                self.readable.insert((session, stream));
            }
            Event::MessagesLost {
                session,
                stream,
                range,
            } => {
                let session = self.key_of(session);
                self.emit(NodeEvent::MessagesLost {
                    session,
                    stream,
                    range,
                });
            }
            Event::Backpressured { session, stream } => {
                let session = self.key_of(session);
                self.emit(NodeEvent::Backpressured { session, stream });
            }
            Event::Writable { session, stream } => {
                self.blocked.remove(&(session, stream));
                let session = self.key_of(session);
                self.emit(NodeEvent::Writable { session, stream });
            }
            Event::PeerTimedOut { session } => {
                let session = self.key_of(session);
                self.emit(NodeEvent::PeerTimedOut { session });
            }
            Event::Closed { session, cause } => {
                let key = self.key_of(session);
                self.blocked.retain(|&(s, _)| s != session);
                // The handle stays mapped until the session's last messages are read.
                self.emit(NodeEvent::Closed {
                    session: key,
                    cause: format!("{cause:?}"),
                });
            }
        }
    }

    /// Moves delivered messages from sessions to subscription rings. Every subscription to a
    /// stream gets every message (a `Bytes` clone each, no copy); a subscription whose ring is
    /// full holds one message and stops the stream for all until it has room.
    fn deliver(&mut self) -> usize {
        if self.readable.is_empty() {
            return 0;
        }
        // Subscriptions the application dropped; their undelivered messages go with them.
        self.subs.retain(|s| Arc::strong_count(&s.alive) > 1);
        let mut moved = 0;
        self.readable_scratch.clear();
        self.readable_scratch.extend(self.readable.iter().copied());
        for k in 0..self.readable_scratch.len() {
            let (session, stream) = self.readable_scratch[k];
            if !self.subs.iter().any(|s| s.stream == stream) {
                continue;
            }
            let Some(&key) = self.keys.get(&session) else {
                continue;
            };
            let mut drained = false;
            let mut n = 0;
            let subscribers = self.subs.iter().filter(|s| s.stream == stream).count();
            let mut any_held = self
                .subs
                .iter()
                .any(|s| s.stream == stream && s.held.is_some());
            while n < DELIVERIES_PER_CYCLE {
                // Messages held for a full ring go first, in order.
                if any_held {
                    let mut stuck = false;
                    for sub in self.subs.iter_mut().filter(|s| s.stream == stream) {
                        if let Some(d) = sub.held.take() {
                            if let Err(full) = sub.ring.try_push(d) {
                                sub.held = Some(full.0);
                                stuck = true;
                            }
                        }
                    }
                    if stuck {
                        break;
                    }
                    any_held = false;
                }
                let Some(m) = self.endpoint.recv(session, stream) else {
                    drained = true;
                    break;
                };
                let mut d = Some(Delivery {
                    session: key,
                    stream,
                    number: m.number,
                    payload: m.payload,
                });
                // Each subscriber but the last gets a clone (a reference count); the last, the
                // message itself.
                let mut left = subscribers;
                for sub in self.subs.iter_mut().filter(|s| s.stream == stream) {
                    left -= 1;
                    let item = if left == 0 { d.take() } else { d.clone() };
                    let Some(item) = item else { break };
                    if let Err(full) = sub.ring.try_push(item) {
                        sub.held = Some(full.0);
                        any_held = true;
                    }
                }
                n += 1;
            }
            moved += n;
            if drained {
                self.readable.remove(&(session, stream));
                if self.endpoint.session_info(session).is_none() {
                    // Fully read and gone: forget its key.
                    if let Some(k) = self.keys.remove(&session) {
                        self.handles.remove(&k);
                    }
                }
            }
        }
        self.stats.messages_delivered += moved as u64;
        moved
    }

    fn publish_counters(&mut self, now: Instant) {
        let d = self.driver.stats();
        let e = *self.endpoint.stats();
        let s = self.stats;
        let cells = counter_values(&d, &e, &s);
        for (cell, v) in self.shared.counters.cells.iter().zip(cells) {
            cell.store(v, Ordering::Relaxed);
        }
        if now.saturating_duration_since(self.counters_published) >= SESSION_COUNTERS_EVERY {
            self.counters_published = now;
            // Forget sessions the endpoint has freed (publisher-only sessions never pass through
            // `deliver`, which forgets the others).
            let endpoint = &self.endpoint;
            let gone: Vec<_> = self
                .keys
                .keys()
                .copied()
                .filter(|&h| endpoint.session_info(h).is_none())
                .collect();
            for h in gone {
                if let Some(k) = self.keys.remove(&h) {
                    self.handles.remove(&k);
                }
                self.readable.retain(|&(s, _)| s != h);
            }
            // try_lock: the shard never waits for a reader.
            if let Ok(mut map) = self.shared.counters.sessions.try_lock() {
                map.clear();
                for h in self.endpoint.sessions() {
                    if let (Some(&k), Some(info)) =
                        (self.keys.get(&h), self.endpoint.session_info(h))
                    {
                        map.insert(k, info.stats);
                    }
                }
            }
        }
    }

    /// Whether the application asked the shard to stop.
    pub(crate) fn should_stop(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// The bound address of the shard's socket.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.driver.local_addr(self.socket)
    }
}

/// Whether a session is still handshaking (offers wait rather than fail).
fn connecting(endpoint: &Endpoint, h: SessionHandle) -> bool {
    endpoint
        .session_info(h)
        .is_some_and(|i| !i.established && i.peer.is_none())
}

/// The counter cells, in the order `Counters::from_cells` (node.rs) reads them.
pub(crate) fn counter_values(
    d: &DriverStats,
    e: &EndpointStats,
    s: &ShardStats,
) -> [u64; COUNTER_CELLS] {
    [
        d.datagrams_sent,
        d.bytes_sent,
        d.datagrams_received,
        d.bytes_received,
        d.zero_copy_sends,
        d.send_errors,
        d.recv_errors,
        d.truncated,
        d.rx_pool_exhausted,
        d.syscalls,
        e.datagrams_invalid,
        e.unknown_connection,
        e.sessions_accepted,
        e.hellos_refused,
        e.payload_bytes_copied,
        s.cycles,
        s.messages_offered,
        s.messages_delivered,
        s.offers_dropped,
        s.events_overflowed,
        s.tx_slots_exhausted,
        s.events_dropped,
        e.tx_payload_bytes_copied,
        e.payload_bytes_gathered,
    ]
}
