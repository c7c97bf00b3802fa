//! Throughput: messages/s and MB/s from a sender process to a receiver process, against the
//! kernel floor and ZeroMQ measured in the same run. `--help` for the options.

// Benchmarks own their clocks and sockets: the sans-IO rules of clippy.toml are for protocol code.
#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks read clocks and bind sockets"
)]

use std::process::ExitCode;

use phyla_bench::floor::UdpFloor;
use phyla_bench::phyla::PhylaThroughput;
use phyla_bench::throughput::{self, ThroughputContender};
use phyla_bench::zeromq::ZmqPushPull;

fn main() -> ExitCode {
    // The registry: one line per contender, in table order. Phyla's rows go here.
    let mut contenders: Vec<Box<dyn ThroughputContender>> =
        vec![Box::new(UdpFloor), Box::new(ZmqPushPull)];
    for c in PhylaThroughput::all() {
        contenders.push(Box::new(c));
    }
    throughput::main(&contenders)
}
