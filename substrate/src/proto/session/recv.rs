//! The receiving half of a stream: reorder buffer, reassembly, in-order delivery, NAK timing and
//! the flow-control limit it advertises.
//!
//! Invariant: bytes held (out of order + reassembling + ready for the application) never exceed
//! `window_bytes`, because the limit advertised is `released_offset + window_bytes` and an
//! honest sender never sends past it; fragments that would break it are dropped and counted.
//!
//! Payloads are not copied on receipt: a fragment that is kept (out of order, or a whole message
//! waiting for the application) is a zero-copy slice of the datagram it came in. The only copy
//! is reassembly, which joins the fragments of a multi-fragment message into one buffer; it is
//! counted in `bytes_copied`. A kept slice keeps its whole datagram buffer alive, so the window
//! bounds the charged bytes held, not the memory of the buffers they pin.

use core::ops::Range;
use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::charged;
use super::event::Message;
use crate::id::StreamId;
use crate::time::{Duration, Instant};
use crate::wire::{DataFlags, Gap, MAX_NAK_RANGES, varint_len};

#[derive(Debug)]
pub(crate) struct RecvStream {
    pub(crate) id: StreamId,
    window_bytes: u64,
    /// Every fragment below this has been received (or abandoned by a Gap).
    next_expected: u64,
    /// One past the highest fragment sequence seen.
    highest_seen: u64,
    /// Stream byte offset of `next_expected`.
    offset_next_expected: u64,
    /// Fragments received beyond a gap, as slices of their datagrams.
    out_of_order: BTreeMap<u64, Fragment>,
    out_of_order_bytes: u64,
    /// The message being reassembled from in-order fragments, and what its fragments charge.
    partial: Option<BytesMut>,
    partial_charged: u64,
    /// Complete messages waiting for the application, each with what its fragments charged.
    ready: VecDeque<(Message, u64)>,
    ready_bytes: u64,
    /// Number of the next message to complete (or be declared lost).
    next_message: u64,
    pub(crate) ack_pending: bool,
    limit_sent: u64,
    /// Retry of every hole, backed off while no progress is made.
    nak_deadline: Option<Instant>,
    nak_backoff: u32,
    /// First NAK of holes opened since the last NAK (those at or beyond `nak_horizon`).
    fresh_nak_deadline: Option<Instant>,
    nak_horizon: u64,
    /// Where the NAK being written starts.
    nak_from: u64,
    pub(crate) nak_due: bool,
    /// Payload bytes copied so far (into reassembly buffers; nothing else is copied).
    pub(crate) bytes_copied: u64,
}

#[derive(Debug)]
struct Fragment {
    flags: DataFlags,
    message: u64,
    payload: Bytes,
    /// When it arrived: the hole before it has been known since then.
    arrived: Instant,
}

/// What became of a received data fragment.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Received {
    /// Stored or delivered; `readable` if the ready queue went from empty to non-empty.
    Accepted { readable: bool },
    /// Already held or delivered.
    Duplicate,
    /// Beyond the window: dropped.
    OverWindow,
    /// Broke reassembly (a continuation with no start, or a start inside a message): dropped.
    Invalid,
}

impl RecvStream {
    pub(crate) fn new(id: StreamId, window_bytes: u64) -> Self {
        Self {
            id,
            window_bytes,
            next_expected: 0,
            highest_seen: 0,
            offset_next_expected: 0,
            out_of_order: BTreeMap::new(),
            out_of_order_bytes: 0,
            partial: None,
            partial_charged: 0,
            ready: VecDeque::new(),
            ready_bytes: 0,
            next_message: 0,
            ack_pending: false,
            limit_sent: window_bytes,
            nak_deadline: None,
            nak_backoff: 0,
            fresh_nak_deadline: None,
            nak_horizon: 0,
            nak_from: 0,
            nak_due: false,
            bytes_copied: 0,
        }
    }

    /// Bytes held for this stream, each fragment charged its payload plus
    /// [`FRAGMENT_OVERHEAD_BYTES`](super::FRAGMENT_OVERHEAD_BYTES): the quantity the window bounds.
    pub(crate) fn buffered_bytes(&self) -> u64 {
        self.out_of_order_bytes + self.partial_charged + self.ready_bytes
    }

    /// The absolute stream offset the sender may send up to.
    pub(crate) fn limit(&self) -> u64 {
        let in_order = self.partial_charged + self.ready_bytes;
        self.offset_next_expected.saturating_sub(in_order) + self.window_bytes
    }

    pub(crate) fn next_expected(&self) -> u64 {
        self.next_expected
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(crate) fn nak_deadline(&self) -> Option<Instant> {
        match (self.nak_deadline, self.fresh_nak_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records that an ack carrying the current limit is going out.
    pub(crate) fn on_ack_sent(&mut self) {
        self.ack_pending = false;
        self.limit_sent = self.limit();
    }

    pub(crate) fn on_data(
        &mut self,
        now: Instant,
        sequence: u64,
        flags: DataFlags,
        message: u64,
        payload: Borrowed<'_>,
        nak_delay: Duration,
    ) -> Received {
        self.ack_pending = true;
        if sequence < self.next_expected || self.out_of_order.contains_key(&sequence) {
            return Received::Duplicate;
        }
        let len = charged(payload.payload.len());
        if self.buffered_bytes() + len > self.window_bytes {
            return Received::OverWindow;
        }
        if sequence > self.next_expected {
            let payload = payload.view();
            self.out_of_order.insert(
                sequence,
                Fragment {
                    flags,
                    message,
                    payload,
                    arrived: now,
                },
            );
            self.out_of_order_bytes += len;
            // A new hole is NAKed after the reorder delay, even while older holes wait out a
            // backed-off retry: one slow repair must not delay the next.
            let new_hole = sequence > self.highest_seen.max(self.next_expected);
            self.highest_seen = self.highest_seen.max(sequence + 1);
            if self.nak_deadline.is_none() {
                self.nak_deadline = Some(now + nak_delay);
            } else if new_hole && self.fresh_nak_deadline.is_none() {
                self.fresh_nak_deadline = Some(now + nak_delay);
            }
            return Received::Accepted { readable: false };
        }
        self.highest_seen = self.highest_seen.max(sequence + 1);
        let was_empty = self.ready.is_empty();
        let valid = self.absorb(flags, Fragmentish::Borrowed(payload));
        // Even a dropped fragment consumes its sequence number: pull in what follows it.
        self.advance(now, nak_delay);
        if !valid {
            return Received::Invalid;
        }
        Received::Accepted {
            readable: was_empty && !self.ready.is_empty(),
        }
    }

    /// Applies a Gap: the sender no longer holds what this side lacks below
    /// `gap.sequence_end`. Fragments held inside the range are still delivered where they
    /// complete a message; exactly the messages with a missing fragment are reported lost.
    /// Returns the lost message ranges (merged, in order) and whether the stream became
    /// readable, or `None` if the gap is stale or inconsistent.
    pub(crate) fn on_gap(
        &mut self,
        now: Instant,
        gap: &Gap,
        nak_delay: Duration,
    ) -> Option<(Vec<Range<u64>>, bool)> {
        self.ack_pending = true;
        if gap.sequence_end <= self.next_expected
            || gap.message_end < self.next_message
            || gap.bytes_end < self.offset_next_expected
        {
            return None;
        }
        let was_empty = self.ready.is_empty();
        let rest = self.out_of_order.split_off(&gap.sequence_end);
        let inside = core::mem::replace(&mut self.out_of_order, rest);
        let mut lost: Vec<Range<u64>> = Vec::new();
        let lose = |lost: &mut Vec<Range<u64>>, r: Range<u64>| match lost.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ if r.start < r.end => lost.push(r),
            _ => {}
        };
        // `damaged`: the message in progress lacks a fragment; its remaining pieces are dropped.
        let mut damaged = false;
        for (sequence, f) in inside {
            self.out_of_order_bytes -= charged(f.payload.len());
            if sequence != self.next_expected {
                damaged = true;
            }
            self.next_expected = sequence;
            if damaged {
                if f.flags.is_first() && f.message >= self.next_message {
                    // A hole, then a message start: everything in between is gone.
                    lose(&mut lost, self.next_message..f.message);
                    self.next_message = f.message;
                    self.drop_partial();
                    damaged = false;
                } else {
                    // A hole inside message `f.message`: it and everything before it are gone.
                    let end = (f.message + 1).max(self.next_message);
                    lose(&mut lost, self.next_message..end);
                    self.next_message = end;
                    self.drop_partial();
                    self.next_expected += 1;
                    self.offset_next_expected += charged(f.payload.len());
                    continue;
                }
            }
            self.absorb(f.flags, Fragmentish::Kept(f.payload));
        }
        // Whatever was still missing or unfinished up to the gap's end is gone too.
        if damaged || self.next_expected != gap.sequence_end || self.partial.is_some() {
            lose(&mut lost, self.next_message..gap.message_end);
        }
        self.drop_partial();
        self.next_message = self.next_message.max(gap.message_end);
        self.next_expected = gap.sequence_end;
        // Never backwards: a peer's inconsistent Gap must not undo accounting (or underflow it).
        self.offset_next_expected = self.offset_next_expected.max(gap.bytes_end);
        self.nak_backoff = 0;
        self.nak_deadline = None;
        self.fresh_nak_deadline = None;
        self.advance(now, nak_delay);
        // Holes may remain beyond the gap (one may start right at its end): keep NAKing them.
        if !self.out_of_order.is_empty() && self.nak_deadline.is_none() {
            self.nak_deadline = Some(now + nak_delay);
        }
        Some((lost, was_empty && !self.ready.is_empty()))
    }

    pub(crate) fn take(&mut self) -> Option<Message> {
        let (m, charge) = self.ready.pop_front()?;
        self.ready_bytes -= charge;
        // Tell the sender about the room once it is worth a frame: a quarter window.
        if self.limit().saturating_sub(self.limit_sent) >= self.window_bytes / 4 {
            self.ack_pending = true;
        }
        Some(m)
    }

    /// The NAK timer fired: send the missing ranges now, and again after a backed-off wait.
    pub(crate) fn on_nak_timer(&mut self, now: Instant, pto: Duration, max: Duration) {
        if self.out_of_order.is_empty() {
            self.nak_deadline = None;
            self.fresh_nak_deadline = None;
            return;
        }
        if self.nak_deadline.is_some_and(|d| now >= d) {
            self.nak_from = self.next_expected;
            let wait = pto.saturating_mul(1 << self.nak_backoff.min(16)).min(max);
            self.nak_backoff += 1;
            self.nak_deadline = Some(now + wait);
            self.fresh_nak_deadline = None;
        } else if self.fresh_nak_deadline.is_some_and(|d| now >= d) {
            if !self.nak_due {
                self.nak_from = self.nak_horizon.max(self.next_expected);
            }
            self.fresh_nak_deadline = None;
        } else {
            return;
        }
        self.nak_due = true;
    }

    /// The missing ranges to NAK now, at most [`MAX_NAK_RANGES`]: all holes on a retry, only
    /// those opened since the last NAK on a first NAK, and in either case only holes known for
    /// at least `reorder_delay` (younger ones are likely reordering, and get their own NAK).
    ///
    /// Invariant the sender relies on: every hole between the first and the last listed range
    /// is listed, so the spans between ranges are known received.
    ///
    /// Returns the NAK's `received_end`: everything from the last listed range up to it is held.
    /// That is the highest fragment held (plus one) when every hole is listed, the start of the
    /// first hole too young to list, or 0 when the range cap cut the list short.
    pub(crate) fn missing(
        &mut self,
        now: Instant,
        reorder_delay: Duration,
        budget_bytes: usize,
        out: &mut Vec<Range<u64>>,
    ) -> u64 {
        out.clear();
        let mut used = 0;
        let mut complete = true;
        let mut cursor = self.nak_from.max(self.next_expected);
        let mut young_from = None;
        for (&seq, f) in self.out_of_order.range(cursor..) {
            if seq > cursor {
                if f.arrived + reorder_delay > now {
                    // Stop here, never skip: the sender reads every span between listed ranges
                    // as received.
                    young_from = Some(cursor);
                    break;
                }
                used += varint_len(cursor) + varint_len(seq - cursor);
                if used > budget_bytes {
                    // Stopping early keeps the invariant; only received_end is lost.
                    complete = false;
                    break;
                }
                out.push(cursor..seq);
                if out.len() == MAX_NAK_RANGES {
                    complete = false;
                    break;
                }
            }
            cursor = seq + 1;
        }
        match young_from {
            Some(from) => {
                self.nak_horizon = from;
                self.fresh_nak_deadline = Some(now + reorder_delay);
            }
            None => self.nak_horizon = self.highest_seen,
        }
        match (complete, young_from) {
            (false, _) => 0,
            (true, Some(from)) => from,
            (true, None) => self.highest_seen,
        }
    }

    /// Moves consecutive fragments from the reorder buffer into reassembly.
    fn advance(&mut self, now: Instant, nak_delay: Duration) {
        let start = self.next_expected;
        while let Some(entry) = self.out_of_order.first_entry() {
            if *entry.key() != self.next_expected {
                break;
            }
            let f = entry.remove();
            self.out_of_order_bytes -= charged(f.payload.len());
            // An invalid continuation is dropped inside absorb; the sequence still advances.
            self.absorb(f.flags, Fragmentish::Kept(f.payload));
        }
        if self.next_expected > start {
            self.nak_backoff = 0;
            if self.out_of_order.is_empty() {
                self.nak_deadline = None;
                self.fresh_nak_deadline = None;
            } else {
                // Holes remain: retry them after a fresh wait (their repairs may be in flight).
                self.nak_deadline = Some(now + nak_delay);
            }
        }
    }

    /// Takes the fragment at `next_expected` into reassembly. Returns false if it broke
    /// reassembly (it is dropped, but its sequence number is consumed).
    fn absorb(&mut self, flags: DataFlags, payload: Fragmentish<'_>) -> bool {
        let charge = charged(payload.len());
        self.next_expected += 1;
        self.offset_next_expected += charge;
        let valid = flags.is_first() != self.partial.is_some();
        if !valid {
            // A start inside a message abandons the unfinished one; a continuation without a
            // start is dropped. Neither happens with an honest sender.
            self.drop_partial();
            if !flags.is_first() {
                return false;
            }
        }
        if flags.is_first() && flags.is_last() {
            let payload = payload.into_bytes();
            self.push_ready(payload, charge);
        } else {
            // Reassembly: the one place a received payload is copied.
            let partial = self.partial.get_or_insert_with(BytesMut::new);
            partial.extend_from_slice(payload.as_slice());
            self.bytes_copied += payload.len() as u64;
            self.partial_charged += charge;
            if flags.is_last() {
                let whole = self
                    .partial
                    .take()
                    .map(BytesMut::freeze)
                    .unwrap_or_default();
                let charge = core::mem::take(&mut self.partial_charged);
                self.push_ready(whole, charge);
            }
        }
        valid
    }

    fn push_ready(&mut self, payload: Bytes, charge: u64) {
        self.ready_bytes += charge;
        let message = Message {
            number: self.next_message,
            payload,
        };
        self.ready.push_back((message, charge));
        self.next_message += 1;
    }

    fn drop_partial(&mut self) {
        self.partial = None;
        self.partial_charged = 0;
    }
}

/// A received fragment's payload, as decoded: a slice of the datagram it came in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Borrowed<'a> {
    datagram: &'a Bytes,
    payload: &'a [u8],
}

impl<'a> Borrowed<'a> {
    /// `payload` must lie inside `datagram` (it was decoded from it).
    pub(crate) fn new(datagram: &'a Bytes, payload: &'a [u8]) -> Self {
        Self { datagram, payload }
    }

    /// The payload as a zero-copy view of the datagram, for keeping.
    fn view(self) -> Bytes {
        self.datagram.slice_ref(self.payload)
    }
}

/// A fragment's bytes: borrowed from the datagram being handled, or already kept.
enum Fragmentish<'a> {
    Borrowed(Borrowed<'a>),
    Kept(Bytes),
}

impl Fragmentish<'_> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Borrowed(b) => b.payload,
            Self::Kept(b) => b,
        }
    }
    /// The payload as a `Bytes`, without copying.
    fn into_bytes(self) -> Bytes {
        match self {
            Self::Borrowed(b) => b.view(),
            Self::Kept(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::session::FRAGMENT_OVERHEAD_BYTES;

    const WINDOW: u64 = 1 << 30;

    /// Fragments of `sizes.len()` messages: (sequence, flags, message, payload).
    fn fragments(sizes: &[usize]) -> Vec<(u64, DataFlags, u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (m, &pieces) in sizes.iter().enumerate() {
            for i in 0..pieces {
                let mut flags = 0;
                if i == 0 {
                    flags |= DataFlags::FIRST.0;
                }
                if i + 1 == pieces {
                    flags |= DataFlags::LAST.0;
                }
                let seq = out.len() as u64;
                out.push((seq, DataFlags(flags), m as u64, vec![m as u8; 1 + i]));
            }
        }
        out
    }

    /// Hands `payload` to `r` as the whole of a datagram of its own.
    fn on_data(
        r: &mut RecvStream,
        now: Instant,
        sequence: u64,
        flags: DataFlags,
        message: u64,
        payload: &[u8],
        nak_delay: Duration,
    ) -> Received {
        let datagram = Bytes::copy_from_slice(payload);
        let payload = Borrowed::new(&datagram, &datagram);
        r.on_data(now, sequence, flags, message, payload, nak_delay)
    }

    fn drain(r: &mut RecvStream) -> Vec<u64> {
        std::iter::from_fn(|| r.take()).map(|m| m.number).collect()
    }

    proptest! {
        /// Oracle: after a Gap covering everything, exactly the messages whose every fragment
        /// arrived are delivered, in order, and exactly the others are reported lost.
        #[test]
        fn gap_loses_exactly_the_incomplete_messages(
            sizes in proptest::collection::vec(1usize..4, 1..40),
            drop_mask in proptest::collection::vec(any::<bool>(), 120),
            order_seed in any::<u64>(),
        ) {
            let frags = fragments(&sizes);
            let mut kept: Vec<_> = frags.iter().enumerate()
                .filter(|(i, _)| !drop_mask[*i] || *i % 7 == 0)
                .map(|(_, f)| f.clone())
                .collect();
            let mut rng = crate::rand::Rng::with_seed(order_seed);
            for i in (1..kept.len()).rev() {
                kept.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let present: std::collections::BTreeSet<u64> = kept.iter().map(|f| f.0).collect();
            let now = Instant::ZERO;
            let delay = Duration::from_millis(1);
            let mut r = RecvStream::new(StreamId(0), WINDOW);
            let mut delivered = Vec::new();
            for (seq, flags, message, payload) in &kept {
                on_data(&mut r, now, *seq, *flags, *message, payload, delay);
                delivered.extend(drain(&mut r));
            }
            let total_bytes: u64 = frags.iter().map(|f| charged(f.3.len())).sum();
            let gap = Gap {
                stream: StreamId(0),
                sequence_start: 0,
                sequence_end: frags.len() as u64,
                message_end: sizes.len() as u64,
                bytes_end: total_bytes,
            };
            let (lost, _) = r.on_gap(now, &gap, delay).unwrap_or_default();
            delivered.extend(drain(&mut r));

            let complete: Vec<u64> = (0..sizes.len() as u64)
                .filter(|&m| frags.iter().filter(|f| f.2 == m).all(|f| present.contains(&f.0)))
                .collect();
            prop_assert_eq!(&delivered, &complete);
            let lost_numbers: Vec<u64> = lost.iter().flat_map(|r| r.clone()).collect();
            let incomplete: Vec<u64> =
                (0..sizes.len() as u64).filter(|m| !complete.contains(m)).collect();
            prop_assert_eq!(lost_numbers, incomplete);
            for w in lost.windows(2) {
                prop_assert!(w[0].end < w[1].start, "ranges merged and ordered: {:?}", lost);
            }
            prop_assert_eq!(r.buffered_bytes(), 0);
            prop_assert_eq!(r.limit(), total_bytes + WINDOW);
        }

        /// Without loss, any arrival order with duplicates yields every message once, in order.
        #[test]
        fn reorder_and_duplicates_deliver_each_message_once_in_order(
            sizes in proptest::collection::vec(1usize..5, 1..60),
            order_seed in any::<u64>(),
        ) {
            let frags = fragments(&sizes);
            let mut arrivals: Vec<_> = frags.iter().chain(frags.iter().step_by(3)).cloned().collect();
            let mut rng = crate::rand::Rng::with_seed(order_seed);
            for i in (1..arrivals.len()).rev() {
                arrivals.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let mut r = RecvStream::new(StreamId(0), WINDOW);
            let mut delivered = Vec::new();
            for (seq, flags, message, payload) in &arrivals {
                on_data(&mut r, Instant::ZERO, *seq, *flags, *message, payload, Duration::ZERO);
                delivered.extend(drain(&mut r));
            }
            prop_assert_eq!(delivered, (0..sizes.len() as u64).collect::<Vec<_>>());
            prop_assert_eq!(r.next_expected(), frags.len() as u64);
        }
    }

    proptest! {
        /// The sender treats every span between two listed NAK ranges as received, so a NAK may
        /// stop early but must never skip a hole inside its span.
        #[test]
        fn nak_lists_every_hole_inside_its_span(
            arrivals in proptest::collection::vec((1u64..200, 0u64..50), 1..80),
            now_ms in 0u64..60,
            retry in any::<bool>(),
        ) {
            let mut r = RecvStream::new(StreamId(0), WINDOW);
            for &(seq, at_ms) in &arrivals {
                let at = Instant::ZERO + Duration::from_millis(at_ms);
                on_data(&mut r, at, seq, DataFlags::WHOLE, seq, &[1], Duration::from_millis(5));
            }
            let now = Instant::ZERO + Duration::from_millis(now_ms);
            if retry {
                r.nak_from = r.next_expected();
            } else {
                r.nak_from = arrivals[0].0 / 2;
            }
            let mut out = Vec::new();
            let received_end = r.missing(now, Duration::from_millis(10), usize::MAX, &mut out);
            let held: std::collections::BTreeSet<u64> = r.out_of_order.keys().copied().collect();
            if let (Some(first), Some(last)) = (out.first(), out.last()) {
                for seq in first.start..last.end {
                    let listed = out.iter().any(|x| x.contains(&seq));
                    prop_assert_eq!(listed, !held.contains(&seq), "seq {} in {:?}", seq, out);
                }
                for seq in last.end..received_end {
                    prop_assert!(held.contains(&seq), "seq {} claimed held: {:?}", seq, out);
                }
            }
        }
    }

    #[test]
    fn recv_drops_fragments_beyond_window() {
        let mut r = RecvStream::new(StreamId(0), 100 + 2 * FRAGMENT_OVERHEAD_BYTES);
        let now = Instant::ZERO;
        let d = Duration::ZERO;
        assert_eq!(
            on_data(&mut r, now, 1, DataFlags::WHOLE, 1, &[0; 60], d),
            Received::Accepted { readable: false }
        );
        assert_eq!(
            on_data(&mut r, now, 2, DataFlags::WHOLE, 2, &[0; 60], d),
            Received::OverWindow
        );
        assert_eq!(
            on_data(&mut r, now, 1, DataFlags::WHOLE, 1, &[0; 60], d),
            Received::Duplicate
        );
        assert!(r.buffered_bytes() <= 100 + 2 * FRAGMENT_OVERHEAD_BYTES);
    }
}

#[cfg(test)]
mod zero_copy_tests {
    use super::*;

    /// Whether `inner` lies inside `outer`'s memory.
    fn inside(inner: &Bytes, outer: &Bytes) -> bool {
        let range = outer.as_ptr_range();
        let start = inner.as_ptr();
        range.contains(&start) && start as usize + inner.len() <= range.end as usize
    }

    /// A datagram whose bytes `at..at + len` are a fragment payload (the rest stands for the
    /// header and other frames).
    fn datagram_with(fill: u8, at: usize, len: usize) -> (Bytes, Range<usize>) {
        let mut v = vec![0xee; at + len + 7];
        v[at..at + len].fill(fill);
        (Bytes::from(v), at..at + len)
    }

    #[test]
    fn single_fragment_messages_are_views_of_their_datagrams_in_and_out_of_order() {
        let mut r = RecvStream::new(StreamId(0), 1 << 20);
        let (now, d) = (Instant::ZERO, Duration::ZERO);
        let (first, p0) = datagram_with(1, 20, 100);
        let (second, p1) = datagram_with(2, 33, 300);
        // The second message arrives first: it waits out of order, as a view.
        let b = Borrowed::new(&second, &second[p1]);
        assert_eq!(
            r.on_data(now, 1, DataFlags::WHOLE, 1, b, d),
            Received::Accepted { readable: false }
        );
        let b = Borrowed::new(&first, &first[p0]);
        assert_eq!(
            r.on_data(now, 0, DataFlags::WHOLE, 0, b, d),
            Received::Accepted { readable: true }
        );
        let m0 = r.take().unwrap();
        let m1 = r.take().unwrap();
        assert_eq!((m0.number, m1.number), (0, 1));
        assert_eq!(&m0.payload[..], &[1; 100][..]);
        assert_eq!(&m1.payload[..], &[2; 300][..]);
        assert!(inside(&m0.payload, &first), "message 0 was copied");
        assert!(inside(&m1.payload, &second), "message 1 was copied");
        assert_eq!(m0.payload.as_ptr(), first[20..].as_ptr());
        assert_eq!(r.bytes_copied, 0);
    }

    #[test]
    fn only_reassembly_copies() {
        let mut r = RecvStream::new(StreamId(0), 1 << 20);
        let (now, d) = (Instant::ZERO, Duration::ZERO);
        let parts = [
            (DataFlags::FIRST, datagram_with(1, 20, 100)),
            (DataFlags(0), datagram_with(2, 20, 200)),
            (DataFlags::LAST, datagram_with(3, 20, 50)),
        ];
        // Out of order: the last two wait as views, and are copied once, on reassembly.
        for seq in [2, 1, 0] {
            let (flags, (datagram, p)) = &parts[seq];
            let b = Borrowed::new(datagram, &datagram[p.clone()]);
            r.on_data(now, seq as u64, *flags, 0, b, d);
        }
        let m = r.take().unwrap();
        assert_eq!(m.payload.len(), 350);
        assert_eq!(r.bytes_copied, 350);
        assert!(parts.iter().all(|(_, (dg, _))| !inside(&m.payload, dg)));
    }
}
