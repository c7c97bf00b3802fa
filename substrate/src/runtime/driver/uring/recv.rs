//! Receive: the provided buffer ring whose buffers are the receive pool's slots, and the parsing
//! of one multishot `RecvMsg` completion into a datagram view.
//!
//! A slot is in exactly one of three places: in the ring (the kernel may write it), lent to the
//! application inside `Bytes` views, or in transit between the two inside the driver. So the
//! ring, with at least as many entries as slots, can never overflow.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{Submitter, cqueue, opcode, squeue, types};

use super::op::{OpKind, UserData};
use crate::runtime::buf::{Arena, COPIES, RxPool};
use crate::runtime::driver::DriverStats;
use crate::runtime::driver::addr::RawAddr;

/// A buffer group id: names a set of provided buffers to the kernel.
pub(super) type Bgid = u16;
/// A buffer id inside a group; here, the index of a receive pool slot.
pub(super) type Bid = u16;

/// The one buffer group of a driver (each driver has its own ring).
pub(super) const BGID: Bgid = 0;

/// The largest ring the kernel accepts, hence the most receive slots.
pub(super) const MAX_ENTRIES: usize = 1 << 15;

/// Bytes of a slot before the payload: the `io_uring_recvmsg_out` header, then the name field
/// (sized for any address), then the control field (empty).
pub(super) const PAYLOAD_OFFSET: usize = RECVMSG_OUT_BYTES + NAME_BYTES;

const RECVMSG_OUT_BYTES: usize = 16;
const NAME_BYTES: usize = size_of::<libc::sockaddr_storage>();

/// A provided buffer ring (`IORING_REGISTER_PBUF_RING`): an array of buffer descriptors the
/// kernel consumes from its head while we append at the tail.
pub(super) struct BufRing {
    /// Page-aligned, zeroed, `entries * 16` bytes; the tail is the `resv` field of entry 0.
    memory: Arena,
    mask: u16,
    /// Our copy of the tail; it runs past `entries` and wraps at `u16`, as the kernel's does.
    tail: u16,
    /// Buffers in the ring that no completion has consumed yet.
    available: usize,
    bgid: Bgid,
    registered: bool,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &(usize::from(self.mask) + 1))
            .field("available", &self.available)
            .field("bgid", &self.bgid)
            .finish()
    }
}

impl BufRing {
    /// A ring of `entries` descriptors (a power of two, at most [`MAX_ENTRIES`]).
    pub(super) fn new(entries: usize, bgid: Bgid) -> Self {
        assert!(entries.is_power_of_two() && entries <= MAX_ENTRIES);
        Self {
            memory: Arena::new(entries * size_of::<BufRingEntry>(), 1),
            mask: (entries - 1) as u16,
            tail: 0,
            available: 0,
            bgid,
            registered: false,
        }
    }

    /// Registers the ring with `submitter`'s io_uring.
    pub(super) fn register(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        let entries = u16::try_from(usize::from(self.mask) + 1).unwrap_or(u16::MAX);
        // SAFETY: the memory is page aligned, zeroed, `entries * 16` bytes long, and stays
        // allocated until `unregister` (the owner unregisters before dropping the ring; if it
        // cannot, it leaks the ring instead).
        unsafe {
            submitter.register_buf_ring_with_flags(self.memory.base() as u64, entries, self.bgid, 0)
        }?;
        self.registered = true;
        Ok(())
    }

    /// Unregisters the ring; the kernel no longer reads it afterwards.
    pub(super) fn unregister(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        if self.registered {
            submitter.unregister_buf_ring(self.bgid)?;
            self.registered = false;
        }
        Ok(())
    }

    /// Appends a buffer; the kernel sees it after [`Self::publish`].
    pub(super) fn push(&mut self, bid: Bid, addr: *mut u8, len: u32) {
        debug_assert!(self.available <= usize::from(self.mask), "ring overflow");
        let index = usize::from(self.tail & self.mask);
        let entries = self.memory.base().cast::<BufRingEntry>();
        // SAFETY: `index` is within the ring's memory, which is aligned for `BufRingEntry`; the
        // entry at the tail is not one the kernel reads (it reads only between head and the
        // published tail), and the setters leave `resv` (the tail, in entry 0) alone.
        let entry = unsafe { &mut *entries.add(index) };
        entry.set_addr(addr as u64);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.available += 1;
    }

    /// Makes every pushed buffer visible to the kernel.
    pub(super) fn publish(&self) {
        let entries = self.memory.base().cast::<BufRingEntry>();
        // SAFETY: entry 0 exists; `tail` gives the address of its `resv` field, which the kernel
        // reads as the ring's tail. A u16 there is aligned for `AtomicU16`.
        let tail = unsafe { &*BufRingEntry::tail(entries).cast::<AtomicU16>() };
        // Release: the entries written above are visible before the tail that covers them.
        tail.store(self.tail, Ordering::Release);
    }

    /// A completion consumed one buffer.
    pub(super) fn consumed(&mut self) {
        debug_assert!(
            self.available > 0,
            "completion for a buffer we never provided"
        );
        self.available = self.available.saturating_sub(1);
    }

    /// Buffers the kernel may still fill.
    pub(super) fn available(&self) -> usize {
        self.available
    }
}

/// The receive side of a driver: the pool and the ring that hands its slots to the kernel.
#[derive(Debug)]
pub(super) struct Rx {
    pub(super) pool: RxPool,
    pub(super) ring: BufRing,
    /// The header every multishot `RecvMsg` is armed with (only its lengths matter).
    pub(super) header: RecvHeader,
}

impl Rx {
    /// A pool of `slots` slots holding datagrams of up to `datagram_bytes`, all in a ring (not
    /// yet registered); datagrams shorter than `copybreak` are copied out.
    pub(super) fn new(datagram_bytes: usize, slots: usize, copybreak: usize) -> Self {
        let pool = RxPool::new(PAYLOAD_OFFSET + datagram_bytes, slots).with_copybreak(copybreak);
        let ring = BufRing::new(pool.count().next_power_of_two(), BGID);
        let mut rx = Self {
            pool,
            ring,
            header: RecvHeader::new(),
        };
        while let Some(slot) = rx.pool.take() {
            rx.provide(slot);
        }
        rx
    }

    /// Slots lent out whose last view has dropped go back into the ring. Returns how many.
    pub(super) fn replenish(&mut self) -> usize {
        let Self { pool, ring, .. } = self;
        let len = pool.slot_size() as u32;
        let base = pool.base();
        let slot_size = pool.slot_size();
        let n = pool.reclaim(|slot| {
            // SAFETY: `slot` is a valid index into the pool's arena (it came back from a lease).
            let addr = unsafe { base.add(slot as usize * slot_size) };
            ring.push(slot as Bid, addr, len);
            true
        });
        if n > 0 {
            self.ring.publish();
        }
        n
    }

    /// The multishot receive for `fd`, tagged with `socket`.
    pub(super) fn arm(&mut self, fd: RawFd, socket: u32) -> squeue::Entry {
        opcode::RecvMsgMulti::new(types::Fd(fd), self.header.as_ptr(), BGID)
            .build()
            .user_data(UserData::new(OpKind::Recv, socket, 0).pack())
    }

    /// Handles the buffer of one receive completion: the datagram and its source if there is one
    /// to deliver, else `None` with the buffer (if any) already back in the ring. `deliver` is
    /// false for a socket being closed.
    pub(super) fn complete(
        &mut self,
        res: i32,
        flags: u32,
        deliver: bool,
        stats: &mut DriverStats,
    ) -> Option<(SocketAddr, Bytes)> {
        let bid = cqueue::buffer_select(flags)?;
        self.ring.consumed();
        let slot = u32::from(bid);
        if slot as usize >= self.pool.count() {
            debug_assert!(false, "the kernel returned bid {bid} we never provided");
            return None;
        }
        let len = usize::try_from(res).unwrap_or(0).min(self.pool.slot_size());
        if !deliver || len == 0 {
            self.provide(slot);
            self.ring.publish();
            return None;
        }
        let parsed = {
            // SAFETY: the kernel handed this slot back with this completion; it is ours until it
            // is lent below or provided again.
            let memory = unsafe { self.pool.slot_mut(slot) };
            let memory = &memory[..len];
            RecvMsgOut::parse(memory, self.header.get())
                .ok()
                .map(|out| {
                    let from = if out.is_name_data_truncated() {
                        None
                    } else {
                        let name = out.name_data();
                        // SAFETY: `name` is a live slice of `name.len()` bytes.
                        unsafe { RawAddr::read(name.as_ptr(), name.len()) }
                    };
                    let start = out.payload_data().as_ptr() as usize - memory.as_ptr() as usize;
                    let truncated = out.is_payload_truncated();
                    (from, start, out.payload_data().len(), truncated)
                })
        };
        match parsed {
            Some((_, _, _, true)) => stats.truncated += 1,
            Some((Some(from), start, payload, false)) => {
                stats.datagrams_received += 1;
                stats.bytes_received += payload as u64;
                let view = self.pool.deliver(slot, start, start + payload);
                return Some((from, view));
            }
            Some((None, ..)) | None => stats.recv_errors += 1,
        }
        self.provide(slot);
        self.ring.publish();
        None
    }

    /// Puts a slot back in the ring (unpublished).
    fn provide(&mut self, slot: u32) {
        let addr = self.pool.slot_ptr(slot);
        self.ring
            .push(slot as Bid, addr, self.pool.slot_size() as u32);
    }
}

/// Scratch memory for datagrams read while every receive slot is lent out. They reach the
/// application as copies (counted in [`COPIES`]), so that an application holding every slot
/// does not stop its own receive.
pub(super) struct Spill {
    buf: Box<[u8]>,
}

/// What one read into the spill buffer found.
#[derive(Debug)]
pub(super) enum Spilled {
    /// A datagram, copied.
    Datagram(SocketAddr, Bytes),
    /// A datagram that was dropped (too large, or from no IP address).
    Dropped,
    /// Nothing to read (or an error, counted).
    Empty,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("bytes", &self.buf.len())
            .finish()
    }
}

impl Spill {
    pub(super) fn new(datagram_bytes: usize) -> Self {
        Self {
            buf: vec![0; datagram_bytes].into_boxed_slice(),
        }
    }

    /// Reads one datagram from `fd` without blocking (one `recvfrom`).
    pub(super) fn read(&mut self, fd: RawFd, stats: &mut DriverStats) -> Spilled {
        let mut from = RawAddr::empty();
        stats.syscalls += 1;
        // SAFETY: reads at most `buf.len()` bytes into our buffer and an address into storage
        // sized for any address; both are valid and exclusive for the call.
        let r = unsafe {
            libc::recvfrom(
                fd,
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                from.as_mut_ptr(),
                &raw mut from.len,
            )
        };
        let Ok(len) = usize::try_from(r) else {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                stats.recv_errors += 1;
            }
            return Spilled::Empty;
        };
        if len > self.buf.len() {
            stats.truncated += 1;
            return Spilled::Dropped;
        }
        let Some(from) = from.to_socket_addr() else {
            stats.recv_errors += 1;
            return Spilled::Dropped;
        };
        stats.datagrams_received += 1;
        stats.bytes_received += len as u64;
        COPIES
            .rx_fallback_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Spilled::Datagram(from, Bytes::copy_from_slice(&self.buf[..len]))
    }
}

/// The `msghdr` a multishot `RecvMsg` is armed with. The kernel reads only its name and control
/// lengths: the address lands in the buffer, after the `io_uring_recvmsg_out` header.
pub(super) struct RecvHeader(Box<libc::msghdr>);

impl std::fmt::Debug for RecvHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHeader")
            .field("namelen", &self.0.msg_namelen)
            .finish()
    }
}

// SAFETY: the header holds only null pointers and lengths; moving it between threads is fine.
unsafe impl Send for RecvHeader {}

impl RecvHeader {
    fn new() -> Self {
        // SAFETY: msghdr is plain C data; all-zero is valid (null pointers, zero lengths).
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_namelen = NAME_BYTES as libc::socklen_t;
        header.msg_controllen = 0;
        Self(Box::new(header))
    }

    fn get(&self) -> &libc::msghdr {
        &self.0
    }

    /// Stable while `self` lives (it is boxed), as the kernel may read it until the receive ends.
    fn as_ptr(&self) -> *const libc::msghdr {
        &raw const *self.0
    }
}
