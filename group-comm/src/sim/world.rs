//! [`World`]: the discrete-event loop that runs a [`Plan`] over many [`GroupNode`]s.
//!
//! One event queue (`EventQueue`, keyed by `(time, insertion sequence)`) holds frame arrivals,
//! node timers and the plan's actions. After every input to a node the world drains the node's
//! transmits and events, then reads its next deadline; each node has at most one live timer (a
//! popped timer whose deadline is no longer the node's is skipped). Frames go to receivers with
//! `handle_parts`, so every receiver of a message shares the one payload buffer.

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::testing::TraceHash;
use substrate::time::{Instant, duration_ns};

use super::check::{Checker, SimFailure, Violation};
use super::metrics::{ClassCount, Histogram, PhaseReport, RepairReport, Report};
use super::network::{Network, Route};
use super::plan::{Plan, PlanError};
use super::queue::EventQueue;
use crate::GroupId;
use crate::config::{Dissemination, GroupConfig};
use crate::event::{GroupEvent, TrafficClass};
use crate::node::{GroupNode, GroupTransmit};
use crate::wire::{MessageId, NodeRef};

/// A simulated deployment: every node of a [`Plan`], the network between them, and the
/// checkers and measures. Deterministic: the same plan (seed included) gives the same run.
///
/// ```no_run
/// use group_comm::sim::{Plan, World};
///
/// let plan = Plan { seed: 7, ..Plan::new(2_000) };
/// let mut world = World::new(plan).expect("valid plan");
/// world.run();
/// if let Err(failure) = world.verdict() {
///     panic!("{failure}");
/// }
/// println!("{}", world.report().to_json());
/// ```
#[derive(Debug)]
pub struct World {
    /// `None` before a node starts and after it crashes.
    nodes: Vec<Option<GroupNode>>,
    /// Each node's RNG, derived from (seed, index) alone.
    rngs: Vec<Rng>,
    core: Core,
}

/// Everything but the nodes, so that a node and the world can be borrowed at once.
#[derive(Debug)]
struct Core {
    plan: Plan,
    config: GroupConfig,
    groups: Vec<GroupId>,
    /// Per group, its broadcast sources.
    sources: Vec<Vec<u32>>,
    is_source: Vec<bool>,
    now_ns: u64,
    end_ns: u64,
    first_fault_ns: u64,
    finished: bool,
    queue: EventQueue<Due>,
    frames: Vec<FrameSlot>,
    free_frames: Vec<u32>,
    actions: Vec<Action>,
    free_actions: Vec<u32>,
    state: Vec<NodeState>,
    /// Per node, its current timer (ns), `u64::MAX` for none.
    deadline_ns: Vec<u64>,
    /// Per (node, group): when this incarnation got `Joined`, `u64::MAX` if not (yet).
    joined_at_ns: Vec<u64>,
    /// Per (node, group): active neighbours (from `NeighborUp`/`NeighborDown`).
    active: Vec<u16>,
    /// Per group: live nodes that have joined, the contacts for new joins.
    pool: Vec<Vec<u32>>,
    /// Per (node, group): position in `pool`, `u32::MAX` if absent.
    pool_pos: Vec<u32>,
    crashed: Vec<u32>,
    network: Network,
    rng: Rng,
    checker: Checker,
    trace: TraceHash,
    broadcasts: Vec<BroadcastRecord>,
    latency: [Histogram; 2],
    rdp_milli: [Histogram; 2],
    classes: [ClassCount; 4],
    /// Transmits per frame kind byte.
    kinds: [u64; 32],
    frames_lost: u64,
    frames_partitioned: u64,
    frames_to_crashed: u64,
    broadcasts_skipped: u64,
    fan_out_max: u64,
    fan_out_sum: u64,
    fan_out_bursts: u64,
    /// Payload frames per broadcast in the current drain.
    burst: Vec<(u32, u32)>,
    events_processed: u64,
    timers_clamped: u64,
    repairs: Vec<RepairState>,
    /// Nodes whose inputs, transmits and events are logged, for diagnosis.
    watched: Vec<u32>,
    log: Vec<String>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum NodeState {
    Idle,
    Live,
    Crashed,
}

/// What a queue entry is: an index into the frame or action slab, or a node's timer.
#[derive(Clone, Copy, Debug)]
enum Due {
    Timer(u32),
    Frame(u32),
    Action(u32),
}

#[derive(Debug, Default)]
struct FrameSlot {
    from: u32,
    to: u32,
    payload_class: bool,
    head: Bytes,
    payload: Bytes,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Join(u32),
    Rejoin { node: u32, group: u32 },
    Publish(u32),
    Crash(u32),
    Partition(u32),
    Heal,
    ChurnCrash,
    ChurnRestart,
    SampleViews(u32),
    Free,
}

#[derive(Debug)]
struct BroadcastRecord {
    id: Option<MessageId>,
    group: u32,
    source: u32,
    publish_ns: u64,
    phase: usize,
    max_hops: u16,
    deliveries: u64,
    copies: u64,
    /// Per node: bit 7 delivered, bits 0-6 payload copies received (saturating).
    per_node: Vec<u8>,
}

#[derive(Debug)]
struct RepairState {
    crash_ns: u64,
    crashed: u64,
    views_clean_ns: Option<u64>,
}

impl World {
    /// Builds the world of `plan` and schedules its joins, broadcasts and faults.
    ///
    /// # Errors
    /// [`PlanError`] if the plan does not validate.
    pub fn new(plan: Plan) -> Result<Self, PlanError> {
        plan.validate()?;
        let n = plan.nodes;
        let g = plan.groups.count;
        let config = plan.group_config();
        let groups: Vec<GroupId> = (0..g)
            .map(|i| GroupId::from_name(&format!("sim-{i}")))
            .collect();
        let mut is_source = vec![false; n];
        let sources: Vec<Vec<u32>> = (0..g)
            .map(|group| {
                let members: Vec<u32> = (0..n)
                    .filter(|&i| plan.groups.is_member(i, group))
                    .map(|i| i as u32)
                    .collect();
                let count = plan.broadcasts.sources.min(members.len());
                (0..count)
                    .map(|k| {
                        let s = members[k * members.len() / count];
                        is_source[s as usize] = true;
                        s
                    })
                    .collect()
            })
            .collect();
        let mut root = Rng::with_seed(plan.seed);
        let rng = root.fork(WORLD_STREAM);
        let net_rng = Rng::with_seed(plan.seed).fork(NETWORK_STREAM);
        let network = Network::new(
            plan.seed,
            n,
            plan.latency,
            plan.loss,
            plan.uplink_bytes_per_s,
            net_rng,
        );
        let start = plan.traffic_start();
        let mut first_fault = u64::MAX;
        for crash in &plan.crashes {
            first_fault = first_fault.min(duration_ns(start + crash.at));
        }
        for partition in &plan.partitions {
            first_fault = first_fault.min(duration_ns(start + partition.at));
        }
        if let Some(churn) = &plan.churn {
            first_fault = first_fault.min(duration_ns(start + churn.from));
        }
        let core = Core {
            config,
            groups,
            sources,
            is_source,
            now_ns: 0,
            end_ns: duration_ns(plan.end_time()),
            first_fault_ns: first_fault,
            finished: false,
            queue: EventQueue::new(),
            frames: Vec::new(),
            free_frames: Vec::new(),
            actions: Vec::new(),
            free_actions: Vec::new(),
            state: vec![NodeState::Idle; n],
            deadline_ns: vec![u64::MAX; n],
            joined_at_ns: vec![u64::MAX; n * g],
            active: vec![0; n * g],
            pool: vec![Vec::new(); g],
            pool_pos: vec![u32::MAX; n * g],
            crashed: Vec::new(),
            network,
            rng,
            checker: Checker::new(n),
            trace: TraceHash::new(),
            broadcasts: Vec::with_capacity(plan.broadcasts.count),
            latency: [Histogram::new(), Histogram::new()],
            rdp_milli: [Histogram::new(), Histogram::new()],
            classes: [ClassCount::default(); 4],
            kinds: [0; 32],
            frames_lost: 0,
            frames_partitioned: 0,
            frames_to_crashed: 0,
            broadcasts_skipped: 0,
            fan_out_max: 0,
            fan_out_sum: 0,
            fan_out_bursts: 0,
            burst: Vec::new(),
            events_processed: 0,
            timers_clamped: 0,
            repairs: Vec::new(),
            watched: Vec::new(),
            log: Vec::new(),
            plan,
        };
        let mut world = Self {
            nodes: (0..n).map(|_| None).collect(),
            rngs: (0..n)
                .map(|i| Rng::with_seed(core.plan.seed).fork(i as u64))
                .collect(),
            core,
        };
        world.schedule_plan();
        Ok(world)
    }

    /// Runs the plan to its end time.
    pub fn run(&mut self) {
        while self.run_for(u64::MAX) {}
    }

    /// Runs until `max_events` more protocol inputs have been processed or the plan ends;
    /// `false` once it has ended.
    pub fn run_for(&mut self, max_events: u64) -> bool {
        let stop = self.core.events_processed.saturating_add(max_events);
        while self.core.events_processed < stop {
            if !self.step() {
                return false;
            }
        }
        !self.core.finished
    }

    /// Processes the next queued item; `false` once the plan has ended.
    pub fn step(&mut self) -> bool {
        if self.core.finished {
            return false;
        }
        let Some((at, due)) = self.core.queue.pop_until(self.core.end_ns) else {
            self.core.finished = true;
            self.core.now_ns = self.core.end_ns;
            return false;
        };
        self.core.now_ns = at;
        match due {
            Due::Timer(node) => self.fire_timer(node),
            Due::Frame(slot) => self.deliver_frame(slot),
            Due::Action(slot) => {
                let action = std::mem::replace(&mut self.core.actions[slot as usize], Action::Free);
                self.core.free_actions.push(slot);
                self.perform(action);
            }
        }
        true
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.core.now_ns)
    }

    /// When the plan ends.
    pub fn end(&self) -> Instant {
        Instant::from_nanos(self.core.end_ns)
    }

    /// Whether the plan has ended.
    pub fn is_finished(&self) -> bool {
        self.core.finished
    }

    /// Protocol inputs processed so far (frames, timeouts, joins, publishes).
    pub fn events_processed(&self) -> u64 {
        self.core.events_processed
    }

    /// Items in the event queue (frames in flight, timers, plan actions), stale timers
    /// included: the simulator's own memory grows with it.
    pub fn queued(&self) -> usize {
        self.core.queue.len()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.core.plan
    }

    /// The id of group number `group`.
    pub fn group_id(&self, group: usize) -> GroupId {
        self.core.groups[group]
    }

    /// Node `index`, if it is running.
    pub fn node(&self, index: usize) -> Option<&GroupNode> {
        self.nodes.get(index).and_then(Option::as_ref)
    }

    /// Whether node `index` is running.
    pub fn is_live(&self, index: usize) -> bool {
        self.core.state.get(index) == Some(&NodeState::Live)
    }

    /// Connected components of the undirected active-view graph among the live members of
    /// group number `group` (1: the overlay is connected; a live member with an empty view is
    /// a component of its own).
    pub fn active_components(&self, group: usize) -> u64 {
        let n = self.nodes.len();
        let gid = self.core.groups[group];
        let mut parent: Vec<u32> = (0..n as u32).collect();
        let member = |i: usize| {
            self.core.state[i] == NodeState::Live && self.core.plan.groups.is_member(i, group)
        };
        for i in 0..n {
            if !member(i) {
                continue;
            }
            let Some(view) = self.nodes[i].as_ref().and_then(|node| node.view(gid)) else {
                continue;
            };
            for peer in view.active {
                let j = node_index(&peer);
                if j < n && member(j) {
                    union(&mut parent, i as u32, j as u32);
                }
            }
        }
        (0..n)
            .filter(|&i| member(i) && find(&mut parent, i as u32) == i as u32)
            .count() as u64
    }

    /// `Ok` if every checker passed so far.
    ///
    /// # Errors
    /// [`SimFailure`] with the seed and the violations.
    pub fn verdict(&self) -> Result<(), SimFailure> {
        self.core.checker.verdict(self.core.plan.seed)
    }

    /// The measures of the run so far (complete once [`World::is_finished`]).
    pub fn report(&self) -> Report {
        let mut report = self.core.report(&self.nodes);
        report.components_at_end = (0..self.core.groups.len())
            .map(|group| self.active_components(group))
            .collect();
        report
    }

    /// The nodes that should have delivered broadcast `index` but did not: live at the end,
    /// joined before it was published, not its source. For diagnosing a reliability below 1.0.
    pub fn undelivered(&self, index: usize) -> Vec<usize> {
        let core = &self.core;
        let g = core.groups.len();
        let Some(record) = core.broadcasts.get(index).filter(|r| r.id.is_some()) else {
            return Vec::new();
        };
        (0..core.state.len())
            .filter(|&i| {
                i as u32 != record.source
                    && core.state[i] == NodeState::Live
                    && core.joined_at_ns[i * g + record.group as usize] <= record.publish_ns
                    && record.per_node[i] & DELIVERED == 0
            })
            .collect()
    }

    /// When node `index` (its current incarnation) got `Joined` for group number `group`.
    pub fn joined_at(&self, index: usize, group: usize) -> Option<Instant> {
        let at = *self
            .core
            .joined_at_ns
            .get(index * self.core.groups.len() + group)?;
        (at != u64::MAX).then(|| Instant::from_nanos(at))
    }

    /// The message id broadcast `index` was published as, if it was.
    pub fn broadcast_id(&self, index: usize) -> Option<MessageId> {
        self.core.broadcasts.get(index)?.id
    }

    /// Logs everything node `index` receives, sends and reports from now on (decoded frames and
    /// events, one line each), for diagnosing a failing seed. Costs nothing for other nodes.
    pub fn watch(&mut self, index: usize) {
        self.core.watched.push(index as u32);
    }

    /// Takes the log of the watched nodes.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.core.log)
    }

    /// Timers the world had to push forward because a node asked to be woken at or before the
    /// instant it had just been woken at (a protocol livelock otherwise).
    pub fn timers_clamped(&self) -> u64 {
        self.core.timers_clamped
    }

    fn schedule_plan(&mut self) {
        let plan = self.core.plan.clone();
        let n = plan.nodes as u64;
        let window = duration_ns(plan.join_window);
        for i in 0..plan.nodes {
            let at = (u128::from(window) * i as u128 / u128::from(n)) as u64;
            self.core.schedule(at, Action::Join(i as u32));
        }
        for b in 0..plan.broadcasts.count {
            let at = duration_ns(plan.publish_time(b));
            self.core.schedule(at, Action::Publish(b as u32));
        }
        let start = duration_ns(plan.traffic_start());
        for (i, crash) in plan.crashes.iter().enumerate() {
            self.core
                .schedule(start + duration_ns(crash.at), Action::Crash(i as u32));
        }
        for (i, partition) in plan.partitions.iter().enumerate() {
            let at = start + duration_ns(partition.at);
            self.core.schedule(at, Action::Partition(i as u32));
            self.core
                .schedule(at + duration_ns(partition.duration), Action::Heal);
        }
        if let Some(churn) = plan.churn {
            let from = start + duration_ns(churn.from);
            if churn.crashes_per_s > 0.0 {
                let at = from + self.core.exponential_ns(churn.crashes_per_s);
                self.core.schedule(at, Action::ChurnCrash);
            }
            if churn.restarts_per_s > 0.0 {
                let at = from + self.core.exponential_ns(churn.restarts_per_s);
                self.core.schedule(at, Action::ChurnRestart);
            }
        }
    }

    fn fire_timer(&mut self, node: u32) {
        let i = node as usize;
        let now = self.core.now_ns;
        if self.core.state[i] != NodeState::Live || self.core.deadline_ns[i] != now {
            return;
        }
        self.core.deadline_ns[i] = u64::MAX;
        let Some(n) = self.nodes[i].as_mut() else {
            return;
        };
        self.core.events_processed += 1;
        n.handle_timeout(Instant::from_nanos(now), &mut self.rngs[i]);
        self.core.drain(node, n, true);
    }

    fn deliver_frame(&mut self, slot: u32) {
        let frame = std::mem::take(&mut self.core.frames[slot as usize]);
        self.core.free_frames.push(slot);
        let to = frame.to as usize;
        if self.core.state[to] != NodeState::Live {
            self.core.frames_to_crashed += 1;
            return;
        }
        if self.core.network.separated(frame.from, frame.to) {
            self.core.frames_partitioned += 1;
            return;
        }
        if frame.payload_class {
            self.core.count_copy(frame.to, &frame.payload);
        }
        if self.core.is_watched(frame.to) {
            let line = format!(
                "{:?} node {} <- {}: {}",
                Instant::from_nanos(self.core.now_ns),
                frame.to,
                frame.from,
                describe_frame(&frame.head, frame.payload.len())
            );
            self.core.log.push(line);
        }
        let Some(n) = self.nodes[to].as_mut() else {
            return;
        };
        let from = NodeRef {
            id: NodeId::from_u64(u64::from(frame.from)),
            locator: None,
        };
        self.core.events_processed += 1;
        let now = Instant::from_nanos(self.core.now_ns);
        n.handle_parts(now, from, &frame.head, &frame.payload, &mut self.rngs[to]);
        self.core.drain(frame.to, n, false);
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Join(node) => self.join_all(node),
            Action::Rejoin { node, group } => self.rejoin(node, group),
            Action::Publish(index) => self.publish(index),
            Action::Crash(index) => self.massive_crash(index),
            Action::Partition(index) => self.partition(index),
            Action::Heal => self.core.network.heal(),
            Action::ChurnCrash => self.churn_crash(),
            Action::ChurnRestart => self.churn_restart(),
            Action::SampleViews(repair) => self.sample_views(repair),
            Action::Free => {}
        }
    }

    fn join_all(&mut self, node: u32) {
        let i = node as usize;
        if self.core.state[i] == NodeState::Crashed {
            return;
        }
        if self.core.state[i] == NodeState::Idle {
            let me = NodeRef {
                id: NodeId::from_u64(u64::from(node)),
                locator: None,
            };
            match GroupNode::new(me, self.core.config.clone(), &mut self.rngs[i]) {
                Ok(n) => self.nodes[i] = Some(n),
                Err(error) => {
                    let now = self.core.now_ns;
                    self.core.checker.record(Violation::Refused {
                        at_ns: now,
                        node,
                        what: format!("GroupNode::new: {error}"),
                    });
                    return;
                }
            }
            self.core.state[i] = NodeState::Live;
        }
        for group in 0..self.core.groups.len() {
            if self.core.plan.groups.is_member(i, group) {
                let founder = self.core.plan.groups.founder(group) == i;
                self.join_one(node, group as u32, founder);
            }
        }
    }

    fn rejoin(&mut self, node: u32, group: u32) {
        let i = node as usize;
        let slot = i * self.core.groups.len() + group as usize;
        if self.core.state[i] == NodeState::Live && self.core.active[slot] == 0 {
            self.join_one(node, group, false);
        }
    }

    /// Joins `node` to `group` through a random contact (none for a founder's first join), and
    /// checks back after `rejoin_after`.
    fn join_one(&mut self, node: u32, group: u32, founder: bool) {
        let i = node as usize;
        let contact = if founder && self.core.pool[group as usize].is_empty() {
            None
        } else {
            match self.core.pick_contact(node, group) {
                Some(c) => Some(NodeRef {
                    id: NodeId::from_u64(u64::from(c)),
                    locator: None,
                }),
                None => {
                    let at = self.core.now_ns + duration_ns(self.core.plan.rejoin_after);
                    self.core.schedule(at, Action::Rejoin { node, group });
                    return;
                }
            }
        };
        let Some(n) = self.nodes[i].as_mut() else {
            return;
        };
        let now = self.core.now_ns;
        let gid = self.core.groups[group as usize];
        self.core.events_processed += 1;
        if let Err(error) = n.join(Instant::from_nanos(now), gid, contact, &mut self.rngs[i]) {
            self.core.checker.record(Violation::Refused {
                at_ns: now,
                node,
                what: format!("join: {error}"),
            });
        }
        self.core.drain(node, n, false);
        if contact.is_some() {
            let at = now + duration_ns(self.core.plan.rejoin_after);
            self.core.schedule(at, Action::Rejoin { node, group });
        }
    }

    fn publish(&mut self, index: u32) {
        let groups = self.core.groups.len() as u32;
        let group = index % groups;
        let sources = &self.core.sources[group as usize];
        let source = sources[((index / groups) as usize) % sources.len()];
        let i = source as usize;
        let now = self.core.now_ns;
        let phase = usize::from(now >= self.core.first_fault_ns);
        let mut record = BroadcastRecord {
            id: None,
            group,
            source,
            publish_ns: now,
            phase,
            max_hops: 0,
            deliveries: 0,
            copies: 0,
            per_node: Vec::new(),
        };
        let Some(n) = self.nodes[i]
            .as_mut()
            .filter(|_| self.core.state[i] == NodeState::Live)
        else {
            self.core.broadcasts_skipped += 1;
            self.core.broadcasts.push(record);
            return;
        };
        let mut payload = vec![0u8; self.core.plan.broadcasts.payload_bytes];
        payload[..8].copy_from_slice(&u64::from(index).to_be_bytes());
        for (k, byte) in payload.iter_mut().enumerate().skip(8) {
            *byte = k as u8;
        }
        record.per_node = vec![0; self.core.state.len()];
        let gid = self.core.groups[group as usize];
        self.core.events_processed += 1;
        match n.publish(
            Instant::from_nanos(now),
            gid,
            Bytes::from(payload),
            &mut self.rngs[i],
        ) {
            Ok(id) => record.id = Some(id),
            Err(error) => {
                self.core.broadcasts_skipped += 1;
                record.per_node = Vec::new();
                self.core.checker.record(Violation::Refused {
                    at_ns: now,
                    node: source,
                    what: format!("publish: {error}"),
                });
            }
        }
        debug_assert_eq!(self.core.broadcasts.len(), index as usize);
        self.core.broadcasts.push(record);
        self.core.drain(source, n, false);
    }

    fn crash(&mut self, node: u32) {
        let i = node as usize;
        if self.core.state[i] != NodeState::Live {
            return;
        }
        self.nodes[i] = None;
        self.core.state[i] = NodeState::Crashed;
        self.core.deadline_ns[i] = u64::MAX;
        self.core.checker.forget(node);
        for group in 0..self.core.groups.len() {
            let slot = i * self.core.groups.len() + group;
            self.core.joined_at_ns[slot] = u64::MAX;
            self.core.active[slot] = 0;
            self.core.pool_remove(node, group);
        }
        self.core.crashed.push(node);
    }

    fn massive_crash(&mut self, index: u32) {
        let fraction = self.core.plan.crashes[index as usize].fraction;
        let mut candidates: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.core.victim_allowed(i))
            .collect();
        // A fraction of all live nodes, drawn among those that may be victims.
        let live = self
            .core
            .state
            .iter()
            .filter(|s| **s == NodeState::Live)
            .count();
        let count = (fraction * live as f64).round() as usize;
        let victims = self.core.choose(&mut candidates, count);
        let count = victims.len();
        for &victim in victims {
            self.crash(victim);
        }
        let crashed = count as u64;
        let now = self.core.now_ns;
        self.core.repairs.push(RepairState {
            crash_ns: now,
            crashed,
            views_clean_ns: None,
        });
        if self.core.plan.sample_views {
            let repair = (self.core.repairs.len() - 1) as u32;
            self.core
                .schedule(now + VIEW_SAMPLE_NS, Action::SampleViews(repair));
        }
    }

    fn partition(&mut self, index: u32) {
        let fraction = self.core.plan.partitions[index as usize].fraction;
        let mut candidates: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| !(self.core.plan.spare_sources && self.core.is_source[i as usize]))
            .collect();
        let count = (fraction * self.nodes.len() as f64).round() as usize;
        let mut sides = vec![0u8; self.nodes.len()];
        for &i in self.core.choose(&mut candidates, count) {
            sides[i as usize] = 1;
        }
        self.core.network.partition(sides);
    }

    fn churn_crash(&mut self) {
        let Some(churn) = self.core.plan.churn else {
            return;
        };
        let until = duration_ns(self.core.plan.traffic_start() + churn.until);
        if self.core.now_ns >= until {
            return;
        }
        let n = self.nodes.len() as u64;
        for _ in 0..64 {
            let victim = self.core.rng.below(n) as u32;
            if self.core.victim_allowed(victim) {
                self.crash(victim);
                break;
            }
        }
        let at = self.core.now_ns + self.core.exponential_ns(churn.crashes_per_s);
        self.core.schedule(at, Action::ChurnCrash);
    }

    fn churn_restart(&mut self) {
        let Some(churn) = self.core.plan.churn else {
            return;
        };
        let until = duration_ns(self.core.plan.traffic_start() + churn.until);
        if self.core.now_ns >= until {
            return;
        }
        if !self.core.crashed.is_empty() {
            let k = self.core.rng.below(self.core.crashed.len() as u64) as usize;
            let node = self.core.crashed.swap_remove(k);
            self.core.state[node as usize] = NodeState::Idle;
            self.join_all(node);
        }
        let at = self.core.now_ns + self.core.exponential_ns(churn.restarts_per_s);
        self.core.schedule(at, Action::ChurnRestart);
    }

    fn sample_views(&mut self, repair: u32) {
        let mut clean = true;
        'nodes: for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node.as_ref() else {
                continue;
            };
            for gid in &self.core.groups {
                let Some(view) = node.view(*gid) else {
                    continue;
                };
                if view.active.iter().any(|peer| {
                    let j = node_index(peer);
                    j < self.core.state.len() && self.core.state[j] == NodeState::Crashed
                }) {
                    clean = false;
                    break 'nodes;
                }
            }
            let _ = i;
        }
        let now = self.core.now_ns;
        let state = &mut self.core.repairs[repair as usize];
        if clean {
            state.views_clean_ns = Some(now - state.crash_ns);
        } else {
            self.core
                .schedule(now + VIEW_SAMPLE_NS, Action::SampleViews(repair));
        }
    }
}

impl Core {
    fn is_watched(&self, node: u32) -> bool {
        !self.watched.is_empty() && self.watched.contains(&node)
    }

    fn schedule(&mut self, at_ns: u64, action: Action) {
        let slot = match self.free_actions.pop() {
            Some(slot) => {
                self.actions[slot as usize] = action;
                slot
            }
            None => {
                self.actions.push(action);
                (self.actions.len() - 1) as u32
            }
        };
        self.queue.push(at_ns, Due::Action(slot));
    }

    /// After an input to `node`: its transmits and events until both are empty, then its
    /// timer.
    fn drain(&mut self, node: u32, n: &mut GroupNode, after_timeout: bool) {
        loop {
            let mut any = false;
            while let Some(transmit) = n.poll_transmit() {
                any = true;
                self.on_transmit(node, transmit);
            }
            while let Some(event) = n.poll_event() {
                any = true;
                self.on_event(node, event);
            }
            if !any {
                break;
            }
        }
        self.end_burst(node);
        let now = self.now_ns;
        let mut next = n.poll_timeout().map_or(u64::MAX, Instant::as_nanos);
        if after_timeout && next <= now {
            self.timers_clamped += 1;
            next = now + CLAMP_NS;
        }
        let next = next.max(now);
        let i = node as usize;
        if next != self.deadline_ns[i] {
            self.deadline_ns[i] = next;
            if next != u64::MAX {
                self.queue.push(next, Due::Timer(node));
            }
        }
    }

    fn on_transmit(&mut self, from: u32, transmit: GroupTransmit) {
        let now = self.now_ns;
        let to = node_index(&transmit.to);
        if to >= self.state.len() {
            self.checker.record(Violation::UnknownPeer {
                at_ns: now,
                node: from,
                peer: transmit.to,
            });
            return;
        }
        let to = to as u32;
        if self.is_watched(from) || self.is_watched(to) {
            let line = format!(
                "{:?} node {from} -> {to}: {}",
                Instant::from_nanos(now),
                describe_frame(&transmit.frame, transmit.payload.len())
            );
            self.log.push(line);
        }
        let bytes = transmit.frame.len() + transmit.payload.len();
        let class = class_index(transmit.class);
        self.classes[class].frames += 1;
        self.classes[class].bytes += bytes as u64;
        if let Some(kind) = transmit.frame.get(3) {
            self.kinds[usize::from(*kind) % 32] += 1;
        }
        self.trace.write_u64(now);
        self.trace
            .write_u64((u64::from(from) << 32) | u64::from(to));
        self.trace.write_bytes(&transmit.frame);
        self.trace.write_u64(transmit.payload.len() as u64);
        let payload_class = transmit.class == TrafficClass::Payload;
        if payload_class && let Some(index) = broadcast_index(&transmit.payload) {
            match self.burst.iter_mut().find(|(b, _)| *b == index) {
                Some((_, count)) => *count += 1,
                None => self.burst.push((index, 1)),
            }
        }
        match self.network.route(now, from, to, bytes) {
            Route::Lost => self.frames_lost += 1,
            Route::Arrives(at) => {
                let frame = FrameSlot {
                    from,
                    to,
                    payload_class,
                    head: transmit.frame,
                    payload: transmit.payload,
                };
                let slot = match self.free_frames.pop() {
                    Some(slot) => {
                        self.frames[slot as usize] = frame;
                        slot
                    }
                    None => {
                        self.frames.push(frame);
                        (self.frames.len() - 1) as u32
                    }
                };
                self.queue.push(at, Due::Frame(slot));
            }
        }
    }

    fn end_burst(&mut self, node: u32) {
        let bound = self.config.active_size as u32;
        for k in 0..self.burst.len() {
            let (broadcast, copies) = self.burst[k];
            self.fan_out_max = self.fan_out_max.max(u64::from(copies));
            self.fan_out_sum += u64::from(copies);
            self.fan_out_bursts += 1;
            if copies > bound {
                let now = self.now_ns;
                self.checker.record(Violation::FanOut {
                    at_ns: now,
                    node,
                    broadcast,
                    copies,
                    bound,
                });
            }
        }
        self.burst.clear();
    }

    fn on_event(&mut self, node: u32, event: GroupEvent) {
        let now = self.now_ns;
        if self.is_watched(node) {
            let line = match &event {
                GroupEvent::Delivered { id, hops, .. } => {
                    format!(
                        "delivered {}/{}/{} after {hops} hops",
                        id.source, id.epoch, id.seq
                    )
                }
                other => format!("{other:?}"),
            };
            let line = format!("{:?} node {node} event {line}", Instant::from_nanos(now));
            self.log.push(line);
        }
        self.trace.write_u64(now);
        self.trace.write_u64(u64::from(node));
        match event {
            GroupEvent::Delivered {
                group,
                id,
                hops,
                payload,
            } => {
                self.trace.write_u64(1);
                self.trace.write_u64(group.0);
                self.write_id(&id);
                self.trace.write_u64(u64::from(hops));
                self.trace.write_u64(payload.len() as u64);
                let g = self.group_index(group);
                self.checker
                    .delivered(now, node, g, id.source, id.epoch, id.seq);
                self.record_delivery(node, g, id, hops, &payload);
            }
            GroupEvent::MessagesLost {
                group,
                source,
                epoch,
                first,
                last,
            } => {
                self.trace.write_u64(2);
                self.trace.write_u64(group.0);
                self.trace.write_bytes(&source.0);
                self.trace.write_u64(u64::from(epoch));
                self.trace.write_u64(first);
                self.trace.write_u64(last);
                let g = self.group_index(group);
                self.checker.lost(now, node, g, source, epoch, first, last);
            }
            GroupEvent::Joined { group } => {
                self.trace.write_u64(3);
                self.trace.write_u64(group.0);
                let g = self.group_index(group) as usize;
                let slot = node as usize * self.groups.len() + g;
                if self.joined_at_ns[slot] == u64::MAX {
                    self.joined_at_ns[slot] = now;
                }
                self.pool_add(node, g);
            }
            GroupEvent::NeighborUp { group, peer } => {
                self.trace.write_u64(4);
                self.trace.write_u64(group.0);
                self.trace.write_bytes(&peer.0);
                let slot = node as usize * self.groups.len() + self.group_index(group) as usize;
                self.active[slot] = self.active[slot].saturating_add(1);
            }
            GroupEvent::NeighborDown { group, peer } => {
                self.trace.write_u64(5);
                self.trace.write_u64(group.0);
                self.trace.write_bytes(&peer.0);
                let slot = node as usize * self.groups.len() + self.group_index(group) as usize;
                self.active[slot] = self.active[slot].saturating_sub(1);
            }
            GroupEvent::PeerSuspected { peer } => {
                self.trace.write_u64(6);
                self.trace.write_bytes(&peer.0);
            }
            GroupEvent::PeerFailed { peer } => {
                self.trace.write_u64(7);
                self.trace.write_bytes(&peer.0);
            }
            GroupEvent::PeerRecovered { peer } => {
                self.trace.write_u64(8);
                self.trace.write_bytes(&peer.0);
            }
            GroupEvent::TreeRepaired { group, source, via } => {
                self.trace.write_u64(9);
                self.trace.write_u64(group.0);
                self.trace.write_bytes(&source.0);
                self.trace.write_bytes(&via.0);
            }
            GroupEvent::Isolated { group } => {
                self.trace.write_u64(10);
                self.trace.write_u64(group.0);
                let g = self.group_index(group);
                let at = now + duration_ns(self.plan.rejoin_after);
                self.schedule(at, Action::Rejoin { node, group: g });
            }
            // Raised by the engine glue only.
            GroupEvent::Backpressured { .. }
            | GroupEvent::Writable { .. }
            | GroupEvent::SlowConsumer { .. } => {}
        }
    }

    fn record_delivery(
        &mut self,
        node: u32,
        group: u32,
        id: MessageId,
        hops: u16,
        payload: &Bytes,
    ) {
        let now = self.now_ns;
        let Some(index) = broadcast_index(payload) else {
            self.wrong_payload(node, id);
            return;
        };
        let Some(record) = self.broadcasts.get_mut(index as usize) else {
            self.wrong_payload(node, id);
            return;
        };
        if record.id != Some(id) || record.group != group {
            self.wrong_payload(node, id);
            return;
        }
        record.max_hops = record.max_hops.max(hops);
        if node == record.source {
            return;
        }
        let cell = &mut record.per_node[node as usize];
        if *cell & DELIVERED == 0 {
            *cell |= DELIVERED;
        }
        record.deliveries += 1;
        let latency = now - record.publish_ns;
        let phase = record.phase;
        let direct = self.network.latency_ns(record.source, node).max(1);
        self.latency[phase].record(latency);
        self.rdp_milli[phase].record((u128::from(latency) * 1000 / u128::from(direct)) as u64);
    }

    fn wrong_payload(&mut self, node: u32, id: MessageId) {
        let now = self.now_ns;
        self.checker.record(Violation::WrongPayload {
            at_ns: now,
            node,
            source: id.source,
            seq: id.seq,
        });
    }

    /// A payload frame reached `node`: one more copy of its broadcast.
    fn count_copy(&mut self, node: u32, payload: &Bytes) {
        let Some(record) =
            broadcast_index(payload).and_then(|b| self.broadcasts.get_mut(b as usize))
        else {
            return;
        };
        record.copies += 1;
        if let Some(cell) = record.per_node.get_mut(node as usize)
            && *cell & COPIES < COPIES
        {
            *cell += 1;
        }
    }

    fn write_id(&mut self, id: &MessageId) {
        self.trace.write_bytes(&id.source.0);
        self.trace.write_u64(u64::from(id.epoch));
        self.trace.write_u64(id.seq);
    }

    fn group_index(&self, group: GroupId) -> u32 {
        self.groups
            .iter()
            .position(|g| *g == group)
            .map_or(u32::MAX, |i| i as u32)
    }

    fn pool_add(&mut self, node: u32, group: usize) {
        if group >= self.groups.len() {
            return;
        }
        let slot = node as usize * self.groups.len() + group;
        if self.pool_pos[slot] == u32::MAX {
            self.pool_pos[slot] = self.pool[group].len() as u32;
            self.pool[group].push(node);
        }
    }

    fn pool_remove(&mut self, node: u32, group: usize) {
        let g = self.groups.len();
        let slot = node as usize * g + group;
        let pos = self.pool_pos[slot];
        if pos == u32::MAX {
            return;
        }
        self.pool_pos[slot] = u32::MAX;
        let pool = &mut self.pool[group];
        pool.swap_remove(pos as usize);
        if let Some(&moved) = pool.get(pos as usize) {
            self.pool_pos[moved as usize * g + group] = pos;
        }
    }

    /// A random live member of `group` other than `node`: from the joined pool, else the
    /// group's founder if it is live.
    fn pick_contact(&mut self, node: u32, group: u32) -> Option<u32> {
        let pool = &self.pool[group as usize];
        let others = pool.len()
            - usize::from(
                self.pool_pos[node as usize * self.groups.len() + group as usize] != u32::MAX,
            );
        if others > 0 {
            for _ in 0..16 {
                let c = pool[self.rng.below(pool.len() as u64) as usize];
                if c != node {
                    return Some(c);
                }
            }
        }
        let founder = self.plan.groups.founder(group as usize) as u32;
        (founder != node && self.state[founder as usize] == NodeState::Live).then_some(founder)
    }

    fn victim_allowed(&self, node: u32) -> bool {
        self.state[node as usize] == NodeState::Live
            && !(self.plan.spare_sources && self.is_source[node as usize])
    }

    /// `count` of `candidates` at random (a partial Fisher-Yates shuffle), in place.
    fn choose<'a>(&mut self, candidates: &'a mut [u32], count: usize) -> &'a [u32] {
        let count = count.min(candidates.len());
        for k in 0..count {
            let j = k + self.rng.below((candidates.len() - k) as u64) as usize;
            candidates.swap(k, j);
        }
        &candidates[..count]
    }

    fn exponential_ns(&mut self, per_s: f64) -> u64 {
        let u = self.rng.unit_f64();
        let seconds = -(1.0 - u).ln() / per_s.max(1e-9);
        (seconds * 1e9).min(1e15) as u64
    }

    fn report(&self, nodes: &[Option<GroupNode>]) -> Report {
        let n = self.state.len();
        let g = self.groups.len();
        let mut phases = [PhaseAccumulator::default(), PhaseAccumulator::default()];
        let mut over_time = Vec::with_capacity(self.broadcasts.len());
        let mut reliability = Vec::with_capacity(self.broadcasts.len());
        for record in &self.broadcasts {
            if record.id.is_none() {
                reliability.push(None);
                continue;
            }
            let (mut eligible, mut delivered) = (0u64, 0u64);
            let (mut pairs, mut stress_max) = (0u64, 0u64);
            for (i, &cell) in record.per_node.iter().enumerate() {
                let copies = u64::from(cell & COPIES);
                if copies > 0 {
                    pairs += 1;
                    stress_max = stress_max.max(copies);
                }
                if i as u32 == record.source || self.state[i] != NodeState::Live {
                    continue;
                }
                let joined = self.joined_at_ns[i * g + record.group as usize];
                if joined <= record.publish_ns {
                    eligible += 1;
                    delivered += u64::from(cell & DELIVERED != 0);
                }
            }
            let r = if eligible == 0 {
                1.0
            } else {
                delivered as f64 / eligible as f64
            };
            over_time.push((record.publish_ns, r));
            reliability.push(Some(r));
            let acc = &mut phases[record.phase];
            acc.broadcasts += 1;
            acc.reliability_min = acc.reliability_min.min(r);
            acc.reliability_sum += r;
            acc.reliable += u64::from(r >= 1.0);
            acc.deliveries += record.deliveries;
            acc.copies += record.copies;
            acc.pairs += pairs;
            acc.stress_max = acc.stress_max.max(stress_max);
            acc.hops_sum += u64::from(record.max_hops);
            acc.hops_max = acc.hops_max.max(u64::from(record.max_hops));
        }
        let mut all = phases[0].clone();
        all.merge(&phases[1]);
        let mut latency_all = self.latency[0].clone();
        latency_all.merge(&self.latency[1]);
        let mut rdp_all = self.rdp_milli[0].clone();
        rdp_all.merge(&self.rdp_milli[1]);
        let repairs = self
            .repairs
            .iter()
            .map(|state| {
                let mut first_good = None;
                for (record, r) in self.broadcasts.iter().zip(&reliability) {
                    if record.publish_ns < state.crash_ns {
                        continue;
                    }
                    match r {
                        Some(r) if *r >= 1.0 => {
                            first_good.get_or_insert(record.publish_ns);
                        }
                        Some(_) => first_good = None,
                        None => {}
                    }
                }
                RepairReport {
                    crash_ns: state.crash_ns,
                    crashed: state.crashed,
                    reliable_after_ns: first_good.map(|t| t - state.crash_ns),
                    views_clean_after_ns: state.views_clean_ns,
                }
            })
            .collect();
        let mut counters = [0u64; 7];
        for node in nodes.iter().flatten() {
            let s = node.stats();
            for (c, v) in counters.iter_mut().zip([
                s.delivered,
                s.lost,
                s.grafts_sent,
                s.prunes_sent,
                s.repair_requests_sent,
                s.failures_declared,
                s.duplicates_received,
            ]) {
                *c += v;
            }
        }
        let virtual_s = (self.now_ns as f64 / 1e9).max(1e-9);
        let published = self.broadcasts.len() as u64 - self.broadcasts_skipped;
        let overhead = (self.classes[2].frames + self.classes[3].frames) as f64;
        Report {
            seed: self.plan.seed,
            nodes: n as u64,
            groups: g as u64,
            dissemination: match self.config.dissemination {
                Dissemination::Tree => "tree".to_owned(),
                Dissemination::Flood { fanout } => format!("flood/{fanout}"),
            },
            active_size: self.config.active_size as u64,
            virtual_ns: self.now_ns,
            events_processed: self.events_processed,
            payload: self.classes[0],
            tree: self.classes[1],
            membership: self.classes[2],
            detection: self.classes[3],
            frames_by_kind: self.kinds,
            frames_lost: self.frames_lost,
            frames_partitioned: self.frames_partitioned,
            frames_to_crashed: self.frames_to_crashed,
            broadcasts_published: published,
            broadcasts_skipped: self.broadcasts_skipped,
            stable: phases[0].finish(&self.latency[0], &self.rdp_milli[0]),
            faulty: phases[1].finish(&self.latency[1], &self.rdp_milli[1]),
            all: all.finish(&latency_all, &rdp_all),
            fan_out_max: self.fan_out_max,
            fan_out_mean: ratio(self.fan_out_sum, self.fan_out_bursts),
            control_per_broadcast: ratio(self.classes[1].frames, published),
            overhead_per_node_per_s: overhead / n as f64 / virtual_s,
            repairs,
            reliability_over_time: over_time,
            latency_percentiles: PERCENTILES
                .iter()
                .map(|&p| (p, latency_all.percentile(p)))
                .collect(),
            components_at_end: Vec::new(),
            live_at_end: self.state.iter().filter(|s| **s == NodeState::Live).count() as u64,
            counters,
            trace_hash: self.trace.finish(),
            violations_total: self.checker.total(),
            violations: self
                .checker
                .violations()
                .iter()
                .map(|v| format!("{v:?}"))
                .collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct PhaseAccumulator {
    broadcasts: u64,
    reliability_min: f64,
    reliability_sum: f64,
    reliable: u64,
    deliveries: u64,
    copies: u64,
    pairs: u64,
    stress_max: u64,
    hops_sum: u64,
    hops_max: u64,
}

impl Default for PhaseAccumulator {
    fn default() -> Self {
        Self {
            broadcasts: 0,
            reliability_min: 1.0,
            reliability_sum: 0.0,
            reliable: 0,
            deliveries: 0,
            copies: 0,
            pairs: 0,
            stress_max: 0,
            hops_sum: 0,
            hops_max: 0,
        }
    }
}

impl PhaseAccumulator {
    fn merge(&mut self, other: &Self) {
        self.broadcasts += other.broadcasts;
        self.reliability_min = self.reliability_min.min(other.reliability_min);
        self.reliability_sum += other.reliability_sum;
        self.reliable += other.reliable;
        self.deliveries += other.deliveries;
        self.copies += other.copies;
        self.pairs += other.pairs;
        self.stress_max = self.stress_max.max(other.stress_max);
        self.hops_sum += other.hops_sum;
        self.hops_max = self.hops_max.max(other.hops_max);
    }

    fn finish(&self, latency: &Histogram, rdp_milli: &Histogram) -> PhaseReport {
        PhaseReport {
            broadcasts: self.broadcasts,
            reliability_min: self.reliability_min,
            reliability_mean: if self.broadcasts == 0 {
                1.0
            } else {
                self.reliability_sum / self.broadcasts as f64
            },
            reliable_count: self.reliable,
            deliveries: self.deliveries,
            latency_ns_mean: latency.mean(),
            latency_ns_p50: latency.percentile(50.0),
            latency_ns_p99: latency.percentile(99.0),
            latency_ns_max: latency.max(),
            rdp_mean: rdp_milli.mean() / 1000.0,
            rdp_p99: rdp_milli.percentile(99.0) as f64 / 1000.0,
            last_hop_mean: ratio(self.hops_sum, self.broadcasts),
            last_hop_max: self.hops_max,
            link_stress_mean: ratio(self.copies, self.pairs),
            link_stress_max: self.stress_max,
            rmr: if self.deliveries == 0 {
                0.0
            } else {
                self.copies as f64 / self.deliveries as f64 - 1.0
            },
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Node index of a simulated node's id: its first eight bytes, big-endian.
pub(crate) fn node_index(id: &NodeId) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.0[..8]);
    usize::try_from(u64::from_be_bytes(first)).unwrap_or(usize::MAX)
}

/// A frame for the watch log: its decoded form, or why it does not decode.
fn describe_frame(head: &[u8], payload_bytes: usize) -> String {
    match crate::wire::decode(head) {
        Ok((_, crate::wire::GroupFrame::Data { id, hop, flags, .. })) => format!(
            "Data {}/{}/{} hop {hop} flags {:#x} ({payload_bytes} B)",
            id.source, id.epoch, id.seq, flags.0
        ),
        Ok((_, frame)) => format!("{frame:?}"),
        Err(error) => format!("undecodable: {error}"),
    }
}

/// The broadcast index the simulator wrote at the start of a payload.
fn broadcast_index(payload: &[u8]) -> Option<u32> {
    let first = payload.first_chunk::<8>()?;
    u32::try_from(u64::from_be_bytes(*first)).ok()
}

fn class_index(class: TrafficClass) -> usize {
    match class {
        TrafficClass::Payload => 0,
        TrafficClass::Tree => 1,
        TrafficClass::Membership => 2,
        TrafficClass::Detection => 3,
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

const DELIVERED: u8 = 0x80;
const COPIES: u8 = 0x7f;
/// How often views are sampled after a massive crash.
const VIEW_SAMPLE_NS: u64 = 100_000_000;
/// How far a node's timer is pushed when it asks to be woken again at once.
const CLAMP_NS: u64 = 1_000_000;
const WORLD_STREAM: u64 = u64::MAX;
const NETWORK_STREAM: u64 = u64::MAX - 1;
const PERCENTILES: [f64; 12] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999, 100.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_index_reads_the_first_eight_bytes() {
        assert_eq!(node_index(&NodeId::from_u64(12_345)), 12_345);
        assert_eq!(broadcast_index(&[0, 0, 0, 0, 0, 0, 0, 7, 9]), Some(7));
        assert_eq!(broadcast_index(&[1, 2]), None);
    }

    #[test]
    fn union_find_counts_components() {
        let mut parent: Vec<u32> = (0..6).collect();
        union(&mut parent, 0, 1);
        union(&mut parent, 2, 1);
        union(&mut parent, 4, 5);
        let roots = (0..6).filter(|&i| find(&mut parent, i) == i).count();
        assert_eq!(roots, 3);
    }

    #[test]
    fn small_world_delivers_everything_and_replays() {
        let plan = Plan {
            seed: 3,
            broadcasts: super::super::Broadcasts {
                count: 20,
                ..Default::default()
            },
            ..Plan::new(60)
        };
        let mut world = World::new(plan.clone()).unwrap();
        world.run();
        assert!(world.is_finished());
        world.verdict().unwrap();
        let report = world.report();
        assert_eq!(report.broadcasts_published, 20);
        assert_eq!(report.all.reliability_min, 1.0, "{:#}", report.to_json());
        assert_eq!(report.components_at_end, vec![1]);
        let mut again = World::new(plan).unwrap();
        again.run();
        assert_eq!(again.report().trace_hash, report.trace_hash);
    }
}
