//! What the group protocols report to the application.

use bytes::Bytes;
use substrate::id::NodeId;

use crate::GroupId;
use crate::wire::MessageId;

/// A typed event from a [`GroupNode`](crate::GroupNode). Failure is exposed, never masked:
/// suspicion, failure, repair and loss each have their own variant.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum GroupEvent {
    /// This node has its first active neighbour in `group`: it is connected to the overlay.
    Joined {
        /// The group.
        group: GroupId,
    },
    /// A message, in per-source order, exactly once.
    Delivered {
        /// The group.
        group: GroupId,
        /// Which message.
        id: MessageId,
        /// Overlay hops it travelled (0 for this node's own messages).
        hops: u16,
        /// The application's bytes: a view of the received buffer, not a copy.
        payload: Bytes,
    },
    /// `first..=last` of a source could not be repaired and will never be delivered.
    MessagesLost {
        /// The group.
        group: GroupId,
        /// The source.
        source: NodeId,
        /// The source's incarnation.
        epoch: u32,
        /// First lost sequence number.
        first: u64,
        /// Last lost sequence number (inclusive).
        last: u64,
    },
    /// `peer` entered this node's active view of `group`.
    NeighborUp {
        /// The group.
        group: GroupId,
        /// The new neighbour.
        peer: NodeId,
    },
    /// `peer` left this node's active view of `group` (failed, disconnected or displaced).
    NeighborDown {
        /// The group.
        group: GroupId,
        /// The former neighbour.
        peer: NodeId,
    },
    /// `peer` missed heartbeats; it is being probed and is not yet declared failed.
    PeerSuspected {
        /// The suspected peer.
        peer: NodeId,
    },
    /// `peer` answered no probe in time and is removed from every view.
    PeerFailed {
        /// The failed peer.
        peer: NodeId,
    },
    /// A suspected (or failed and now reachable again) `peer` proved alive.
    PeerRecovered {
        /// The peer.
        peer: NodeId,
    },
    /// A graft re-attached this node to `source`'s tree through `via` after a message was
    /// missing: the tree repaired itself.
    TreeRepaired {
        /// The group.
        group: GroupId,
        /// The source whose tree was repaired.
        source: NodeId,
        /// The neighbour now on the tree link.
        via: NodeId,
    },
    /// This node's active view of `group` is empty and it knows no one to ask: it is cut off
    /// until a contact is given again with `join`.
    Isolated {
        /// The group.
        group: GroupId,
    },
    /// The engine stopped taking this node's offers to `group`: its links are behind (a slow
    /// child, a full session window). Offers are refused until [`Writable`](Self::Writable).
    /// Raised by the engine glue, never by the sans-IO protocols.
    Backpressured {
        /// The group.
        group: GroupId,
    },
    /// Offers to `group` are taken again after [`Backpressured`](Self::Backpressured).
    Writable {
        /// The group.
        group: GroupId,
    },
    /// The application did not poll `group`'s messages for so long that the engine's bounded
    /// holding queue overflowed: `dropped` delivered messages were thrown away, oldest kept.
    /// Raised by the engine glue, never by the sans-IO protocols.
    SlowConsumer {
        /// The group.
        group: GroupId,
        /// Messages dropped since the last such event.
        dropped: u64,
    },
}

/// What a transmit carries, for accounting (control overhead per broadcast, link stress).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum TrafficClass {
    /// A `Data` frame (eager push, graft answer or repair).
    Payload,
    /// Tree control: `IHave`, `Graft`, `Prune`, repair requests and answers.
    Tree,
    /// Membership: joins, neighbour requests, shuffles, disconnects.
    Membership,
    /// Failure detection: heartbeats and probes.
    Detection,
}
