//! What a run measured: the measures of the epidemic-broadcast literature (Plumtree, HyParView)
//! and the counters behind them, as a [`Report`] that renders to JSON.
//!
//! Definitions (see also `docs/simulation.md`):
//! - **reliability** of a broadcast: the fraction of its group's members that had joined before
//!   it was published and are still live at the end that delivered it;
//! - **latency**: publish to delivery, per delivery (the source's own excluded);
//! - **relative delay penalty (RDP)**: a delivery's latency over the direct one-way latency from
//!   source to receiver;
//! - **last-delivery hop**: the most overlay hops any delivery of a broadcast took;
//! - **link stress**: payload copies one node received of one broadcast (over pairs that
//!   received at least one);
//! - **redundancy (RMR)**: payload frames received over deliveries (the source's excluded),
//!   minus one: 0 is a perfect tree;
//! - **fan-out**: payload frames of one broadcast one node sent in one burst;
//! - **control per broadcast**: tree-control transmits (announcements, grafts, prunes, repair)
//!   over broadcasts; **overhead**: membership and detection transmits per node per second.

use serde_json::{Value, json};

/// A log-linear histogram of `u64` values with about 1.6 % relative precision: exact below 128,
/// then 64 sub-buckets per power of two. Fixed size (about 30 KiB), no allocation per value.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The largest value, or 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at percentile `p` (0 to 100): the middle of its bucket, clamped to the
    /// recorded range; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(index);
                return (low + (high - low) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Non-empty buckets as `(low, high_inclusive, count)`, for plots.
    pub fn buckets(&self) -> Vec<(u64, u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(index, &n)| {
                let (low, high) = bucket_range(index);
                (low, high, n)
            })
            .collect()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros() as usize; // >= 7
    let sub = ((value >> (exponent - SUB_BITS)) & (SUB - 1)) as usize;
    LINEAR as usize + (exponent - 7) * SUB as usize + sub
}

fn bucket_range(index: usize) -> (u64, u64) {
    if index < LINEAR as usize {
        return (index as u64, index as u64);
    }
    let rest = index - LINEAR as usize;
    let exponent = rest / SUB as usize + 7;
    let sub = (rest % SUB as usize) as u64;
    let width = 1u64 << (exponent - SUB_BITS);
    let low = (1u64 << exponent) + sub * width;
    (low, low + (width - 1))
}

const LINEAR: u64 = 128;
const SUB_BITS: usize = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB as usize;

/// Summary of a set of broadcasts (the stable phase, the faulty phase, or all).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhaseReport {
    /// Broadcasts published in the phase.
    pub broadcasts: u64,
    /// Least reliability of any of them (1.0 when there are none).
    pub reliability_min: f64,
    /// Mean reliability.
    pub reliability_mean: f64,
    /// Broadcasts with reliability exactly 1.0.
    pub reliable_count: u64,
    /// Deliveries (sources' own excluded).
    pub deliveries: u64,
    /// Mean delivery latency, ns.
    pub latency_ns_mean: f64,
    /// Median delivery latency, ns.
    pub latency_ns_p50: u64,
    /// 99th percentile delivery latency, ns.
    pub latency_ns_p99: u64,
    /// Greatest delivery latency, ns.
    pub latency_ns_max: u64,
    /// Mean relative delay penalty.
    pub rdp_mean: f64,
    /// 99th percentile relative delay penalty.
    pub rdp_p99: f64,
    /// Mean over broadcasts of the last-delivery hop.
    pub last_hop_mean: f64,
    /// Greatest last-delivery hop.
    pub last_hop_max: u64,
    /// Mean payload copies received per (node, broadcast) pair that received one.
    pub link_stress_mean: f64,
    /// Most payload copies one node received of one broadcast.
    pub link_stress_max: u64,
    /// Redundancy: payload frames received over deliveries, minus one.
    pub rmr: f64,
}

impl PhaseReport {
    /// The phase as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "broadcasts": self.broadcasts,
            "reliability_min": self.reliability_min,
            "reliability_mean": self.reliability_mean,
            "reliable_count": self.reliable_count,
            "deliveries": self.deliveries,
            "latency_ns_mean": self.latency_ns_mean,
            "latency_ns_p50": self.latency_ns_p50,
            "latency_ns_p99": self.latency_ns_p99,
            "latency_ns_max": self.latency_ns_max,
            "rdp_mean": self.rdp_mean,
            "rdp_p99": self.rdp_p99,
            "last_hop_mean": self.last_hop_mean,
            "last_hop_max": self.last_hop_max,
            "link_stress_mean": self.link_stress_mean,
            "link_stress_max": self.link_stress_max,
            "rmr": self.rmr,
        })
    }
}

/// Recovery from one massive failure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepairReport {
    /// When the crash happened, ns.
    pub crash_ns: u64,
    /// Nodes that crashed.
    pub crashed: u64,
    /// From the crash to the publication of the first broadcast from which every later one
    /// had reliability 1.0; `None` if none did.
    pub reliable_after_ns: Option<u64>,
    /// From the crash to the first 100 ms sample at which no live node had a crashed node in
    /// its active view; `None` if never (or not sampled).
    pub views_clean_after_ns: Option<u64>,
}

impl RepairReport {
    /// The repair as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "crash_ns": self.crash_ns,
            "crashed": self.crashed,
            "reliable_after_ns": self.reliable_after_ns,
            "views_clean_after_ns": self.views_clean_after_ns,
        })
    }
}

/// Transmits and bytes of one traffic class.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct ClassCount {
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (head and payload).
    pub bytes: u64,
}

/// Everything one run measured. Built by [`World::report`](super::World::report).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes in the world.
    pub nodes: u64,
    /// Groups.
    pub groups: u64,
    /// `"tree"` or `"flood/F"`.
    pub dissemination: String,
    /// The active view bound the nodes ran with.
    pub active_size: u64,
    /// Virtual time simulated, ns.
    pub virtual_ns: u64,
    /// Protocol inputs processed (frames, timeouts, joins, publishes, leaves).
    pub events_processed: u64,
    /// Payload (`Data`) transmits.
    pub payload: ClassCount,
    /// Tree-control transmits.
    pub tree: ClassCount,
    /// Membership transmits.
    pub membership: ClassCount,
    /// Detection transmits.
    pub detection: ClassCount,
    /// Transmits per frame kind (indexed by the kind byte, see `wire::GroupFrameKind`).
    pub frames_by_kind: [u64; 32],
    /// Frames lost on a link (drop mode).
    pub frames_lost: u64,
    /// Frames dropped between partition sides.
    pub frames_partitioned: u64,
    /// Frames dropped because their receiver had crashed.
    pub frames_to_crashed: u64,
    /// Broadcasts published.
    pub broadcasts_published: u64,
    /// Broadcasts skipped because their source was down.
    pub broadcasts_skipped: u64,
    /// Broadcasts published before the first fault.
    pub stable: PhaseReport,
    /// Broadcasts published at or after the first fault.
    pub faulty: PhaseReport,
    /// All broadcasts.
    pub all: PhaseReport,
    /// Most payload frames one node sent of one broadcast in one burst.
    pub fan_out_max: u64,
    /// Mean of that over bursts.
    pub fan_out_mean: f64,
    /// Tree-control transmits per broadcast.
    pub control_per_broadcast: f64,
    /// Membership and detection transmits per node per second of virtual time.
    pub overhead_per_node_per_s: f64,
    /// One entry per massive failure.
    pub repairs: Vec<RepairReport>,
    /// Per broadcast: publish time (ns) and reliability, in publish order.
    pub reliability_over_time: Vec<(u64, f64)>,
    /// Delivery latency percentiles (percentile, ns) over all deliveries.
    pub latency_percentiles: Vec<(f64, u64)>,
    /// Connected components of the undirected active-view graph among live members at the end,
    /// per group (1 is connected).
    pub components_at_end: Vec<u64>,
    /// Live nodes at the end.
    pub live_at_end: u64,
    /// Sum of the live nodes' protocol counters at the end: delivered, lost, grafts, prunes,
    /// repair requests, failures declared, duplicates received.
    pub counters: [u64; 7],
    /// Rolling hash of every transmit and event: equal runs have equal hashes.
    pub trace_hash: u64,
    /// Checker violations in all.
    pub violations_total: u64,
    /// The first violations, rendered.
    pub violations: Vec<String>,
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> Value {
        let class = |c: &ClassCount| json!({ "frames": c.frames, "bytes": c.bytes });
        json!({
            "seed": self.seed,
            "nodes": self.nodes,
            "groups": self.groups,
            "dissemination": self.dissemination,
            "active_size": self.active_size,
            "virtual_ns": self.virtual_ns,
            "events_processed": self.events_processed,
            "transmits": {
                "payload": class(&self.payload),
                "tree": class(&self.tree),
                "membership": class(&self.membership),
                "detection": class(&self.detection),
            },
            "frames_by_kind": KIND_NAMES
                .iter()
                .enumerate()
                .filter(|(kind, name)| !name.is_empty() && self.frames_by_kind[*kind] > 0)
                .map(|(kind, name)| ((*name).to_owned(), json!(self.frames_by_kind[kind])))
                .collect::<serde_json::Map<_, _>>(),
            "frames_lost": self.frames_lost,
            "frames_partitioned": self.frames_partitioned,
            "frames_to_crashed": self.frames_to_crashed,
            "broadcasts_published": self.broadcasts_published,
            "broadcasts_skipped": self.broadcasts_skipped,
            "stable": self.stable.to_json(),
            "faulty": self.faulty.to_json(),
            "all": self.all.to_json(),
            "fan_out_max": self.fan_out_max,
            "fan_out_mean": self.fan_out_mean,
            "control_per_broadcast": self.control_per_broadcast,
            "overhead_per_node_per_s": self.overhead_per_node_per_s,
            "repairs": self.repairs.iter().map(RepairReport::to_json).collect::<Vec<_>>(),
            "reliability_over_time": self.reliability_over_time,
            "latency_percentiles": self.latency_percentiles,
            "components_at_end": self.components_at_end,
            "live_at_end": self.live_at_end,
            "counters": {
                "delivered": self.counters[0],
                "lost": self.counters[1],
                "grafts_sent": self.counters[2],
                "prunes_sent": self.counters[3],
                "repair_requests_sent": self.counters[4],
                "failures_declared": self.counters[5],
                "duplicates_received": self.counters[6],
            },
            "trace_hash": format!("{:016x}", self.trace_hash),
            "violations_total": self.violations_total,
            "violations": self.violations,
        })
    }
}

/// Names of the frame kinds by kind byte (`wire::GroupFrameKind`), empty where unassigned.
const KIND_NAMES: [&str; 32] = [
    "",
    "join",
    "forward_join",
    "neighbor",
    "accept",
    "reject",
    "disconnect",
    "shuffle",
    "shuffle_reply",
    "heartbeat",
    "ping",
    "pong",
    "probe_request",
    "probe_ack",
    "",
    "",
    "data",
    "ihave",
    "graft",
    "prune",
    "repair_request",
    "repair_missing",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = (0, 0);
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert!(low <= high);
            if index > 0 {
                assert_eq!(low, last.1 + 1, "gap before bucket {index}");
            }
            assert_eq!(bucket(low), index);
            assert_eq!(bucket(high), index);
            last = (low, high);
        }
        assert_eq!(last.1, u64::MAX);
    }

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 100_000);
        for (p, exact) in [(50.0, 50_000_000.0), (99.0, 99_000_000.0)] {
            let got = h.percentile(p) as f64;
            assert!((got / exact - 1.0).abs() < 0.02, "p{p}: {got}");
        }
        assert_eq!(h.percentile(100.0), 100_000_000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
        let mut other = Histogram::new();
        other.record(5);
        h.merge(&other);
        assert_eq!(h.percentile(0.0), 5);
        assert_eq!(Histogram::new().percentile(50.0), 0);
    }

    #[test]
    fn report_renders_to_json() {
        let report = Report {
            seed: 3,
            reliability_over_time: vec![(1, 1.0)],
            ..Report::default()
        };
        let json = report.to_json();
        assert_eq!(json["seed"], 3);
        assert_eq!(json["reliability_over_time"][0][1], 1.0);
        assert_eq!(json["all"]["rmr"], 0.0);
    }
}
