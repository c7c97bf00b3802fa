//! Configuration of a [`GroupNode`](crate::GroupNode): view sizes, timers and bounds.

use substrate::time::Duration;
use thiserror::Error;

/// How a group's messages spread over the active view.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Dissemination {
    /// Plumtree: eager push on tree links, lazy announcements on the others.
    Tree,
    /// Flooding gossip: on first receipt, push to `fanout` random active neighbours (the
    /// baseline of the Plumtree paper). No tree, no announcements, no repair by graft.
    Flood {
        /// Neighbours each node pushes to.
        fanout: usize,
    },
}

/// How far a source may publish ahead of the slowest member of its tree: both bounds hold.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FlowWindow {
    /// Messages published and not yet delivered by every member.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

/// Parameters of the group protocols. [`GroupConfig::for_group_size`] derives sensible ones
/// from the expected group size; every field may then be changed.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Most active neighbours (HyParView's active view). Bounds each node's fan-out.
    pub active_size: usize,
    /// Most passive entries (HyParView's passive view), the reserve for repair.
    pub passive_size: usize,
    /// Active random walk length of a join (HyParView's ARWL).
    pub join_walk: u8,
    /// Hop of a join walk at which the joiner enters the passive view (HyParView's PRWL).
    pub passive_walk: u8,
    /// How often a node shuffles its passive view with a random walk.
    pub shuffle_interval: Duration,
    /// Active entries in a shuffle sample.
    pub shuffle_active: usize,
    /// Passive entries in a shuffle sample.
    pub shuffle_passive: usize,
    /// Walk length of a shuffle.
    pub shuffle_walk: u8,
    /// How long a `Neighbor` or `Join` request may stay unanswered before the next candidate.
    pub request_timeout: Duration,
    /// Active slots kept for latency-biased neighbours (chosen by measured round-trip time);
    /// the rest stay random so the overlay stays connected and well mixed. 0 turns it off.
    pub latency_slots: usize,
    /// How often a node probes one passive candidate's round trip for the latency-biased slots.
    pub optimize_interval: Duration,

    /// Heartbeat period on each active link.
    pub heartbeat_interval: Duration,
    /// Heartbeat inter-arrival samples kept per link for phi-accrual.
    pub detector_window: usize,
    /// Phi at which a peer is suspected and probed.
    pub phi_suspect: f64,
    /// Phi at which a suspected peer that answered no probe is declared failed.
    pub phi_fail: f64,
    /// Floor of the inter-arrival standard deviation, so that a perfectly regular link does not
    /// turn one late heartbeat into a failure.
    pub min_std_dev: Duration,
    /// Least time a suspected peer has to answer a probe before it is declared failed
    /// (Lifeguard's suspicion timeout): a slow link is probed, not failed.
    pub suspicion_timeout: Duration,
    /// Neighbours asked to probe a suspected peer indirectly (SWIM's k).
    pub probe_fanout: usize,

    /// How messages spread.
    pub dissemination: Dissemination,
    /// How often batched lazy announcements are sent.
    pub lazy_interval: Duration,
    /// How long an announced message may be missing before a graft asks for it.
    pub graft_timeout: Duration,
    /// How much earlier a lazy link must announce a message than the eager copy arrives for the
    /// two links to swap (Plumtree §3.8, measured in time rather than hops: on links of unequal
    /// latency the fewest hops is not the fastest path).
    pub optimization_delay: Duration,
    /// Links never drop a frame silently (they are sessions, which deliver in order or report
    /// the peer unreachable). Then:
    /// - a message announced by a lazy link while the source's tree stream is still arriving
    ///   is late, not lost, and is not grafted: on a loaded host announcements overtake the
    ///   eager path, and grafting each of them would add a duplicate per message;
    /// - a graft asks for the source's stream from the first message the node lacks, and the
    ///   new parent replays what it has from there before its eager pushes, so that changing
    ///   parent (after a failure, or for latency) leaves no gap behind.
    ///
    /// Off for lossy links (the simulator's drop mode), where a graft asks for one message.
    pub reliable_links: bool,
    /// Tree flow control (needs `reliable_links`): each member tells its parent in every
    /// source's tree how far its whole subtree has delivered, and a source publishes at most
    /// this far ahead of the slowest member, so that a slow subtree slows the source
    /// (backpressure) instead of filling queues until messages are lost. `None`: sources
    /// publish freely (the simulator's default).
    pub flow_window: Option<FlowWindow>,
    /// How often a member reports its subtree's positions to its parents, at most.
    pub flow_interval: Duration,

    /// Messages kept for grafts and repair, per source (the newest of each; at most four
    /// sources' worth in all), so that a busy source does not push a quiet one's out.
    pub cache_capacity: usize,
    /// Most messages one repair request asks for (and one answer sends). A request for the
    /// next batch goes out as soon as the previous one is filled.
    pub repair_batch: u64,
    /// Out-of-order messages held per source while a gap is repaired.
    pub reorder_capacity: usize,
    /// How long a gap may stay open before a repair request goes out.
    pub repair_timeout: Duration,
    /// How often a node sends its per-source positions to one random neighbour (anti-entropy):
    /// it bounds how long a message whose every copy and announcement was lost goes unnoticed.
    pub anti_entropy_interval: Duration,
    /// How long a gap must have been open, with every neighbour asked, before it is reported
    /// lost. A neighbour that lacks a message may only lack it *yet*; what the caches still
    /// hold is recoverable for about `cache_capacity` messages' time.
    pub loss_timeout: Duration,
    /// Sources tracked per group; the least recently heard is forgotten past this.
    pub max_sources: usize,
    /// Recently failed peers remembered and retried, so that a healed partition merges.
    pub failed_memory: usize,
    /// How long a failed peer is retried.
    pub failed_retry_for: Duration,
}

impl GroupConfig {
    /// Parameters for groups of about `n` members: an active view of about `ln(n)/2 + 1`
    /// (HyParView uses log n + c) between 4 and 8, and a passive view six times larger.
    pub fn for_group_size(n: usize) -> Self {
        let ln = (n.max(2) as f64).ln();
        let active_size = ((ln / 2.0).ceil() as usize + 1).clamp(4, 8);
        Self {
            active_size,
            passive_size: 6 * active_size,
            join_walk: 6,
            passive_walk: 3,
            shuffle_interval: Duration::from_secs(10),
            shuffle_active: 3,
            shuffle_passive: 4,
            shuffle_walk: 4,
            request_timeout: Duration::from_secs(2),
            latency_slots: active_size / 2,
            optimize_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_millis(500),
            detector_window: 16,
            phi_suspect: 5.0,
            phi_fail: 10.0,
            min_std_dev: Duration::from_millis(100),
            suspicion_timeout: Duration::from_secs(1),
            probe_fanout: 2,
            dissemination: Dissemination::Tree,
            lazy_interval: Duration::from_millis(20),
            graft_timeout: Duration::from_millis(250),
            optimization_delay: Duration::from_millis(50),
            reliable_links: false,
            flow_window: None,
            flow_interval: Duration::from_millis(5),
            cache_capacity: 128,
            repair_batch: 64,
            reorder_capacity: 256,
            repair_timeout: Duration::from_millis(250),
            loss_timeout: Duration::from_secs(5),
            anti_entropy_interval: Duration::from_secs(1),
            max_sources: 256,
            failed_memory: 8,
            failed_retry_for: Duration::from_secs(120),
        }
    }

    /// Checks that the parameters make sense together.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field that does not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field| Err(ConfigError { field });
        if self.active_size < 2 || self.active_size > 64 {
            return bad("active_size (2..=64)");
        }
        if self.passive_size < self.active_size || self.passive_size > 1024 {
            return bad("passive_size (active_size..=1024)");
        }
        if self.latency_slots >= self.active_size {
            return bad("latency_slots (< active_size)");
        }
        if self.join_walk == 0 || self.join_walk > 64 || self.passive_walk > self.join_walk {
            return bad("join_walk (1..=64) / passive_walk (<= join_walk)");
        }
        if self.shuffle_active + self.shuffle_passive + 1 > crate::wire::MAX_NODE_REFS {
            return bad("shuffle_active + shuffle_passive");
        }
        if self.detector_window < 2 || self.detector_window > 1024 {
            return bad("detector_window (2..=1024)");
        }
        if !(self.phi_suspect > 0.0 && self.phi_fail > self.phi_suspect && self.phi_fail < 300.0) {
            return bad("phi_suspect / phi_fail");
        }
        if let Dissemination::Flood { fanout } = self.dissemination {
            if fanout == 0 {
                return bad("dissemination fanout");
            }
        }
        if self.repair_batch == 0 || self.repair_batch > 65_536 {
            return bad("repair_batch (1..=65536)");
        }
        if let Some(w) = self.flow_window {
            if !self.reliable_links {
                return bad("flow_window (needs reliable_links)");
            }
            if w.messages == 0 || w.bytes == 0 || w.messages > self.cache_capacity as u64 {
                return bad("flow_window (messages 1..=cache_capacity, bytes > 0)");
            }
        }
        if self.cache_capacity == 0 || self.reorder_capacity == 0 || self.max_sources == 0 {
            return bad("cache_capacity / reorder_capacity / max_sources");
        }
        let timers = [
            self.shuffle_interval,
            self.request_timeout,
            self.heartbeat_interval,
            self.min_std_dev,
            self.lazy_interval,
            self.graft_timeout,
            self.repair_timeout,
            self.optimize_interval,
            self.suspicion_timeout,
            self.optimization_delay,
            self.loss_timeout,
            self.anti_entropy_interval,
            self.flow_interval,
        ];
        if timers.iter().any(|d| d.is_zero()) {
            return bad("a timer is zero");
        }
        Ok(())
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self::for_group_size(1_000)
    }
}

/// A [`GroupConfig`] whose parameters do not fit together.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[error("invalid group configuration: {field}")]
pub struct ConfigError {
    /// The offending field, with its allowed range.
    pub field: &'static str,
}
