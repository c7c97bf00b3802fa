#!/usr/bin/env bash
# Phyla's whole test suite: the README's test command, and what .ci/run calls.
# Runs on a fresh Linux machine with a stable Rust toolchain (rustup); installs what it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s\n' "$*"; }

stage "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
cargo --version
# The fuzz package's libfuzzer-sys builds libFuzzer's C++ sources.
if ! command -v c++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
  else
    echo "a C++ compiler (g++ or clang++) is needed: install one, e.g. apt-get install g++" >&2
    exit 1
  fi
fi

# The benchmarks link ZeroMQ (the peer system they measure against) from Debian's libzmq3-dev.
if ! pkg-config --exists libzmq 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libzmq3-dev pkg-config >/dev/null
  else
    echo "libzmq is needed by the benchmarks: apt-get install libzmq3-dev pkg-config" >&2
    exit 1
  fi
fi

stage "format"
cargo fmt --all -- --check

stage "lint (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "layering: the sans-IO layers build without the engine"
cargo check -p phyla-substrate --no-default-features --features testing --locked
cargo check -p phyla-group-comm --no-default-features --locked

stage "docs build without warnings (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

stage "tests (unit, property, sans-IO session, fuzz-corpus replay)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')

stage "loom: every lock-free structure under all interleavings (own target directory)"
LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
  cargo test -p phyla-substrate --release --lib loom_ --target-dir target/loom 2>&1 | tee -a "$log"

stage "fuzz targets build (cargo-fuzz package outside the workspace)"
cargo check --manifest-path substrate/fuzz/Cargo.toml --locked
cargo check --manifest-path group-comm/fuzz/Cargo.toml --locked

echo
echo "all stages passed"
echo "tests: $passed passed, $failed failed"
