//! [`GroupNode`]: one node's part in its groups, composing membership, failure detection, trees
//! and delivery into one sans-IO state machine.

use std::collections::VecDeque;

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::Instant;
use thiserror::Error;

use crate::GroupId;
use crate::config::{ConfigError, GroupConfig};
use crate::detect::Detector;
use crate::event::{GroupEvent, TrafficClass};
use crate::membership::Group;
use crate::wire::{self, DataFlags, GroupFrame, GroupFrameKind, MessageId, NodeRef, Watermark};

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
    pub(crate) me: NodeRef,
    pub(crate) config: GroupConfig,
    /// This incarnation's number: a restarted source starts a new sequence under a new epoch.
    pub(crate) epoch: u32,
    pub(crate) groups: Vec<Group>,
    pub(crate) detector: Detector,
    pub(crate) out: VecDeque<GroupTransmit>,
    pub(crate) events: VecDeque<GroupEvent>,
    pub(crate) stats: GroupStats,
    scratch: Vec<u8>,
}

impl GroupNode {
    /// A node named `id`, in no group yet. `rng` draws the node's incarnation number.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not validate.
    pub fn new(id: NodeRef, config: GroupConfig, rng: &mut Rng) -> Result<Self, ConfigError> {
        config.validate()?;
        let detector = Detector::new(&config, rng);
        Ok(Self {
            me: id,
            epoch: rng.next_u64() as u32,
            config,
            groups: Vec::new(),
            detector,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: GroupStats::default(),
            scratch: Vec::with_capacity(256),
        })
    }

    /// This node's identity and advertised locator.
    pub fn id(&self) -> NodeRef {
        self.me
    }

    /// Joins `group` through `contact`, any current member; with `None`, this node starts the
    /// group alone and others join through it. Joining a group already joined retries the
    /// join through `contact` if the active view is empty, and is otherwise a no-op.
    ///
    /// # Errors
    /// [`GroupError::ReservedGroup`] for [`GroupId::NODE`], [`GroupError::TooManyGroups`] past
    /// [`MAX_GROUPS`].
    pub fn join(
        &mut self,
        now: Instant,
        group: GroupId,
        contact: Option<NodeRef>,
        rng: &mut Rng,
    ) -> Result<(), GroupError> {
        if group == GroupId::NODE {
            return Err(GroupError::ReservedGroup);
        }
        let gi = match self.group_index(group) {
            Some(gi) => gi,
            None => {
                if self.groups.len() >= MAX_GROUPS {
                    return Err(GroupError::TooManyGroups(MAX_GROUPS));
                }
                self.groups.push(Group::new(group, now, &self.config, rng));
                self.groups.len() - 1
            }
        };
        let contact = contact.filter(|c| c.id != self.me.id);
        if let Some(contact) = contact {
            self.groups[gi].contact = Some(contact);
            if self.groups[gi].active.is_empty() {
                self.send_join(gi, contact, now);
            }
        }
        Ok(())
    }

    /// Leaves `group`: tells the active neighbours and forgets the group's state.
    pub fn leave(&mut self, now: Instant, group: GroupId, rng: &mut Rng) {
        let _ = rng;
        let Some(gi) = self.group_index(group) else {
            return;
        };
        let g = self.groups.swap_remove(gi);
        for a in &g.active {
            self.send(group, a.node, &GroupFrame::Disconnect { leaving: true });
            self.events.push_back(GroupEvent::NeighborDown {
                group,
                peer: a.node.id,
            });
        }
        for a in &g.active {
            self.unwatch_if_unused(a.node.id);
        }
        let _ = now;
    }

    /// Publishes `payload` to every member of `group`, this node included (it gets its own
    /// `Delivered` event). The payload is never copied: the same bytes go to every tree link.
    ///
    /// # Errors
    /// [`GroupError::NotMember`] if this node has not joined `group`;
    /// [`GroupError::NotConnected`] while it has no neighbour in it (still joining, or cut off):
    /// retry after [`GroupEvent::Joined`] or [`GroupEvent::NeighborUp`].
    pub fn publish(
        &mut self,
        now: Instant,
        group: GroupId,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<MessageId, GroupError> {
        let gi = self
            .group_index(group)
            .ok_or(GroupError::NotMember(group))?;
        let g = &mut self.groups[gi];
        if g.active.is_empty() && g.contact.is_some() {
            // Nobody would receive it, and members joining later start after it.
            return Err(GroupError::NotConnected(group));
        }
        let id = MessageId {
            source: self.me.id,
            epoch: self.epoch,
            seq: g.next_seq,
        };
        g.next_seq += 1;
        self.flow_published(gi, id.seq, payload.len());
        self.accept_new(gi, id, 0, payload, None, now, rng);
        self.settle_own(gi);
        Ok(id)
    }

    /// A whole frame arrived from `from` over its link.
    pub fn handle_frame(&mut self, now: Instant, from: NodeRef, frame: &Bytes, rng: &mut Rng) {
        match wire::decode(frame) {
            Ok((group, f)) => {
                let payload = match &f {
                    GroupFrame::Data { payload, .. } => frame.slice_ref(payload),
                    _ => Bytes::new(),
                };
                self.dispatch(now, from, group, f, payload, rng);
            }
            Err(_) => self.stats.invalid_frames += 1,
        }
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
        match wire::decode(head) {
            Ok((group, f)) => {
                let payload = match &f {
                    GroupFrame::Data { payload: [], .. } => payload.clone(),
                    _ if payload.is_empty() => Bytes::new(),
                    _ => {
                        // A payload on a frame that has none, or a head with trailing bytes.
                        self.stats.invalid_frames += 1;
                        return;
                    }
                };
                self.dispatch(now, from, group, f, payload, rng);
            }
            Err(_) => self.stats.invalid_frames += 1,
        }
    }

    /// The link layer gave up on `peer` (its session timed out or was refused): treat it as
    /// failed at once.
    pub fn handle_unreachable(&mut self, now: Instant, peer: NodeId, rng: &mut Rng) {
        if peer == self.me.id {
            return;
        }
        let watched = self.detector.is_watched(peer);
        self.peer_failed(peer, now, rng);
        if !watched {
            // Not a neighbour: only pending requests and the passive views care.
            for gi in 0..self.groups.len() {
                self.forget_candidate(gi, peer, now, rng);
            }
        }
    }

    /// The deadline from `poll_timeout` has passed (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut Rng) {
        self.detector_timeout(now, rng);
        for gi in 0..self.groups.len() {
            self.membership_timeout(gi, now, rng);
            self.tree_timeout(gi, now);
            self.flow_timeout(gi, now);
            self.delivery_timeout(gi, now, rng);
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<GroupTransmit> {
        self.out.pop_front()
    }

    /// The next event for the application, oldest first.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.detector.next_deadline();
        for g in &self.groups {
            t = earliest(t, g.next_deadline());
        }
        t
    }

    /// A snapshot of this node's views of `group`, or `None` if it is not a member.
    pub fn view(&self, group: GroupId) -> Option<ViewInfo> {
        let g = &self.groups[self.group_index(group)?];
        Some(ViewInfo {
            active: g.active.iter().map(|a| a.node.id).collect(),
            passive: g.passive.iter().map(|p| p.id).collect(),
        })
    }

    /// The neighbours this node pushes `source`'s messages to eagerly in `group`: its children
    /// (and parent) in `source`'s tree.
    pub fn eager_peers(&self, group: GroupId, source: NodeId) -> Vec<NodeId> {
        let Some(gi) = self.group_index(group) else {
            return Vec::new();
        };
        let g = &self.groups[gi];
        let lazy = g.source(source).map(|s| s.lazy.as_slice()).unwrap_or(&[]);
        g.active
            .iter()
            .map(|a| a.node.id)
            .filter(|p| !lazy.contains(p))
            .collect()
    }

    /// Where delivery of each source of `group` stands here (this node's own next sequence
    /// number included): what [`resume`](Self::resume) takes after leaving and joining again.
    pub fn positions(&self, group: GroupId) -> Vec<Watermark> {
        match self.group_index(group) {
            Some(gi) => self.watermarks(gi),
            None => Vec::new(),
        }
    }

    /// Continues from `positions` (taken by [`positions`](Self::positions) before leaving) in
    /// `group`, just joined again: this node's own sequence goes on where it stopped, and
    /// every message of another source from its old position on is either repaired from
    /// neighbours or reported in `MessagesLost`, instead of starting where the first neighbour
    /// stands. Positions of sources already known are ignored.
    pub fn resume(&mut self, now: Instant, group: GroupId, positions: &[Watermark]) {
        let Some(gi) = self.group_index(group) else {
            return;
        };
        let me = self.me.id;
        let max = self.config.max_sources;
        let g = &mut self.groups[gi];
        for w in positions {
            if w.source == me {
                g.next_seq = g.next_seq.max(w.next_seq);
            } else if g.source_index(w.source).is_none() && g.sources.len() < max {
                g.sources.push(crate::delivery::Source::new(
                    w.source, w.epoch, w.next_seq, now,
                ));
            }
        }
    }

    /// This node's part of every tree of `group`: per source it has state for, the neighbours
    /// it pushes that source's messages to eagerly (see [`eager_peers`](Self::eager_peers)).
    pub fn tree(&self, group: GroupId) -> Vec<(NodeId, Vec<NodeId>)> {
        let Some(gi) = self.group_index(group) else {
            return Vec::new();
        };
        let mut sources: Vec<NodeId> = self.groups[gi].sources.iter().map(|s| s.id).collect();
        if self.groups[gi].next_seq > 0 && !sources.contains(&self.me.id) {
            sources.push(self.me.id);
        }
        sources
            .into_iter()
            .map(|s| (s, self.eager_peers(group, s)))
            .collect()
    }

    /// Flow-control state of every tree of `group` at this node: per source, its parent and
    /// the children whose positions hold the source's window (for diagnosis and tools).
    pub fn flow(&self, group: GroupId) -> Vec<SourceFlow> {
        let Some(gi) = self.group_index(group) else {
            return Vec::new();
        };
        let g = &self.groups[gi];
        let mut out: Vec<SourceFlow> = g
            .sources
            .iter()
            .map(|s| SourceFlow {
                source: s.id,
                parent: s.parent,
                next: if s.id == self.me.id {
                    g.next_seq
                } else {
                    s.next
                },
                children: s.children.iter().map(|&(c, p, _)| (c, p)).collect(),
            })
            .collect();
        if g.next_seq > 0 && !out.iter().any(|f| f.source == self.me.id) {
            out.push(SourceFlow {
                source: self.me.id,
                parent: None,
                next: g.next_seq,
                children: Vec::new(),
            });
        }
        out
    }

    /// Counters since creation.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// The groups this node is in.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.iter().map(|g| g.id)
    }
}

// Dispatch and sending, shared by the protocol modules.
impl GroupNode {
    fn dispatch(
        &mut self,
        now: Instant,
        from: NodeRef,
        group: GroupId,
        frame: GroupFrame<'_>,
        payload: Bytes,
        rng: &mut Rng,
    ) {
        if from.id == self.me.id {
            self.stats.invalid_frames += 1;
            return;
        }
        // Any frame from a watched peer shows it alive.
        self.detector_heard(from.id, now, matches!(frame, GroupFrame::Heartbeat { .. }));
        if group == GroupId::NODE {
            self.on_node_frame(now, from, frame);
            return;
        }
        let Some(gi) = self.group_index(group) else {
            self.stats.foreign_frames += 1;
            match frame {
                // Someone thinks this node is a member: set it right, so it stops sending.
                GroupFrame::Join | GroupFrame::Neighbor { .. } => {
                    self.send(group, from, &GroupFrame::Reject);
                }
                GroupFrame::Disconnect { .. }
                | GroupFrame::Reject
                | GroupFrame::ShuffleReply { .. } => {}
                _ => self.send(group, from, &GroupFrame::Disconnect { leaving: true }),
            }
            return;
        };
        match frame {
            GroupFrame::Join => self.on_join(gi, from, now, rng),
            GroupFrame::ForwardJoin { joiner, ttl } => {
                self.on_forward_join(gi, from, joiner, ttl, now, rng);
            }
            GroupFrame::Neighbor { priority, rtt_us } => {
                self.on_neighbor(gi, from, priority, rtt_us, now, rng);
            }
            GroupFrame::Accept { watermarks } => self.on_accept(gi, from, &watermarks, now, rng),
            GroupFrame::Reject => self.on_reject(gi, from, now, rng),
            GroupFrame::Disconnect { leaving } => self.on_disconnect(gi, from, leaving, now, rng),
            GroupFrame::Shuffle { origin, ttl, nodes } => {
                self.on_shuffle(gi, from, origin, ttl, &nodes, rng);
            }
            GroupFrame::ShuffleReply { nodes } => self.on_shuffle_reply(gi, &nodes, rng),
            GroupFrame::Data { id, hop, flags, .. } => {
                self.on_data(gi, from, id, hop, flags, payload, now, rng);
            }
            GroupFrame::IHave { announcements } => self.on_ihave(gi, from, &announcements, now),
            GroupFrame::Watermarks { watermarks } => {
                if self.groups[gi].is_active(from.id) {
                    self.apply_watermarks(gi, from.id, &watermarks, false, now);
                }
            }
            GroupFrame::Graft { id, want } => self.on_graft(gi, from, id, want, now),
            GroupFrame::SubtreeAck { positions } => {
                self.on_subtree_ack(gi, from.id, &positions, now);
            }
            GroupFrame::Prune { source } => self.on_prune(gi, from, source, now),
            GroupFrame::RepairRequest {
                source,
                epoch,
                first,
                last,
            } => self.on_repair_request(gi, from, source, epoch, first, last),
            GroupFrame::RepairMissing { source, epoch, .. } => {
                self.on_repair_missing(gi, from, source, epoch, now, rng);
            }
            // Node-scoped kinds under a group id: malformed.
            GroupFrame::Heartbeat { .. }
            | GroupFrame::Ping { .. }
            | GroupFrame::Pong { .. }
            | GroupFrame::ProbeRequest { .. }
            | GroupFrame::ProbeAck { .. } => self.stats.invalid_frames += 1,
        }
    }

    pub(crate) fn group_index(&self, group: GroupId) -> Option<usize> {
        self.groups.iter().position(|g| g.id == group)
    }

    /// Queues a control frame (anything but `Data`) to `to`.
    pub(crate) fn send(&mut self, group: GroupId, to: NodeRef, frame: &GroupFrame<'_>) {
        let class = class_of(frame.kind());
        self.scratch.clear();
        if wire::encode(group, frame, &mut self.scratch).is_err() {
            // INVARIANT: callers bound every list by its MAX_* constant.
            debug_assert!(false, "unencodable frame {frame:?}");
            return;
        }
        match class {
            TrafficClass::Membership => self.stats.membership_sent += 1,
            TrafficClass::Detection => self.stats.detection_sent += 1,
            TrafficClass::Tree | TrafficClass::Payload => {}
        }
        self.out.push_back(GroupTransmit {
            to: to.id,
            locator: to.locator,
            frame: Bytes::copy_from_slice(&self.scratch),
            payload: Bytes::new(),
            class,
        });
    }

    /// Queues a `Data` frame: a fresh head, and the shared payload.
    pub(crate) fn send_data(
        &mut self,
        group: GroupId,
        to: NodeRef,
        id: &MessageId,
        hop: u16,
        flags: DataFlags,
        payload: &Bytes,
    ) {
        self.scratch.clear();
        wire::encode_data_head(group, id, hop, flags, &mut self.scratch);
        self.stats.data_sent += 1;
        self.stats.payload_bytes_sent += payload.len() as u64;
        self.out.push_back(GroupTransmit {
            to: to.id,
            locator: to.locator,
            frame: Bytes::copy_from_slice(&self.scratch),
            payload: payload.clone(),
            class: TrafficClass::Payload,
        });
    }

    /// The best known reference for `peer`: from an active view, the detector or a passive view.
    pub(crate) fn locate(&self, peer: NodeId) -> NodeRef {
        for g in &self.groups {
            if let Some(a) = g.active.iter().find(|a| a.node.id == peer) {
                return a.node;
            }
        }
        if let Some(r) = self.detector.node_ref(peer) {
            return r;
        }
        for g in &self.groups {
            if let Some(p) = g.passive.iter().find(|p| p.id == peer) {
                return *p;
            }
        }
        NodeRef {
            id: peer,
            locator: None,
        }
    }
}

/// Most groups one node may be in at once.
pub const MAX_GROUPS: usize = 1024;

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn class_of(kind: GroupFrameKind) -> TrafficClass {
    use GroupFrameKind as K;
    match kind {
        K::Join
        | K::ForwardJoin
        | K::Neighbor
        | K::Accept
        | K::Reject
        | K::Disconnect
        | K::Shuffle
        | K::ShuffleReply => TrafficClass::Membership,
        K::Heartbeat | K::Ping | K::Pong | K::ProbeRequest | K::ProbeAck => TrafficClass::Detection,
        K::Data => TrafficClass::Payload,
        K::IHave
        | K::Graft
        | K::Prune
        | K::RepairRequest
        | K::RepairMissing
        | K::Watermarks
        | K::SubtreeAck => TrafficClass::Tree,
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

/// Where one source's tree stands at one node, for flow control: what holds the source's
/// window back, seen from here.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SourceFlow {
    /// The source.
    pub source: NodeId,
    /// The neighbour this node reports its subtree's position to (its tree parent); `None` at
    /// the source itself, or while this node hangs in no tree.
    pub parent: Option<NodeId>,
    /// The next sequence number this node delivers (its own next at the source).
    pub next: u64,
    /// The children counted in the window, each with the position its subtree last reported
    /// (or the first message pushed to it, until it reports).
    pub children: Vec<(NodeId, u64)>,
}

/// Why a group operation was refused.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum GroupError {
    /// The operation needs membership of the group.
    #[error("not a member of group {0}")]
    NotMember(GroupId),
    /// The node has no neighbour in the group yet (or any more): nobody would receive the
    /// message.
    #[error("not connected to group {0} yet")]
    NotConnected(GroupId),
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
