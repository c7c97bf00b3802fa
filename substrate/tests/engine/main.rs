//! Engine tests over real loopback sockets. Every test runs on both drivers.

#![allow(
    clippy::disallowed_methods,
    reason = "tests own their clocks and junk sockets"
)]

mod adversary;
mod backpressure;
mod close_then_stop;
mod closed_offers;
mod common;
mod dedicated;
mod failed_build;
mod fan_out;
mod gather;
mod host;
mod random_datagrams;
mod small_rx_pool;
mod smoke;
