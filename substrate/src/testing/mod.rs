//! The in-memory network on virtual time and the harness that drives sans-IO protocols over it.
//!
//! May import `wire`, `proto`, `id`, `time`, `rand` and `collections`; never the engine. Nothing
//! here reads a clock, spawns a thread or uses a randomly keyed map: a run is a pure function of
//! its seed.
//!
//! - [`Network`]: datagrams between [`NodeIdx`]-numbered nodes at
//!   [`Locator`](crate::id::Locator)s, with a [`LinkConfig`] per directed link (latency, jitter,
//!   bandwidth, [`Loss`] incl. [`GilbertElliott`] bursts, duplication, reordering, MTU),
//!   partitions, rebinding and [`NetStats`].
//! - [`Scheduler`]: the `(Instant, insertion sequence)` event queue; ties never depend on hash or
//!   pointer order.
//! - [`Cluster`] and [`TestPair`]: protocol instances on one network, driven by the
//!   [`Protocol`](crate::proto::Protocol) contract, with a [trace hash](Cluster::trace_hash) for
//!   determinism checks and [`Limits`] that turn a runaway protocol into a [`HarnessError`].
//!
//! ```
//! # use substrate::testing::{Cluster, LinkConfig};
//! # use substrate::time::Duration;
//! # fn demo<P: substrate::proto::Protocol>(a: P, b: P) where P::Event: core::fmt::Debug {
//! let link = LinkConfig::default().latency(Duration::from_millis(10));
//! let mut c = Cluster::new(42, link);
//! let (na, nb) = (c.add_node(a), c.add_node(b));
//! c.run_for(Duration::from_secs(1)).expect("harness fault");
//! c.with_node(na, |_proto, _now, _rng| { /* call the protocol's API, e.g. offer */ });
//! c.run_for(Duration::from_millis(100)).expect("harness fault");
//! let (received, hash) = (c.take_events(nb), c.trace_hash());
//! # let _ = (received, hash);
//! # }
//! ```

mod cluster;
mod link;
mod net;
mod scheduler;
#[cfg(test)]
mod tests;
mod trace;

pub use cluster::{Cluster, HarnessError, Limits, TestPair, TransmitInfo};
pub use link::{GilbertElliott, LinkConfig, Loss};
pub use net::{Arrival, NetStats, Network, NodeIdx, test_locator};
pub use scheduler::Scheduler;
pub use trace::TraceHash;
