//! A bounded single-producer single-consumer ring: how shards hand each other commands and
//! frames without locks.
//!
//! The producer owns the tail index and the consumer the head; each publishes its index with a
//! release store and reads the other's with an acquire load, and only when its cached copy says
//! the ring is full (producer) or empty (consumer), so an uncontended push or pop touches no
//! shared cache line. Indices count forever (wrapping) and are masked into the slot array, whose
//! length is a power of two. A full ring hands the value back ([`Full`]); nothing blocks.

use core::fmt;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::primitive::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// Creates a ring holding at least `capacity` values (rounded up to a power of two, at least 1).
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let ring = Arc::new(Ring {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
    });
    let producer = Producer {
        ring: ring.clone(),
        tail: 0,
        head_seen: 0,
    };
    let consumer = Consumer {
        ring,
        head: 0,
        tail_seen: 0,
    };
    (producer, consumer)
}

/// The sending end; move it to the producing thread.
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to write (this side's own copy of `ring.tail`).
    tail: usize,
    /// The consumer's head as last read; the ring is full while `tail - head_seen == capacity`.
    head_seen: usize,
}

/// The receiving end; move it to the consuming thread.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to read (this side's own copy of `ring.head`).
    head: usize,
    /// The producer's tail as last read; the ring is empty while `head == tail_seen`.
    tail_seen: usize,
}

/// The ring was full: the value is handed back, to retry later or drop.
#[derive(Clone, Copy, Eq, PartialEq)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The value that did not fit.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring full")
    }
}

impl<T> std::error::Error for Full<T> {}

impl<T> Producer<T> {
    /// Appends `value`, or hands it back if the ring is full. Never blocks.
    ///
    /// # Errors
    /// [`Full`] with the value when the consumer has not made room.
    pub fn try_push(&mut self, value: T) -> Result<(), Full<T>> {
        let capacity = self.ring.mask + 1;
        if self.tail.wrapping_sub(self.head_seen) == capacity {
            self.head_seen = self.ring.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_seen) == capacity {
                return Err(Full(value));
            }
        }
        let slot = &self.ring.slots[self.tail & self.ring.mask];
        // SAFETY: the slot at `tail` is outside the consumer's readable range [head, tail): the
        // consumer read it (head moved past it, seen with acquire) or it was never written, and
        // only this producer writes slots. It becomes readable only with the release below.
        slot.with_mut(|p| unsafe { (*p).write(value) });
        self.tail = self.tail.wrapping_add(1);
        self.ring.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// How many values the ring holds.
    pub fn capacity(&self) -> usize {
        self.ring.mask + 1
    }

    /// Whether a push would succeed now (the consumer may make more room at any moment).
    pub fn has_room(&mut self) -> bool {
        let capacity = self.ring.mask + 1;
        if self.tail.wrapping_sub(self.head_seen) < capacity {
            return true;
        }
        self.head_seen = self.ring.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head_seen) < capacity
    }
}

impl<T> Consumer<T> {
    /// Whether the ring is empty right now (the producer may push at any moment).
    pub fn is_empty(&mut self) -> bool {
        if self.head != self.tail_seen {
            return false;
        }
        self.tail_seen = self.ring.tail.load(Ordering::Acquire);
        self.head == self.tail_seen
    }

    /// Takes the oldest value, if any. Never blocks.
    pub fn try_pop(&mut self) -> Option<T> {
        if self.head == self.tail_seen {
            self.tail_seen = self.ring.tail.load(Ordering::Acquire);
            if self.head == self.tail_seen {
                return None;
            }
        }
        let slot = &self.ring.slots[self.head & self.ring.mask];
        // SAFETY: `head < tail_seen`, so the producer wrote this slot and published it with the
        // release store we acquired; it will not write it again until `head` moves past it.
        let value = slot.with_mut(|p| unsafe { (*p).assume_init_read() });
        self.head = self.head.wrapping_add(1);
        self.ring.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// How many values the ring holds.
    pub fn capacity(&self) -> usize {
        self.ring.mask + 1
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .finish()
    }
}

struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

// SAFETY: the ring moves `T`s between exactly two threads (one `Producer`, one `Consumer`, neither
// `Clone`), each slot accessed by one side at a time as the index protocol above guarantees; so
// sharing the ring needs only `T: Send`.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above; the ring owns its `T`s.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both ends are gone: no other thread can touch the ring; drop what is still queued.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let mut i = head;
        while i != tail {
            let slot = &self.slots[i & self.mask];
            // SAFETY: slots in [head, tail) were written and not yet read, and we are the last
            // owner, so each is initialised and dropped exactly once here.
            slot.with_mut(|p| unsafe { (*p).assume_init_drop() });
            i = i.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
