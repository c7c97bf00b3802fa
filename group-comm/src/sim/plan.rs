//! [`Plan`]: everything one simulated run is made of, as plain data with defaults.
//!
//! A plan fixes the deployment (nodes, groups, network), the traffic (broadcasts) and the faults
//! (crashes, partitions, churn, loss). Together with its seed it reproduces a run exactly.
//!
//! Times of faults and broadcasts are measured from the *traffic start*: the end of the join
//! window plus the stabilisation time ([`Plan::traffic_start`]), so that a plan reads like the
//! scenario it describes ("crash 30 % two seconds into the traffic").

use substrate::time::{Duration, duration_ns};
use thiserror::Error;

use crate::config::{Dissemination, GroupConfig};

/// One simulated deployment and what happens to it. Build with struct-update syntax from
/// [`Plan::new`] (or `Default`, 1,000 nodes) and check with [`Plan::validate`].
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed: every random choice of the run (node RNGs, latencies, loss, fault victims)
    /// derives from it.
    pub seed: u64,
    /// Nodes in the world. Node `i` is `NodeId::from_u64(i)`.
    pub nodes: usize,
    /// Groups, and which nodes belong to which.
    pub groups: GroupLayout,
    /// One-way latency between two nodes.
    pub latency: LatencyModel,
    /// Each node's uplink in bytes per second (serialisation delay, FIFO per node); `None` is
    /// unlimited.
    pub uplink_bytes_per_s: Option<u64>,
    /// Link loss and how the links react to it.
    pub loss: Loss,
    /// Nodes join one by one, evenly spread over this window, each through a random member
    /// that has already joined.
    pub join_window: Duration,
    /// Quiet time after the join window before the traffic starts, for the overlay to settle.
    pub stabilize: Duration,
    /// The broadcasts.
    pub broadcasts: Broadcasts,
    /// Massive failures: a fraction of the live nodes crashes at one instant.
    pub crashes: Vec<Crash>,
    /// Partitions that heal.
    pub partitions: Vec<Partition>,
    /// Continuous crashes and restarts.
    pub churn: Option<Churn>,
    /// Virtual time simulated after the last broadcast, for repair to finish.
    pub settle: Duration,
    /// The protocol parameters; `None` is [`GroupConfig::for_group_size`] of the group size.
    pub config: Option<GroupConfig>,
    /// Overrides the configuration's dissemination (for the flooding baseline).
    pub dissemination: Option<Dissemination>,
    /// A node whose active view stays empty for this long after a join (or after an `Isolated`
    /// event) joins again through another random member, as an application would.
    pub rejoin_after: Duration,
    /// Crash, partition and churn victims are never broadcast sources, so that the traffic
    /// continues across the fault and every later message has a live source.
    pub spare_sources: bool,
    /// Sample every live node's active view every 100 ms (virtual) after each massive crash until
    /// no live node lists a crashed one, to measure view repair time. Costs one view snapshot per
    /// node per sample.
    pub sample_views: bool,
}

impl Plan {
    /// A plan of `nodes` nodes in one group with the defaults: 5 latency regions, no loss, a
    /// join window of 1 ms per 10 nodes (at least 1 s), 5 s of stabilisation, 100 broadcasts
    /// from 5 sources at 50 per second, 10 s to settle.
    pub fn new(nodes: usize) -> Self {
        let join_ms = (nodes as u64 / 10).max(1_000);
        Self {
            seed: 0,
            nodes,
            groups: GroupLayout::default(),
            latency: LatencyModel::default(),
            uplink_bytes_per_s: None,
            loss: Loss::default(),
            join_window: Duration::from_millis(join_ms),
            stabilize: Duration::from_secs(5),
            broadcasts: Broadcasts::default(),
            crashes: Vec::new(),
            partitions: Vec::new(),
            churn: None,
            settle: Duration::from_secs(10),
            config: None,
            dissemination: None,
            rejoin_after: Duration::from_secs(1),
            spare_sources: true,
            sample_views: true,
        }
    }

    /// When the traffic starts: the join window plus the stabilisation time.
    pub fn traffic_start(&self) -> Duration {
        self.join_window + self.stabilize
    }

    /// When broadcast `index` is published, from time zero.
    pub fn publish_time(&self, index: usize) -> Duration {
        let rate = self.broadcasts.per_second.max(f64::MIN_POSITIVE);
        self.traffic_start() + Duration::from_secs_f64(index as f64 / rate)
    }

    /// When the run ends: the last broadcast, fault or churn event plus the settle time.
    pub fn end_time(&self) -> Duration {
        let start = self.traffic_start();
        let mut last = start;
        if self.broadcasts.count > 0 {
            last = last.max(self.publish_time(self.broadcasts.count - 1));
        }
        for crash in &self.crashes {
            last = last.max(start + crash.at);
        }
        for partition in &self.partitions {
            last = last.max(start + partition.at + partition.duration);
        }
        if let Some(churn) = &self.churn {
            last = last.max(start + churn.until);
        }
        last + self.settle
    }

    /// The group configuration the nodes run: [`Plan::config`] or the default for the group
    /// size, with [`Plan::dissemination`] applied.
    pub fn group_config(&self) -> GroupConfig {
        let mut config = self
            .config
            .clone()
            .unwrap_or_else(|| GroupConfig::for_group_size(self.nodes / self.groups.count.max(1)));
        if let Some(dissemination) = self.dissemination {
            config.dissemination = dissemination;
        }
        config
    }

    /// Checks that the plan can run.
    ///
    /// # Errors
    /// [`PlanError`] naming the first field that does not make sense.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field| Err(PlanError::Field(field));
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return bad("nodes (1..=2^31)");
        }
        if self.groups.count == 0 || self.groups.count > 64 || self.groups.count > self.nodes {
            return bad("groups.count (1..=64, at most nodes)");
        }
        self.latency.validate()?;
        if self.uplink_bytes_per_s == Some(0) {
            return bad("uplink_bytes_per_s (> 0)");
        }
        if !(0.0..1.0).contains(&self.loss.probability) {
            return bad("loss.probability (0 <= p < 1)");
        }
        if self.broadcasts.payload_bytes < 8 || self.broadcasts.payload_bytes > 1 << 20 {
            return bad("broadcasts.payload_bytes (8..=1 MiB)");
        }
        if self.broadcasts.sources == 0 {
            return bad("broadcasts.sources (> 0)");
        }
        let rate = self.broadcasts.per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return bad("broadcasts.per_second (> 0)");
        }
        let fraction_ok = |f: f64| (0.0..=1.0).contains(&f);
        if self.crashes.iter().any(|c| !fraction_ok(c.fraction)) {
            return bad("crashes.fraction (0..=1)");
        }
        if self.partitions.iter().any(|p| !fraction_ok(p.fraction)) {
            return bad("partitions.fraction (0..=1)");
        }
        if let Some(churn) = &self.churn {
            let ok = |r: f64| r.is_finite() && r >= 0.0;
            if !ok(churn.crashes_per_s) || !ok(churn.restarts_per_s) {
                return bad("churn rates (finite, >= 0)");
            }
        }
        if duration_ns(self.end_time()) >= u64::MAX / 2 {
            return bad("times (too long)");
        }
        self.group_config().validate()?;
        Ok(())
    }
}

impl Default for Plan {
    fn default() -> Self {
        Self::new(1_000)
    }
}

/// Which groups exist and who is in them.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct GroupLayout {
    /// Number of groups, named `sim-0`, `sim-1`, ...
    pub count: usize,
    /// Which nodes are in which group.
    pub membership: Membership,
}

impl GroupLayout {
    /// Whether node `node` is a member of group number `group`.
    pub fn is_member(&self, node: usize, group: usize) -> bool {
        match self.membership {
            Membership::All => true,
            Membership::Modulo => node % self.count == group,
        }
    }

    /// The first member of group number `group`, which starts it.
    pub fn founder(&self, group: usize) -> usize {
        match self.membership {
            Membership::All => 0,
            Membership::Modulo => group,
        }
    }
}

impl Default for GroupLayout {
    fn default() -> Self {
        Self {
            count: 1,
            membership: Membership::All,
        }
    }
}

/// The rule that places nodes in groups.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Membership {
    /// Every node is in every group.
    All,
    /// Node `i` is in group `i % count` only.
    Modulo,
}

/// One-way latency between two nodes. Each pair's latency is fixed for the whole run (derived
/// by hashing the pair with the seed), so a link never reorders its frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyModel {
    /// Every pair draws its latency uniformly from `min..=max`.
    Uniform {
        /// Least one-way latency.
        min: Duration,
        /// Greatest one-way latency.
        max: Duration,
    },
    /// Nodes live in `regions` regions (by hash of their index). A pair in one region draws
    /// from `near`; a pair across regions has the regions' base latency (drawn once per region
    /// pair from `far`) plus a per-pair jitter of up to `near.1 - near.0`, so geography is
    /// consistent: every pair between two given regions is about equally far.
    Regions {
        /// Number of regions.
        regions: u32,
        /// Latency range within a region.
        near: (Duration, Duration),
        /// Range of the base latency between two regions.
        far: (Duration, Duration),
    },
}

impl LatencyModel {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`PlanError::Field`] if a range is inverted or empty of regions.
    pub fn validate(&self) -> Result<(), PlanError> {
        match *self {
            Self::Uniform { min, max } if min > max => Err(PlanError::Field("latency min > max")),
            Self::Regions { regions: 0, .. } => Err(PlanError::Field("latency regions (> 0)")),
            Self::Regions { near, far, .. } if near.0 > near.1 || far.0 > far.1 => {
                Err(PlanError::Field("latency near/far ranges"))
            }
            _ => Ok(()),
        }
    }
}

impl Default for LatencyModel {
    /// Five regions, 2-10 ms within one, 40-120 ms between two.
    fn default() -> Self {
        Self::Regions {
            regions: 5,
            near: (Duration::from_millis(2), Duration::from_millis(10)),
            far: (Duration::from_millis(40), Duration::from_millis(120)),
        }
    }
}

/// Link loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Probability that one transmission of a frame is lost.
    pub probability: f64,
    /// What a loss does.
    pub mode: LossMode,
}

impl Default for Loss {
    /// No loss.
    fn default() -> Self {
        Self {
            probability: 0.0,
            mode: LossMode::Retransmit,
        }
    }
}

/// What a lost transmission does to a frame.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LossMode {
    /// The link (a Phyla session) resends it after a retransmission timeout of three one-way
    /// latencies, as often as needed; frames behind it on the same link wait for it (the link
    /// stays FIFO). Loss shows only as delay.
    Retransmit,
    /// The frame is gone: exercises the group protocol's own repair.
    Drop,
}

/// The traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Broadcasts {
    /// Messages published in all (over all groups).
    pub count: usize,
    /// Distinct sources per group, spread evenly over the members; broadcasts rotate among
    /// them.
    pub sources: usize,
    /// Publications per second, in all.
    pub per_second: f64,
    /// Bytes per message (at least 8: the simulator writes the broadcast's index in the first
    /// eight).
    pub payload_bytes: usize,
}

impl Default for Broadcasts {
    /// 100 messages of 100 bytes from 5 sources, 50 per second.
    fn default() -> Self {
        Self {
            count: 100,
            sources: 5,
            per_second: 50.0,
            payload_bytes: 100,
        }
    }
}

/// A massive failure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crash {
    /// When, from the traffic start.
    pub at: Duration,
    /// Fraction of the live nodes that crash (drawn among non-sources when
    /// [`Plan::spare_sources`]).
    pub fraction: f64,
}

/// A partition that heals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partition {
    /// When it starts, from the traffic start.
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Fraction of the nodes cut off on the minority side (sources stay on the majority side
    /// when [`Plan::spare_sources`]).
    pub fraction: f64,
}

/// Continuous churn: crashes and restarts as Poisson processes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Churn {
    /// Crashes per second (a random live node stops).
    pub crashes_per_s: f64,
    /// Restarts per second (a random crashed node comes back with a new incarnation and joins
    /// through a random member).
    pub restarts_per_s: f64,
    /// When churn starts, from the traffic start.
    pub from: Duration,
    /// When churn stops, from the traffic start.
    pub until: Duration,
}

/// A plan that cannot run.
#[derive(Clone, Copy, Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum PlanError {
    /// A field is out of range.
    #[error("invalid plan: {0}")]
    Field(&'static str),
    /// The group configuration does not validate.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The most nodes a world holds (indices are `u32`, one bit kept spare).
pub const MAX_NODES: usize = 1 << 31;
