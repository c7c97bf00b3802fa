//! Identities and local handles.
//!
//! Peers are named by *who* they are ([`NodeId`]), never by *where* they are ([`Locator`]); a
//! session is found by the [`ConnectionId`] the receiver chose, so a peer that changes address
//! keeps its sessions.

use core::fmt;
use std::net::SocketAddr;

use crate::rand::Rng;

/// The stable name of a node, independent of its address: 32 bytes, to be bound to the node's
/// public key by the security work (today any 32 bytes the node is configured with).
#[derive(Clone, Copy, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// Length of a node id on the wire.
    pub const LEN: usize = 32;

    /// A node id drawn from `rng`: for tests and simulations that need many distinct nodes.
    pub fn random(rng: &mut Rng) -> Self {
        let mut id = [0; 32];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// A node id whose first eight bytes are `n` (big-endian) and the rest zero: readable in logs.
    pub fn from_u64(n: u64) -> Self {
        let mut id = [0; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        Self(id)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl fmt::Display for NodeId {
    /// The first eight bytes in hex: enough to tell nodes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The id a receiver chose for a session; every frame after the handshake carries the receiver's.
/// Zero is reserved: it means "no connection yet" in the first handshake datagram.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    /// The "no connection yet" id carried by a session's first datagram.
    pub const NONE: Self = Self(0);

    /// A fresh, non-zero connection id from `rng`.
    pub fn random(rng: &mut Rng) -> Self {
        Self(rng.next_u64().max(1))
    }
}

/// A stream within a session: an independent, ordered, reliable sequence of messages with its own
/// flow control, pacing and loss reporting.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct StreamId(pub u32);

/// A session's slot in the local endpoint: cheap to copy, meaningless to any other node. It
/// carries the slot's generation, so a handle kept after its session ended never reaches the
/// session that reuses the slot.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SessionHandle {
    slot: u32,
    generation: u32,
}

impl SessionHandle {
    /// The handle of `slot` in its `generation`th use.
    pub const fn new(slot: u32, generation: u32) -> Self {
        Self { slot, generation }
    }

    /// The slot index.
    pub const fn slot(self) -> u32 {
        self.slot
    }

    /// How many sessions used the slot before this one.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

/// Where a node can be reached now. A node may have several and may change them; nothing above
/// the session layer should hold on to one.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub enum Locator {
    /// A UDP socket address.
    Udp(SocketAddr),
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp://{a}"),
        }
    }
}

impl From<SocketAddr> for Locator {
    fn from(a: SocketAddr) -> Self {
        Self::Udp(a)
    }
}
