//! The public API of the engine: a [`Node`] with its shards, sessions to peers, publications and
//! subscriptions, and the events that report what happened to them.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::buf::COPIES;
use super::clock::os_seed;
use super::driver::fault::{FaultConfig, FaultDriver};
use super::driver::poll::PollDriver;
use super::driver::{Driver, DriverConfig, DriverError, DriverKind, Waker, select};
use super::host::ShardWake;
use super::idle::{IdleStrategy, Idler};
use super::runner::{self, Run, Runner};
use super::shard::{COUNTER_CELLS, Command, PubGauge, Shard, ShardParts, Shared};
use crate::id::{Locator, NodeId, StreamId};
use crate::proto::rate::Rate;
use crate::proto::session::{ConfigError, Endpoint, EndpointConfig, SessionConfig, SessionStats};
use crate::sync::spsc::{self, Consumer, Producer};
use crate::wire::CloseCode;

/// A session of a node, named independently of any address. Stable for the session's life; the
/// shard that owns the session is part of it.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SessionId(u64);

impl SessionId {
    const SHARD_SHIFT: u32 = 48;
    const LOCAL: u64 = 1 << 47;

    pub(crate) fn connected(shard: u16, n: u64) -> Self {
        Self((u64::from(shard) << Self::SHARD_SHIFT) | Self::LOCAL | (n & (Self::LOCAL - 1)))
    }

    pub(crate) fn accepted(shard: u16, n: u64) -> Self {
        Self((u64::from(shard) << Self::SHARD_SHIFT) | (n & (Self::LOCAL - 1)))
    }

    /// The shard that owns the session.
    pub fn shard(self) -> usize {
        (self.0 >> Self::SHARD_SHIFT) as usize
    }

    /// The raw value (for logs and tools).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A message delivered to a subscription: a zero-copy view of the datagram it arrived in.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Delivery {
    /// The session it arrived on.
    pub session: SessionId,
    /// Its stream.
    pub stream: StreamId,
    /// Its number on the stream (from 0; lost messages leave holes reported as events).
    pub number: u64,
    /// Its bytes. Holding them holds the receive buffer they arrived in.
    pub payload: Bytes,
}

/// What happened to a node's sessions, reported in order per shard. Failures are events.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session's handshake completed (or a peer's session was accepted).
    Connected {
        /// The session.
        session: SessionId,
        /// Who the peer is.
        peer: NodeId,
    },
    /// `connect` could not open a session.
    ConnectFailed {
        /// The session that was asked for.
        session: SessionId,
        /// Why.
        error: String,
    },
    /// The peer's new locator passed path validation; the session sends there now.
    PathMigrated {
        /// The session.
        session: SessionId,
        /// The old locator.
        from: Locator,
        /// The new one.
        to: Locator,
    },
    /// Messages of a stream were lost for good (the sender no longer held them).
    MessagesLost {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// The message numbers (half-open).
        range: Range<u64>,
    },
    /// A stream's send buffer is full; offers wait in the publication until `Writable`.
    Backpressured {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
    },
    /// A backpressured stream has room again.
    Writable {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
    },
    /// Nothing was heard from the peer for the idle timeout.
    PeerTimedOut {
        /// The session.
        session: SessionId,
    },
    /// The session is over.
    Closed {
        /// The session.
        session: SessionId,
        /// Why.
        cause: String,
    },
    /// Messages offered on a stream could not be sent (session closed, message too large...).
    OfferRejected {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// Why.
        reason: String,
    },
    /// A shard's socket moved (after [`Node::rebind`]).
    LocatorChanged {
        /// The shard.
        shard: u16,
        /// Its new address.
        locator: SocketAddr,
    },
    /// A shard's driver failed; the shard goes on trying.
    DriverFailed {
        /// The shard.
        shard: u16,
        /// The error.
        error: String,
    },
}

/// How shards get CPU time.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum Threading {
    /// Each shard runs on its own thread, pinned to a core.
    #[default]
    Dedicated,
    /// No threads: the application calls [`Node::invoke`] (Aeron's agent invoker). On small
    /// machines an extra thread per process starves the others; this mode does not add one.
    Invoker,
}

/// Errors of building or using a node.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The session configuration is incoherent.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The driver could not start or bind.
    #[error("driver: {0}")]
    Driver(#[from] DriverError),
    /// `PHYLA_DRIVER` names no driver.
    #[error("{0}")]
    Selection(String),
    /// A shard thread could not start.
    #[error("shard thread: {0}")]
    Thread(std::io::Error),
    /// The command ring to a shard is full (the shard is not keeping up): retry.
    #[error("shard {0} is busy")]
    Busy(usize),
    /// No such shard.
    #[error("no shard {0}")]
    NoShard(usize),
    /// A hosted service could not be built on its shard.
    #[error("service: {0}")]
    Service(String),
}

/// Why an offer was not taken.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
pub enum OfferError {
    /// The publication's buffer is full: the session is not sending as fast as the
    /// application offers. Retry later; nothing was queued.
    #[error("backpressured")]
    BackPressured,
    /// The message is larger than the publication's buffer can ever hold.
    #[error("message of {0} bytes exceeds the publication buffer")]
    TooLarge(usize),
    /// The session is gone (closed, timed out or refused): nothing more can be sent on it.
    #[error("the session is closed")]
    Closed,
}

/// How a node is built.
#[derive(Clone, Debug)]
pub struct NodeBuilder {
    bind: SocketAddr,
    shards: usize,
    driver: Option<DriverKind>,
    idle: IdleStrategy,
    threading: Threading,
    endpoint: EndpointConfig,
    driver_config: DriverConfig,
    faults: Option<FaultConfig>,
    seed: Option<u64>,
    ring_capacity: usize,
    publication_bytes: u64,
    pin: bool,
}

impl NodeBuilder {
    /// Binds shard `i` to `addr`'s port plus `i` (or to any free port if it is 0).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How many shards (default: one per available core).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
        self
    }

    /// Forces a driver (default: `PHYLA_DRIVER`, then the probe).
    pub fn driver(mut self, kind: DriverKind) -> Self {
        self.driver = Some(kind);
        self
    }

    /// How idle shards wait.
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.idle = idle;
        self
    }

    /// Dedicated shard threads, or invoker mode.
    pub fn threading(mut self, threading: Threading) -> Self {
        self.threading = threading;
        self
    }

    /// Session settings (windows, datagram size, timeouts).
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.endpoint.session = session;
        self
    }

    /// Whether peers may open sessions to this node (default yes).
    pub fn accept_incoming(mut self, yes: bool) -> Self {
        self.endpoint.accept_incoming = yes;
        self
    }

    /// Driver sizes and switches.
    pub fn driver_config(mut self, config: DriverConfig) -> Self {
        self.driver_config = config;
        self
    }

    /// Injects faults (tests).
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Seeds the shards' RNGs (default: from the kernel).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Bytes a publication may hold beyond what its session has taken (default 4 MiB).
    pub fn publication_bytes(mut self, bytes: u64) -> Self {
        self.publication_bytes = bytes.max(1);
        self
    }

    /// Whether shard threads are pinned to cores (default yes).
    pub fn pin(mut self, yes: bool) -> Self {
        self.pin = yes;
        self
    }

    /// Starts the node: selects the driver, binds every shard, starts threads if dedicated.
    ///
    /// # Errors
    /// [`NodeError`] if the configuration is incoherent or a shard cannot start.
    pub fn build(self) -> Result<Node, NodeError> {
        let selection = select(self.driver).map_err(NodeError::Selection)?;
        if self.driver.is_none() {
            eprintln!(
                "phyla: driver {} ({})",
                selection.kind.name(),
                selection.reason
            );
        }
        let mut driver_config = self.driver_config.clone();
        // A slot holds the largest datagram a session sends or accepts.
        let dgram = self.endpoint.session.max_datagram_bytes;
        driver_config.tx_slot_bytes = driver_config.tx_slot_bytes.max(dgram);
        driver_config.rx_slot_bytes = driver_config.rx_slot_bytes.max(dgram);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut links = Vec::with_capacity(self.shards);
        for i in 0..self.shards {
            let addr = if self.bind.port() == 0 {
                self.bind
            } else {
                SocketAddr::new(self.bind.ip(), self.bind.port().wrapping_add(i as u16))
            };
            let endpoint = Endpoint::new(self.endpoint.clone())?;
            let seed = self
                .seed
                .map_or_else(os_seed, |s| s ^ (i as u64).wrapping_mul(0x9e37_79b9));
            let (cmd_tx, cmd_rx) = spsc::channel(self.ring_capacity);
            let (ev_tx, ev_rx) = spsc::channel(self.ring_capacity);
            let shared = Arc::new(Shared::new());
            let plan = ShardPlan {
                index: i as u16,
                kind: selection.kind,
                addr,
                endpoint,
                seed,
                idle: self.idle,
                config: driver_config.clone(),
                faults: self.faults.clone(),
                commands: cmd_rx,
                events: ev_tx,
                shared: shared.clone(),
            };
            let waker = match self.threading {
                Threading::Dedicated => Some(Waker::new()?),
                Threading::Invoker => None,
            };
            let core = (self.pin && self.threading == Threading::Dedicated)
                .then(|| cores.get(i % cores.len().max(1)).copied())
                .flatten();
            let w = waker.clone();
            let (host, locator) = runner::start(
                self.threading,
                format!("phyla-shard-{i}"),
                core,
                addr,
                move || plan.build(w.as_ref()),
            )?;
            links.push(ShardLink {
                commands: cmd_tx,
                events: ev_rx,
                shared,
                waker,
                host,
                locator,
                last_work: 1,
            });
        }
        Ok(Node {
            id: self.endpoint.node_id,
            driver: selection.kind,
            driver_reason: selection.reason,
            shards: links,
            next_connect: 0,
            next_shard: 0,
            ring_capacity: self.ring_capacity,
            publication_bytes: self.publication_bytes,
            event_turn: 0,
        })
    }
}

/// Everything a shard is built from, made on the application's thread and built on the shard's.
struct ShardPlan {
    index: u16,
    kind: DriverKind,
    addr: SocketAddr,
    endpoint: Endpoint,
    seed: u64,
    idle: IdleStrategy,
    config: DriverConfig,
    faults: Option<FaultConfig>,
    commands: Consumer<Command>,
    events: Producer<NodeEvent>,
    shared: Arc<Shared>,
}

impl ShardPlan {
    fn build(self, waker: Option<&Waker>) -> Result<Box<dyn Run + Send>, NodeError> {
        match self.kind {
            DriverKind::Poll => {
                let d = PollDriver::new(&self.config)?;
                self.with_driver(d, waker)
            }
            DriverKind::Uring => {
                let d = super::driver::uring::UringDriver::new(&self.config)?;
                self.with_driver(d, waker)
            }
        }
    }

    fn with_driver<D: Driver + Send + 'static>(
        self,
        driver: D,
        waker: Option<&Waker>,
    ) -> Result<Box<dyn Run + Send>, NodeError> {
        match self.faults.clone() {
            Some(f) => self.start(FaultDriver::new(driver, f), waker),
            None => self.start(driver, waker),
        }
    }

    fn start<D: Driver + Send + 'static>(
        self,
        mut driver: D,
        waker: Option<&Waker>,
    ) -> Result<Box<dyn Run + Send>, NodeError> {
        if let Some(w) = waker {
            driver.watch(w)?;
        }
        let socket = driver.bind(self.addr)?;
        Ok(Box::new(Shard::new(ShardParts {
            index: self.index,
            driver,
            socket,
            endpoint: self.endpoint,
            seed: self.seed,
            idler: Idler::new(self.idle),
            commands: self.commands,
            events: self.events,
            shared: self.shared,
        })))
    }
}

impl<D: Driver> Run for Shard<D> {
    fn do_work(&mut self, may_wait: bool, last_work: usize) -> usize {
        Self::do_work(self, may_wait, last_work)
    }
    fn should_stop(&self) -> bool {
        Self::should_stop(self)
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        Self::local_addr(self)
    }
}

struct ShardLink {
    commands: Producer<Command>,
    events: Consumer<NodeEvent>,
    shared: Arc<Shared>,
    waker: Option<Waker>,
    host: Runner,
    locator: SocketAddr,
    last_work: usize,
}

impl ShardLink {
    /// Wakes the shard if it is waiting in its driver.
    fn nudge(&self) {
        self.shared.wake_if_parked(self.waker.as_ref());
    }

    /// Asks the shard to stop, waking its thread if it waits.
    fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

/// A link dropped stops its shard and joins the thread, whether the node is dropped or a later
/// shard failed to start (the shards already started must not run on, holding their sockets).
impl Drop for ShardLink {
    fn drop(&mut self) {
        self.stop();
        self.host.join();
    }
}

/// A Phyla node: shards, their sockets and sessions. Peers are reached by locator and known by
/// [`NodeId`]; sessions survive a change of either side's address.
pub struct Node {
    id: NodeId,
    driver: DriverKind,
    driver_reason: String,
    shards: Vec<ShardLink>,
    next_connect: u64,
    next_shard: usize,
    ring_capacity: usize,
    publication_bytes: u64,
    event_turn: usize,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("driver", &self.driver)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A builder for a node named `id`: loopback, any port, one shard per core, dedicated
    /// threads, the probed driver.
    pub fn builder(id: NodeId) -> NodeBuilder {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        NodeBuilder {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: cores,
            driver: None,
            idle: IdleStrategy::default(),
            threading: Threading::default(),
            endpoint: EndpointConfig::new(id),
            driver_config: DriverConfig::default(),
            faults: None,
            seed: None,
            ring_capacity: 4096,
            publication_bytes: 4 << 20,
            pin: true,
        }
    }

    /// This node's identity.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The driver in use, and why it was chosen.
    pub fn driver(&self) -> (DriverKind, &str) {
        (self.driver, &self.driver_reason)
    }

    /// Where each shard listens (updated by [`Node::poll_event`] as `LocatorChanged` arrives).
    pub fn locators(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|s| s.locator).collect()
    }

    /// Opens a session to whoever listens at `to`, on the next shard in turn. The session's
    /// `Connected` (or `ConnectFailed`, or `PeerTimedOut`) event follows.
    ///
    /// # Errors
    /// [`NodeError::Busy`] if the shard's command ring is full.
    pub fn connect(&mut self, to: SocketAddr) -> Result<SessionId, NodeError> {
        let shard = self.next_shard % self.shards.len();
        self.next_shard += 1;
        self.connect_on(shard, to)
    }

    /// Opens a session from a given shard.
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn connect_on(&mut self, shard: usize, to: SocketAddr) -> Result<SessionId, NodeError> {
        let key = SessionId::connected(shard as u16, self.next_connect);
        self.command(shard, Command::Connect { key, to })?;
        self.next_connect += 1;
        Ok(key)
    }

    /// A publication of messages on `stream` of `session`. Messages offered before the session
    /// is connected wait in the publication's buffer.
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn publication(
        &mut self,
        session: SessionId,
        stream: StreamId,
    ) -> Result<Publication, NodeError> {
        let link = &self.shards[session.shard()];
        let wake = ShardWake::new(link.shared.clone(), link.waker.clone());
        let (publication, source) =
            publication_pair(self.ring_capacity.max(64), self.publication_bytes, wake);
        self.command(
            session.shard(),
            Command::Publish {
                key: session,
                stream,
                ring: source.ring,
                gauge: source.gauge,
            },
        )?;
        Ok(publication)
    }

    /// A subscription to `stream` on every session of this node.
    ///
    /// # Errors
    /// [`NodeError::Busy`] if a shard's command ring is full.
    pub fn subscribe(&mut self, stream: StreamId) -> Result<Subscription, NodeError> {
        let alive = Arc::new(());
        let mut rings = Vec::with_capacity(self.shards.len());
        let wakers = self
            .shards
            .iter()
            .map(|s| (s.shared.clone(), s.waker.clone()))
            .collect();
        for shard in 0..self.shards.len() {
            let (tx, rx) = spsc::channel(self.ring_capacity);
            self.command(
                shard,
                Command::Subscribe {
                    stream,
                    ring: tx,
                    alive: alive.clone(),
                },
            )?;
            rings.push(rx);
        }
        Ok(Subscription {
            stream,
            rings,
            wakers,
            turn: 0,
            _alive: alive,
        })
    }

    /// Closes a session in order (after its streams are acknowledged).
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn close(&mut self, session: SessionId) -> Result<(), NodeError> {
        self.command(session.shard(), Command::Close { key: session })
    }

    /// Closes a session at once with `code`.
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn abort(&mut self, session: SessionId, code: CloseCode) -> Result<(), NodeError> {
        self.command(session.shard(), Command::Abort { key: session, code })
    }

    /// Paces a stream (`None` lifts the limit).
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn set_rate(
        &mut self,
        session: SessionId,
        stream: StreamId,
        rate: Option<Rate>,
    ) -> Result<(), NodeError> {
        let key = session;
        self.command(session.shard(), Command::SetRate { key, stream, rate })
    }

    /// Moves a shard's socket to `addr` (port 0: any free port); its sessions follow, as the
    /// peers validate the new path. `LocatorChanged` reports the new address.
    ///
    /// # Errors
    /// [`NodeError::Busy`] or [`NodeError::NoShard`].
    pub fn rebind(&mut self, shard: usize, addr: SocketAddr) -> Result<(), NodeError> {
        self.command(shard, Command::Rebind { addr })
    }

    /// The next event from any shard.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        let n = self.shards.len();
        for k in 0..n {
            let i = (self.event_turn + k) % n;
            if let Some(e) = self.shards[i].events.try_pop() {
                // The shard may hold events for want of room in the ring.
                self.shards[i].nudge();
                self.event_turn = (i + 1) % n;
                if let NodeEvent::LocatorChanged { shard, locator } = &e {
                    if let Some(s) = self.shards.get_mut(usize::from(*shard)) {
                        s.locator = *locator;
                    }
                }
                return Some(e);
            }
        }
        None
    }

    /// Invoker mode: runs one duty cycle of every shard on this thread; returns the work done
    /// (0 = idle). Does nothing for dedicated shards.
    pub fn invoke(&mut self) -> usize {
        let mut work = 0;
        for s in &mut self.shards {
            if let Runner::Inline(shard) = &mut s.host {
                s.last_work = shard.do_work(false, 1);
                work += s.last_work;
            }
        }
        work
    }

    /// Invoker mode: like [`invoke`](Self::invoke), but an idle shard may wait in its driver as
    /// its idle strategy says (a datagram ends the wait at once).
    pub fn invoke_idle(&mut self) -> usize {
        let mut work = 0;
        let n = self.shards.len();
        for s in &mut self.shards {
            if let Runner::Inline(shard) = &mut s.host {
                // With several inline shards, waiting in one would starve the others.
                s.last_work = shard.do_work(n == 1, s.last_work);
                work += s.last_work;
            }
        }
        work
    }

    /// Node-wide counters, summed over shards (a relaxed snapshot).
    pub fn counters(&self) -> Counters {
        let mut c = [0u64; COUNTER_CELLS];
        for s in &self.shards {
            for (sum, cell) in c.iter_mut().zip(&s.shared.counters.cells) {
                *sum += cell.load(Ordering::Relaxed);
            }
        }
        Counters::from_cells(&c)
    }

    /// Counters of one session (published by its shard every few milliseconds), if it is live.
    pub fn session_counters(&self, session: SessionId) -> Option<SessionStats> {
        let s = self.shards.get(session.shard())?;
        let map = s.shared.counters.sessions.lock().ok()?;
        map.get(&session).copied()
    }

    fn command(&mut self, shard: usize, c: Command) -> Result<(), NodeError> {
        let link = self
            .shards
            .get_mut(shard)
            .ok_or(NodeError::NoShard(shard))?;
        link.commands
            .try_push(c)
            .map_err(|_| NodeError::Busy(shard))?;
        link.nudge();
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Every shard stops at once; each link then joins its thread as it drops.
        for s in &self.shards {
            s.stop();
        }
    }
}

/// Node-wide counters. Invalid input, errors and backpressure are counted, never silent.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct Counters {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Datagrams sent by zero-copy send.
    pub zero_copy_sends: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Receive errors.
    pub recv_errors: u64,
    /// Datagrams dropped for exceeding a receive slot.
    pub truncated: u64,
    /// Datagrams received while every receive slot was lent out (copied instead).
    pub rx_pool_exhausted: u64,
    /// System calls made by drivers.
    pub syscalls: u64,
    /// Datagrams that failed to decode or broke the protocol.
    pub datagrams_invalid: u64,
    /// Datagrams for no known session.
    pub unknown_connection: u64,
    /// Sessions accepted from peers.
    pub sessions_accepted: u64,
    /// Hellos refused.
    pub hellos_refused: u64,
    /// Payload bytes copied on receive (reassembly of multi-fragment messages).
    pub rx_payload_bytes_copied: u64,
    /// Duty cycles run.
    pub cycles: u64,
    /// Messages moved from publications into sessions.
    pub messages_offered: u64,
    /// Messages moved from sessions to subscriptions.
    pub messages_delivered: u64,
    /// Offers that could never be sent (session closed, message too large).
    pub offers_dropped: u64,
    /// Events that waited because the application did not read them.
    pub events_overflowed: u64,
    /// Times every transmit slot was in flight.
    pub tx_slots_exhausted: u64,
    /// Events dropped because the application did not read them (after 65,536 waited).
    pub events_dropped: u64,
    /// Message bytes copied into transmit slots by sessions writing datagrams (this node's
    /// shards; [`COPIES`]`.tx_payload_bytes` is the process-wide sum).
    pub tx_payload_bytes_copied: u64,
    /// Message bytes sent without a copy, as gathered parts of datagrams
    /// (`SessionConfig::gather_min_bytes`).
    pub payload_bytes_gathered: u64,
    /// Payload bytes copied from the application by `Publication::offer` (process-wide).
    pub offer_bytes_copied: u64,
    /// Received bytes copied because the receive pool was exhausted (process-wide).
    pub rx_fallback_bytes_copied: u64,
    /// Received datagrams copied for being short beside their slot (process-wide,
    /// `DriverConfig::rx_copybreak_bytes`).
    pub rx_copybreak_bytes_copied: u64,
}

impl Counters {
    fn from_cells(c: &[u64; COUNTER_CELLS]) -> Self {
        Self {
            datagrams_sent: c[0],
            bytes_sent: c[1],
            datagrams_received: c[2],
            bytes_received: c[3],
            zero_copy_sends: c[4],
            send_errors: c[5],
            recv_errors: c[6],
            truncated: c[7],
            rx_pool_exhausted: c[8],
            syscalls: c[9],
            datagrams_invalid: c[10],
            unknown_connection: c[11],
            sessions_accepted: c[12],
            hellos_refused: c[13],
            rx_payload_bytes_copied: c[14],
            cycles: c[15],
            messages_offered: c[16],
            messages_delivered: c[17],
            offers_dropped: c[18],
            events_overflowed: c[19],
            tx_slots_exhausted: c[20],
            events_dropped: c[21],
            tx_payload_bytes_copied: c[22],
            payload_bytes_gathered: c[23],
            offer_bytes_copied: COPIES.offer_bytes.load(Ordering::Relaxed),
            rx_fallback_bytes_copied: COPIES.rx_fallback_bytes.load(Ordering::Relaxed),
            rx_copybreak_bytes_copied: COPIES.rx_copybreak_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The sending end of a stream (a session's, or a group's). Offers go into a bounded lock-free
/// ring that a shard drains; when the ring or the byte budget is full, `offer` says so at once.
pub struct Publication {
    ring: Producer<Bytes>,
    gauge: Arc<PubGauge>,
    limit: u64,
    offered: u64,
    taken_seen: u64,
    next_number: u64,
    chunk: BytesMut,
    wake: ShardWake,
    backpressured: u64,
}

/// A shard's end of a [`Publication`]: the offers to take, and the gauge that tells the
/// publication how much was taken (its budget) or that nothing more can be.
#[derive(Debug)]
pub struct PublicationSource {
    ring: Consumer<Bytes>,
    gauge: Arc<PubGauge>,
}

/// A publication of at most `limit` bytes in flight (and `capacity` messages), and its shard's
/// end; `wake` wakes the shard that drains it. For services hosted on shards
/// ([`host`](super::host)); [`Node::publication`] makes its own.
pub fn publication_pair(
    capacity: usize,
    limit: u64,
    wake: ShardWake,
) -> (Publication, PublicationSource) {
    let (tx, rx) = spsc::channel(capacity);
    let gauge = Arc::new(PubGauge::default());
    let publication = Publication {
        ring: tx,
        gauge: gauge.clone(),
        limit: limit.max(1),
        offered: 0,
        taken_seen: 0,
        next_number: 0,
        chunk: BytesMut::new(),
        wake,
        backpressured: 0,
    };
    (publication, PublicationSource { ring: rx, gauge })
}

impl PublicationSource {
    /// The next offer, oldest first.
    pub fn try_pop(&mut self) -> Option<Bytes> {
        self.ring.try_pop()
    }

    /// Whether no offer is waiting.
    pub fn is_empty(&mut self) -> bool {
        self.ring.is_empty()
    }

    /// Tells the publication that `bytes` in all have been taken (its budget frees up).
    pub fn set_taken(&self, bytes: u64) {
        self.gauge.taken.store(bytes, Ordering::Release);
    }

    /// Tells the publication that nothing more can be sent: its offers fail with `Closed`.
    pub fn close(&self) {
        self.gauge.closed.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("next_number", &self.next_number)
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

/// Chunks that `offer` copies messages into: one allocation per this many bytes, not per message.
const CHUNK_BYTES: usize = 64 * 1024;

impl Publication {
    /// Copies `payload` once into a pooled chunk and queues it; returns its message number.
    ///
    /// # Errors
    /// [`OfferError::BackPressured`] when the publication is full (retry), or
    /// [`OfferError::TooLarge`].
    pub fn offer(&mut self, payload: &[u8]) -> Result<u64, OfferError> {
        self.room(payload.len())?;
        if self.chunk.capacity() < payload.len() {
            self.chunk = BytesMut::with_capacity(CHUNK_BYTES.max(payload.len()));
        }
        self.chunk.extend_from_slice(payload);
        COPIES
            .offer_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let b = self.chunk.split().freeze();
        self.push(b)
    }

    /// Queues `payload` without copying; returns its message number.
    ///
    /// # Errors
    /// As [`offer`](Self::offer).
    pub fn offer_bytes(&mut self, payload: Bytes) -> Result<u64, OfferError> {
        self.room(payload.len())?;
        self.push(payload)
    }

    /// Claims `len` bytes to write a message in place (no copy from the application); the
    /// message is queued by [`Claim::commit`], or abandoned if the claim is dropped.
    ///
    /// # Errors
    /// As [`offer`](Self::offer).
    pub fn claim(&mut self, len: usize) -> Result<Claim<'_>, OfferError> {
        self.room(len)?;
        if self.chunk.capacity() < len {
            self.chunk = BytesMut::with_capacity(CHUNK_BYTES.max(len));
        }
        // Zero-filled, so the claimed bytes are never uninitialised; one memset per claim.
        self.chunk.resize(len, 0);
        Ok(Claim {
            publication: Some(self),
        })
    }

    /// The number the next accepted message will get.
    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Offers refused for backpressure so far.
    pub fn backpressured(&self) -> u64 {
        self.backpressured
    }

    /// Bytes offered and not yet taken by the session (bounded by the publication budget).
    pub fn pending_bytes(&mut self) -> u64 {
        self.taken_seen = self.gauge.taken.load(Ordering::Acquire);
        self.offered - self.taken_seen
    }

    fn room(&mut self, len: usize) -> Result<(), OfferError> {
        if len as u64 > self.limit {
            return Err(OfferError::TooLarge(len));
        }
        // A claim that was forgotten (never committed nor dropped) must not prefix this message.
        self.chunk.clear();
        if self.gauge.closed.load(Ordering::Acquire) {
            return Err(OfferError::Closed);
        }
        if !self.ring.has_room() {
            self.backpressured += 1;
            return Err(OfferError::BackPressured);
        }
        if self.offered + len as u64 - self.taken_seen > self.limit {
            self.taken_seen = self.gauge.taken.load(Ordering::Acquire);
            if self.offered + len as u64 - self.taken_seen > self.limit {
                self.backpressured += 1;
                return Err(OfferError::BackPressured);
            }
        }
        Ok(())
    }

    fn push(&mut self, b: Bytes) -> Result<u64, OfferError> {
        let len = b.len() as u64;
        if self.ring.try_push(b).is_err() {
            self.backpressured += 1;
            return Err(OfferError::BackPressured);
        }
        self.offered += len;
        let n = self.next_number;
        self.next_number += 1;
        self.wake.wake();
        Ok(n)
    }
}

/// A message being written in place (see [`Publication::claim`]).
#[derive(Debug)]
pub struct Claim<'a> {
    publication: Option<&'a mut Publication>,
}

impl Claim<'_> {
    /// The bytes to fill.
    pub fn buffer(&mut self) -> &mut [u8] {
        match &mut self.publication {
            Some(p) => &mut p.chunk[..],
            None => &mut [],
        }
    }

    /// Queues the message; returns its number.
    ///
    /// # Errors
    /// [`OfferError::BackPressured`] if the ring filled meanwhile (cannot happen on one thread).
    pub fn commit(mut self) -> Result<u64, OfferError> {
        let Some(p) = self.publication.take() else {
            return Err(OfferError::BackPressured);
        };
        let b = p.chunk.split().freeze();
        p.push(b)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(p) = &mut self.publication {
            p.chunk.clear();
        }
    }
}

/// The receiving end of a stream, on every session of a node. Every subscription to a stream
/// gets every message; the slowest one paces the stream for all.
pub struct Subscription {
    stream: StreamId,
    rings: Vec<Consumer<Delivery>>,
    /// Per shard: a shard that holds a delivery for a full ring waits for this side to read.
    wakers: Vec<(Arc<Shared>, Option<Waker>)>,
    turn: usize,
    /// Shards drop their end once this is the last reference.
    _alive: Arc<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Hands up to `limit` delivered messages to `handler`, in order per session; returns how
    /// many. Messages wait in bounded rings; while the application does not poll, the sender
    /// is slowed by flow control, never the node's memory.
    pub fn poll(&mut self, mut handler: impl FnMut(Delivery), limit: usize) -> usize {
        let mut n = 0;
        let shards = self.rings.len();
        for k in 0..shards {
            let i = (self.turn + k) % shards;
            let before = n;
            while n < limit {
                let Some(d) = self.rings[i].try_pop() else {
                    break;
                };
                handler(d);
                n += 1;
            }
            if n > before {
                let (shared, waker) = &self.wakers[i];
                shared.wake_if_parked(waker.as_ref());
            }
        }
        self.turn = (self.turn + 1) % shards.max(1);
        n
    }

    /// The stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }
}
