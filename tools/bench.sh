#!/usr/bin/env bash
# Phyla's main job: the benchmark suite on this machine. Throughput and ping-pong latency of Phyla
# on both drivers, side by side with the kernel floor and ZeroMQ measured in the same run.
# Each program prints a table and, as its last line, one JSON object; the latency plot goes to
# target/bench/pingpong.svg. Options after `--` go to both programs (e.g. `-- --sizes 32`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The ZeroMQ baseline links the system libzmq (Debian/Ubuntu: libzmq3-dev).
if ! pkg-config --exists libzmq 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libzmq3-dev and pkg-config (the ZeroMQ baseline links them)" >&2
    apt-get update -qq && apt-get install -y -qq libzmq3-dev pkg-config >/dev/null
  else
    echo "the ZeroMQ baseline needs libzmq: sudo apt-get install libzmq3-dev pkg-config" >&2
    exit 1
  fi
fi

[ "${1:-}" = "--" ] && shift
cargo build --release --locked -p phyla-bench --bins
mkdir -p target/bench
target/release/throughput "$@" | tee target/bench/throughput.txt
echo
target/release/pingpong "$@" | tee target/bench/pingpong.txt
