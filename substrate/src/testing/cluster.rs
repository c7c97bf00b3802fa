//! [`Cluster`]: N protocol instances on one [`Network`], driven on virtual time.

use core::fmt;
use core::fmt::Write as _;

use bytes::Bytes;

use super::link::LinkConfig;
use super::net::{Arrival, NetStats, Network, NodeIdx, test_locator};
use super::scheduler::Scheduler;
use super::trace::TraceHash;
use crate::id::Locator;
use crate::proto::Protocol;
use crate::rand::Rng;
use crate::time::{Duration, Instant};
use crate::wire::MAX_DATAGRAM_BYTES;

/// One transmit, as shown to the [`Cluster::set_on_transmit`] observer.
#[derive(Clone, Debug)]
pub struct TransmitInfo<'a> {
    /// When the node sent it.
    pub at: Instant,
    /// The sending node.
    pub node: NodeIdx,
    /// The sender's locator at that moment.
    pub from: Locator,
    /// The destination the protocol chose.
    pub to: Locator,
    /// The datagram, as it goes on the wire (gathered parts spliced in).
    pub bytes: &'a [u8],
    /// Where in `bytes` the parts are that the protocol handed over in
    /// [`Transmit::gather`](crate::proto::Transmit::gather) rather than writing them, in order.
    pub gathered: Vec<std::ops::Range<usize>>,
}

/// Safety valves that turn a runaway protocol into a [`HarnessError`] instead of a hung test.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Most steps one `run_*` call may take.
    pub max_steps_per_run: u64,
    /// Most consecutive steps at one instant (a protocol that keeps asking for an immediate
    /// timeout, or two that ping-pong with zero latency, trips this).
    pub max_steps_per_instant: u64,
    /// Most transmits plus events one drain may yield.
    pub max_outputs_per_drain: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps_per_run: 100_000_000,
            max_steps_per_instant: 10_000_000,
            max_outputs_per_drain: 10_000_000,
        }
    }
}

/// Why the harness stopped a run. Once recorded (see [`Cluster::fault`]) it is sticky: later
/// `run_*` calls return it at once and [`Cluster::step`] returns `false`.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum HarnessError {
    /// A single `run_*` call took `steps` steps without reaching its deadline.
    #[error("step budget of {steps} exhausted at {at:?}")]
    StepBudget {
        /// The budget.
        steps: u64,
        /// Virtual time when it ran out.
        at: Instant,
    },
    /// Time stopped advancing: `steps` consecutive steps all happened at `at`.
    #[error(
        "no progress: {steps} steps at {at:?} (a protocol keeps asking for an immediate timeout?)"
    )]
    Stalled {
        /// The instant time was stuck at.
        at: Instant,
        /// Consecutive steps at that instant.
        steps: u64,
    },
    /// `node` kept producing transmits or events in one drain.
    #[error("{node} produced more than {outputs} outputs in one drain at {at:?}")]
    OutputFlood {
        /// The node.
        node: NodeIdx,
        /// The limit.
        outputs: u64,
        /// When.
        at: Instant,
    },
}

/// A protocol instance with its own randomness, collected events and current deadline.
struct Slot<P: Protocol> {
    proto: P,
    rng: Rng,
    events: Vec<P::Event>,
    deadline: Option<Instant>,
    /// Bumped whenever `deadline` changes; a timer entry with an older generation is stale.
    generation: u32,
}

type TransmitHook = Box<dyn FnMut(&TransmitInfo<'_>)>;

/// Trace record tags, so different kinds of record never hash alike.
const TAG_TRANSMIT: u64 = 1;
const TAG_DELIVER: u64 = 2;
const TAG_TIMEOUT: u64 = 3;
const TAG_EVENT: u64 = 4;

/// N instances of a [`Protocol`] on one in-memory [`Network`], on virtual time from
/// [`Instant::ZERO`], deterministic from one seed.
///
/// The cluster obeys the drive contract: after every input (datagram, timeout, or a
/// [`with_node`](Self::with_node) call) it drains `poll_transmit` into the network (from the
/// node's current locator) and `poll_event` into the node's event list until both are empty,
/// then records `poll_timeout`. [`step`](Self::step) processes the earliest pending datagram
/// arrival or timeout; at equal instants arrivals come first, and within each kind the order is
/// scheduling order. Node `i` draws from `Rng::with_seed(seed).fork(i)`, so its randomness does
/// not depend on the other nodes.
///
/// Buffers are handled as an engine would: `poll_transmit` writes into one fixed buffer of
/// [`MAX_DATAGRAM_BYTES`], never cleared between calls, and each arriving datagram is handed over
/// as a [`Bytes`] the protocol may keep slices of. Its buffer is reused for later arrivals only
/// once the protocol has dropped every slice.
pub struct Cluster<P: Protocol> {
    nodes: Vec<Slot<P>>,
    net: Network,
    /// Node deadlines as `(node, generation)`; the top entry is never stale.
    timers: Scheduler<(u32, u32)>,
    now: Instant,
    seed: u64,
    buf: Box<[u8]>,
    /// Where a datagram with gathered parts is assembled.
    wire: Box<[u8]>,
    trace: TraceHash,
    event_trace: Option<fn(&P::Event, &mut TraceHash)>,
    on_transmit: Option<TransmitHook>,
    limits: Limits,
    fault: Option<HarnessError>,
    steps: u64,
    steps_at_now: u64,
}

impl<P: Protocol> Cluster<P> {
    /// An empty cluster whose network uses `link` everywhere; events are hashed into the trace
    /// through their `Debug` rendering.
    pub fn new(seed: u64, link: LinkConfig) -> Self
    where
        P::Event: fmt::Debug,
    {
        let mut c = Self::new_opaque(seed, link);
        c.event_trace = Some(|e, h| {
            let _ = write!(h, "{e:?}");
        });
        c
    }

    /// Like [`new`](Self::new) for protocols whose events are not `Debug`: the trace hash covers
    /// transmits, arrivals and timeouts only.
    pub fn new_opaque(seed: u64, link: LinkConfig) -> Self {
        Self {
            nodes: Vec::new(),
            net: Network::new(seed, link),
            timers: Scheduler::new(),
            now: Instant::ZERO,
            seed,
            buf: vec![0; MAX_DATAGRAM_BYTES].into_boxed_slice(),
            wire: vec![0; MAX_DATAGRAM_BYTES].into_boxed_slice(),
            trace: TraceHash::new(),
            event_trace: None,
            on_transmit: None,
            limits: Limits::default(),
            fault: None,
            steps: 0,
            steps_at_now: 0,
        }
    }

    /// Adds `proto` at [`test_locator`]`(index)` and drains anything it already wants to send.
    pub fn add_node(&mut self, proto: P) -> NodeIdx {
        self.add_node_at(proto, test_locator(self.nodes.len() as u32))
    }

    /// Adds `proto` at `locator`.
    ///
    /// # Panics
    /// If another node holds `locator`, or if nodes were added to the network directly.
    pub fn add_node_at(&mut self, proto: P, locator: Locator) -> NodeIdx {
        let idx = self.net.add_node(locator);
        assert_eq!(
            idx.index(),
            self.nodes.len(),
            "nodes added to the network behind the cluster"
        );
        let rng = Rng::with_seed(self.seed).fork(u64::from(idx.0));
        self.nodes.push(Slot {
            proto,
            rng,
            events: Vec::new(),
            deadline: None,
            generation: 0,
        });
        self.drain(idx.0);
        idx
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The protocol instance of `node`.
    pub fn node(&self, node: NodeIdx) -> &P {
        &self.nodes[node.index()].proto
    }

    /// Mutable access without draining. Prefer [`with_node`](Self::with_node) for calls that
    /// can produce output, or call [`flush`](Self::flush) afterwards.
    pub fn node_mut(&mut self, node: NodeIdx) -> &mut P {
        &mut self.nodes[node.index()].proto
    }

    /// Runs `f` on `node` with the current time and the node's `Rng`, then drains the node's
    /// output (this is how tests call protocol APIs such as `offer`).
    pub fn with_node<R>(
        &mut self,
        node: NodeIdx,
        f: impl FnOnce(&mut P, Instant, &mut Rng) -> R,
    ) -> R {
        let slot = &mut self.nodes[node.index()];
        let r = f(&mut slot.proto, self.now, &mut slot.rng);
        self.drain(node.0);
        r
    }

    /// Drains `node`'s transmits and events and re-reads its deadline.
    pub fn flush(&mut self, node: NodeIdx) {
        self.drain(node.0);
    }

    /// The locator `node` currently sends from and receives at.
    pub fn locator(&self, node: NodeIdx) -> Locator {
        self.net.locator(node)
    }

    /// The deadline `node` last reported.
    pub fn deadline(&self, node: NodeIdx) -> Option<Instant> {
        self.nodes[node.index()].deadline
    }

    /// Events `node` has reported and nobody has taken yet, oldest first.
    pub fn events(&self, node: NodeIdx) -> &[P::Event] {
        &self.nodes[node.index()].events
    }

    /// Takes `node`'s collected events.
    pub fn take_events(&mut self, node: NodeIdx) -> Vec<P::Event> {
        core::mem::take(&mut self.nodes[node.index()].events)
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The world seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The network (locators, link settings, stats).
    pub fn net(&self) -> &Network {
        &self.net
    }

    /// The network, for partitions, rebinds and link changes. Do not add nodes through it.
    pub fn net_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// The network's counters.
    pub fn stats(&self) -> &NetStats {
        self.net.stats()
    }

    /// The rolling hash over every transmit, arrival, timeout and (with [`new`](Self::new))
    /// event so far: equal for two runs from the same seed.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// Steps taken since the cluster was built.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Calls `f` for every transmit, before it enters the network (to measure pacing or decode
    /// traffic). Replaces any earlier observer.
    pub fn set_on_transmit(&mut self, f: impl FnMut(&TransmitInfo<'_>) + 'static) {
        self.on_transmit = Some(Box::new(f));
    }

    /// Removes the transmit observer.
    pub fn clear_on_transmit(&mut self) {
        self.on_transmit = None;
    }

    /// The safety valves in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Replaces the safety valves.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The error that stopped the harness, if any.
    pub fn fault(&self) -> Option<&HarnessError> {
        self.fault.as_ref()
    }

    /// When the next datagram arrives or timeout fires, if anything is pending.
    pub fn next_time(&self) -> Option<Instant> {
        match (self.net.next_arrival(), self.timers.peek_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes the earliest pending thing (a datagram arrival or a node timeout), advancing
    /// time to it. Returns `false` if nothing is pending or a [`fault`](Self::fault) is recorded.
    pub fn step(&mut self) -> bool {
        if self.fault.is_some() {
            return false;
        }
        let (net_at, timer_at) = (self.net.next_arrival(), self.timers.peek_time());
        let at = match (net_at, timer_at) {
            (None, None) => return false,
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.now),
        };
        self.steps += 1;
        if at > self.now {
            self.now = at;
            self.steps_at_now = 0;
        } else {
            self.steps_at_now += 1;
            if self.steps_at_now > self.limits.max_steps_per_instant {
                self.fault = Some(HarnessError::Stalled {
                    at: self.now,
                    steps: self.steps_at_now,
                });
            }
        }
        if net_at == Some(at) {
            if let Some(arrival) = self.net.pop_arrival(at) {
                self.deliver(arrival);
            }
        } else if let Some((_, (node, _))) = self.timers.pop() {
            self.purge_stale();
            let now = self.now;
            let slot = &mut self.nodes[node as usize];
            slot.deadline = None;
            self.trace.write_u64(TAG_TIMEOUT);
            self.trace.write_u64(now.as_nanos());
            self.trace.write_u64(u64::from(node));
            slot.proto.handle_timeout(now, &mut slot.rng);
            self.drain(node);
        }
        true
    }

    fn deliver(&mut self, arrival: Arrival) {
        let Arrival {
            node,
            from,
            payload,
            ..
        } = arrival;
        self.trace.write_u64(TAG_DELIVER);
        self.trace.write_u64(self.now.as_nanos());
        self.trace.write_u64(u64::from(node.0));
        self.trace.write_u64(payload.len() as u64);
        let slot = &mut self.nodes[node.index()];
        let datagram = Bytes::from(payload);
        slot.proto
            .handle_datagram(self.now, from, &datagram, &mut slot.rng);
        // The protocol may have kept slices of it; if so, the buffer goes when they do.
        if let Ok(buf) = datagram.try_into_mut() {
            self.net.recycle(buf.into());
        }
        self.drain(node.0);
    }

    /// The drive contract: drain transmits and events until both are empty, then record the
    /// deadline.
    fn drain(&mut self, node: u32) {
        let now = self.now;
        let limit = self.limits.max_outputs_per_drain;
        let slot = &mut self.nodes[node as usize];
        let mut outputs = 0u64;
        'drain: loop {
            let mut any = false;
            while let Some(t) = slot.proto.poll_transmit(now, &mut self.buf) {
                let len = t.datagram_len();
                assert!(
                    len <= self.buf.len(),
                    "a protocol reported a transmit longer than its buffer"
                );
                // The network is the wire: gathered parts are spliced into the written bytes.
                let bytes = if t.gather.is_empty() {
                    &self.buf[..len]
                } else {
                    t.gather.assemble(&self.buf[..t.len], &mut self.wire);
                    &self.wire[..len]
                };
                any = true;
                outputs += 1;
                let from = self.net.locator(NodeIdx(node));
                self.trace.write_u64(TAG_TRANSMIT);
                self.trace.write_u64(now.as_nanos());
                self.trace.write_u64(u64::from(node));
                self.trace.write_locator(&from);
                self.trace.write_locator(&t.destination);
                self.trace.write_bytes(bytes);
                if let Some(f) = &mut self.on_transmit {
                    f(&TransmitInfo {
                        at: now,
                        node: NodeIdx(node),
                        from,
                        to: t.destination,
                        bytes,
                        gathered: t
                            .gather
                            .iter()
                            .scan(0, |before, (at, part)| {
                                let start = at + *before;
                                *before += part.len();
                                Some(start..start + part.len())
                            })
                            .collect(),
                    });
                }
                self.net.send(now, NodeIdx(node), t.destination, bytes);
                if outputs > limit {
                    break 'drain;
                }
            }
            while let Some(e) = slot.proto.poll_event() {
                any = true;
                outputs += 1;
                if let Some(hash_event) = self.event_trace {
                    self.trace.write_u64(TAG_EVENT);
                    self.trace.write_u64(now.as_nanos());
                    self.trace.write_u64(u64::from(node));
                    hash_event(&e, &mut self.trace);
                }
                slot.events.push(e);
                if outputs > limit {
                    break 'drain;
                }
            }
            if !any {
                break;
            }
        }
        if outputs > limit {
            let node = NodeIdx(node);
            self.fault = Some(HarnessError::OutputFlood {
                node,
                outputs: limit,
                at: now,
            });
        }
        let deadline = slot.proto.poll_timeout();
        if deadline != slot.deadline {
            slot.deadline = deadline;
            slot.generation = slot.generation.wrapping_add(1);
            if let Some(d) = deadline {
                self.timers.push(d.max(now), (node, slot.generation));
            }
            self.purge_stale();
        }
    }

    /// Pops superseded timer entries off the top, so the top is always live.
    fn purge_stale(&mut self) {
        while let Some((_, &(node, generation))) = self.timers.peek() {
            if self.nodes[node as usize].generation == generation {
                break;
            }
            self.timers.pop();
        }
    }

    /// Runs everything due up to and including `deadline`, then sets the clock to `deadline`.
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), HarnessError> {
        self.run_inner(deadline, |_| false).map(|_| ())
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), HarnessError> {
        self.run_until(self.now + d)
    }

    /// Steps while `keep_going(self)` holds and something is due by `max_deadline`. Returns
    /// `Ok(true)` as soon as the predicate turns false (the clock stays at that moment), or
    /// `Ok(false)` if `max_deadline` came first (the clock is then at `max_deadline`).
    pub fn run_while(
        &mut self,
        max_deadline: Instant,
        mut keep_going: impl FnMut(&Self) -> bool,
    ) -> Result<bool, HarnessError> {
        self.run_inner(max_deadline, |c| !keep_going(c))
    }

    /// Runs until nothing is pending (no datagram in flight, no deadline): `Ok(true)`, clock left
    /// at the last step. `Ok(false)` if something is still pending after `max_deadline`.
    pub fn run_until_quiet(&mut self, max_deadline: Instant) -> Result<bool, HarnessError> {
        self.run_inner(max_deadline, |c| c.next_time().is_none())
    }

    fn run_inner(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, HarnessError> {
        if let Some(e) = &self.fault {
            return Err(e.clone());
        }
        let mut budget = self.limits.max_steps_per_run;
        loop {
            if done(self) {
                return Ok(true);
            }
            if self.next_time().is_none_or(|t| t > deadline) {
                self.now = self.now.max(deadline);
                return Ok(false);
            }
            if budget == 0 {
                let e = HarnessError::StepBudget {
                    steps: self.limits.max_steps_per_run,
                    at: self.now,
                };
                self.fault = Some(e.clone());
                return Err(e);
            }
            budget -= 1;
            self.step();
            if let Some(e) = &self.fault {
                return Err(e.clone());
            }
        }
    }
}

impl<P: Protocol> fmt::Debug for Cluster<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("timers", &self.timers)
            .field("steps", &self.steps)
            .field("trace_hash", &format_args!("{:016x}", self.trace.finish()))
            .field("fault", &self.fault)
            .field("net", &self.net)
            .finish_non_exhaustive()
    }
}

/// A two-node [`Cluster`] with the nodes named `a` and `b`; derefs to the cluster.
pub struct TestPair<P: Protocol> {
    /// The underlying cluster.
    pub cluster: Cluster<P>,
    /// The first node, at `test_locator(0)`.
    pub a: NodeIdx,
    /// The second node, at `test_locator(1)`.
    pub b: NodeIdx,
}

impl<P: Protocol> TestPair<P> {
    /// Two nodes on a network with `link` in both directions.
    pub fn new(seed: u64, link: LinkConfig, a: P, b: P) -> Self
    where
        P::Event: fmt::Debug,
    {
        let mut cluster = Cluster::new(seed, link);
        let (a, b) = (cluster.add_node(a), cluster.add_node(b));
        Self { cluster, a, b }
    }

    /// [`Cluster::with_node`] on `a`.
    pub fn with_a<R>(&mut self, f: impl FnOnce(&mut P, Instant, &mut Rng) -> R) -> R {
        self.cluster.with_node(self.a, f)
    }

    /// [`Cluster::with_node`] on `b`.
    pub fn with_b<R>(&mut self, f: impl FnOnce(&mut P, Instant, &mut Rng) -> R) -> R {
        self.cluster.with_node(self.b, f)
    }
}

impl<P: Protocol> core::ops::Deref for TestPair<P> {
    type Target = Cluster<P>;
    fn deref(&self) -> &Cluster<P> {
        &self.cluster
    }
}

impl<P: Protocol> core::ops::DerefMut for TestPair<P> {
    fn deref_mut(&mut self) -> &mut Cluster<P> {
        &mut self.cluster
    }
}

impl<P: Protocol> fmt::Debug for TestPair<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPair")
            .field("a", &self.a)
            .field("b", &self.b)
            .field("cluster", &self.cluster)
            .finish()
    }
}
