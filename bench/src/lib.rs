//! Phyla's benchmark programs and what they share.
//!
//! Two programs live in `src/bin/`:
//! - `throughput`: a sender process pushes messages as fast as it can to a receiver process, which
//!   counts messages and bytes over a measured window (messages/s, and MB/s with MB = 10^6 bytes).
//! - `pingpong`: a client process times round trips to an echoing server process and records them
//!   in an HDR histogram (p50, p99, p99.9, max), and writes an SVG plot of the percentiles.
//!
//! Every measurement (a *contender* at one payload size) runs as two child processes, each pinned
//! to its own core: the program re-executes itself with a hidden `--role` argument ([`child`]).
//! The receiver (or server) binds first and reports its endpoint; the parent then starts the sender
//! (or client) towards it, collects one JSON result line from each child, and kills stragglers
//! after a timeout. In the same run each program measures its baselines, the kernel floor
//! ([`floor`]: UDP on loopback) and ZeroMQ ([`zeromq`]: libzmq over TCP on loopback), and prints a
//! table and, as its last line, one JSON object with every figure, the machine, the baselines and
//! the ratios of every row against them.
//!
//! # Adding a contender (for example Phyla's own rows)
//!
//! 1. Implement [`throughput::ThroughputContender`] (a `run_rx` that binds, calls `ready` with its
//!    endpoint and feeds a [`meter::Meter`] until it says stop; a `run_tx` that sends until its
//!    deadline) and/or [`pingpong::PingPongContender`] (a `run_server` that echoes until it gets an
//!    empty message, and a `connect` that returns a [`pingpong::RoundTrip`]; the framework does
//!    warm-up, timing and the histogram). Put it in a module of its own, e.g. `src/phyla.rs`.
//! 2. Add one line to the registry in `src/bin/throughput.rs` and/or `src/bin/pingpong.rs`:
//!    `Box::new(phyla_bench::phyla::PhylaStream::poll())`. The order of the registry is the order of
//!    the table.
//! 3. Leave `baseline()` at its default (`None`): the ratios against the floor and ZeroMQ at the same
//!    size are then computed for the new rows, and `--only phyla` runs just them.
//!
//! The `name()` of a contender is how the parent tells the child what to run, so it must be unique
//! and stable.

// Benchmarks own their clocks, threads and sockets: the workspace's sans-IO rules (clippy.toml)
// are for protocol code, and the disallowed std HashMap is not used here either.
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks read clocks and bind sockets"
)]
#![warn(missing_docs)]

pub mod child;
pub mod cli;
pub mod floor;
pub mod machine;
pub mod meter;
pub mod pingpong;
pub mod svg;
pub mod table;
pub mod throughput;
pub mod zeromq;

mod sys;
