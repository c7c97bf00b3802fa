//! Fan-out: what it costs one publisher to reach N receivers with Phyla groups, against N
//! unicast sessions and ZeroMQ PUB/SUB measured in the same run, and the latency to the last
//! receiver against the unicast ping-pong floor. `--help` for the options.

use std::process::ExitCode;

fn main() -> ExitCode {
    phyla_bench::fanout::main()
}
