//! Group frames: the messages the group protocols exchange over a link (a session, or the
//! simulator's reliable link). Pure functions over byte slices, like `substrate::wire`.
//!
//! Every frame starts with a version-invariant 12-byte header, then the kind's body:
//!
//! ```text
//!  0        2        3        4                                12
//! +--------+--------+--------+--------------------------------+-------------------+
//! | magic  |version |  kind  |        group id (BE)           | body              |
//! | "PG"   |   u8   |   u8   |            u64                 |                   |
//! +--------+--------+--------+--------------------------------+-------------------+
//! ```
//!
//! Group id 0 ([`GroupId::NODE`](crate::GroupId::NODE)) marks node-scoped frames (failure
//! detection), which concern the link and not one group. Integers are fixed-width big-endian.
//! Lists carry a `u16` count and are bounded by the `MAX_*` constants, checked before anything is
//! allocated. A `Data` frame's payload is the rest of the frame after its head, so a head can be
//! sent as one buffer and the payload as another (gather I/O) and a forwarding node never copies
//! the payload. Every body is drawn in `docs/protocol.md`.
//!
//! Decoding returns a typed [`GroupDecodeError`]; it never panics and never reads past its input.

mod codec;
mod error;
pub mod fuzzing;

use substrate::id::{Locator, NodeId};

pub use codec::{decode, decode_header, encode, encode_data_head};
pub use error::{GroupDecodeError, GroupEncodeError};

/// The first two bytes of every group frame.
pub const GROUP_MAGIC: [u8; 2] = *b"PG";
/// The group wire version this build speaks.
pub const GROUP_VERSION_1: u8 = 1;
/// Bytes in the group frame header.
pub const GROUP_HEADER_LEN: usize = 12;
/// Most node references in one `Shuffle` or `ShuffleReply`.
pub const MAX_NODE_REFS: usize = 64;
/// Most announcements in one `IHave`.
pub const MAX_ANNOUNCEMENTS: usize = 256;
/// Most per-source watermarks in one `Accept`.
pub const MAX_WATERMARKS: usize = 64;
/// Bytes of a `Data` head, header included: everything before the payload.
pub const DATA_HEAD_LEN: usize = GROUP_HEADER_LEN + MESSAGE_ID_LEN + 2 + 1;
/// Bytes of an encoded [`MessageId`].
pub const MESSAGE_ID_LEN: usize = 32 + 4 + 8;

/// The kind byte of a group frame. Numbers are stable and never reused.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum GroupFrameKind {
    /// Membership: a new member asks a contact to let it in.
    Join = 1,
    /// Membership: a join's random walk through the overlay.
    ForwardJoin = 2,
    /// Membership: a request to become active neighbours.
    Neighbor = 3,
    /// Membership: the sender has put the receiver in its active view.
    Accept = 4,
    /// Membership: a neighbour request refused.
    Reject = 5,
    /// Membership: the sender dropped the receiver from its active view.
    Disconnect = 6,
    /// Membership: a shuffle's random walk, carrying a sample of the origin's views.
    Shuffle = 7,
    /// Membership: the answer to a shuffle, sent straight to its origin.
    ShuffleReply = 8,
    /// Detection: periodic liveness on an active link.
    Heartbeat = 9,
    /// Detection: a direct probe of a suspected peer.
    Ping = 10,
    /// Detection: the answer to a `Ping`.
    Pong = 11,
    /// Detection: asks a neighbour to probe a suspected peer on the sender's behalf.
    ProbeRequest = 12,
    /// Detection: an indirect probe succeeded.
    ProbeAck = 13,
    /// Tree: a message (eager push, graft answer or repair).
    Data = 16,
    /// Tree: lazy announcements of messages the sender has.
    IHave = 17,
    /// Tree: makes the link eager again, and asks for a message.
    Graft = 18,
    /// Tree: makes the link lazy for one source.
    Prune = 19,
    /// Delivery: asks for a range of a source's messages.
    RepairRequest = 20,
    /// Delivery: the range is not in the sender's cache.
    RepairMissing = 21,
    /// Delivery: periodic anti-entropy, the sender's per-source positions.
    Watermarks = 22,
    /// Flow control: how far the sender's subtree has delivered, per source, for its parent.
    SubtreeAck = 23,
}

/// A node and, where known, where it can be reached now. The locator is a hint: the NodeId is
/// the name.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct NodeRef {
    /// The node's identity.
    pub id: NodeId,
    /// Its current locator, if the sender knows one.
    pub locator: Option<Locator>,
}

/// Names one group message: its source, the source's incarnation, and its sequence number.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct MessageId {
    /// The publishing node.
    pub source: NodeId,
    /// The source's incarnation: a restarted source starts a new sequence.
    pub epoch: u32,
    /// Per-source, per-epoch sequence number, from 0.
    pub seq: u64,
}

/// How urgently a `Neighbor` request wants to be accepted (HyParView §4.3).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum NeighborPriority {
    /// The sender's active view still has members: refuse if full.
    Low = 0,
    /// The sender's active view is empty: accept, dropping someone if full.
    High = 1,
    /// The sender declared the receiver failed and found it alive again (a healed partition):
    /// accept, so that split overlays merge.
    Reconnect = 2,
    /// A latency optimisation: accept only with a free slot or a slower optimisable neighbour.
    Optimize = 3,
}

/// Where a source's delivery stands at the sender: the next sequence number it expects.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Watermark {
    /// The source.
    pub source: NodeId,
    /// The source's incarnation.
    pub epoch: u32,
    /// The next sequence number the sender will deliver.
    pub next_seq: u64,
}

/// A lazy announcement: the sender holds this message, received after `hop` hops.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Announcement {
    /// The message.
    pub id: MessageId,
    /// Hops from the source to the sender.
    pub hop: u16,
}

/// Flags of a `Data` frame.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct DataFlags(pub u8);

impl DataFlags {
    /// The message answers a repair request: do not forward it and do not treat it as a
    /// duplicate on a tree link.
    pub const REPAIR: u8 = 0x01;
    /// The message answers a graft.
    pub const GRAFT: u8 = 0x02;

    /// Whether the repair flag is set.
    pub fn is_repair(self) -> bool {
        self.0 & Self::REPAIR != 0
    }
}

/// One decoded group frame. Lists are owned (bounded by the `MAX_*` constants); a `Data` payload
/// borrows the input.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum GroupFrame<'a> {
    /// A new member asks the receiver, a member, to let it into the group.
    Join,
    /// A join's random walk (HyParView §4.2): `ttl` counts down to 0.
    ForwardJoin {
        /// The node that is joining.
        joiner: NodeRef,
        /// Remaining hops of the walk.
        ttl: u8,
    },
    /// Asks the receiver to put the sender in its active view.
    Neighbor {
        /// How urgently.
        priority: NeighborPriority,
        /// The round trip the sender measured to the receiver, in microseconds (0: unknown).
        /// An `Optimize` request is accepted only if it beats a slower neighbour.
        rtt_us: u32,
    },
    /// The sender has the receiver in its active view; the receiver adds the sender to its own.
    Accept {
        /// The sender's delivery positions, so that a new member knows where each source stands.
        watermarks: Vec<Watermark>,
    },
    /// The sender refuses a `Neighbor` request.
    Reject,
    /// The sender has removed the receiver from its active view.
    Disconnect {
        /// The sender is leaving the group (do not keep it in the passive view).
        leaving: bool,
    },
    /// A shuffle's random walk (HyParView §4.4).
    Shuffle {
        /// Who started the shuffle; the reply goes straight to it.
        origin: NodeRef,
        /// Remaining hops of the walk.
        ttl: u8,
        /// A sample of the origin's views, the origin included.
        nodes: Vec<NodeRef>,
    },
    /// The answer to a shuffle: a sample of the receiver's passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<NodeRef>,
    },
    /// Periodic liveness on an active link.
    Heartbeat {
        /// Counts up per link, for diagnosis.
        seq: u32,
    },
    /// A direct probe.
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
        /// For an indirect probe: the node that asked for it.
        on_behalf_of: Option<NodeId>,
    },
    /// The answer to a `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
        /// The ping's `on_behalf_of`.
        on_behalf_of: Option<NodeId>,
    },
    /// Asks the receiver to probe `target` and report with a `ProbeAck`.
    ProbeRequest {
        /// The suspected node.
        target: NodeRef,
        /// Echoed in the `ProbeAck`.
        nonce: u64,
    },
    /// `target` answered an indirect probe.
    ProbeAck {
        /// The probed node.
        target: NodeId,
        /// The request's nonce.
        nonce: u64,
    },
    /// A group message.
    Data {
        /// Which message.
        id: MessageId,
        /// Hops from the source to the sender (0 at the source).
        hop: u16,
        /// Repair or graft answer.
        flags: DataFlags,
        /// The application's bytes: the rest of the frame.
        payload: &'a [u8],
    },
    /// Lazy announcements (Plumtree §3.3), batched.
    IHave {
        /// The announced messages.
        announcements: Vec<Announcement>,
    },
    /// Makes the link eager for `id.source` again, and, if `want`, asks for `id`.
    Graft {
        /// The message that was missing (or announced early, for the latency optimisation).
        id: MessageId,
        /// Whether the sender needs the message itself.
        want: bool,
    },
    /// Makes the link lazy for messages of `source` (Plumtree §3.3).
    Prune {
        /// The source whose tree loses this link.
        source: NodeId,
    },
    /// Asks for `first..=last` of a source.
    RepairRequest {
        /// The source.
        source: NodeId,
        /// Its incarnation.
        epoch: u32,
        /// First sequence number wanted.
        first: u64,
        /// Last sequence number wanted (inclusive).
        last: u64,
    },
    /// The sender's per-source positions, sent now and then to one neighbour, so that a message
    /// whose push and announcements were all lost is still noticed and repaired.
    Watermarks {
        /// Where the sender stands, per source.
        watermarks: Vec<Watermark>,
    },
    /// Tree flow control: for each source, everything below `next_seq` has been delivered by
    /// the sender and by every member below it in that source's tree. Sent to the parent.
    SubtreeAck {
        /// Per source, the subtree's position.
        positions: Vec<Watermark>,
    },
    /// `first..=last` of a source is not in the sender's cache.
    RepairMissing {
        /// The source.
        source: NodeId,
        /// Its incarnation.
        epoch: u32,
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number (inclusive).
        last: u64,
    },
}

impl GroupFrame<'_> {
    /// The frame's kind byte.
    pub fn kind(&self) -> GroupFrameKind {
        match self {
            Self::Join => GroupFrameKind::Join,
            Self::ForwardJoin { .. } => GroupFrameKind::ForwardJoin,
            Self::Neighbor { .. } => GroupFrameKind::Neighbor,
            Self::Accept { .. } => GroupFrameKind::Accept,
            Self::Reject => GroupFrameKind::Reject,
            Self::Disconnect { .. } => GroupFrameKind::Disconnect,
            Self::Shuffle { .. } => GroupFrameKind::Shuffle,
            Self::ShuffleReply { .. } => GroupFrameKind::ShuffleReply,
            Self::Heartbeat { .. } => GroupFrameKind::Heartbeat,
            Self::Ping { .. } => GroupFrameKind::Ping,
            Self::Pong { .. } => GroupFrameKind::Pong,
            Self::ProbeRequest { .. } => GroupFrameKind::ProbeRequest,
            Self::ProbeAck { .. } => GroupFrameKind::ProbeAck,
            Self::Data { .. } => GroupFrameKind::Data,
            Self::IHave { .. } => GroupFrameKind::IHave,
            Self::Graft { .. } => GroupFrameKind::Graft,
            Self::Prune { .. } => GroupFrameKind::Prune,
            Self::RepairRequest { .. } => GroupFrameKind::RepairRequest,
            Self::RepairMissing { .. } => GroupFrameKind::RepairMissing,
            Self::Watermarks { .. } => GroupFrameKind::Watermarks,
            Self::SubtreeAck { .. } => GroupFrameKind::SubtreeAck,
        }
    }
}

#[cfg(test)]
mod tests;
