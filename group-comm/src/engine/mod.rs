//! Groups on the substrate engine: join a group by name, publish to it, poll its messages and
//! events, across processes and hosts.
//!
//! A [`GroupEngine`] runs one [`GroupStack`] per shard on the engine's
//! [`Host`]: each shard has its own socket, sessions and groups, and a group lives on the shard
//! its id hashes to, so nothing is shared between shards and the data path takes no lock. The
//! application and a shard meet only in lock-free SPSC rings: offers in, messages and events
//! out, one set per joined [`Group`].
//!
//! # Zero copy
//! A message is written once: [`Group::claim`] lets the application write it in place, and
//! [`Group::offer_bytes`] takes a buffer it already has; [`Group::offer`] copies once into a
//! pooled chunk (counted in `COPIES.offer_bytes`). The stack sends the same payload buffer to
//! every tree child, and a forwarding node sends on the slice of the buffer it received into;
//! the session layer gathers the payload into the datagram instead of copying it.
//!
//! # Example
//! ```no_run
//! use group_comm::engine::{GroupEngine, JoinOptions};
//! use substrate::id::NodeId;
//! use substrate::runtime::Threading;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut engine = GroupEngine::builder(NodeId::from_u64(7))
//!     .bind("127.0.0.1:7000".parse()?)
//!     .threading(Threading::Invoker)
//!     .build()?;
//! let mut group = engine.join("prices", JoinOptions::contacts(["127.0.0.1:7001".parse()?]))?;
//! group.offer(b"hello")?; // waits in the group's ring until the node has a neighbour
//! loop {
//!     engine.invoke();
//!     group.poll(|m| println!("{} bytes from {:?}", m.payload.len(), m.source), 64);
//!     while let Some(event) = group.poll_event() {
//!         println!("{event:?}");
//!     }
//! }
//! # }
//! ```

mod service;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use substrate::id::{Locator, NodeId};
use substrate::proto::session::{EndpointStats, SessionConfig, SessionStats};
use substrate::runtime::driver::fault::FaultConfig;
use substrate::runtime::driver::{DriverConfig, DriverKind, DriverStats};
use substrate::runtime::host::{Host, HostBuilder, Hosted, ShardWake};
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{NodeError, Publication, Threading, publication_pair};
use substrate::sync::spsc::{self, Consumer};
use thiserror::Error;

use self::service::{Command, Ends, GroupService, Snapshot, member_id};
use crate::GroupId;
use crate::config::GroupConfig;
use crate::event::GroupEvent;
use crate::node::GroupStats;
use crate::stack::{GroupStack, StackConfig, StackError, StackStats};
use crate::wire::NodeRef;

/// Frames queued for a link past which a publisher's offers wait.
const PUBLISH_HIGH_WATER: usize = 1024;

/// A message delivered to a group member: in per-source order, exactly once.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct GroupMessage {
    /// The member that published it.
    pub source: NodeId,
    /// The source's incarnation (a restarted source starts a new one).
    pub epoch: u32,
    /// Its number in the source's sequence (from 0).
    pub sequence: u64,
    /// Overlay hops it travelled (0 for this node's own).
    pub hops: u16,
    /// Its bytes: a view of the buffer it was received into, not a copy.
    pub payload: Bytes,
}

/// What happened to the node as a whole (a group's own events come from [`Group::poll_event`]).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// `peer` missed heartbeats and is being probed.
    PeerSuspected {
        /// The peer.
        peer: NodeId,
    },
    /// `peer` is declared failed and removed from every view.
    PeerFailed {
        /// The peer.
        peer: NodeId,
    },
    /// A suspected or failed `peer` proved alive.
    PeerRecovered {
        /// The peer.
        peer: NodeId,
    },
    /// A shard's driver failed; the shard goes on trying.
    DriverFailed {
        /// The shard.
        shard: usize,
        /// Why.
        error: String,
    },
}

/// Why the engine could not be built or a group joined.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine's shards could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The group or stack configuration does not validate.
    #[error(transparent)]
    Config(#[from] StackError),
    /// This node already has a live handle on the group.
    #[error("already joined group {0}")]
    AlreadyJoined(GroupId),
    /// Group id 0 is reserved (node-scoped frames).
    #[error("group id 0 is reserved")]
    ReservedGroup,
    /// The shard's command ring is full: it is not keeping up. Retry.
    #[error("shard {0} is busy")]
    Busy(usize),
}

/// Why an offer was not taken: the same as a session publication's (backpressured, too large,
/// or closed because the group was left or refused the handle).
pub use substrate::runtime::OfferError as PublishError;

/// A message being written in place (see [`Group::claim`]).
pub use substrate::runtime::Claim as GroupClaim;

/// How to join a group.
#[derive(Clone, Debug, Default)]
pub struct JoinOptions {
    /// Locators of members to join through (the shard hosting the group, at each). Empty: this
    /// node starts the group and others join through it. A contact that does not answer yet is
    /// retried every second until the group has a neighbour.
    pub contacts: Vec<SocketAddr>,
}

impl JoinOptions {
    /// Joins through these contacts.
    pub fn contacts(contacts: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            contacts: contacts.into_iter().collect(),
        }
    }
}

/// Counters of one group at this node.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct GroupCounters {
    /// The group.
    pub group: GroupId,
    /// Messages this node published.
    pub published: u64,
    /// Their payload bytes.
    pub published_bytes: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Their payload bytes.
    pub delivered_bytes: u64,
    /// Messages reported lost (`MessagesLost` ranges, summed).
    pub lost: u64,
    /// Tree repairs (`TreeRepaired` events).
    pub repairs: u64,
    /// Current active neighbours (as told by `NeighborUp`/`NeighborDown`).
    pub neighbours: u64,
    /// Times offers were stopped for backpressure.
    pub backpressured: u64,
    /// Offers the protocol refused (the group was left meanwhile).
    pub offers_dropped: u64,
    /// Delivered messages dropped because the application did not poll (slow consumer).
    pub slow_dropped: u64,
}

impl GroupCounters {
    /// All zero, for `group`.
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            published: 0,
            published_bytes: 0,
            delivered: 0,
            delivered_bytes: 0,
            lost: 0,
            repairs: 0,
            neighbours: 0,
            backpressured: 0,
            offers_dropped: 0,
            slow_dropped: 0,
        }
    }
}

/// Counters of one peer at this node: the session that carries frames to it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PeerCounters {
    /// The peer's member id.
    pub peer: NodeId,
    /// Where its session sends now.
    pub locator: Option<Locator>,
    /// Whether that session is established.
    pub established: bool,
    /// Smoothed round trip, microseconds.
    pub rtt_us: u64,
    /// Frames waiting for the session (not established yet, or backpressured).
    pub queued_frames: u64,
    /// The session's counters (messages, bytes, retransmissions, losses).
    pub session: SessionStats,
}

/// One node's part of a group's trees: what the tree printer joins across nodes.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TreeEdges {
    /// The group.
    pub group: GroupId,
    /// This member (the shard's member id).
    pub node: NodeId,
    /// Its active neighbours (the overlay links).
    pub neighbours: Vec<NodeId>,
    /// Per source: the neighbours it pushes that source's messages to eagerly (tree links).
    pub sources: Vec<(NodeId, Vec<NodeId>)>,
    /// Per source: flow control's parent and children (see [`crate::GroupNode::flow`]).
    pub flow: Vec<crate::SourceFlow>,
}

/// Counters of one shard.
#[derive(Clone, Debug)]
pub struct ShardCounters {
    /// The shard.
    pub index: usize,
    /// Where its socket is bound.
    pub locator: Option<SocketAddr>,
    /// Its member id in the groups it hosts.
    pub member: NodeId,
    /// Driver counters (datagrams, bytes, system calls).
    pub driver: DriverStats,
    /// Session endpoint counters (invalid datagrams, sessions, copies).
    pub endpoint: EndpointStats,
    /// Link-layer counters of the group stack.
    pub link: StackStats,
    /// Group protocol counters (invalid and foreign frames, repairs, detection).
    pub group: GroupStats,
}

/// A snapshot of the engine's counters (refreshed by the shards every 50 ms or so).
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Per shard.
    pub shards: Vec<ShardCounters>,
    /// Per joined group.
    pub groups: Vec<GroupCounters>,
    /// Per peer with a session.
    pub peers: Vec<PeerCounters>,
    /// This node's tree links, per group.
    pub trees: Vec<TreeEdges>,
    /// Events dropped because the application did not read them.
    pub events_dropped: u64,
}

impl EngineStats {
    /// Invalid input at this node: datagrams the sessions could not decode plus group frames
    /// that failed to decode.
    pub fn invalid(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.endpoint.datagrams_invalid + s.group.invalid_frames)
            .sum()
    }
}

/// How a [`GroupEngine`] is built.
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    id: NodeId,
    host: HostBuilder,
    /// Where shard 0 binds (the host has it too; kept to size datagrams by it).
    bind: SocketAddr,
    /// The driver's sizes before they are fitted to the datagram size.
    driver: DriverConfig,
    /// Set by [`EngineBuilder::datagram_bytes`]; `None` sizes datagrams by the bind address.
    datagram_bytes: Option<usize>,
    group: GroupConfig,
    stack: StackConfig,
    advertise: Option<std::net::IpAddr>,
    publication_bytes: u64,
    ring_capacity: usize,
}

impl EngineBuilder {
    /// Binds shard `i` to `addr`'s port plus `i` (port 0: any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.host = self.host.bind(addr);
        self.bind = addr;
        self
    }

    /// The largest datagram the engine's sessions send and accept. Fewer, larger datagrams
    /// cost fewer system calls and receive completions per message, and with gathered sends
    /// packing costs no copy; but a datagram larger than the path's MTU is fragmented by IP.
    ///
    /// Default: [`LOOPBACK_DATAGRAM_BYTES`] when the engine is bound to a loopback address
    /// (then every peer is on this host, and the path is the loopback device), otherwise the
    /// session default of 1,472 bytes (one Ethernet frame). It replaces the
    /// `max_datagram_bytes` of [`stack`](Self::stack)'s session settings, and the driver's slots
    /// are made at least this large (see [`GroupEngine::builder`]).
    pub fn datagram_bytes(mut self, bytes: usize) -> Self {
        self.datagram_bytes = Some(bytes);
        self
    }

    /// The address peers are told to reach this node at, when it is bound to a wildcard
    /// address (default: the bound address).
    pub fn advertise(mut self, ip: std::net::IpAddr) -> Self {
        self.advertise = Some(ip);
        self
    }

    /// How many shards (default 1). Each is a member of the groups hashed to it.
    pub fn shards(mut self, n: usize) -> Self {
        self.host = self.host.shards(n);
        self
    }

    /// Forces a driver (default: `PHYLA_DRIVER`, then the probe).
    pub fn driver(mut self, kind: DriverKind) -> Self {
        self.host = self.host.driver(Some(kind));
        self
    }

    /// How idle shards wait.
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.host = self.host.idle(idle);
        self
    }

    /// Dedicated shard threads (default), or invoker mode ([`GroupEngine::invoke`]).
    pub fn threading(mut self, threading: Threading) -> Self {
        self.host = self.host.threading(threading);
        self
    }

    /// Whether shard threads are pinned to cores (default yes).
    pub fn pin(mut self, yes: bool) -> Self {
        self.host = self.host.pin(yes);
        self
    }

    /// Seeds the shards' RNGs (default: from the kernel).
    pub fn seed(mut self, seed: u64) -> Self {
        self.host = self.host.seed(Some(seed));
        self
    }

    /// Injects faults into every shard's driver (tests).
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.host = self.host.faults(Some(faults));
        self
    }

    /// Driver sizes and switches.
    pub fn driver_config(mut self, config: DriverConfig) -> Self {
        self.driver = config;
        self
    }

    /// The group protocols' settings (default: sized for 64 members).
    pub fn group_config(mut self, config: GroupConfig) -> Self {
        self.group = config;
        self
    }

    /// The link layer's settings (sessions, queues).
    pub fn stack(mut self, config: StackConfig) -> Self {
        self.stack = config;
        self
    }

    /// Bytes a group's publication may hold beyond what its shard has taken (default 4 MiB).
    pub fn publication_bytes(mut self, bytes: u64) -> Self {
        self.publication_bytes = bytes.max(1);
        self
    }

    /// Capacity of each ring between the application and a shard (default 16,384 entries).
    pub fn ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = n.max(2);
        self.host = self.host.ring_capacity(n);
        self
    }

    /// Starts the shards.
    ///
    /// # Errors
    /// [`EngineError::Config`] if a setting does not validate; [`EngineError::Node`] if a
    /// shard cannot start (no driver, address in use).
    pub fn build(mut self) -> Result<GroupEngine, EngineError> {
        let loopback = self.bind.ip().is_loopback();
        let datagram = self.datagram_bytes.unwrap_or(if loopback {
            LOOPBACK_DATAGRAM_BYTES
        } else {
            SessionConfig::default().max_datagram_bytes
        });
        self.stack.session.max_datagram_bytes = datagram;
        self.host = self
            .host
            .driver_config(fit_driver(self.driver.clone(), datagram, loopback));
        // Validate here, where the error can be returned, rather than on the shard threads.
        let mut probe = substrate::rand::Rng::with_seed(0);
        GroupStack::new(
            NodeRef {
                id: self.id,
                locator: None,
            },
            self.group.clone(),
            self.stack.clone(),
            &mut probe,
        )?;
        let shards = self.host_shards();
        let snapshots: Vec<Arc<Mutex<Snapshot>>> = (0..shards)
            .map(|_| Arc::new(Mutex::new(Snapshot::default())))
            .collect();
        let (id, group, stack, advertise) = (
            self.id,
            self.group.clone(),
            self.stack.clone(),
            self.advertise,
        );
        let shared = snapshots.clone();
        // Offers stop while any link has this many frames queued beyond its session's send
        // buffer: a publisher goes at the pace of its slowest link, and a tree link's queueing
        // delay stays far below `graft_timeout` (a longer one makes lazy announcements overtake
        // the eager path, and every message is grafted).
        let high_water = PUBLISH_HIGH_WATER.min(stack.max_queued_frames / 2).max(2);
        let host = self.host.name("phyla-group").build(move |mut ctx| {
            let mut locator = ctx.locator;
            if let Some(ip) = advertise {
                locator.set_ip(ip);
            }
            let me = NodeRef {
                id: member_id(id, ctx.index),
                locator: Some(Locator::Udp(locator)),
            };
            let stack = GroupStack::new(me, group.clone(), stack.clone(), &mut ctx.rng)
                .map_err(|e| e.to_string())?;
            let snapshot = shared
                .get(ctx.index)
                .cloned()
                .ok_or_else(|| format!("no snapshot for shard {}", ctx.index))?;
            Ok(GroupService::new(stack, snapshot, high_water))
        })?;
        Ok(GroupEngine {
            id: self.id,
            host,
            snapshots,
            handles: Vec::new(),
            publication_bytes: self.publication_bytes,
            ring_capacity: self.ring_capacity,
        })
    }

    fn host_shards(&self) -> usize {
        self.host.shard_count()
    }
}

/// The largest UDP datagram over IPv4 on loopback (64 KiB less the IP and UDP headers): the
/// default datagram size of an engine bound to a loopback address.
pub const LOOPBACK_DATAGRAM_BYTES: usize = 65_507;

/// `driver` with slots that hold `datagram` bytes. Larger slots come fewer. The receive pool
/// holds what caches, reorder buffers and forwarding keep, and a slot is held while any message
/// in it is: a large slot often holds only a few milliseconds' worth of messages (a datagram is
/// sent as soon as there is something to send), so the pool gets twice its bytes. The transmit
/// arena keeps its bytes. On loopback zero-copy sends do not pay (the kernel copies them anyway,
/// see `docs/benchmarks.md`), so the arena is not registered for them.
fn fit_driver(mut driver: DriverConfig, datagram: usize, loopback: bool) -> DriverConfig {
    let slot = datagram.next_power_of_two();
    if slot > driver.rx_slot_bytes {
        let pool = 2 * driver.rx_slots * driver.rx_slot_bytes;
        driver.rx_slots = (pool / slot).max(MIN_LARGE_SLOTS);
        driver.rx_slot_bytes = slot;
        // A datagram of a message or two, kept in a cache for seconds, would hold a whole
        // large slot: copy those out (one copy of a few KiB, against the system calls that
        // large datagrams save when traffic is dense).
        driver.rx_copybreak_bytes = driver.rx_copybreak_bytes.max(slot / COPYBREAK_FRACTION);
    }
    if slot > driver.tx_slot_bytes {
        let arena = driver.tx_slots * driver.tx_slot_bytes;
        driver.tx_slots = (arena / slot).max(MIN_LARGE_SLOTS);
        driver.tx_slot_bytes = slot;
    }
    if loopback {
        driver.zero_copy_min_bytes = usize::MAX;
    }
    driver
}

/// The fewest slots a pool of large slots keeps.
const MIN_LARGE_SLOTS: usize = 256;

/// With large slots, datagrams shorter than this fraction of a slot are copied out of it.
const COPYBREAK_FRACTION: usize = 16;

/// A node's groups on the engine. See the [module documentation](self).
pub struct GroupEngine {
    id: NodeId,
    host: Host<GroupService>,
    snapshots: Vec<Arc<Mutex<Snapshot>>>,
    /// Live group handles, to refuse a second one for the same group.
    handles: Vec<(GroupId, Weak<()>)>,
    publication_bytes: u64,
    ring_capacity: usize,
}

impl std::fmt::Debug for GroupEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupEngine")
            .field("id", &self.id)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl GroupEngine {
    /// A builder for node `id`: loopback, any port, one shard, dedicated threads, datagrams
    /// sized by the bind address ([`EngineBuilder::datagram_bytes`]).
    pub fn builder(id: NodeId) -> EngineBuilder {
        let group = Self::group_config_for(64);
        // Received datagrams stay in their receive slots while cached, held or forwarded (zero
        // copy), so the pool has many small slots, sized for Ethernet-sized datagrams; for
        // larger datagrams `build` trades them for fewer large ones, the pool's bytes kept.
        let driver = DriverConfig {
            rx_slots: 32_768,
            rx_slot_bytes: 2048,
            tx_slots: 1024,
            tx_slot_bytes: 2048,
            ..DriverConfig::default()
        };
        let host = HostBuilder::default().ring_capacity(16_384);
        EngineBuilder {
            id,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            host,
            driver,
            datagram_bytes: None,
            group,
            stack: StackConfig {
                // Publishers wait at `PUBLISH_HIGH_WATER`; forwarders may need far more while
                // a child catches up.
                max_queued_frames: 65_536,
                session: SessionConfig {
                    // A session's send buffer is queueing delay on a tree link: keep it short.
                    send_buffer_bytes: 1 << 20,
                    ..SessionConfig::default()
                },
                ..StackConfig::default()
            },
            advertise: None,
            publication_bytes: 4 << 20,
            ring_capacity: 16_384,
        }
    }

    /// The group protocols' settings the engine uses by default for groups of about `n`
    /// members: the simulator's ([`GroupConfig::for_group_size`]), with caches sized for the
    /// engine's rates. A node cut off from a source's tree for a moment (a prune race while
    /// trees form) learns of it from announcements and grafts after `graft_timeout`; meanwhile
    /// later messages arrive through the new path and wait behind the gap, and its neighbours'
    /// caches must still hold what it missed. At tens of thousands of messages a second the
    /// simulator's 128 and 256 would turn that moment into a loss.
    pub fn group_config_for(n: usize) -> GroupConfig {
        let mut c = GroupConfig::for_group_size(n);
        // Tree links are reliable, ordered sessions: a message announced by a lazy link but
        // not yet pushed by the tree is late, not lost, unless the tree path broke (which the
        // session reports). Graft, and swap links for latency, only after half a second, so
        // that a scheduling stall of a loaded host does not turn into a graft storm...
        c.graft_timeout = substrate::time::Duration::from_millis(500);
        c.reliable_links = true;
        c.optimization_delay = substrate::time::Duration::from_secs(1);
        // ...and keep enough messages for a graft or repair to find them after that long:
        // 32,768 are 1.6 s of 20,000 messages a second.
        c.cache_capacity = 32_768;
        c.reorder_capacity = 32_768;
        c.loss_timeout = substrate::time::Duration::from_secs(10);
        // A source stays within a quarter of the caches of its slowest member, so that what a
        // graft or repair asks for is still cached; gaps are repaired a thousand at a time.
        c.flow_window = Some(crate::FlowWindow {
            messages: 8_192,
            bytes: 32 << 20,
        });
        c.repair_batch = 1_024;
        c
    }

    /// The node's identity (shard 0's member id; other shards' are derived from it).
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The member id of shard `shard` in the groups it hosts.
    pub fn member_id(&self, shard: usize) -> NodeId {
        member_id(self.id, shard)
    }

    /// Where each shard listens.
    pub fn locators(&self) -> Vec<SocketAddr> {
        self.host.locators()
    }

    /// The driver in use.
    pub fn driver(&self) -> DriverKind {
        self.host.driver().0
    }

    /// The shard that hosts `group`.
    pub fn shard_of(&self, group: GroupId) -> usize {
        (group.0 % self.host.shard_count() as u64) as usize
    }

    /// Joins the group named `name` (its id is [`GroupId::from_name`]).
    ///
    /// # Errors
    /// See [`join_id`](Self::join_id).
    pub fn join(&mut self, name: &str, options: JoinOptions) -> Result<Group, EngineError> {
        let mut g = self.join_id(GroupId::from_name(name), options)?;
        g.name = name.into();
        Ok(g)
    }

    /// Joins `group`. Its messages, from now on, arrive at the returned handle; dropping the
    /// handle (or [`Group::leave`]) leaves the group. A group left and joined again resumes
    /// where delivery stood: missed messages are repaired from neighbours or reported in
    /// [`GroupEvent::MessagesLost`].
    ///
    /// # Errors
    /// [`EngineError::AlreadyJoined`], [`EngineError::ReservedGroup`], or
    /// [`EngineError::Busy`] (retry).
    pub fn join_id(&mut self, group: GroupId, options: JoinOptions) -> Result<Group, EngineError> {
        if group == GroupId::NODE {
            return Err(EngineError::ReservedGroup);
        }
        self.handles.retain(|(_, w)| w.strong_count() > 0);
        if self.handles.iter().any(|(g, _)| *g == group) {
            return Err(EngineError::AlreadyJoined(group));
        }
        let shard = self.shard_of(group);
        let cap = self.ring_capacity;
        let Some(wake) = self.host.wake_handle(shard) else {
            return Err(EngineError::Busy(shard));
        };
        let (publication, offers) = publication_pair(cap, self.publication_bytes, wake.clone());
        let (msg_tx, msg_rx) = spsc::channel(cap);
        let (ev_tx, ev_rx) = spsc::channel(cap.min(4096));
        let alive = Arc::new(());
        let ends = Ends {
            offers,
            messages: msg_tx,
            events: ev_tx,
            alive: alive.clone(),
        };
        let contacts = options.contacts.into_iter().map(Locator::Udp).collect();
        self.host
            .command(
                shard,
                Command::Join {
                    group,
                    contacts,
                    ends,
                },
            )
            .map_err(|_| EngineError::Busy(shard))?;
        self.handles.push((group, Arc::downgrade(&alive)));
        Ok(Group {
            id: group,
            name: String::new(),
            publication,
            messages: msg_rx,
            events: ev_rx,
            wake,
            snapshot: self.snapshots[shard].clone(),
            node: self.member_id(shard),
            alive,
        })
    }

    /// The next node-scoped event (peers suspected, failed, recovered; driver failures).
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        match self.host.poll_event()? {
            (_, Hosted::Event(e)) => Some(e),
            (shard, Hosted::DriverFailed { error }) => {
                Some(EngineEvent::DriverFailed { shard, error })
            }
        }
    }

    /// Invoker mode: one duty cycle of every shard on this thread; the work done (0 = idle).
    pub fn invoke(&mut self) -> usize {
        self.host.invoke()
    }

    /// Invoker mode: like [`invoke`](Self::invoke), but an idle shard may wait in its driver
    /// as its idle strategy says (a datagram or an offer ends the wait).
    pub fn invoke_idle(&mut self) -> usize {
        self.host.invoke_idle()
    }

    /// A snapshot of every counter (refreshed by the shards every 50 ms or so).
    pub fn stats(&self) -> EngineStats {
        let mut out = EngineStats {
            events_dropped: self.host.events_dropped(),
            ..EngineStats::default()
        };
        let locators = self.host.locators();
        for (i, snap) in self.snapshots.iter().enumerate() {
            let s = snap.lock().map(|s| s.clone()).unwrap_or_default();
            out.shards.push(ShardCounters {
                index: i,
                locator: locators.get(i).copied(),
                member: self.member_id(i),
                driver: self.host.driver_stats(i),
                endpoint: s.endpoint,
                link: s.link,
                group: s.group,
            });
            out.groups.extend(s.groups);
            out.peers.extend(s.peers);
            out.trees.extend(s.trees);
            out.events_dropped += s.events_dropped;
        }
        out
    }
}

/// A joined group: publish to it, poll its messages and events. Dropping it leaves the group.
pub struct Group {
    id: GroupId,
    name: String,
    publication: Publication,
    messages: Consumer<GroupMessage>,
    events: Consumer<GroupEvent>,
    wake: ShardWake,
    snapshot: Arc<Mutex<Snapshot>>,
    node: NodeId,
    alive: Arc<()>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("publication", &self.publication)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The name it was joined by (empty if joined by id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node's member id in the group (the id its messages carry as their source).
    pub fn member(&self) -> NodeId {
        self.node
    }

    /// Copies `payload` once into a pooled chunk and queues it for publication; returns the
    /// number of this offer (from 0, the message's sequence number unless a resumed member).
    ///
    /// # Errors
    /// [`PublishError::BackPressured`] when the publication is full (retry),
    /// [`PublishError::TooLarge`], [`PublishError::Closed`].
    pub fn offer(&mut self, payload: &[u8]) -> Result<u64, PublishError> {
        self.publication.offer(payload)
    }

    /// Queues `payload` without copying it.
    ///
    /// # Errors
    /// As [`offer`](Self::offer).
    pub fn offer_bytes(&mut self, payload: Bytes) -> Result<u64, PublishError> {
        self.publication.offer_bytes(payload)
    }

    /// Claims `len` bytes to write a message in place; [`GroupClaim::commit`] queues it, and
    /// dropping the claim abandons it.
    ///
    /// # Errors
    /// As [`offer`](Self::offer).
    pub fn claim(&mut self, len: usize) -> Result<GroupClaim<'_>, PublishError> {
        self.publication.claim(len)
    }

    /// Offers refused for backpressure so far.
    pub fn backpressured(&self) -> u64 {
        self.publication.backpressured()
    }

    /// Bytes offered and not yet taken by the shard.
    pub fn pending_bytes(&mut self) -> u64 {
        self.publication.pending_bytes()
    }

    /// Hands up to `limit` delivered messages to `handler` (in per-source order); returns how
    /// many. Undelivered messages wait in a bounded ring.
    pub fn poll(&mut self, mut handler: impl FnMut(&GroupMessage), limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(m) = self.messages.try_pop() else {
                break;
            };
            handler(&m);
            n += 1;
        }
        if n > 0 {
            // The shard may hold messages for want of room.
            self.wake.wake();
        }
        n
    }

    /// The next event of this group: neighbours up and down, tree repairs, losses,
    /// backpressure, isolation.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        let e = self.events.try_pop();
        if e.is_some() {
            self.wake.wake();
        }
        e
    }

    /// This node's part of the group's trees, as last published by its shard.
    pub fn tree(&self) -> TreeEdges {
        self.snapshot
            .lock()
            .ok()
            .and_then(|s| s.trees.iter().find(|t| t.group == self.id).cloned())
            .unwrap_or_else(|| TreeEdges {
                group: self.id,
                node: self.node,
                neighbours: Vec::new(),
                sources: Vec::new(),
                flow: Vec::new(),
            })
    }

    /// This group's counters, as last published by its shard.
    pub fn counters(&self) -> GroupCounters {
        self.snapshot
            .lock()
            .ok()
            .and_then(|s| s.groups.iter().find(|g| g.group == self.id).cloned())
            .unwrap_or_else(|| GroupCounters::new(self.id))
    }

    /// Leaves the group (the same as dropping the handle).
    pub fn leave(self) {}
}

impl Drop for Group {
    fn drop(&mut self) {
        // Let go of the shard's liveness token first, then wake the shard so it leaves now.
        self.alive = Arc::new(());
        self.wake.wake();
    }
}
