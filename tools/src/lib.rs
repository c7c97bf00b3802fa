//! Phyla's daemon and command-line tools (`src/bin/`), and the pieces they share.
//!
//! - `phyla-node`: runs a node from a TOML file ([`config`]), logs its events as JSON lines
//!   ([`log`]) and publishes its counters in a snapshot file ([`stats`]) in its run directory
//!   ([`rundir`]).
//! - `phyla-stat`: reads those snapshots from another process ([`stat_view`]).
//! - `phyla`: `publish`, `subscribe`, and `tree` (the group's trees as Graphviz DOT, [`dot`]).
//! - `phyla-demo`: sessions on a simulated lossy network.
//!
//! The tools use only the public APIs of `substrate` and `group_comm`, as any application
//! would. Running the group engine (building it, driving it, its events and counters) goes
//! through [`host`] and [`publisher`]; the rest (configuration, files, checks, output) is
//! tested without a network. `docs/daemon.md` is the user's guide.

#![warn(missing_docs)]

pub mod args;
pub mod check;
pub mod config;
pub mod dot;
pub mod host;
pub mod identity;
pub mod log;
pub mod publisher;
pub mod rundir;
pub mod signal;
pub mod stat_view;
pub mod stats;
