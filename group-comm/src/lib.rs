//! Phyla's group communication: named groups over self-building, self-repairing multicast trees.
//!
//! Everything here except the `engine` glue is sans-IO: state machines that take `(now, from,
//! frame)` and timeouts and produce transmits, events and the next deadline, with time and a
//! seeded RNG passed in. The same code runs under the simulator ([`sim`]) at 10^5 nodes and on
//! the engine.
//!
//! - [`GroupNode`]: one node's part in any number of groups. It composes
//!   - membership: HyParView-style partial views (a small active view for traffic and failure
//!     detection, a larger passive view for repair);
//!   - failure detection: heartbeats on active links, phi-accrual timing, suspicion with direct
//!     and indirect probes before failure (SWIM/Lifeguard);
//!   - trees: Plumtree-style epidemic broadcast trees per source, with eager push, batched lazy
//!     announcements, prune, graft and the hop-count optimisation;
//!   - delivery: per-source FIFO, exactly once, gap repair from neighbours' bounded caches, and
//!     a loss event for what cannot be repaired.
//! - [`wire`]: the group frames.
//! - [`sim`]: the deterministic discrete-event simulator and its measures.

#![warn(missing_docs)]

mod config;
mod delivery;
mod detect;
#[cfg(feature = "engine")]
pub mod engine;
mod event;
mod flow;
mod membership;
mod node;
pub mod sim;
pub mod stack;
mod tree;
pub mod wire;

pub use config::{ConfigError, Dissemination, FlowWindow, GroupConfig};
pub use event::{GroupEvent, TrafficClass};
pub use node::{
    GroupError, GroupNode, GroupStats, GroupTransmit, MAX_GROUPS, SourceFlow, ViewInfo,
};
pub use substrate;
pub use wire::{MessageId, NodeRef};

use core::fmt;

/// Names a group. Derived from the group's name with [`GroupId::from_name`], so every node
/// computes the same id without asking anyone. Id 0 is reserved for node-scoped frames.
#[derive(Clone, Copy, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The reserved id of frames that concern a link rather than a group.
    pub const NODE: Self = Self(0);

    /// The id of the group called `name`: 64-bit FNV-1a of its UTF-8 bytes (never 0).
    pub fn from_name(name: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h.max(1))
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({:016x})", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests;
