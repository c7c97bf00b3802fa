//! Behaviour of the sans-IO session over the in-memory network, one behaviour per module.

mod backpressure;
mod buffers;
mod chaos;
mod close;
mod common;
mod determinism;
mod edge_cases;
mod handshake;
mod invalid_input;
mod lifecycle;
mod liveness;
mod loss_burst;
mod lossy_delivery;
mod manual;
mod migration;
mod pacing;
mod partition;
mod parts;
mod regressions;
