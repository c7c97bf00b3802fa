//! Ping-pong: round-trip latency percentiles between a client process and an echo server
//! process, against the kernel floor and ZeroMQ measured in the same run, with an SVG plot.
//! `--help` for the options.

// Benchmarks own their clocks and sockets: the sans-IO rules of clippy.toml are for protocol code.
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks read clocks and bind sockets"
)]

use std::process::ExitCode;

use phyla_bench::floor::UdpPingPong;
use phyla_bench::phyla::PhylaPingPong;
use phyla_bench::pingpong::{self, PingPongContender};
use phyla_bench::zeromq::ZmqReqRep;

fn main() -> ExitCode {
    // The registry: one line per contender, in table order. Phyla's rows go here.
    let mut contenders: Vec<Box<dyn PingPongContender>> = vec![
        Box::new(UdpPingPong::busy()),
        Box::new(UdpPingPong::blocking()),
        Box::new(ZmqReqRep),
    ];
    for c in PhylaPingPong::all() {
        contenders.push(Box::new(c));
    }
    pingpong::main(&contenders)
}
