//! Layer 2: sans-IO protocols. May import `wire`, `id`, `time`, `rand` and `collections` only:
//! no sockets, threads, clocks or ambient randomness, so the same code runs in the simulator and
//! on the engine.

pub mod rate;
pub mod session;

use bytes::Bytes;

use crate::id::Locator;
use crate::rand::Rng;
use crate::time::Instant;

/// Smallest datagram any protocol here works with: room for the header, a handshake and some
/// payload. A session's `max_datagram_bytes` is at least this, and a `poll_transmit` buffer
/// shorter than this gets `None`.
pub const MIN_DATAGRAM_BYTES: usize = 128;
const _: () = assert!(MIN_DATAGRAM_BYTES > crate::wire::HEADER_LEN + 100);

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
/// # Buffers
/// Both directions work on buffers the driver owns, so that an engine can hand over its
/// registered receive and send buffers without copying:
/// - A received datagram arrives as a [`Bytes`] view of the buffer it was received into. The
///   protocol may keep zero-copy slices of it ([`Bytes::slice_ref`]) for as long as it needs
///   them, for instance as the payload of a delivered message; the buffer is freed (or returned
///   to its pool) when the last slice is dropped.
/// - A datagram to send is written at the start of a caller-owned slice, of whatever length the
///   driver chooses (a fixed-size slot of a buffer arena, say). The protocol never writes past
///   `buf.len()` and never needs more room: it shortens datagrams to fit. A `buf` shorter than
///   [`MIN_DATAGRAM_BYTES`] holds no useful datagram: the protocol returns `None` and keeps its
///   output for a later call. The slice's contents on entry are unspecified (the driver need not
///   zero it); only the first [`Transmit::len`] bytes are meaningful on return.
/// - A datagram may end with bytes the protocol already holds as [`Bytes`] (a message payload
///   offered by the application, or a slice of a received datagram being forwarded): it returns
///   them as [`Transmit::tail`] instead of copying them into `buf`, and the driver sends
///   `buf[..len]` followed by the tail as one datagram (a gather send). The limit on the datagram
///   is the same either way: `len` plus the tail's length is at most `buf.len()`. The driver
///   keeps the tail alive until the kernel is done with the send, then drops it. A driver that
///   cannot gather (the in-memory network, say) copies the tail after `buf[..len]`; the receiver
///   cannot tell the difference.
pub trait Protocol {
    /// What the protocol reports to the application.
    type Event;

    /// A datagram arrived from `from`. Malformed input is counted and dropped, never an error.
    /// `datagram` views the driver's receive buffer; the protocol may keep slices of it.
    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng);

    /// The deadline last returned by `poll_timeout` has passed (early calls are harmless).
    fn handle_timeout(&mut self, now: Instant, rng: &mut Rng);

    /// Writes the next datagram to send at the start of `buf` and says how long it is, where it
    /// goes and which bytes, if any, follow it from elsewhere ([`Transmit::tail`]), or returns
    /// `None` when there is nothing to send now (pacing and flow control may hold data) or `buf`
    /// is shorter than [`MIN_DATAGRAM_BYTES`]. Never writes past `buf.len()`, and the whole
    /// datagram (`len` plus the tail) is never longer than `buf.len()`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next event for the application, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When `handle_timeout` must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The datagram that `poll_transmit` wrote into the caller's buffer: how long it is, where it
/// must go, and what follows it without having been copied.
///
/// On the wire the datagram is `buf[..len]` followed by `tail`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Transmit {
    /// The destination locator.
    pub destination: Locator,
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
    /// Bytes that end the datagram, sent from where they are (a gather send), or `None` when the
    /// datagram is `buf[..len]` alone. Never empty when present. The driver holds this view until
    /// the kernel is done with the send (for a zero-copy send, until its notification).
    pub tail: Option<Bytes>,
}

impl Transmit {
    /// The datagram's length on the wire: `len` plus the tail's.
    pub fn datagram_len(&self) -> usize {
        self.len + self.tail.as_ref().map_or(0, Bytes::len)
    }
}
