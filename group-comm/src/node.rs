//! [`GroupNode`]: one node's part in its groups, composing membership, failure detection, trees
//! and delivery into one sans-IO state machine.

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::Instant;
use thiserror::Error;

use crate::GroupId;
use crate::config::{ConfigError, GroupConfig};
use crate::event::{GroupEvent, TrafficClass};
use crate::wire::{MessageId, NodeRef};

/// One node's part in any number of groups.
///
/// # The drive contract
/// As for `substrate::proto::Protocol`: after every input (`handle_*`, `join`, `leave`,
/// `publish`), the driver drains [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event) until both return `None`, then reads
/// [`poll_timeout`](Self::poll_timeout) and calls [`handle_timeout`](Self::handle_timeout) no
/// later than that. `now` never goes backwards.
///
/// # Links
/// Frames travel over reliable, ordered links between NodeIds (Phyla sessions, or the
/// simulator's link model). When the link layer gives up on a peer it says so with
/// [`handle_unreachable`](Self::handle_unreachable); the group's own failure detector covers
/// peers that go silent.
#[derive(Debug)]
pub struct GroupNode {
    _todo: (),
}

impl GroupNode {
    /// A node named `id`, in no group yet. `rng` draws the node's incarnation number.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not validate.
    pub fn new(id: NodeRef, config: GroupConfig, rng: &mut Rng) -> Result<Self, ConfigError> {
        let _ = (id, config, rng);
        todo!()
    }

    /// This node's identity and advertised locator.
    pub fn id(&self) -> NodeRef {
        todo!()
    }

    /// Joins `group` through `contact`, any current member; with `None`, this node starts the
    /// group alone and others join through it. Joining a group already joined retries the
    /// join through `contact` if the active view is empty, and is otherwise a no-op.
    ///
    /// # Errors
    /// [`GroupError::TooManyGroups`] past the configured bound.
    pub fn join(
        &mut self,
        now: Instant,
        group: GroupId,
        contact: Option<NodeRef>,
        rng: &mut Rng,
    ) -> Result<(), GroupError> {
        let _ = (now, group, contact, rng);
        todo!()
    }

    /// Leaves `group`: tells the active neighbours and forgets the group's state.
    pub fn leave(&mut self, now: Instant, group: GroupId, rng: &mut Rng) {
        let _ = (now, group, rng);
        todo!()
    }

    /// Publishes `payload` to every member of `group`, this node included (it gets its own
    /// `Delivered` event). The payload is never copied: the same bytes go to every tree link.
    ///
    /// # Errors
    /// [`GroupError::NotMember`] if this node has not joined `group`.
    pub fn publish(
        &mut self,
        now: Instant,
        group: GroupId,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<MessageId, GroupError> {
        let _ = (now, group, payload, rng);
        todo!()
    }

    /// A whole frame arrived from `from` over its link.
    pub fn handle_frame(&mut self, now: Instant, from: NodeRef, frame: &Bytes, rng: &mut Rng) {
        let _ = (now, from, frame, rng);
        todo!()
    }

    /// A frame arrived as a head and a separate payload (gather I/O, or the simulator, which
    /// shares one payload buffer among all receivers). `head` must end where the payload starts;
    /// only `Data` frames have a payload.
    pub fn handle_parts(
        &mut self,
        now: Instant,
        from: NodeRef,
        head: &[u8],
        payload: &Bytes,
        rng: &mut Rng,
    ) {
        let _ = (now, from, head, payload, rng);
        todo!()
    }

    /// The link layer gave up on `peer` (its session timed out or was refused): treat it as
    /// failed at once.
    pub fn handle_unreachable(&mut self, now: Instant, peer: NodeId, rng: &mut Rng) {
        let _ = (now, peer, rng);
        todo!()
    }

    /// The deadline from `poll_timeout` has passed (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut Rng) {
        let _ = (now, rng);
        todo!()
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<GroupTransmit> {
        todo!()
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        todo!()
    }

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// A snapshot of this node's views of `group`, or `None` if it is not a member.
    pub fn view(&self, group: GroupId) -> Option<ViewInfo> {
        let _ = group;
        todo!()
    }

    /// The neighbours this node pushes `source`'s messages to eagerly in `group`: its children
    /// (and parent) in `source`'s tree.
    pub fn eager_peers(&self, group: GroupId, source: NodeId) -> Vec<NodeId> {
        let _ = (group, source);
        todo!()
    }

    /// Counters since creation.
    pub fn stats(&self) -> &GroupStats {
        todo!()
    }
}

/// One frame to send to one peer: `frame` then `payload` (empty except for `Data`), as two
/// buffers, so that a payload is shared, never copied, among all the peers it goes to.
#[derive(Clone, Debug)]
pub struct GroupTransmit {
    /// The peer.
    pub to: NodeId,
    /// Where the peer was last known to be, for a link layer that must open a session to it.
    pub locator: Option<substrate::id::Locator>,
    /// The encoded frame (for `Data`, only its head).
    pub frame: Bytes,
    /// The `Data` payload, or empty.
    pub payload: Bytes,
    /// What the frame is, for accounting.
    pub class: TrafficClass,
}

/// A snapshot of one node's views of one group.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct ViewInfo {
    /// The active view: the neighbours used for traffic and failure detection.
    pub active: Vec<NodeId>,
    /// The passive view: the reserve used for repair.
    pub passive: Vec<NodeId>,
}

/// Why a group operation was refused.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum GroupError {
    /// The operation needs membership of the group.
    #[error("not a member of group {0}")]
    NotMember(GroupId),
    /// The node is in as many groups as it may be.
    #[error("too many groups (at most {0})")]
    TooManyGroups(usize),
    /// Group id 0 is reserved.
    #[error("group id 0 is reserved")]
    ReservedGroup,
}

/// Counters of one [`GroupNode`], across its groups.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct GroupStats {
    /// `Data` frames sent (eager pushes, graft answers and repairs).
    pub data_sent: u64,
    /// Payload bytes in them.
    pub payload_bytes_sent: u64,
    /// `Data` frames received for a message already delivered or held.
    pub duplicates_received: u64,
    /// Announcements sent in `IHave` frames (entries, not frames).
    pub announcements_sent: u64,
    /// `IHave` frames sent.
    pub ihave_sent: u64,
    /// `Graft` frames sent.
    pub grafts_sent: u64,
    /// `Prune` frames sent.
    pub prunes_sent: u64,
    /// Repair requests sent.
    pub repair_requests_sent: u64,
    /// Messages sent in answer to repair requests and grafts.
    pub repairs_sent: u64,
    /// Membership frames sent.
    pub membership_sent: u64,
    /// Heartbeats and probes sent.
    pub detection_sent: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Messages reported lost.
    pub lost: u64,
    /// Frames that failed to decode.
    pub invalid_frames: u64,
    /// Frames for a group this node is not in (dropped: a non-member never carries a group's
    /// payload).
    pub foreign_frames: u64,
    /// Peers declared failed.
    pub failures_declared: u64,
    /// Suspicions refuted by a probe or a heartbeat.
    pub suspicions_refuted: u64,
}
