//! The receiving half of a stream: reorder buffer, reassembly, in-order delivery, NAK timing and
//! the flow-control limit it advertises.
//!
//! Invariant: bytes held (out of order + reassembling + ready for the application) never exceed
//! `window_bytes`, because the limit advertised is `released_offset + window_bytes` and an
//! honest sender never sends past it; fragments that would break it are dropped and counted.

use core::ops::Range;
use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::event::Message;
use crate::id::StreamId;
use crate::time::{Duration, Instant};
use crate::wire::{DataFlags, Gap, MAX_NAK_RANGES};

#[derive(Debug)]
pub(crate) struct RecvStream {
    pub(crate) id: StreamId,
    window_bytes: u64,
    max_out_of_order: u64,
    /// Every fragment below this has been received (or abandoned by a Gap).
    next_expected: u64,
    /// Stream byte offset of `next_expected`.
    offset_next_expected: u64,
    /// Fragments received beyond a gap.
    out_of_order: BTreeMap<u64, Fragment>,
    out_of_order_bytes: u64,
    /// The message being reassembled from in-order fragments.
    partial: Option<BytesMut>,
    ready: VecDeque<Message>,
    ready_bytes: u64,
    /// Number of the next message to complete (or be declared lost).
    next_message: u64,
    pub(crate) ack_pending: bool,
    limit_sent: u64,
    nak_deadline: Option<Instant>,
    nak_backoff: u32,
    pub(crate) nak_due: bool,
}

#[derive(Debug)]
struct Fragment {
    flags: DataFlags,
    payload: Bytes,
}

/// What became of a received data fragment.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Received {
    /// Stored or delivered; `readable` if the ready queue went from empty to non-empty.
    Accepted { readable: bool },
    /// Already held or delivered.
    Duplicate,
    /// Beyond the window or the reorder bound: dropped.
    OverWindow,
    /// Broke reassembly (a continuation with no start, or a start inside a message): dropped.
    Invalid,
}

impl RecvStream {
    pub(crate) fn new(id: StreamId, window_bytes: u64, max_out_of_order: u64) -> Self {
        Self {
            id,
            window_bytes,
            max_out_of_order,
            next_expected: 0,
            offset_next_expected: 0,
            out_of_order: BTreeMap::new(),
            out_of_order_bytes: 0,
            partial: None,
            ready: VecDeque::new(),
            ready_bytes: 0,
            next_message: 0,
            ack_pending: false,
            limit_sent: window_bytes,
            nak_deadline: None,
            nak_backoff: 0,
            nak_due: false,
        }
    }

    /// Bytes held for this stream: the quantity the window bounds.
    pub(crate) fn buffered_bytes(&self) -> u64 {
        self.out_of_order_bytes + self.partial_bytes() + self.ready_bytes
    }

    /// The absolute stream offset the sender may send up to.
    pub(crate) fn limit(&self) -> u64 {
        self.offset_next_expected - self.partial_bytes() - self.ready_bytes + self.window_bytes
    }

    pub(crate) fn next_expected(&self) -> u64 {
        self.next_expected
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(crate) fn nak_deadline(&self) -> Option<Instant> {
        self.nak_deadline
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
        payload: &[u8],
        nak_delay: Duration,
    ) -> Received {
        self.ack_pending = true;
        if sequence < self.next_expected || self.out_of_order.contains_key(&sequence) {
            return Received::Duplicate;
        }
        let len = payload.len() as u64;
        if self.buffered_bytes() + len > self.window_bytes
            || sequence - self.next_expected > self.max_out_of_order
        {
            return Received::OverWindow;
        }
        if sequence > self.next_expected {
            let payload = Bytes::copy_from_slice(payload);
            self.out_of_order
                .insert(sequence, Fragment { flags, payload });
            self.out_of_order_bytes += len;
            if self.nak_deadline.is_none() {
                self.nak_deadline = Some(now + nak_delay);
            }
            return Received::Accepted { readable: false };
        }
        let was_empty = self.ready.is_empty();
        if !self.absorb(flags, Fragmentish::Slice(payload)) {
            return Received::Invalid;
        }
        self.advance(now, nak_delay);
        Received::Accepted {
            readable: was_empty && !self.ready.is_empty(),
        }
    }

    /// Applies a Gap: abandons everything before `gap.sequence_end`. Returns the message range now
    /// known lost (possibly empty), or `None` if the gap is stale or inconsistent.
    pub(crate) fn on_gap(
        &mut self,
        now: Instant,
        gap: &Gap,
        nak_delay: Duration,
    ) -> Option<(Range<u64>, bool)> {
        self.ack_pending = true;
        if gap.sequence_end <= self.next_expected
            || gap.message_end < self.next_message
            || gap.bytes_end < self.offset_next_expected
        {
            return None;
        }
        let was_empty = self.ready.is_empty();
        // Fragments inside the abandoned range, and a message begun before it, are dropped so
        // that message numbering stays exact: every number is delivered or reported lost.
        let keep = self.out_of_order.split_off(&gap.sequence_end);
        self.out_of_order = keep;
        self.out_of_order_bytes = self
            .out_of_order
            .values()
            .map(|f| f.payload.len() as u64)
            .sum();
        self.partial = None;
        let lost = self.next_message..gap.message_end;
        self.next_message = gap.message_end;
        self.next_expected = gap.sequence_end;
        self.offset_next_expected = gap.bytes_end;
        self.nak_backoff = 0;
        self.nak_deadline = None;
        self.advance(now, nak_delay);
        Some((lost, was_empty && !self.ready.is_empty()))
    }

    pub(crate) fn take(&mut self) -> Option<Message> {
        let m = self.ready.pop_front()?;
        self.ready_bytes -= m.payload.len() as u64;
        // Tell the sender about the room once it is worth a frame: a quarter window.
        if self.limit() - self.limit_sent >= self.window_bytes / 4 {
            self.ack_pending = true;
        }
        Some(m)
    }

    /// The NAK timer fired: send the missing ranges now, and again after a backed-off wait.
    pub(crate) fn on_nak_timer(&mut self, now: Instant, pto: Duration, max: Duration) {
        if self.out_of_order.is_empty() {
            self.nak_deadline = None;
            return;
        }
        self.nak_due = true;
        let wait = pto.saturating_mul(1 << self.nak_backoff.min(16)).min(max);
        self.nak_backoff += 1;
        self.nak_deadline = Some(now + wait);
    }

    /// The missing ranges below the highest fragment held, at most [`MAX_NAK_RANGES`].
    pub(crate) fn missing(&self, out: &mut Vec<Range<u64>>) {
        out.clear();
        let mut cursor = self.next_expected;
        for &seq in self.out_of_order.keys() {
            if seq > cursor {
                out.push(cursor..seq);
                if out.len() == MAX_NAK_RANGES {
                    return;
                }
            }
            cursor = seq + 1;
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
            self.out_of_order_bytes -= f.payload.len() as u64;
            // An invalid continuation is dropped inside absorb; the sequence still advances.
            self.absorb(f.flags, Fragmentish::Owned(f.payload));
        }
        if self.next_expected > start {
            self.nak_backoff = 0;
            self.nak_deadline = (!self.out_of_order.is_empty()).then(|| now + nak_delay);
        }
    }

    /// Takes the fragment at `next_expected` into reassembly. Returns false if it broke
    /// reassembly (it is dropped, but its sequence number is consumed).
    fn absorb(&mut self, flags: DataFlags, payload: Fragmentish<'_>) -> bool {
        self.next_expected += 1;
        self.offset_next_expected += payload.len() as u64;
        let valid = flags.is_first() != self.partial.is_some();
        if !valid {
            // A start inside a message abandons the unfinished one; a continuation without a
            // start is dropped. Neither happens with an honest sender.
            self.partial = None;
            if !flags.is_first() {
                return false;
            }
        }
        if flags.is_first() && flags.is_last() {
            let payload = payload.into_bytes();
            self.push_ready(payload);
        } else {
            let partial = self.partial.get_or_insert_with(BytesMut::new);
            partial.extend_from_slice(payload.as_slice());
            if flags.is_last() {
                let whole = self
                    .partial
                    .take()
                    .map(BytesMut::freeze)
                    .unwrap_or_default();
                self.push_ready(whole);
            }
        }
        valid
    }

    fn push_ready(&mut self, payload: Bytes) {
        self.ready_bytes += payload.len() as u64;
        self.ready.push_back(Message {
            number: self.next_message,
            payload,
        });
        self.next_message += 1;
    }

    fn partial_bytes(&self) -> u64 {
        self.partial.as_ref().map_or(0, |p| p.len() as u64)
    }
}

/// A fragment's bytes: borrowed from the datagram (copied once, if kept) or already owned.
enum Fragmentish<'a> {
    Slice(&'a [u8]),
    Owned(Bytes),
}

impl Fragmentish<'_> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Slice(s) => s,
            Self::Owned(b) => b,
        }
    }
    fn into_bytes(self) -> Bytes {
        match self {
            Self::Slice(s) => Bytes::copy_from_slice(s),
            Self::Owned(b) => b,
        }
    }
}
