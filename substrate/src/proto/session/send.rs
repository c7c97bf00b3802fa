//! The sending half of a stream: the offer queue, lazy fragmentation into the space a datagram
//! has left, the bounded retransmit window, NAK-driven repair, tail-loss probes, pacing and the
//! peer's flow-control limit.
//!
//! Invariants: `queued_bytes <= send_buffer_bytes` (except one oversized-for-the-buffer message
//! on an empty queue is never accepted: `offer` bounds message size); retained bytes never exceed
//! the retransmit window after `evict`; nothing past the peer's limit is ever sent for the first
//! time.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use super::charged;
use super::rtt::RttEstimator;
use crate::id::StreamId;
use crate::proto::rate::{Rate, TokenBucket};
use crate::time::{Duration, Instant};
use crate::wire::{DataFlags, Gap, varint_len};

#[derive(Debug)]
pub(crate) struct SendStream {
    pub(crate) id: StreamId,
    queue: VecDeque<Outgoing>,
    queued_bytes: u64,
    send_buffer_bytes: u64,
    /// Retained fragments: `retained[i]` has sequence `retained_base + i`.
    retained: VecDeque<Sent>,
    retained_base: u64,
    retained_bytes: u64,
    next_sequence: u64,
    next_message: u64,
    next_offset: u64,
    /// The peer has every fragment below this.
    acked: u64,
    limit_bytes: u64,
    /// Most charged bytes in flight (sent, not acknowledged), whatever the peer's limit says;
    /// `None` in bounded-retransmit mode, where eviction bounds memory instead.
    flight_cap: Option<u64>,
    /// The largest payload one fragment can carry in an empty datagram (an upper bound).
    full_fragment_bytes: usize,
    /// The least payload of a message's second and later fragments (unless it is the rest).
    min_later_fragment_bytes: usize,
    retransmit: BTreeSet<u64>,
    gap_pending: bool,
    pacer: Option<TokenBucket>,
    probe_deadline: Option<Instant>,
    probe_backoff: u32,
    pub(crate) backpressured: bool,
}

/// A message waiting to be cut into fragments: `head` followed by `body`.
#[derive(Debug)]
struct Outgoing {
    head: Bytes,
    body: Bytes,
    /// Bytes of the message (head, then body) already cut into fragments.
    cut: usize,
}

impl Outgoing {
    fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Bytes `range` of the message as views of its two parts (no copy): the part of the head
    /// and the part of the body it covers, either possibly empty.
    fn parts(&self, range: core::ops::Range<usize>) -> (Bytes, Bytes) {
        let h = self.head.len();
        let head = self.head.slice(range.start.min(h)..range.end.min(h));
        let body = self
            .body
            .slice(range.start.max(h) - h..range.end.max(h) - h);
        (head, body)
    }
}

/// A sent fragment, kept for retransmission: the views of the message's head and body it
/// covers (either may be empty), in that order.
#[derive(Debug)]
struct Sent {
    head: Bytes,
    body: Bytes,
    flags: DataFlags,
    offset: u64,
    message: u64,
    sent_at: Instant,
    retransmitted: bool,
    /// The receiver is known to hold it (a NAK skipped it): its bytes are released and it is
    /// never sent again.
    held_by_peer: bool,
}

impl Sent {
    fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// A fragment to encode, borrowed from the stream: its payload is `head` then `body`.
#[derive(Debug)]
pub(crate) struct FragmentRef<'a> {
    pub(crate) sequence: u64,
    pub(crate) flags: DataFlags,
    pub(crate) message: u64,
    /// The part of the message's head this fragment carries (copied into the datagram).
    pub(crate) head: &'a [u8],
    /// The part of the message's body this fragment carries, after `head`: copied, or sent
    /// gathered, from where it is.
    pub(crate) body: &'a Bytes,
    pub(crate) retransmission: bool,
}

impl FragmentRef<'_> {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// Smallest fragment worth cutting into a datagram's leftover space; below it, the message
/// starts in the next datagram instead.
const MIN_FRAGMENT_BYTES: usize = 64;

impl SendStream {
    pub(crate) fn new(
        id: StreamId,
        now: Instant,
        send_buffer_bytes: u64,
        limit_bytes: u64,
        rate: Option<Rate>,
        burst_bytes: u64,
    ) -> Self {
        Self {
            id,
            queue: VecDeque::new(),
            queued_bytes: 0,
            send_buffer_bytes,
            retained: VecDeque::new(),
            retained_base: 0,
            retained_bytes: 0,
            next_sequence: 0,
            next_message: 0,
            next_offset: 0,
            acked: 0,
            limit_bytes,
            flight_cap: None,
            full_fragment_bytes: usize::MAX,
            min_later_fragment_bytes: MIN_FRAGMENT_BYTES,
            retransmit: BTreeSet::new(),
            gap_pending: false,
            pacer: rate.map(|r| TokenBucket::new(now, r, burst_bytes)),
            probe_deadline: None,
            probe_backoff: 0,
            backpressured: false,
        }
    }

    /// Queues a message of `head` followed by `body`; returns its number, or hands both back
    /// when the send buffer is full. A message is charged its length plus the fragment overhead,
    /// so empty ones count too.
    pub(crate) fn offer(&mut self, head: Bytes, body: Bytes) -> Result<u64, (Bytes, Bytes)> {
        let len = charged(head.len() + body.len());
        if self.queued_bytes + len > self.send_buffer_bytes {
            return Err((head, body));
        }
        self.queued_bytes += len;
        self.queue.push_back(Outgoing { head, body, cut: 0 });
        let n = self.next_message;
        self.next_message += 1;
        Ok(n)
    }

    pub(crate) fn set_rate(&mut self, now: Instant, rate: Option<Rate>, burst_bytes: u64) {
        match (&mut self.pacer, rate) {
            (Some(p), Some(r)) => p.set_rate(now, r),
            (p, r) => *p = r.map(|r| TokenBucket::new(now, r, burst_bytes)),
        }
    }

    pub(crate) fn set_limit(&mut self, limit_bytes: u64) {
        self.limit_bytes = self.limit_bytes.max(limit_bytes);
    }

    /// Applies what the session knows of the path and the peer: the cap on bytes in flight and
    /// the largest datagram.
    pub(crate) fn configure(&mut self, flight_cap: Option<u64>, max_datagram_bytes: usize) {
        self.flight_cap = flight_cap;
        self.full_fragment_bytes = max_datagram_bytes.saturating_sub(crate::wire::HEADER_LEN);
        self.min_later_fragment_bytes = min_later_fragment_bytes(max_datagram_bytes);
    }

    /// How far new data may go: the peer's limit, and the local cap on bytes in flight.
    fn send_limit(&self) -> u64 {
        match self.flight_cap {
            Some(cap) => {
                let acked_offset = self.retained.front().map_or(self.next_offset, |s| s.offset);
                self.limit_bytes.min(acked_offset.saturating_add(cap))
            }
            None => self.limit_bytes,
        }
    }

    /// Whether room has come back after backpressure (half the buffer free).
    pub(crate) fn has_room(&self) -> bool {
        self.queued_bytes <= self.send_buffer_bytes / 2
    }

    /// Everything offered has been acknowledged (or declared lost to the peer).
    pub(crate) fn is_flushed(&self) -> bool {
        self.queue.is_empty() && self.acked >= self.next_sequence
    }

    /// The peer has every fragment below this.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    pub(crate) fn retained_bytes(&self) -> u64 {
        self.retained_bytes
    }

    pub(crate) fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// The peer acknowledged every fragment below `next_sequence`. Returns `Err` if it
    /// acknowledges fragments never sent (the ack is ignored).
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        next_sequence: u64,
        limit_bytes: u64,
        rtt: &mut RttEstimator,
    ) -> Result<(), ()> {
        if next_sequence > self.next_sequence {
            return Err(());
        }
        self.set_limit(limit_bytes);
        if next_sequence <= self.acked {
            return Ok(());
        }
        let mut newest = None;
        let mut repaired = false;
        while self.retained_base < next_sequence {
            let Some(s) = self.retained.pop_front() else {
                // Everything retained is acknowledged; the rest was evicted.
                self.retained_base = next_sequence;
                break;
            };
            if !s.held_by_peer {
                self.retained_bytes -= charged(s.len());
            }
            repaired |= s.retransmitted;
            self.retained_base += 1;
            newest = Some(s);
        }
        // Karn: only an ack that covers nothing sent twice gives an unambiguous sample. An ack
        // that completes a repair also covers fragments that waited for it, sent long ago.
        if let Some(s) = newest.filter(|_| !repaired) {
            rtt.on_sample(now - s.sent_at);
        }
        self.acked = next_sequence;
        self.retransmit = self.retransmit.split_off(&next_sequence);
        self.probe_backoff = 0;
        self.probe_deadline = (self.acked < self.next_sequence).then(|| now + rtt.pto());
        Ok(())
    }

    /// A NAK: the peer lacks `ranges` (ascending). Retransmit what is retained, owe a Gap for
    /// the rest. A NAK lists every gap between its first and last range, so whatever it skips
    /// there has been received, as has everything from its last range to a non-zero
    /// `received_end`: a selective acknowledgement. Those fragments are released, so a hole awaiting
    /// repair does not pin everything sent after it in the retransmit window.
    ///
    /// A fragment sent again less than `stale` ago is not sent once more: the NAK most likely
    /// left the peer before the repair arrived.
    pub(crate) fn on_nak(
        &mut self,
        now: Instant,
        stale: Duration,
        received_end: u64,
        ranges: impl Iterator<Item = core::ops::Range<u64>>,
    ) -> Result<(), ()> {
        // Only the spans *between* listed ranges are known held: a NAK may start anywhere.
        // Ranges must ascend without overlap; the rest of a frame that breaks this is ignored,
        // so one frame costs at most one pass over the retained fragments.
        let mut cursor: Option<u64> = None;
        for range in ranges {
            if cursor.is_some_and(|c| range.start < c) {
                return Err(());
            }
            if let Some(c) = cursor {
                self.release_held(c..range.start);
            }
            cursor = Some(range.end);
            let start = range.start.max(self.acked);
            let end = range.end.min(self.next_sequence);
            if start >= end {
                continue;
            }
            if start < self.retained_base {
                self.gap_pending = true;
            }
            let retained_end = self.retained_base + self.retained.len() as u64;
            for seq in start.max(self.retained_base)..end.min(retained_end) {
                let due =
                    |s: &Sent| !(s.held_by_peer || s.retransmitted && now - s.sent_at < stale);
                if self.get(seq).is_some_and(due) {
                    self.retransmit.insert(seq);
                }
            }
        }
        // `received_end`: everything after the last range is held too.
        if let Some(c) = cursor {
            if received_end > c {
                self.release_held(c..received_end);
            }
        }
        Ok(())
    }

    /// Marks retained fragments in `range` as held by the peer and frees their bytes.
    fn release_held(&mut self, range: core::ops::Range<u64>) {
        let start = range.start.max(self.retained_base);
        let end = range
            .end
            .min(self.retained_base + self.retained.len() as u64);
        for seq in start..end {
            let i = (seq - self.retained_base) as usize;
            let s = &mut self.retained[i];
            if !s.held_by_peer {
                s.held_by_peer = true;
                self.retained_bytes -= charged(s.len());
                s.head = Bytes::new();
                s.body = Bytes::new();
                self.retransmit.remove(&seq);
            }
        }
    }

    fn get(&self, seq: u64) -> Option<&Sent> {
        let i = seq.checked_sub(self.retained_base)?;
        self.retained.get(usize::try_from(i).ok()?)
    }

    /// The Gap frame owed to the peer, if any: everything it lacks below the retained window.
    pub(crate) fn take_gap(&mut self) -> Option<Gap> {
        if !core::mem::take(&mut self.gap_pending) || self.acked >= self.retained_base {
            return None;
        }
        let (message_end, bytes_end) = match self.retained.front() {
            Some(s) => (s.message, s.offset),
            None => (
                self.next_message - self.queue.len() as u64,
                self.next_offset,
            ),
        };
        Some(Gap {
            stream: self.id,
            sequence_start: self.acked,
            sequence_end: self.retained_base,
            message_end,
            bytes_end,
        })
    }

    /// Gives the gap back if it did not fit into the datagram.
    pub(crate) fn restore_gap(&mut self) {
        self.gap_pending = true;
    }

    pub(crate) fn wants_gap(&self) -> bool {
        self.gap_pending
    }

    /// Whether the pacer lets this stream send at `now`.
    pub(crate) fn pacer_ready(&mut self, now: Instant) -> bool {
        self.pacer.as_mut().is_none_or(|p| p.ready(now))
    }

    /// Charges `bytes` of sent frames to the pacer.
    pub(crate) fn charge(&mut self, bytes: usize) {
        if let Some(p) = &mut self.pacer {
            p.consume(bytes as u64);
        }
    }

    /// Whether there is data the stream would send now, pacing aside.
    pub(crate) fn has_sendable(&self) -> bool {
        !self.retransmit.is_empty() || self.can_send_new()
    }

    fn can_send_new(&self) -> bool {
        self.queue.front().is_some_and(|o| {
            let remaining = o.len() - o.cut;
            let room = self.send_limit().saturating_sub(self.next_offset);
            room >= charged(remaining.min(self.full_fragment_bytes))
        })
    }

    /// When this stream next needs the session's attention: a tail-loss probe, or the pacer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let pacer = match &self.pacer {
            Some(p) if self.has_sendable() => p.next_ready(),
            _ => None,
        };
        match (self.probe_deadline, pacer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tail-loss probe: no ack progress for a probe timeout. Re-send the newest retained fragment
    /// so the receiver sees how far the stream goes and NAKs what it lacks; if nothing is retained
    /// the peer is owed a Gap.
    pub(crate) fn on_timer(&mut self, now: Instant, pto: Duration, max: Duration) {
        let Some(deadline) = self.probe_deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.acked >= self.next_sequence {
            self.probe_deadline = None;
            return;
        }
        if self.retained.is_empty() {
            self.gap_pending = true;
        } else {
            self.retransmit
                .insert(self.retained_base + self.retained.len() as u64 - 1);
        }
        self.probe_backoff += 1;
        let wait = pto.saturating_mul(1 << self.probe_backoff.min(16)).min(max);
        self.probe_deadline = Some(now + wait);
    }

    /// The next fragment to send that fits in `space` bytes of frame (kind, length and body).
    /// Retransmissions come first; new data is cut to fit and to respect the peer's limit.
    ///
    /// `datagram` is the datagram's room for frames when empty. A message that an empty datagram
    /// holds whole is never cut to fill the rest of this one (`None`: it starts the next).
    pub(crate) fn next_fragment(
        &mut self,
        now: Instant,
        space: usize,
        datagram: usize,
    ) -> Option<FragmentRef<'_>> {
        while let Some(seq) = self.retransmit.pop_first() {
            let Some(i) = seq
                .checked_sub(self.retained_base)
                .map(|i| i as usize)
                .filter(|&i| self.retained.get(i).is_some_and(|s| !s.held_by_peer))
            else {
                continue;
            };
            let s = &mut self.retained[i];
            if data_frame_len(self.id, seq, s.message, s.len()) > space {
                self.retransmit.insert(seq);
                return None;
            }
            s.sent_at = now;
            s.retransmitted = true;
            let s = &self.retained[i];
            return Some(FragmentRef {
                sequence: seq,
                flags: s.flags,
                message: s.message,
                head: &s.head,
                body: &s.body,
                retransmission: true,
            });
        }
        let message = self.next_message - self.queue.len() as u64;
        let room = self.send_limit().saturating_sub(self.next_offset);
        let o = self.queue.front_mut()?;
        let remaining = o.len() - o.cut;
        let fit = max_payload_in(self.id, self.next_sequence, message, space)?;
        let take = remaining.min(fit);
        // Too little room left in this datagram: start the next one instead. A message's first
        // fragment may be small (it fills a datagram's tail), later ones must be at least half
        // full, so a message never takes more fragments, and charges, than `offer` allowed for.
        let least = if o.cut == 0 {
            MIN_FRAGMENT_BYTES
        } else {
            self.min_later_fragment_bytes
        };
        if take < remaining && take < least {
            return None;
        }
        // A message an empty datagram holds whole is never cut to fill the room left here (as
        // Aeron frames it): cut, it costs the receiver a reassembly copy, and the forwarding
        // hops after it one each, where whole it goes on as a view of the datagram it came in.
        // It starts the next datagram instead, which holds it, so this never stalls it.
        if o.cut == 0
            && take < remaining
            && data_frame_len(self.id, self.next_sequence, message, remaining) <= datagram
        {
            return None;
        }
        // Flow control admits a fragment whole or not at all: cutting fragments to fit the
        // window would multiply per-fragment costs.
        if charged(take) > room {
            return None;
        }
        let mut flags = 0;
        if o.cut == 0 {
            flags |= DataFlags::FIRST.0;
        }
        if take == remaining {
            flags |= DataFlags::LAST.0;
        }
        // A whole message moves to the retained list; only a fragment needs new views.
        let (head, body) = if o.cut == 0 && take == remaining {
            self.queued_bytes -= charged(o.len());
            self.queue
                .pop_front()
                .map(|o| (o.head, o.body))
                .unwrap_or_default()
        } else {
            let parts = o.parts(o.cut..o.cut + take);
            o.cut += take;
            if o.cut == o.len() {
                self.queued_bytes -= charged(o.len());
                self.queue.pop_front();
            }
            parts
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let flags = DataFlags(flags);
        self.retained.push_back(Sent {
            head,
            body,
            flags,
            offset: self.next_offset,
            message,
            sent_at: now,
            retransmitted: false,
            held_by_peer: false,
        });
        self.next_offset += charged(take);
        self.retained_bytes += charged(take);
        let s = self.retained.back()?;
        Some(FragmentRef {
            sequence,
            flags,
            message,
            head: &s.head,
            body: &s.body,
            retransmission: false,
        })
    }

    /// Arms the tail-loss probe after sending, if it is not armed.
    pub(crate) fn on_sent(&mut self, now: Instant, pto: Duration) {
        if self.probe_deadline.is_none() && self.acked < self.next_sequence {
            self.probe_deadline = Some(now + pto);
        }
    }

    /// Drops the oldest whole, fully sent messages while the retained bytes exceed the
    /// retransmit window. Returns how many fragments were dropped.
    pub(crate) fn evict(&mut self, window_bytes: u64) -> u64 {
        let mut dropped = 0;
        while self.retained_bytes > window_bytes {
            let Some(first) = self.retained.front() else {
                break;
            };
            let message = first.message;
            let n = self
                .retained
                .iter()
                .take_while(|s| s.message == message)
                .count();
            // A message whose last fragment is not yet sent stays: it cannot be cut in two.
            if !self.retained[n - 1].flags.is_last() {
                break;
            }
            for s in self.retained.drain(..n) {
                if !s.held_by_peer {
                    self.retained_bytes -= charged(s.len());
                }
            }
            self.retained_base += n as u64;
            dropped += n as u64;
        }
        if dropped > 0 {
            self.retransmit = self.retransmit.split_off(&self.retained_base);
        }
        dropped
    }
}

/// The least payload of a message's later fragments: half of what an empty datagram surely
/// holds (its header and the largest data-frame overhead, 32 bytes, taken off).
pub(crate) fn min_later_fragment_bytes(max_datagram_bytes: usize) -> usize {
    (max_datagram_bytes.saturating_sub(crate::wire::HEADER_LEN + 32) / 2).max(MIN_FRAGMENT_BYTES)
}

/// Bytes a data frame takes: kind, body length, stream, sequence, flags, message, payload.
pub(crate) fn data_frame_len(
    stream: StreamId,
    sequence: u64,
    message: u64,
    payload: usize,
) -> usize {
    let body = data_body_len(stream, sequence, message, payload);
    1 + varint_len(body as u64) + body
}

/// Bytes of a data frame's body: stream, sequence, flags, message, payload.
pub(crate) fn data_body_len(
    stream: StreamId,
    sequence: u64,
    message: u64,
    payload: usize,
) -> usize {
    data_fixed_len(stream, sequence, message) + payload
}

/// The largest payload whose data frame fits in `space`, if any.
fn max_payload_in(stream: StreamId, sequence: u64, message: u64, space: usize) -> Option<usize> {
    let fixed = 1 + data_fixed_len(stream, sequence, message);
    let payload = space.checked_sub(fixed + varint_len(space as u64))?;
    debug_assert!(data_frame_len(stream, sequence, message, payload) <= space);
    Some(payload)
}

fn data_fixed_len(stream: StreamId, sequence: u64, message: u64) -> usize {
    varint_len(u64::from(stream.0)) + varint_len(sequence) + 1 + varint_len(message)
}
