//! Layer 3, the engine: shards that run sans-IO protocols over real sockets.
//!
//! The only module that reads clocks, opens sockets and starts threads.
//!
//! # Example
//!
//! A node in invoker mode (the caller's thread runs the shard), a session to a peer, a
//! publication and a subscription. Failures and progress arrive as [`NodeEvent`]s.
//!
//! ```no_run
//! use substrate::id::{NodeId, StreamId};
//! use substrate::runtime::{Node, NodeEvent, Threading};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut node = Node::builder(NodeId::from_u64(1))
//!     .shards(1)
//!     .threading(Threading::Invoker)
//!     .build()?;
//! let session = node.connect("127.0.0.1:4000".parse()?)?;
//! let mut publication = node.publication(session, StreamId(1))?;
//! publication.offer(b"hello")?; // waits in the publication until the session is connected
//! let mut subscription = node.subscribe(StreamId(1))?;
//! loop {
//!     node.invoke();
//!     subscription.poll(|d| println!("#{}: {} bytes", d.number, d.payload.len()), 64);
//!     while let Some(event) = node.poll_event() {
//!         if let NodeEvent::PeerTimedOut { .. } = event {
//!             return Ok(());
//!         }
//!     }
//! }
//! # }
//! ```

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the engine is where clocks, sockets and threads live"
)]

pub mod buf;
pub mod clock;
pub mod driver;
pub mod host;
pub mod idle;
mod node;
mod runner;
mod shard;

pub use node::{
    Claim, Counters, Delivery, Node, NodeBuilder, NodeError, NodeEvent, OfferError, Publication,
    PublicationSource, SessionId, Subscription, Threading, publication_pair,
};
