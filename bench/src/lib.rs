//! Phyla's benchmark programs and what they share.
//!
//! Three programs live in `src/bin/` (and `sim`, the group protocols in the simulator):
//! - `throughput`: a sender process pushes messages as fast as it can to a receiver process, which
//!   counts messages and bytes over a measured window (messages/s, and MB/s with MB = 10^6 bytes).
//! - `pingpong`: a client process times round trips to an echoing server process and records them
//!   in an HDR histogram (p50, p99, p99.9, max), and writes an SVG plot of the percentiles.
//! - `fanout`: one publisher process and N receiver processes; what reaching all N costs the
//!   publisher with Phyla groups, with N unicast sessions and with ZeroMQ PUB/SUB, and the
//!   latency to the last receiver. It has its own process orchestration ([`fanout`]); the two
//!   programs below share [`contender`].
//!
//! `throughput` and `pingpong` are built from [`contender`]: the command line, `--list`, the child processes'
//! dispatch and the loop over contenders and sizes; each program adds only what it measures.
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
//! 1. In a module of its own (e.g. `src/phyla.rs`, declared below), implement
//!    [`contender::Contender`] (`name`, `system` and `mode`; `payload_bytes` and `available` have
//!    defaults), then [`throughput::ThroughputContender`] and/or [`pingpong::PingPongContender`]
//!    on top of it:
//!    - throughput `run_rx`: bind, call `ready(endpoint)` with whatever string the sender needs,
//!      then receive with a timeout of at most [`meter::RECEIVE_TIMEOUT`] and feed a
//!      [`meter::Meter`] until it says stop (see its doc for the loop); return `meter.report()`.
//!    - throughput `run_tx`: connect to `spec.endpoint()` and send `spec.payload_bytes`-byte
//!      messages until [`throughput::send_deadline`]; report the count.
//!    - ping-pong `run_server`: bind, call `ready(endpoint)`, echo each message unchanged until an
//!      empty one arrives.
//!    - ping-pong `connect`: return a [`pingpong::RoundTrip`] whose `round_trip` sends one request
//!      and waits for its echo; the framework does the warm-up, timing and histogram.
//!
//!    Leave `baseline()` at its default (`None`); the ratios against the floor and ZeroMQ at the
//!    same size are computed for every row. For Phyla, add `phyla-substrate.workspace = true` to
//!    `bench/Cargo.toml` and use only its public API (`substrate::Node`), as a user would.
//! 2. Add one line to the registry in `src/bin/throughput.rs` and/or `src/bin/pingpong.rs`, e.g.
//!    `Box::new(phyla_bench::phyla::PhylaStream)`. The registry's order is the table's order.
//! 3. Check it with `--only NAME --duration 500ms` (throughput) or `--only NAME --rounds 1000`
//!    (ping-pong); `--list` shows every registered contender.
//!
//! `name()` is how the parent tells a child what to run: unique, stable, lower-case. Each side
//! runs in a fresh process already pinned to its core, so a contender that starts threads of its
//! own (an engine's shard) gets them on that same core unless it pins them elsewhere.

// Benchmarks own their clocks, threads and sockets: the workspace's sans-IO rules (clippy.toml)
// are for protocol code, and the disallowed std HashMap is not used here either.
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks read clocks and bind sockets"
)]
#![warn(missing_docs)]

pub mod child;
pub mod cli;
pub mod contender;
pub mod fanout;
pub mod floor;
pub mod machine;
pub mod meter;
pub mod phyla;
pub mod pingpong;
pub mod svg;
pub mod table;
pub mod throughput;
pub mod zeromq;

mod sys;
