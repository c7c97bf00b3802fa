//! Phyla's substrate: the layers under every Phyla service.
//!
//! - **Layer 1, [`wire`]**: the versioned datagram header and frames; pure, fuzzed decoders.
//! - **Layer 2, [`proto`]**: sans-IO protocol state machines (today the reliable unicast
//!   [`proto::session`]), driven through the [`proto::Protocol`] contract: feed inputs with
//!   `handle_*`, drain `poll_transmit` and `poll_event` until empty, sleep until `poll_timeout`.
//! - **Layer 3, the engine** (feature `engine`): shards and io_uring/poll drivers that run layer-2
//!   protocols over real sockets. Lower layers never import higher ones; the sans-IO layers build
//!   with `--no-default-features`, and CI checks it.
//!
//! Peers are named by [`id::NodeId`], never by address: a session is found by the connection id
//! its receiver chose, so it survives a change of either side's [`id::Locator`].
//!
//! Time is [`time::Instant`], nanoseconds passed in by the caller; randomness is a seeded
//! [`rand::Rng`] passed by `&mut`. With the `testing` feature, `testing` provides an in-memory
//! network on virtual time and a harness that drives any [`proto::Protocol`], deterministically
//! from one seed.

#![warn(missing_docs)]

pub mod collections;
pub mod id;
pub mod proto;
pub mod rand;
#[cfg(feature = "engine")]
pub mod runtime;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod wire;
