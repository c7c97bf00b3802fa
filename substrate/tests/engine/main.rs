//! Engine tests over real loopback sockets. Every test runs on both drivers.

#![allow(clippy::disallowed_methods, reason = "tests own their clocks")]

mod common;
mod smoke;
