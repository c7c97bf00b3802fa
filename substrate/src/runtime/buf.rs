//! Buffers: the receive pool whose slots are lent to the application as `Bytes` views, the
//! transmit arena that protocols write datagrams into, and the payload-copy counters.
//!
//! Both are one contiguous allocation cut into equal slots, so that a driver can register the
//! whole region with the kernel once (io_uring fixed buffers, provided buffer rings) and name a
//! slot by its index.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;

use crate::sync::returns::ReturnSet;

/// Payload bytes copied by Phyla in this process, by where the copy happened. Copies are counted
/// so that "zero copy" is a measured claim: a benchmark reads these before and after its run.
#[derive(Debug, Default)]
pub struct CopyCounters {
    /// Bytes copied from the application into a pooled buffer (`Publication::offer` of a slice).
    pub offer_bytes: AtomicU64,
    /// Received datagrams copied because every pool slot was lent out (the pool is too small).
    pub rx_fallback_bytes: AtomicU64,
    /// Received datagrams copied because they were short beside their slot
    /// ([`DriverConfig::rx_copybreak_bytes`](crate::runtime::driver::DriverConfig::rx_copybreak_bytes)).
    pub rx_copybreak_bytes: AtomicU64,
    /// Message bytes sessions copied into transmit slots when writing datagrams (what was not
    /// gathered: see `SessionConfig::gather_min_bytes`), summed over every shard's endpoint.
    pub tx_payload_bytes: AtomicU64,
}

/// The process-wide copy counters.
pub static COPIES: CopyCounters = CopyCounters {
    offer_bytes: AtomicU64::new(0),
    rx_fallback_bytes: AtomicU64::new(0),
    rx_copybreak_bytes: AtomicU64::new(0),
    tx_payload_bytes: AtomicU64::new(0),
};

/// One allocation cut into `count` slots of `size` bytes each, page aligned.
#[derive(Debug)]
pub(crate) struct Arena {
    ptr: NonNull<u8>,
    size: usize,
    count: usize,
}

// SAFETY: the arena is plain memory; who may touch which slot is governed by the pools below.
unsafe impl Send for Arena {}
// SAFETY: as above; shared access is only to slots lent read-only.
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena of `count` slots of `size` bytes (`size` rounded up to 64). The memory is an
    /// anonymous mapping: zero pages appear only as slots are first used, so a large, mostly idle
    /// pool costs address space, not resident memory.
    pub(crate) fn new(size: usize, count: usize) -> Self {
        let size = size.max(64).next_multiple_of(64);
        let count = count.max(1);
        let len = size
            .checked_mul(count)
            .unwrap_or_else(|| panic!("arena of {count} slots of {size} bytes overflows"));
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let layout = std::alloc::Layout::from_size_align(len, 4096);
        let ptr = if raw == libc::MAP_FAILED {
            None
        } else {
            NonNull::new(raw.cast::<u8>())
        };
        let Some(ptr) = ptr else {
            match layout {
                Ok(l) => std::alloc::handle_alloc_error(l),
                Err(_) => panic!("arena of {len} bytes cannot be mapped"),
            }
        };
        Self { ptr, size, count }
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.size
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The start of the whole region (for registration with the kernel).
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The address of slot `i`.
    pub(crate) fn slot_ptr(&self, i: u32) -> *mut u8 {
        assert!((i as usize) < self.count, "slot out of range");
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.as_ptr().add(i as usize * self.size) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length; nothing refers to it any more (lent views
        // keep the arena alive through their `Arc`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size * self.count) };
    }
}

struct RxShared {
    arena: Arena,
    returns: ReturnSet,
}

/// A receive slot lent to the application inside a `Bytes`; dropping the last view returns it.
struct Lease {
    shared: Arc<RxShared>,
    slot: u32,
    len: u32,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        let p = self.shared.arena.slot_ptr(self.slot);
        // SAFETY: the slot holds `len` initialised bytes that nobody writes while it is lent:
        // the pool hands a slot to the kernel again only after `returns` gives it back.
        unsafe { std::slice::from_raw_parts(p, self.len as usize) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.returns.put(self.slot as usize);
    }
}

/// The receive pool of one shard: slots the kernel fills, then lends to protocols and the
/// application as zero-copy `Bytes` views, returned when the last view drops (on any thread).
pub(crate) struct RxPool {
    shared: Arc<RxShared>,
    free: Vec<u32>,
    scratch: Vec<u32>,
    /// Datagrams shorter than this are copied out and their slot freed at once.
    copybreak: usize,
}

impl std::fmt::Debug for RxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxPool")
            .field("slots", &self.shared.arena.count())
            .field("slot_size", &self.shared.arena.slot_size())
            .field("free", &self.free.len())
            .finish()
    }
}

impl RxPool {
    /// A pool of `count` slots of at least `size` bytes, all free.
    pub(crate) fn new(size: usize, count: usize) -> Self {
        let arena = Arena::new(size, count);
        let count = arena.count();
        let shared = Arc::new(RxShared {
            returns: ReturnSet::new(count),
            arena,
        });
        Self {
            shared,
            free: (0..count as u32).rev().collect(),
            scratch: Vec::new(),
            copybreak: 0,
        }
    }

    /// Copies datagrams shorter than `bytes` out of their slot (see
    /// [`DriverConfig::rx_copybreak_bytes`](crate::runtime::driver::DriverConfig::rx_copybreak_bytes)).
    pub(crate) fn with_copybreak(mut self, bytes: usize) -> Self {
        self.copybreak = bytes;
        self
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.shared.arena.slot_size()
    }

    pub(crate) fn count(&self) -> usize {
        self.shared.arena.count()
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.shared.arena.base()
    }

    /// Takes a free slot to fill (the caller gives it to the kernel or reads into it).
    pub(crate) fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Gives back a slot that was taken but not filled.
    pub(crate) fn give_back(&mut self, slot: u32) {
        self.free.push(slot);
    }

    /// Free slots right now.
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// The memory of a slot.
    ///
    /// # Safety
    /// The caller must own `slot`: taken with [`take`](Self::take) (or handed back by the kernel
    /// after it filled it) and neither lent, given back nor given to the kernel since; otherwise
    /// another holder, or the kernel, may be using the same bytes.
    pub(crate) unsafe fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        let p = self.shared.arena.slot_ptr(slot);
        // SAFETY: the caller owns the slot (this function's contract), so nothing else reads or
        // writes these bytes while the borrow lives.
        unsafe { std::slice::from_raw_parts_mut(p, self.shared.arena.slot_size()) }
    }

    /// The address of a slot (for the kernel).
    pub(crate) fn slot_ptr(&self, slot: u32) -> *mut u8 {
        self.shared.arena.slot_ptr(slot)
    }

    /// Lends a filled slot holding `len` bytes as a `Bytes` view.
    pub(crate) fn lend(&self, slot: u32, len: usize) -> Bytes {
        let len = len.min(self.slot_size()) as u32;
        Bytes::from_owner(Lease {
            shared: self.shared.clone(),
            slot,
            len,
        })
    }

    /// The datagram in bytes `start..end` of a filled slot: a view of the slot, or, when it is
    /// shorter than the copybreak, a copy (counted), the slot then free again at the next
    /// [`reclaim`](Self::reclaim).
    pub(crate) fn deliver(&self, slot: u32, start: usize, end: usize) -> Bytes {
        let view = self.lend(slot, end).slice(start.min(end)..);
        if view.len() >= self.copybreak {
            return view;
        }
        COPIES
            .rx_copybreak_bytes
            .fetch_add(view.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Bytes::copy_from_slice(&view)
    }

    /// Collects slots whose views were dropped; calls `f` for each before it is free again (the
    /// uring driver re-provides them to the kernel instead of keeping them here).
    pub(crate) fn reclaim(&mut self, mut f: impl FnMut(u32) -> bool) -> usize {
        self.scratch.clear();
        let n = self.shared.returns.collect(&mut self.scratch);
        for &s in &self.scratch {
            if !f(s) {
                self.free.push(s);
            }
        }
        n
    }
}

/// A transmit slot: an index into the shard's transmit arena.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TxSlot(pub(crate) u32);

/// The transmit arena of one shard: fixed slots that protocols write datagrams into and the
/// driver sends from. Shard-local; a slot is busy from `acquire` until the send completes.
#[derive(Debug)]
pub(crate) struct TxArena {
    arena: Arena,
    free: Vec<u32>,
}

impl TxArena {
    pub(crate) fn new(size: usize, count: usize) -> Self {
        let arena = Arena::new(size, count);
        let free = (0..arena.count() as u32).rev().collect();
        Self { arena, free }
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.arena.slot_size()
    }

    pub(crate) fn count(&self) -> usize {
        self.arena.count()
    }

    /// Takes a free slot and lends its memory to write a datagram into.
    pub(crate) fn acquire(&mut self) -> Option<(TxSlot, &mut [u8])> {
        let slot = self.free.pop().map(TxSlot)?;
        let p = self.arena.slot_ptr(slot.0);
        // SAFETY: the slot just left the free list, so no holder and no in-flight send uses it;
        // the borrow ends before the caller can send it (which needs `&mut self` again).
        let buf = unsafe { std::slice::from_raw_parts_mut(p, self.arena.slot_size()) };
        Some((slot, buf))
    }

    pub(crate) fn release(&mut self, slot: TxSlot) {
        debug_assert!(!self.free.contains(&slot.0), "double release");
        self.free.push(slot.0);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.arena.count() - self.free.len()
    }

    pub(crate) fn slot_ptr(&self, slot: TxSlot) -> *mut u8 {
        self.arena.slot_ptr(slot.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lent_slot_returns_only_when_the_last_view_drops() {
        let mut pool = RxPool::new(100, 2);
        assert_eq!(pool.slot_size(), 128);
        let s = pool.take().unwrap();
        // SAFETY: `s` was just taken and is neither lent nor given to a kernel.
        let memory = unsafe { pool.slot_mut(s) };
        memory[..3].copy_from_slice(b"abc");
        let view = pool.lend(s, 3);
        let part = view.slice(1..);
        drop(view);
        assert_eq!(pool.reclaim(|_| false), 0, "a slice still holds it");
        assert_eq!(&part[..], b"bc");
        let t = std::thread::scope(|sc| sc.spawn(move || drop(part)).join());
        assert!(t.is_ok());
        assert_eq!(pool.reclaim(|_| false), 1);
        assert_eq!(pool.free_count(), 2);
    }

    #[test]
    fn tx_slots_cycle() {
        let mut tx = TxArena::new(1500, 2);
        let (a, buf) = tx.acquire().unwrap();
        buf[0] = 1;
        let (b, _) = tx.acquire().unwrap();
        assert_ne!(a, b);
        assert!(tx.acquire().is_none());
        tx.release(b);
        assert_eq!(tx.in_flight(), 1);
        tx.release(a);
        // Released slots come back first (a stack), with what was written still there.
        let (again, buf) = tx.acquire().unwrap();
        assert_eq!((again, buf[0]), (a, 1));
    }
}
