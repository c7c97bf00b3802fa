//! Layer 3, the engine: shards that run sans-IO protocols over real sockets.
//!
//! The only module that reads clocks, opens sockets and starts threads.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the engine is where clocks, sockets and threads live"
)]

pub mod buf;
pub mod clock;
pub mod driver;
pub mod idle;
mod node;
mod shard;

pub use node::{
    Claim, Counters, Delivery, Node, NodeBuilder, NodeError, NodeEvent, OfferError, Publication,
    SessionId, Subscription, Threading,
};
