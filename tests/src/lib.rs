//! Harness for Phyla's cross-crate and multi-process tests (`tests/`).
