//! The virtual-time event queue: a binary heap keyed by `(Instant, insertion sequence)`.
//!
//! Two items due at the same instant come out in the order they were pushed. Ties are never
//! broken by hash or pointer order, so a seed replays exactly.

use core::cmp::Ordering;
use core::fmt;
use std::collections::BinaryHeap;

use crate::time::Instant;

/// A min-queue of `T` keyed by due time, first-in-first-out among equal times.
pub struct Scheduler<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest `(at, seq)` first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<T> Scheduler<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// Schedules `item` at `at`; returns its insertion sequence number (the tie-breaker).
    pub fn push(&mut self, at: Instant, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, item });
        seq
    }

    /// The earliest item and its due time, without removing it.
    pub fn peek(&self) -> Option<(Instant, &T)> {
        self.heap.peek().map(|e| (e.at, &e.item))
    }

    /// The due time of the earliest item.
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns the earliest item.
    pub fn pop(&mut self) -> Option<(Instant, T)> {
        self.heap.pop().map(|e| (e.at, e.item))
    }

    /// Removes and returns the earliest item if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.peek_time()? <= now {
            self.pop()
        } else {
            None
        }
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every queued item (the sequence counter keeps counting).
    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

impl<T> Default for Scheduler<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Scheduler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("len", &self.heap.len())
            .field("next", &self.peek_time())
            .finish()
    }
}
