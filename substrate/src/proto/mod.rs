//! Layer 2: sans-IO protocols. May import `wire`, `id`, `time`, `rand` and `collections` only:
//! no sockets, threads, clocks or ambient randomness, so the same code runs in the simulator and
//! on the engine.

pub mod rate;
pub mod session;

use bytes::Bytes;

use crate::id::Locator;
use crate::rand::Rng;
use crate::time::Instant;

/// A sans-IO protocol instance, driven by an engine shard, the simulator or the test harness.
///
/// # The drive contract
/// Inputs arrive through `handle_*`. After every input (and after any call on the protocol's own
/// API, such as `offer`), the driver drains [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event) until both return `None`, then reads
/// [`poll_timeout`](Self::poll_timeout) and calls [`handle_timeout`](Self::handle_timeout) no
/// later than that instant. `now` never goes backwards. Nothing here reads a clock, touches a
/// socket, spawns, or draws ambient randomness; time and a seeded [`Rng`] are passed in.
///
/// # Received datagrams
/// A received datagram arrives as a [`Bytes`] view of the buffer it was received into. The
/// protocol may keep zero-copy slices of it ([`Bytes::slice_ref`]) for as long as it needs them,
/// for instance as the payload of a delivered message; the buffer is freed (or returned to its
/// pool) when the last slice is dropped.
pub trait Protocol {
    /// What the protocol reports to the application.
    type Event;

    /// A datagram arrived from `from`. Malformed input is counted and dropped, never an error.
    /// `datagram` views the driver's receive buffer; the protocol may keep slices of it.
    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng);

    /// The deadline last returned by `poll_timeout` has passed (early calls are harmless).
    fn handle_timeout(&mut self, now: Instant, rng: &mut Rng);

    /// Writes the next datagram to send into `buf` (cleared first) and says where it goes, or
    /// returns `None` when there is nothing to send now (pacing and flow control may hold data).
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit>;

    /// The next event for the application, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When `handle_timeout` must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Where the datagram that `poll_transmit` wrote into the caller's buffer must go.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Transmit {
    /// The destination locator.
    pub destination: Locator,
}
