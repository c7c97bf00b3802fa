//! Lock-free structures for the engine: what shards use to talk to each other and to the
//! application without locks on the data path. Pure (no I/O); may import only `core`/`alloc`.
//!
//! Every structure here is written against `primitive`, a shim that is `std`'s atomics and
//! cells normally and [loom](https://docs.rs/loom)'s under `--cfg loom`, so the same code is
//! model-checked under every interleaving:
//! `RUSTFLAGS="--cfg loom" cargo test -p phyla-substrate --release --lib loom_ --target-dir target/loom`.

pub(crate) mod primitive;
pub mod returns;
pub mod spsc;
