//! Layer 2: sans-IO protocols. May import `wire`, `id`, `time`, `rand` and `collections` only:
//! no sockets, threads, clocks or ambient randomness, so the same code runs in the simulator and
//! on the engine.

pub mod rate;
pub mod session;

use bytes::Bytes;
use smallvec::SmallVec;

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
/// - A datagram may carry bytes the protocol already holds as [`Bytes`] (message payloads
///   offered by the application, or slices of a received datagram being forwarded): it returns
///   them in [`Transmit::gather`], each placed after some of the written bytes, instead of
///   copying them into `buf`, and the driver sends the written bytes and those parts, in order,
///   as one datagram (a gather send). The limit on the datagram is the same either way: `len`
///   plus the gathered bytes is at most `buf.len()`. The driver keeps the parts alive until the
///   kernel is done with the send, then drops them. A driver that cannot gather (the in-memory
///   network, say) assembles the datagram with [`Gather::assemble`]; the receiver cannot tell
///   the difference.
pub trait Protocol {
    /// What the protocol reports to the application.
    type Event;

    /// A datagram arrived from `from`. Malformed input is counted and dropped, never an error.
    /// `datagram` views the driver's receive buffer; the protocol may keep slices of it.
    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng);

    /// The deadline last returned by `poll_timeout` has passed (early calls are harmless).
    fn handle_timeout(&mut self, now: Instant, rng: &mut Rng);

    /// Writes the next datagram to send at the start of `buf` and says how long it is, where it
    /// goes and which bytes, if any, it carries from elsewhere ([`Transmit::gather`]), or returns
    /// `None` when there is nothing to send now (pacing and flow control may hold data) or `buf`
    /// is shorter than [`MIN_DATAGRAM_BYTES`]. Never writes past `buf.len()`, and the whole
    /// datagram (`len` plus the gathered bytes) is never longer than `buf.len()`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next event for the application, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When `handle_timeout` must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The datagram that `poll_transmit` wrote into the caller's buffer: how long it is, where it
/// must go, and what it carries without having been copied.
///
/// On the wire the datagram is `buf[..len]` with the parts of `gather` spliced in at their
/// places (see [`Gather::segments`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Transmit {
    /// The destination locator.
    pub destination: Locator,
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
    /// Bytes the datagram carries from where they are (a gather send); empty when the datagram
    /// is `buf[..len]` alone. The driver holds these views until the kernel is done with the
    /// send (for a zero-copy send, until its notification).
    pub gather: Gather,
}

impl Transmit {
    /// The datagram's length on the wire: `len` plus the gathered bytes.
    pub fn datagram_len(&self) -> usize {
        self.len + self.gather.bytes()
    }
}

/// The parts of a datagram that are sent from where they already are rather than copied into
/// the send buffer: message bodies the application offered, or slices of received datagrams
/// that a node forwards. This is what makes a send, and a forwarding hop, copy-free: a driver
/// hands the kernel one iovec per part (`sendmsg`), between iovecs over the written bytes.
///
/// Each part goes on the wire right after the first `at` written bytes (and after the parts
/// placed before it); places never decrease. Parts are never empty. A datagram carries at most
/// [`Gather::MAX_PARTS`], so a driver can size its iovec arrays once.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Gather {
    parts: SmallVec<[(usize, Bytes); 1]>,
    bytes: usize,
}

impl Gather {
    /// The most parts one datagram carries: with the written bytes around them, a datagram is at
    /// most [`MAX_IOVECS`](Self::MAX_IOVECS) iovecs. Enough for a 64 KiB datagram of 1 KiB
    /// messages; past it, a protocol copies.
    pub const MAX_PARTS: usize = 64;
    /// The most iovecs a datagram needs: each part, and the written bytes before, between and
    /// after them.
    pub const MAX_IOVECS: usize = 2 * Self::MAX_PARTS + 1;

    /// No parts: the datagram is the written bytes alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// One part after all `len` written bytes (the datagram's tail).
    pub fn tail(len: usize, bytes: Bytes) -> Self {
        let mut g = Self::new();
        g.push(len, bytes);
        g
    }

    /// Whether there are no parts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether another part would exceed [`MAX_PARTS`](Self::MAX_PARTS).
    pub fn is_full(&self) -> bool {
        self.parts.len() >= Self::MAX_PARTS
    }

    /// How many parts there are.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// How many bytes the parts hold in all.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `bytes` after the first `at` written bytes, behind any part already placed there.
    /// An empty `bytes` is ignored.
    ///
    /// # Panics
    /// If the gather is full or `at` is before an earlier part's place: both are a protocol's
    /// bug, never the network's.
    pub fn push(&mut self, at: usize, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        assert!(
            !self.is_full(),
            "INVARIANT: at most Gather::MAX_PARTS parts"
        );
        assert!(
            self.parts.last().is_none_or(|&(last, _)| last <= at),
            "INVARIANT: gathered parts are placed in order"
        );
        self.bytes += bytes.len();
        self.parts.push((at, bytes));
    }

    /// The parts, with their places, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Bytes)> {
        self.parts.iter().map(|(at, b)| (*at, b))
    }

    /// The datagram's non-empty pieces in wire order, given the written bytes (`buf[..len]`):
    /// written bytes, a part, written bytes, and so on. At most
    /// [`MAX_IOVECS`](Self::MAX_IOVECS).
    ///
    /// # Panics
    /// If a part's place is past the end of `written`.
    pub fn segments<'a>(&'a self, written: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let ends = self.parts.iter().map(|(at, _)| *at).chain([written.len()]);
        let mut from = 0;
        let mut parts = self.parts.iter();
        ends.flat_map(move |to| {
            let before = &written[from..to];
            from = to;
            [Some(before), parts.next().map(|(_, b)| &b[..])]
        })
        .flatten()
        .filter(|s| !s.is_empty())
    }

    /// Writes the whole datagram (the written bytes with the parts spliced in) to the start of
    /// `out` and returns its length, for a driver or network that cannot gather.
    ///
    /// # Panics
    /// If `out` is shorter than the datagram.
    pub fn assemble(&self, written: &[u8], out: &mut [u8]) -> usize {
        let mut n = 0;
        for s in self.segments(written) {
            out[n..n + s.len()].copy_from_slice(s);
            n += s.len();
        }
        n
    }

    /// The whole datagram as one vector (for tests and tools; drivers use
    /// [`segments`](Self::segments)).
    pub fn to_vec(&self, written: &[u8]) -> Vec<u8> {
        let mut v = vec![0; written.len() + self.bytes];
        self.assemble(written, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any datagram cut into written pieces and parts, at any places (parts placed together,
        /// first or last included), comes back whole from `to_vec`, and `segments` gives its
        /// non-empty pieces in order.
        #[test]
        fn a_gather_splices_its_parts_back_in_place(
            datagram in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec((any::<u16>(), any::<bool>()), 0..40),
        ) {
            let mut cuts: Vec<(usize, bool)> = cuts
                .into_iter()
                .map(|(c, part)| (usize::from(c) % (datagram.len() + 1), part))
                .collect();
            cuts.sort_unstable();
            cuts.push((datagram.len(), false));
            // Pieces between cuts alternate by the flag: a part (gathered) or written bytes.
            let (mut written, mut gather, mut from) = (Vec::new(), Gather::new(), 0);
            for (to, part) in cuts {
                let piece = &datagram[from..to];
                if part && !gather.is_full() {
                    gather.push(written.len(), Bytes::copy_from_slice(piece));
                } else {
                    written.extend_from_slice(piece);
                }
                from = to;
            }
            prop_assert_eq!(gather.to_vec(&written), datagram.clone());
            prop_assert_eq!(written.len() + gather.bytes(), datagram.len());
            let segments: Vec<&[u8]> = gather.segments(&written).collect();
            prop_assert!(segments.iter().all(|s| !s.is_empty()));
            prop_assert!(segments.len() <= Gather::MAX_IOVECS);
            prop_assert_eq!(segments.concat(), datagram);
        }
    }

    #[test]
    #[should_panic(expected = "placed in order")]
    fn parts_out_of_order_are_a_bug() {
        let mut g = Gather::new();
        g.push(5, Bytes::from_static(b"a"));
        g.push(4, Bytes::from_static(b"b"));
    }
}
