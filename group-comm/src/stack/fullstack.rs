//! Full-stack mode: N [`GroupStack`]s, each a real [`GroupNode`](crate::GroupNode) over real
//! sessions, on one [`Cluster`] of the substrate's in-memory network, to check that the layers
//! compose (protocol mode, in the `sim` module, skips the sessions to reach 10^5 nodes).
//!
//! [`run`] builds the nodes (node `i` is `NodeId::from_u64(i)` at [`test_locator`]`(i)`), joins
//! them over a join window, each through a random earlier node, lets the overlay settle,
//! publishes broadcasts round-robin from a few sources, and runs until every node has delivered
//! every broadcast, then a little longer to catch duplicates. Nothing is asserted: the
//! [`FullStackReport`] says what each node delivered and lost, and
//! [`FullStackReport::check`] judges it. A run is a pure function of the plan.
//!
//! The system never goes fully quiet (sessions and the failure detector send heartbeats), so
//! "quiet" here means: every node delivered every broadcast, and the linger period passed.

use std::collections::BTreeMap;

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::testing::{Cluster, HarnessError, LinkConfig, NetStats, NodeIdx, test_locator};
use substrate::time::{Duration, Instant};
use thiserror::Error;

use super::{GroupStack, StackConfig, StackError, StackStats};
use crate::GroupId;
use crate::config::GroupConfig;
use crate::event::GroupEvent;
use crate::node::{GroupError, GroupStats};
use crate::wire::{MessageId, NodeRef};

/// What a full-stack run does.
#[derive(Clone, Debug)]
pub struct FullStackPlan {
    /// The world seed: network randomness and every node's `Rng` derive from it.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Every directed link's behaviour.
    pub link: LinkConfig,
    /// Each node's group parameters.
    pub group: GroupConfig,
    /// Each node's link-layer parameters.
    pub stack: StackConfig,
    /// Node `i` joins at `join_window * i / nodes`.
    pub join_window: Duration,
    /// Wait after the last join before the first broadcast.
    pub settle: Duration,
    /// Nodes that publish (spread evenly over the node indices).
    pub sources: usize,
    /// Broadcasts in all, round-robin over the sources.
    pub broadcasts: usize,
    /// Time between two broadcasts.
    pub publish_interval: Duration,
    /// Bytes per broadcast payload (at least 16: the payload names its source and number).
    pub payload_bytes: usize,
    /// How long to keep running after every node has every broadcast.
    pub linger: Duration,
    /// Give up this long after the last broadcast if some node still misses one.
    pub max_wait: Duration,
    /// How often collected events are read (smaller costs more, finds the end sooner).
    pub check_interval: Duration,
}

impl FullStackPlan {
    /// A plan for `nodes` nodes from `seed`: a lossless network with 1 ms links (a zero-latency
    /// network would turn any immediate retry into a harness stall), 20 broadcasts from 4 sources,
    /// a join window of 5 ms per 10 nodes (at least a second).
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            seed,
            nodes,
            link: LinkConfig::default().latency(Duration::from_millis(1)),
            group: GroupConfig::for_group_size(nodes),
            stack: StackConfig::default(),
            join_window: Duration::from_millis((nodes as u64 / 2).max(1_000)),
            settle: Duration::from_secs(3),
            sources: 4,
            broadcasts: 20,
            publish_interval: Duration::from_millis(10),
            payload_bytes: 64,
            linger: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            check_interval: Duration::from_millis(50),
        }
    }
}

/// Why a full-stack run could not be carried out (as opposed to a run whose results are bad).
#[derive(Clone, Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum FullStackError {
    /// The plan has no nodes, no sources, more sources than nodes, or a payload under 16 bytes.
    #[error("invalid plan: {0}")]
    Plan(&'static str),
    /// A node could not be built.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The harness stopped a runaway protocol.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// A join or publish was refused.
    #[error("node {node}: {error}")]
    Group {
        /// The node index.
        node: usize,
        /// The refusal.
        error: GroupError,
    },
}

/// `first..=last` of a source reported lost at one node.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct LostRange {
    /// The source.
    pub source: NodeId,
    /// Its incarnation.
    pub epoch: u32,
    /// First lost sequence number.
    pub first: u64,
    /// Last lost sequence number (inclusive).
    pub last: u64,
}

/// What one node saw.
#[derive(Clone, Debug, Default)]
pub struct NodeOutcome {
    /// Whether it reported `Joined`.
    pub joined: bool,
    /// Messages it delivered, in delivery order.
    pub delivered: Vec<MessageId>,
    /// Deliveries whose payload differed from what the source published.
    pub corrupt: u64,
    /// Ranges it reported lost.
    pub lost: Vec<LostRange>,
    /// `PeerSuspected` events.
    pub suspicions: u64,
    /// `PeerFailed` events.
    pub failures: u64,
    /// `TreeRepaired` events.
    pub repairs: u64,
    /// `Isolated` events.
    pub isolated: u64,
}

/// The results of a full-stack run.
#[derive(Clone, Debug)]
pub struct FullStackReport {
    /// The group every node joined.
    pub group: GroupId,
    /// The broadcasts, in publication order.
    pub published: Vec<MessageId>,
    /// Per node, by index.
    pub nodes: Vec<NodeOutcome>,
    /// Harness steps (datagram arrivals and timeouts) taken.
    pub steps: u64,
    /// Virtual time at the end.
    pub end: Instant,
    /// When the first broadcast went out.
    pub first_publish: Instant,
    /// When the last node delivered its last broadcast, if every node did.
    pub all_delivered_at: Option<Instant>,
    /// Network counters.
    pub net: NetStats,
    /// Link-layer counters, summed over the nodes.
    pub stack: StackStats,
    /// Group counters, summed over the nodes.
    pub group_stats: GroupStats,
    /// Sessions open at the end, over all nodes.
    pub sessions_open: usize,
    /// The cluster's trace hash (equal for equal plans).
    pub trace_hash: u64,
}

impl FullStackReport {
    /// Fraction of (node, broadcast) pairs delivered at least once.
    pub fn reliability(&self) -> f64 {
        let want = self.nodes.len() * self.published.len();
        if want == 0 {
            return 1.0;
        }
        let published: BTreeMap<MessageId, ()> =
            self.published.iter().map(|id| (*id, ())).collect();
        let mut got = 0usize;
        for n in &self.nodes {
            let mut seen: Vec<MessageId> = n
                .delivered
                .iter()
                .filter(|id| published.contains_key(id))
                .copied()
                .collect();
            seen.sort_unstable();
            seen.dedup();
            got += seen.len();
        }
        got as f64 / want as f64
    }

    /// Checks that every node joined, delivered every broadcast exactly once with its published
    /// payload, in per-source order, and reported nothing lost. The error names the first few
    /// offending nodes and what they did wrong.
    ///
    /// # Errors
    /// A description of the violations.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut bad_nodes = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            let p = check_node(n, &self.published);
            if !p.is_empty() {
                bad_nodes += 1;
                if problems.len() < 10 {
                    problems.push(format!("node {i}: {}", p.join("; ")));
                }
            }
        }
        if bad_nodes == 0 {
            return Ok(());
        }
        Err(format!(
            "{bad_nodes} of {} nodes wrong (reliability {:.4}); first ones:\n  {}",
            self.nodes.len(),
            self.reliability(),
            problems.join("\n  ")
        ))
    }
}

fn check_node(n: &NodeOutcome, published: &[MessageId]) -> Vec<String> {
    let mut p = Vec::new();
    if !n.joined {
        p.push("never joined".to_owned());
    }
    let mut count: BTreeMap<MessageId, usize> = published.iter().map(|id| (*id, 0)).collect();
    let mut last: BTreeMap<(NodeId, u32), u64> = BTreeMap::new();
    for id in &n.delivered {
        match count.get_mut(id) {
            Some(c) => *c += 1,
            None => p.push(format!("delivered unknown {id:?}")),
        }
        if let Some(prev) = last.insert((id.source, id.epoch), id.seq) {
            if id.seq <= prev {
                p.push(format!(
                    "out of order: seq {} after {prev} of {}",
                    id.seq, id.source
                ));
            }
        }
    }
    let missing = count.values().filter(|c| **c == 0).count();
    let dups = count.values().filter(|c| **c > 1).count();
    if missing > 0 {
        let first = count.iter().find(|(_, c)| **c == 0).map(|(id, _)| *id);
        p.push(format!("missing {missing} (first {first:?})"));
    }
    if dups > 0 {
        p.push(format!("{dups} delivered more than once"));
    }
    if n.corrupt > 0 {
        p.push(format!("{} corrupt payloads", n.corrupt));
    }
    if !n.lost.is_empty() {
        p.push(format!("lost {:?}", n.lost));
    }
    p
}

/// The broadcast payload: source index and broadcast number, padded with a pattern.
fn payload(source: usize, k: usize, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(source as u64).to_be_bytes());
    v.extend_from_slice(&(k as u64).to_be_bytes());
    v.extend((16..len).map(|i| (i as u8) ^ (k as u8)));
    Bytes::from(v)
}

/// Node `i`'s reference: `NodeId::from_u64(i)` at `test_locator(i)`.
pub fn node_ref(i: usize) -> NodeRef {
    NodeRef {
        id: NodeId::from_u64(i as u64),
        locator: Some(test_locator(i as u32)),
    }
}

/// Runs `plan` on a fresh cluster.
///
/// # Errors
/// [`FullStackError`] if the plan is invalid, a node cannot be built, a join or publish is
/// refused, or the harness stops a runaway protocol. Bad results are not errors: see
/// [`FullStackReport::check`].
pub fn run(plan: &FullStackPlan) -> Result<FullStackReport, FullStackError> {
    run_with_cluster(plan).map(|(report, _)| report)
}

/// [`run`], also handing back the cluster as the run left it, to inspect views, sessions and
/// counters of single nodes when a check fails.
///
/// # Errors
/// As [`run`].
pub fn run_with_cluster(
    plan: &FullStackPlan,
) -> Result<(FullStackReport, Cluster<GroupStack>), FullStackError> {
    if plan.nodes == 0 || plan.sources == 0 || plan.sources > plan.nodes {
        return Err(FullStackError::Plan("nodes > 0 and 0 < sources <= nodes"));
    }
    if plan.payload_bytes < 16 {
        return Err(FullStackError::Plan("payload_bytes >= 16"));
    }
    if plan.check_interval.is_zero() {
        return Err(FullStackError::Plan("check_interval > 0"));
    }
    let group = GroupId::from_name("full-stack");
    let mut rng = Rng::with_seed(plan.seed).fork(0x4655_4c4c);
    let mut cluster: Cluster<GroupStack> = Cluster::new(plan.seed, plan.link);
    for i in 0..plan.nodes {
        let mut node_rng = rng.fork(i as u64);
        let stack = GroupStack::new(
            node_ref(i),
            plan.group.clone(),
            plan.stack.clone(),
            &mut node_rng,
        )?;
        let idx = cluster.add_node(stack);
        debug_assert_eq!(idx.index(), i);
    }
    let mut obs = Observer::new(plan.nodes);

    // Joins, each through a random node that joined before it.
    let join = |c: &mut Cluster<GroupStack>, i: usize, contact: Option<NodeRef>| {
        c.with_node(NodeIdx(i as u32), |s, now, r| {
            s.join(now, group, contact, r)
        })
        .map_err(|error| FullStackError::Group { node: i, error })
    };
    join(&mut cluster, 0, None)?;
    let window = plan.join_window.as_nanos();
    for i in 1..plan.nodes {
        let at = Instant::from_nanos((window * i as u128 / plan.nodes as u128) as u64);
        obs.run_until(&mut cluster, at, plan.check_interval, &BTreeMap::new())?;
        let contact = node_ref(rng.below(i as u64) as usize);
        join(&mut cluster, i, Some(contact))?;
    }
    let start = cluster.now() + plan.settle;
    obs.run_until(&mut cluster, start, plan.check_interval, &BTreeMap::new())?;

    // Broadcasts, round-robin over sources spread over the indices.
    let mut published = Vec::with_capacity(plan.broadcasts);
    let mut payloads = BTreeMap::new();
    let first_publish = cluster.now();
    for k in 0..plan.broadcasts {
        let s = (k % plan.sources) * plan.nodes / plan.sources;
        let at = first_publish + plan.publish_interval * k as u32;
        obs.run_until(&mut cluster, at, plan.check_interval, &payloads)?;
        let bytes = payload(s, k, plan.payload_bytes);
        let b = bytes.clone();
        let id = cluster
            .with_node(NodeIdx(s as u32), |st, now, r| st.publish(now, group, b, r))
            .map_err(|error| FullStackError::Group { node: s, error })?;
        published.push(id);
        payloads.insert(id, bytes);
    }

    // Until every node has everything (or the give-up time), then the linger.
    let give_up = cluster.now() + plan.max_wait;
    let want = plan.broadcasts;
    let mut all_delivered_at = None;
    while cluster.now() < give_up {
        let next = (cluster.now() + plan.check_interval).min(give_up);
        obs.run_until(&mut cluster, next, plan.check_interval, &payloads)?;
        if obs.complete(want) {
            all_delivered_at = Some(cluster.now());
            break;
        }
    }
    let end = cluster.now() + plan.linger;
    obs.run_until(&mut cluster, end, plan.check_interval, &payloads)?;

    let mut stack = StackStats::default();
    let mut group_stats = GroupStats::default();
    let mut sessions_open = 0;
    for i in 0..plan.nodes {
        let s = cluster.node(NodeIdx(i as u32));
        stack.accumulate(s.stats());
        add_group_stats(&mut group_stats, s.group().stats());
        sessions_open += s.endpoint().sessions().count();
    }
    let report = FullStackReport {
        group,
        published,
        nodes: obs.nodes,
        steps: cluster.steps(),
        end: cluster.now(),
        first_publish,
        all_delivered_at,
        net: *cluster.stats(),
        stack,
        group_stats,
        sessions_open,
        trace_hash: cluster.trace_hash(),
    };
    Ok((report, cluster))
}

/// Reads the cluster's collected events into per-node outcomes.
struct Observer {
    nodes: Vec<NodeOutcome>,
}

impl Observer {
    fn new(n: usize) -> Self {
        Self {
            nodes: vec![NodeOutcome::default(); n],
        }
    }

    /// Whether every node delivered at least `want` messages.
    fn complete(&self, want: usize) -> bool {
        self.nodes.iter().all(|n| n.delivered.len() >= want)
    }

    /// Runs the cluster to `at`, reading events every `every`.
    fn run_until(
        &mut self,
        c: &mut Cluster<GroupStack>,
        at: Instant,
        every: Duration,
        payloads: &BTreeMap<MessageId, Bytes>,
    ) -> Result<(), HarnessError> {
        while c.now() < at {
            let next = (c.now() + every).min(at);
            c.run_until(next)?;
            self.collect(c, payloads);
        }
        self.collect(c, payloads);
        Ok(())
    }

    fn collect(&mut self, c: &mut Cluster<GroupStack>, payloads: &BTreeMap<MessageId, Bytes>) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            for e in c.take_events(NodeIdx(i as u32)) {
                match e {
                    GroupEvent::Joined { .. } => n.joined = true,
                    GroupEvent::Delivered { id, payload, .. } => {
                        if payloads.get(&id).is_some_and(|p| *p != payload) {
                            n.corrupt += 1;
                        }
                        n.delivered.push(id);
                    }
                    GroupEvent::MessagesLost {
                        source,
                        epoch,
                        first,
                        last,
                        ..
                    } => n.lost.push(LostRange {
                        source,
                        epoch,
                        first,
                        last,
                    }),
                    GroupEvent::PeerSuspected { .. } => n.suspicions += 1,
                    GroupEvent::PeerFailed { .. } => n.failures += 1,
                    GroupEvent::TreeRepaired { .. } => n.repairs += 1,
                    GroupEvent::Isolated { .. } => n.isolated += 1,
                    GroupEvent::NeighborUp { .. }
                    | GroupEvent::NeighborDown { .. }
                    | GroupEvent::PeerRecovered { .. }
                    | GroupEvent::Backpressured { .. }
                    | GroupEvent::Writable { .. }
                    | GroupEvent::SlowConsumer { .. } => {}
                }
            }
        }
    }
}

fn add_group_stats(total: &mut GroupStats, s: &GroupStats) {
    let GroupStats {
        data_sent,
        payload_bytes_sent,
        duplicates_received,
        announcements_sent,
        ihave_sent,
        grafts_sent,
        prunes_sent,
        repair_requests_sent,
        repairs_sent,
        membership_sent,
        detection_sent,
        delivered,
        lost,
        invalid_frames,
        foreign_frames,
        failures_declared,
        suspicions_refuted,
    } = s;
    total.data_sent += data_sent;
    total.payload_bytes_sent += payload_bytes_sent;
    total.duplicates_received += duplicates_received;
    total.announcements_sent += announcements_sent;
    total.ihave_sent += ihave_sent;
    total.grafts_sent += grafts_sent;
    total.prunes_sent += prunes_sent;
    total.repair_requests_sent += repair_requests_sent;
    total.repairs_sent += repairs_sent;
    total.membership_sent += membership_sent;
    total.detection_sent += detection_sent;
    total.delivered += delivered;
    total.lost += lost;
    total.invalid_frames += invalid_frames;
    total.foreign_frames += foreign_frames;
    total.failures_declared += failures_declared;
    total.suspicions_refuted += suspicions_refuted;
}
