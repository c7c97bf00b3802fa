//! The deterministic discrete-event simulator: up to 10^5 [`GroupNode`](crate::GroupNode)s in
//! one process on virtual time, with the measures the literature reports.
//!
//! This is *protocol mode* (see `docs/simulation.md`): group frames go straight through a
//! network model whose links are reliable and ordered, as Phyla sessions are, with per-pair
//! latency, per-node uplink bandwidth, loss (retransmitted or dropped), partitions, crashes and
//! churn. Everything derives from one seed: node `i` is `NodeId::from_u64(i)` and draws from an
//! RNG derived from (seed, `i`) alone; the event queue breaks ties by insertion order; no map is
//! iterated in hash order. A failing seed is a reproducible bug.
//!
//! - [`Plan`]: the deployment, traffic and faults of one run.
//! - [`World`]: runs a plan; [`World::verdict`] gives the checkers' result, [`World::report`]
//!   the measures.
//! - [`Checker`] and [`Violation`]: exactly-once, per-source FIFO, no silent skip, bounded
//!   fan-out.
//! - [`Report`] and [`Histogram`]: reliability, latency, relative delay penalty, last-delivery
//!   hop, link stress, redundancy, fan-out, control overhead, repair time, trace hash.
//! - [`Network`]: the network model on its own.
//!
//! The simulator may import the protocols and `substrate`'s sans-IO layers and `testing`
//! helpers; never the engine. It reads no clock: callers that want events per second of wall
//! time measure it around [`World::run_for`].
//!
//! ```no_run
//! use group_comm::sim::{Crash, Plan, World};
//! use substrate::time::Duration;
//!
//! let plan = Plan {
//!     seed: 1,
//!     crashes: vec![Crash { at: Duration::from_secs(1), fraction: 0.3 }],
//!     ..Plan::new(10_000)
//! };
//! let mut world = World::new(plan).expect("valid plan");
//! while world.run_for(1_000_000) {
//!     eprintln!("{:?} of {:?}", world.now(), world.end());
//! }
//! let report = world.report();
//! println!("reliability {}", report.all.reliability_min);
//! ```

mod check;
mod metrics;
mod network;
mod plan;
mod queue;
mod world;

pub use check::{Checker, MAX_VIOLATIONS_KEPT, SimFailure, Violation};
pub use metrics::{ClassCount, Histogram, PhaseReport, RepairReport, Report};
pub use network::{Network, Route};
pub use plan::{
    Broadcasts, Churn, Crash, GroupLayout, LatencyModel, Loss, LossMode, MAX_NODES, Membership,
    Partition, Plan, PlanError,
};
pub use world::World;
