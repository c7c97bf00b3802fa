//! An in-memory datagram network on virtual time.
//!
//! Nodes are `u32` indices ([`NodeIdx`]) attached at [`Locator`]s. [`Network::send`] decides a
//! datagram's fate from its directed link's [`LinkConfig`] (MTU, partition, serialization at a
//! finite bandwidth, loss, latency, jitter, reordering, duplication) and queues it for
//! [`Network::pop_arrival`]. Every random choice comes from one seeded [`Rng`]; maps use the
//! deterministic [`crate::collections`] hasher; per-link state exists only for links that were
//! used with a bandwidth or a bursty loss model, so 10^5 nodes cost little more than their
//! locators. Payload buffers are recycled through a free list.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::link::{LinkConfig, Loss};
use super::scheduler::Scheduler;
use crate::collections::HashMap;
use crate::id::Locator;
use crate::rand::Rng;
use crate::time::{Duration, Instant, duration_ns};

/// A node's index in a [`Network`] (and in a [`Cluster`](super::Cluster)): dense, from zero,
/// in the order nodes were added.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct NodeIdx(pub u32);

impl NodeIdx {
    /// The index as a `usize`, for indexing vectors.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A distinct UDP locator for test node `i`, inside the benchmarking block 198.18.0.0/15
/// (RFC 2544), so test traffic can never be mistaken for a real address. Hosts `.0.1` to
/// `.255.254` of the block on port 7000, then the same hosts on port 7001, and so on: distinct
/// for every `u32`.
pub fn test_locator(i: u32) -> Locator {
    const HOSTS: u32 = (1 << 17) - 2;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let ip = Ipv4Addr::from(base + 1 + i % HOSTS);
    // i / HOSTS < 32_770, so the port stays below 40_000.
    let port = 7000 + (i / HOSTS) as u16;
    Locator::Udp(SocketAddr::new(IpAddr::V4(ip), port))
}

/// Counters over the life of a [`Network`]. Every sent datagram ends up in exactly one of
/// `delivered` or a `dropped_*`/`unroutable` counter, plus `duplicated` extra deliveries:
/// `sent + duplicated == delivered + dropped_* + unroutable + in_flight`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct NetStats {
    /// Datagrams handed to [`Network::send`].
    pub sent: u64,
    /// Datagrams (copies included) handed to their receiver.
    pub delivered: u64,
    /// Lost by the loss model.
    pub dropped_loss: u64,
    /// Blocked by a partition, at send or at arrival.
    pub dropped_partition: u64,
    /// Larger than the link's MTU.
    pub dropped_mtu: u64,
    /// Refused by a full bandwidth queue (`max_queue_delay`).
    pub dropped_queue: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub reordered: u64,
    /// Addressed to a locator no node held (at send or at arrival, e.g. after a rebind).
    pub unroutable: u64,
    /// Payload bytes handed to `send`.
    pub bytes_sent: u64,
    /// Payload bytes delivered.
    pub bytes_delivered: u64,
}

/// A datagram arriving at its receiver, returned by [`Network::pop_arrival`]. Hand `payload`
/// back with [`Network::recycle`] to reuse its buffer.
#[derive(Debug)]
pub struct Arrival {
    /// Arrival time.
    pub at: Instant,
    /// The receiving node (the holder of `to` at arrival time).
    pub node: NodeIdx,
    /// The sender's locator when it sent.
    pub from: Locator,
    /// The locator the datagram was addressed to.
    pub to: Locator,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// The set of nodes a partition rule applies to: a bitset over node indices.
#[derive(Clone, Debug)]
struct NodeSet(Vec<u64>);

impl NodeSet {
    fn new(nodes: &[NodeIdx]) -> Self {
        let mut bits = Vec::new();
        for n in nodes {
            let (word, bit) = (n.index() / 64, n.0 % 64);
            if bits.len() <= word {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << bit;
        }
        Self(bits)
    }

    fn contains(&self, n: u32) -> bool {
        self.0
            .get(n as usize / 64)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

/// "Traffic from `from` to `to` is (un)blocked"; the last matching rule wins.
#[derive(Clone, Debug)]
struct Rule {
    from: NodeSet,
    to: NodeSet,
    block: bool,
}

/// Per-directed-link state, kept only for links that need it.
#[derive(Clone, Copy, Debug, Default)]
struct LinkState {
    /// When the link finishes serializing what it already accepted.
    busy_until: Instant,
    /// Gilbert–Elliott state.
    bad: bool,
}

/// A datagram on its way.
#[derive(Debug)]
struct Flight {
    from_node: u32,
    from: Locator,
    to: Locator,
    payload: Vec<u8>,
}

/// Most payload buffers kept for reuse.
const MAX_FREE_BUFS: usize = 4096;

/// The in-memory network: nodes at locators, per-directed-link behaviour, partitions and a
/// queue of datagrams in flight on virtual time.
///
/// [`send`](Self::send) decides a datagram's fate in this order: unroutable destination, MTU,
/// partition, bandwidth queue, loss; survivors get latency, jitter and any reorder delay, and
/// may be duplicated. [`pop_arrival`](Self::pop_arrival) hands them out in `(time, send order)`.
pub struct Network {
    rng: Rng,
    default_link: LinkConfig,
    overrides: HashMap<u64, LinkConfig>,
    links: HashMap<u64, LinkState>,
    locators: Vec<Locator>,
    by_locator: HashMap<Locator, u32>,
    rules: Vec<Rule>,
    queue: Scheduler<u32>,
    flights: Vec<Flight>,
    free_flights: Vec<u32>,
    free_bufs: Vec<Vec<u8>>,
    stats: NetStats,
}

fn link_key(from: u32, to: u32) -> u64 {
    (u64::from(from) << 32) | u64::from(to)
}

impl Network {
    /// An empty network whose random choices are fixed by `seed`, with `default_link` on every
    /// directed link that has no override.
    pub fn new(seed: u64, default_link: LinkConfig) -> Self {
        Self::with_rng(Rng::with_seed(seed).fork(u64::MAX), default_link)
    }

    /// An empty network drawing its random choices from `rng`.
    pub fn with_rng(rng: Rng, default_link: LinkConfig) -> Self {
        Self {
            rng,
            default_link,
            overrides: HashMap::default(),
            links: HashMap::default(),
            locators: Vec::new(),
            by_locator: HashMap::default(),
            rules: Vec::new(),
            queue: Scheduler::new(),
            flights: Vec::new(),
            free_flights: Vec::new(),
            free_bufs: Vec::new(),
            stats: NetStats::default(),
        }
    }

    /// Attaches a new node at `locator` and returns its index (the next one in sequence).
    ///
    /// # Panics
    /// If another node already holds `locator`.
    pub fn add_node(&mut self, locator: Locator) -> NodeIdx {
        let idx = u32::try_from(self.locators.len()).expect("more than u32::MAX nodes");
        let prev = self.by_locator.insert(locator, idx);
        assert!(
            prev.is_none(),
            "{locator} is already held by n{}",
            prev.unwrap_or(0)
        );
        self.locators.push(locator);
        NodeIdx(idx)
    }

    /// Number of nodes attached.
    pub fn node_count(&self) -> usize {
        self.locators.len()
    }

    /// The locator `node` currently sends from and receives at.
    pub fn locator(&self, node: NodeIdx) -> Locator {
        self.locators[node.index()]
    }

    /// The node holding `locator`, if any.
    pub fn node_at(&self, locator: &Locator) -> Option<NodeIdx> {
        self.by_locator.get(locator).map(|&i| NodeIdx(i))
    }

    /// Moves `node` to `locator`: it now sends from and receives at the new locator, and
    /// datagrams still in flight to the old one are dropped as unroutable when they arrive.
    ///
    /// # Panics
    /// If another node holds `locator`.
    pub fn rebind(&mut self, node: NodeIdx, locator: Locator) {
        let old = self.locators[node.index()];
        if old == locator {
            return;
        }
        if let Some(&other) = self.by_locator.get(&locator) {
            panic!("{locator} is already held by n{other}");
        }
        self.by_locator.remove(&old);
        self.by_locator.insert(locator, node.0);
        self.locators[node.index()] = locator;
    }

    /// The link configuration used where no override is set.
    pub fn default_link(&self) -> &LinkConfig {
        &self.default_link
    }

    /// Replaces the default link configuration (takes effect for datagrams sent from now on).
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
    }

    /// Overrides the configuration of the directed link `from -> to`.
    pub fn set_link(&mut self, from: NodeIdx, to: NodeIdx, config: LinkConfig) {
        self.overrides.insert(link_key(from.0, to.0), config);
    }

    /// Overrides both directions between `a` and `b`.
    pub fn set_link_both(&mut self, a: NodeIdx, b: NodeIdx, config: LinkConfig) {
        self.set_link(a, b, config);
        self.set_link(b, a, config);
    }

    /// Removes the override on `from -> to`, returning it to the default.
    pub fn clear_link(&mut self, from: NodeIdx, to: NodeIdx) {
        self.overrides.remove(&link_key(from.0, to.0));
    }

    /// The configuration in force on `from -> to`.
    pub fn link(&self, from: NodeIdx, to: NodeIdx) -> &LinkConfig {
        self.overrides
            .get(&link_key(from.0, to.0))
            .unwrap_or(&self.default_link)
    }

    /// Blocks both directions between every node of `a` and every node of `b`, until healed.
    /// A datagram crosses only if its link is open both when it is sent and when it arrives.
    pub fn partition(&mut self, a: &[NodeIdx], b: &[NodeIdx]) {
        self.push_rules(a, b, true, true);
    }

    /// Blocks traffic from every node of `from` to every node of `to` (one direction only).
    pub fn block_one_way(&mut self, from: &[NodeIdx], to: &[NodeIdx]) {
        self.push_rules(from, to, false, true);
    }

    /// Reopens both directions between `a` and `b`, leaving other blocks in place.
    pub fn heal_between(&mut self, a: &[NodeIdx], b: &[NodeIdx]) {
        self.push_rules(a, b, true, false);
    }

    /// Reopens traffic from `from` to `to` (one direction only).
    pub fn heal_one_way(&mut self, from: &[NodeIdx], to: &[NodeIdx]) {
        self.push_rules(from, to, false, false);
    }

    /// Removes every partition and block.
    pub fn heal(&mut self) {
        self.rules.clear();
    }

    fn push_rules(&mut self, a: &[NodeIdx], b: &[NodeIdx], both: bool, block: bool) {
        if !block && self.rules.is_empty() {
            return;
        }
        let (sa, sb) = (NodeSet::new(a), NodeSet::new(b));
        if both {
            self.rules.push(Rule {
                from: sb.clone(),
                to: sa.clone(),
                block,
            });
        }
        self.rules.push(Rule {
            from: sa,
            to: sb,
            block,
        });
    }

    /// Whether traffic from `from` to `to` is blocked now.
    pub fn is_blocked(&self, from: NodeIdx, to: NodeIdx) -> bool {
        self.blocked(from.0, to.0)
    }

    fn blocked(&self, from: u32, to: u32) -> bool {
        self.rules
            .iter()
            .rev()
            .find(|r| r.from.contains(from) && r.to.contains(to))
            .is_some_and(|r| r.block)
    }

    /// Sends `bytes` from `from` (from its current locator) to `to` at `now`, deciding the
    /// datagram's fate: unroutable, too big, partitioned, queue-dropped or lost ones are counted
    /// and discarded; the rest are queued to arrive after serialization, latency, jitter and
    /// any reorder delay, possibly twice.
    pub fn send(&mut self, now: Instant, from: NodeIdx, to: Locator, bytes: &[u8]) {
        let len = bytes.len() as u64;
        self.stats.sent += 1;
        self.stats.bytes_sent += len;
        let Some(&dst) = self.by_locator.get(&to) else {
            self.stats.unroutable += 1;
            return;
        };
        let key = link_key(from.0, dst);
        let cfg = *self.overrides.get(&key).unwrap_or(&self.default_link);
        if bytes.len() > cfg.mtu {
            self.stats.dropped_mtu += 1;
            return;
        }
        if !self.rules.is_empty() && self.blocked(from.0, dst) {
            self.stats.dropped_partition += 1;
            return;
        }
        let mut depart = now;
        if let Some(bw) = cfg.bandwidth {
            let link = self.links.entry(key).or_default();
            let start = link.busy_until.max(now);
            if cfg.max_queue_delay.is_some_and(|q| start - now > q) {
                self.stats.dropped_queue += 1;
                return;
            }
            let tx_ns = (u128::from(len) * 1_000_000_000).div_ceil(u128::from(bw));
            depart = start.saturating_add(Duration::from_nanos(tx_ns as u64));
            link.busy_until = depart;
        }
        let lost = match cfg.loss {
            Loss::None => false,
            Loss::Uniform(p) => self.rng.chance(p),
            Loss::Burst(ge) => {
                let link = self.links.entry(key).or_default();
                link.bad = if link.bad {
                    !self.rng.chance(ge.p_leave_bad)
                } else {
                    self.rng.chance(ge.p_enter_bad)
                };
                self.rng.chance(if link.bad {
                    ge.loss_in_bad
                } else {
                    ge.loss_in_good
                })
            }
        };
        if lost {
            self.stats.dropped_loss += 1;
            return;
        }
        let from_loc = self.locators[from.index()];
        let at = depart + self.delay(&cfg);
        self.enqueue(at, from.0, from_loc, to, bytes);
        if self.rng.chance(cfg.duplicate) {
            self.stats.duplicated += 1;
            let at = depart + self.delay(&cfg);
            self.enqueue(at, from.0, from_loc, to, bytes);
        }
    }

    /// Latency plus a jitter sample plus, for a datagram chosen for reordering, the extra delay.
    fn delay(&mut self, cfg: &LinkConfig) -> Duration {
        let mut d = cfg.latency;
        if !cfg.jitter.is_zero() {
            d += Duration::from_nanos(self.rng.below(duration_ns(cfg.jitter).saturating_add(1)));
        }
        if self.rng.chance(cfg.reorder) {
            self.stats.reordered += 1;
            d += cfg.reorder_delay;
        }
        d
    }

    fn enqueue(&mut self, at: Instant, from_node: u32, from: Locator, to: Locator, bytes: &[u8]) {
        let mut payload = self.free_bufs.pop().unwrap_or_default();
        payload.extend_from_slice(bytes);
        let flight = Flight {
            from_node,
            from,
            to,
            payload,
        };
        let slot = match self.free_flights.pop() {
            Some(slot) => {
                self.flights[slot as usize] = flight;
                slot
            }
            None => {
                self.flights.push(flight);
                (self.flights.len() - 1) as u32
            }
        };
        self.queue.push(at, slot);
    }

    /// When the next queued datagram arrives (it may still be dropped on arrival).
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek_time()
    }

    /// Number of datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The next datagram arriving at or before `until`, earliest first (same-time arrivals in
    /// send order). Datagrams whose destination is no longer held, or whose link is now
    /// partitioned, are counted and skipped.
    pub fn pop_arrival(&mut self, until: Instant) -> Option<Arrival> {
        while let Some((at, slot)) = self.queue.pop_due(until) {
            let flight = &mut self.flights[slot as usize];
            let payload = core::mem::take(&mut flight.payload);
            let (from_node, from, to) = (flight.from_node, flight.from, flight.to);
            self.free_flights.push(slot);
            let Some(&dst) = self.by_locator.get(&to) else {
                self.stats.unroutable += 1;
                self.recycle(payload);
                continue;
            };
            if !self.rules.is_empty() && self.blocked(from_node, dst) {
                self.stats.dropped_partition += 1;
                self.recycle(payload);
                continue;
            }
            self.stats.delivered += 1;
            self.stats.bytes_delivered += payload.len() as u64;
            return Some(Arrival {
                at,
                node: NodeIdx(dst),
                from,
                to,
                payload,
            });
        }
        None
    }

    /// Returns a delivered payload's buffer for reuse.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.free_bufs.len() < MAX_FREE_BUFS && payload.capacity() > 0 {
            payload.clear();
            self.free_bufs.push(payload);
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("nodes", &self.locators.len())
            .field("in_flight", &self.queue.len())
            .field("default_link", &self.default_link)
            .field("overrides", &self.overrides.len())
            .field("partition_rules", &self.rules.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
