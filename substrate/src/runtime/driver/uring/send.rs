//! Transmit: the arena of fixed slots, the side table that keeps each in-flight send's kernel
//! structures (and a gathered send's parts) alive, zero-copy registration and the locked-memory
//! check in front of it.
//!
//! A gathered send (a slot's bytes with `Bytes` parts from elsewhere spliced in) is a `SendMsg`
//! whose message header names an iovec per piece, or a `SendMsgZc` when the whole datagram is
//! large enough for zero copy (`SendZc` takes one buffer only). The header, the iovecs and the
//! address live in the slot's side-table entry, the parts too, until the send's last
//! completion.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{Submitter, cqueue, opcode, squeue, types};

use super::op::{OpKind, UserData};
use crate::proto::Gather;
use crate::runtime::buf::{TxArena, TxSlot};
use crate::runtime::driver::addr::RawAddr;
use crate::runtime::driver::{DriverError, DriverStats, SocketId, gather_iovecs};

/// How zero-copy sends are made, decided once at start.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum ZeroCopy {
    /// Never (configured off, or no kernel support).
    Off,
    /// `SendZc` from the transmit arena registered as fixed buffers: the kernel pinned the pages
    /// once, so a send skips the per-call page pinning.
    Fixed {
        /// Slots per registered buffer (one buffer covers at most 1 GiB).
        slots_per_buffer: u32,
    },
    /// `SendMsgZc` from unregistered memory (registration failed for a reason other than the
    /// locked-memory limit).
    Unregistered,
}

/// Where a transmit slot is in its life.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum TxState {
    Free,
    /// Lent by `tx_acquire`.
    Held,
    /// Submitted; free again once the result (and, for zero-copy, the notification) came back.
    Sending {
        result: bool,
        notification: bool,
    },
}

/// The kernel structures of one send, at a stable address until its completions arrive.
struct TxSide {
    header: libc::msghdr,
    /// The datagram's pieces: the slot's bytes and the gathered parts, in wire order. Grows to
    /// the most a send of this slot needed and stays that long, so sends do not allocate.
    iov: Vec<libc::iovec>,
    /// A gathered send's parts, held while the kernel may read them, dropped when the slot frees.
    gather: Gather,
    to: RawAddr,
    generation: u32,
    socket: SocketId,
    zero_copy: bool,
    state: TxState,
}

/// The transmit side of a driver.
pub(super) struct Tx {
    arena: TxArena,
    /// Boxed so that the addresses the kernel holds do not move with the driver.
    side: Box<[TxSide]>,
    zero_copy: ZeroCopy,
    zero_copy_min_bytes: usize,
    zero_copy_loopback: bool,
    /// `SendMsgZc` is available (kernel 6.1+): zero-copy gathered sends.
    send_msg_zc: bool,
    /// `IORING_SEND_ZC_REPORT_USAGE` is understood (kernel 6.2+).
    report_usage: bool,
    /// Zero-copy sends the kernel reported as copied after all (loopback always copies).
    pub(super) zero_copy_copied: u64,
    registered: bool,
}

// SAFETY: the raw pointers in `side` point into the arena and into `side` itself, both heap
// memory owned by this value, so moving it to another thread keeps them valid; nothing is shared.
unsafe impl Send for Tx {}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("slots", &self.arena.count())
            .field("in_flight", &self.arena.in_flight())
            .field("zero_copy", &self.zero_copy)
            .finish()
    }
}

/// What a send completion meant for the driver.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum SendDone {
    /// Not ours (any more): ignored.
    Stale,
    /// The send's result: the socket no longer has this send in flight.
    Result(SocketId),
    /// A zero-copy notification.
    Notification,
}

impl Tx {
    pub(super) fn new(
        slot_bytes: usize,
        slots: usize,
        zero_copy_min_bytes: usize,
        zero_copy_loopback: bool,
    ) -> Self {
        let arena = TxArena::new(slot_bytes, slots);
        let side = (0..arena.count())
            .map(|_| TxSide {
                // SAFETY: msghdr is plain C data; all-zero is valid.
                header: unsafe { std::mem::zeroed() },
                iov: Vec::new(),
                gather: Gather::new(),
                to: RawAddr::empty(),
                generation: 0,
                socket: SocketId(0),
                zero_copy: false,
                state: TxState::Free,
            })
            .collect();
        Self {
            arena,
            side,
            zero_copy: ZeroCopy::Off,
            zero_copy_min_bytes,
            zero_copy_loopback,
            send_msg_zc: false,
            report_usage: false,
            zero_copy_copied: 0,
            registered: false,
        }
    }

    /// Bytes per slot.
    pub(super) fn slot_bytes(&self) -> usize {
        self.arena.slot_size()
    }

    /// Whether zero-copy sends are configured for any datagram this arena can hold.
    pub(super) fn wants_zero_copy(&self) -> bool {
        self.zero_copy_min_bytes <= self.arena.slot_size()
    }

    /// Bytes of the arena, whole pages (what registration locks).
    pub(super) fn arena_bytes(&self) -> u64 {
        (self.arena.slot_size() * self.arena.count()).next_multiple_of(PAGE_BYTES) as u64
    }

    /// Registers the arena for `SendZc`; on failure other than the locked-memory limit, falls
    /// back to `SendMsgZc` if `send_msg_zc` (the kernel has it) or to plain sends.
    ///
    /// # Errors
    /// [`DriverError::MemLock`] if the kernel refused for lack of locked memory.
    pub(super) fn enable_zero_copy(
        &mut self,
        submitter: &Submitter<'_>,
        send_msg_zc: bool,
        report_usage: bool,
        limit: MemLockLimit,
        need: u64,
    ) -> Result<ZeroCopy, DriverError> {
        self.report_usage = report_usage;
        self.send_msg_zc = send_msg_zc;
        if !self.wants_zero_copy() {
            self.zero_copy = ZeroCopy::Off;
            return Ok(self.zero_copy);
        }
        let slot_bytes = self.arena.slot_size();
        let slots_per_buffer = (MAX_REGISTERED_BYTES / slot_bytes).max(1);
        let total = self.arena.count();
        let mut iovecs = Vec::with_capacity(total.div_ceil(slots_per_buffer));
        let mut first = 0;
        while first < total {
            let n = slots_per_buffer.min(total - first);
            iovecs.push(libc::iovec {
                iov_base: self.arena.slot_ptr(TxSlot(first as u32)).cast(),
                iov_len: n * slot_bytes,
            });
            first += n;
        }
        // SAFETY: the iovecs cover the arena, which lives until after the buffers are
        // unregistered (the driver unregisters before freeing it, or leaks it).
        match unsafe { submitter.register_buffers(&iovecs) } {
            Ok(()) => {
                self.registered = true;
                self.zero_copy = ZeroCopy::Fixed {
                    slots_per_buffer: slots_per_buffer as u32,
                };
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EPERM)) => {
                return Err(limit.error(need));
            }
            Err(_) if send_msg_zc => self.zero_copy = ZeroCopy::Unregistered,
            Err(_) => self.zero_copy = ZeroCopy::Off,
        }
        Ok(self.zero_copy)
    }

    pub(super) fn unregister(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        if self.registered {
            submitter.unregister_buffers()?;
            self.registered = false;
        }
        Ok(())
    }

    pub(super) fn acquire(&mut self) -> Option<(TxSlot, &mut [u8])> {
        let (slot, buf) = self.arena.acquire()?;
        self.side[slot.0 as usize].state = TxState::Held;
        Some((slot, buf))
    }

    pub(super) fn abandon(&mut self, slot: TxSlot) {
        match self.side.get_mut(slot.0 as usize) {
            Some(side) if side.state == TxState::Held => {
                side.state = TxState::Free;
                side.gather = Gather::new();
                self.arena.release(slot);
            }
            _ => debug_assert!(false, "tx_abandon of a slot not held: {slot:?}"),
        }
    }

    /// Whether `slot` is held by the caller (acquired, not yet sent).
    pub(super) fn is_held(&self, slot: TxSlot) -> bool {
        self.side
            .get(slot.0 as usize)
            .is_some_and(|s| s.state == TxState::Held)
    }

    /// Frees a held slot whose send could not be queued.
    pub(super) fn fail(&mut self, slot: TxSlot, stats: &mut DriverStats) {
        stats.send_errors += 1;
        self.abandon(slot);
    }

    /// The submission sending the first `len` bytes of held `slot`, with the parts of `gather`
    /// spliced in, to `to` over `fd`. The slot (and the parts, kept in its side entry) is in
    /// flight from here on; if the entry cannot be queued, call [`Self::unprepare`].
    pub(super) fn prepare(
        &mut self,
        slot: TxSlot,
        fd: RawFd,
        socket: SocketId,
        to: SocketAddr,
        len: usize,
        gather: Gather,
    ) -> squeue::Entry {
        debug_assert!(self.is_held(slot) && len <= self.arena.slot_size());
        let buf = self.arena.slot_ptr(slot);
        let total = len + gather.bytes();
        let gathered = !gather.is_empty();
        let side = &mut self.side[slot.0 as usize];
        let needed = 2 * gather.parts() + 1;
        if side.iov.len() < needed {
            let empty = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            side.iov.resize(needed, empty);
        }
        // SAFETY: the caller holds the slot (checked above) and `len` is at most its size; the
        // slot stays unwritten until the send completes and frees it.
        let written = unsafe { std::slice::from_raw_parts(buf, len) };
        let pieces = gather_iovecs(written, &gather, &mut side.iov);
        // A gathered send needs `SendMsgZc` for zero copy (`SendZc` takes one buffer), and the
        // kernel pins each page of each piece as one fragment of the datagram: past
        // `MAX_SKB_FRAGS` it refuses the send (EMSGSIZE), so such a datagram is copied.
        let zero_copy = total >= self.zero_copy_min_bytes
            && self.zero_copy != ZeroCopy::Off
            && (!gathered || (self.send_msg_zc && pages(&side.iov[..pieces]) <= MAX_ZC_PAGES))
            && (self.zero_copy_loopback || !to.ip().is_loopback());
        let zc_flags = if self.report_usage {
            SEND_ZC_REPORT_USAGE
        } else {
            0
        };
        side.generation = (side.generation + 1) & UserData::GENERATION_MASK;
        side.to = RawAddr::from_socket_addr(to);
        side.socket = socket;
        side.zero_copy = zero_copy;
        side.state = TxState::Sending {
            result: true,
            notification: zero_copy,
        };
        let kind = if zero_copy {
            OpKind::SendZc
        } else {
            OpKind::Send
        };
        let user_data = UserData::new(kind, slot.0, side.generation).pack();
        if let (true, false, ZeroCopy::Fixed { slots_per_buffer }) =
            (zero_copy, gathered, self.zero_copy)
        {
            return opcode::SendZc::new(types::Fd(fd), buf, len as u32)
                .buf_index(Some((slot.0 / slots_per_buffer) as u16))
                .dest_addr(side.to.as_ptr())
                .dest_addr_len(side.to.len)
                .zc_flags(zc_flags)
                .build()
                .user_data(user_data);
        }
        // Held until the slot is free again, which is after the kernel's last completion.
        side.gather = gather;
        side.header.msg_name = side.to.as_mut_ptr().cast();
        side.header.msg_namelen = side.to.len;
        side.header.msg_iov = side.iov.as_mut_ptr();
        side.header.msg_iovlen = pieces;
        side.header.msg_control = std::ptr::null_mut();
        side.header.msg_controllen = 0;
        side.header.msg_flags = 0;
        let header = &raw const side.header;
        if zero_copy {
            opcode::SendMsgZc::new(types::Fd(fd), header)
                .ioprio(zc_flags)
                .build()
                .user_data(user_data)
        } else {
            opcode::SendMsg::new(types::Fd(fd), header)
                .build()
                .user_data(user_data)
        }
    }

    /// Undoes [`Self::prepare`] for an entry that never reached the queue, freeing the slot.
    pub(super) fn unprepare(&mut self, slot: TxSlot, stats: &mut DriverStats) {
        self.side[slot.0 as usize].state = TxState::Held;
        self.fail(slot, stats);
    }

    /// Handles a send completion.
    pub(super) fn complete(
        &mut self,
        user_data: UserData,
        res: i32,
        flags: u32,
        stats: &mut DriverStats,
    ) -> SendDone {
        let Some(side) = self.side.get_mut(user_data.slot as usize) else {
            return SendDone::Stale;
        };
        let TxState::Sending {
            mut result,
            mut notification,
        } = side.state
        else {
            return SendDone::Stale;
        };
        if side.generation != user_data.generation {
            return SendDone::Stale;
        }
        let done = if user_data.kind == OpKind::SendZc && cqueue::notif(flags) {
            notification = false;
            if res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                self.zero_copy_copied += 1;
            }
            SendDone::Notification
        } else {
            result = false;
            if res < 0 {
                stats.send_errors += 1;
            } else {
                stats.datagrams_sent += 1;
                stats.bytes_sent += res as u64;
                if side.zero_copy {
                    stats.zero_copy_sends += 1;
                }
            }
            if !cqueue::more(flags) {
                // No notification follows (a failed zero-copy send, or a plain one).
                notification = false;
            }
            SendDone::Result(side.socket)
        };
        if result || notification {
            side.state = TxState::Sending {
                result,
                notification,
            };
        } else {
            // The kernel is done with the slot and the parts: drop their views now.
            side.state = TxState::Free;
            side.gather = Gather::new();
            self.arena.release(TxSlot(user_data.slot));
        }
        done
    }

    /// Slots not free (held, queued or waiting for a completion).
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.arena.in_flight()
    }

    /// Slots waiting for a completion from the kernel.
    pub(super) fn awaiting_kernel(&self) -> usize {
        self.side
            .iter()
            .filter(|s| matches!(s.state, TxState::Sending { .. }))
            .count()
    }

    #[cfg(test)]
    pub(super) fn zero_copy(&self) -> ZeroCopy {
        self.zero_copy
    }
}

/// The locked-memory allowance of this process.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) struct MemLockLimit {
    /// `RLIMIT_MEMLOCK` (soft), bytes; `u64::MAX` when unlimited.
    pub(crate) have: u64,
    /// The process has `CAP_IPC_LOCK`, which exempts io_uring from the limit.
    pub(crate) exempt: bool,
}

impl MemLockLimit {
    /// The limit of this process right now.
    pub(crate) fn current() -> Self {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into valid memory.
        let have = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut limit) } == 0 {
            if limit.rlim_cur == libc::RLIM_INFINITY {
                u64::MAX
            } else {
                limit.rlim_cur
            }
        } else {
            // Unknown: assume none, and let the kernel decide (registration maps ENOMEM).
            0
        };
        Self {
            have,
            exempt: has_cap_ipc_lock(),
        }
    }

    /// Fails if registering `need` bytes would exceed the limit.
    ///
    /// # Errors
    /// [`DriverError::MemLock`] naming the limit and what is needed.
    pub(crate) fn check(self, need: u64) -> Result<(), DriverError> {
        if self.exempt || need <= self.have {
            Ok(())
        } else {
            Err(self.error(need))
        }
    }

    pub(crate) fn error(self, need: u64) -> DriverError {
        DriverError::MemLock {
            have: self.have,
            need,
            need_kib: need.div_ceil(1024),
        }
    }
}

/// Whether the effective capabilities include `CAP_IPC_LOCK` (io_uring then charges no locked
/// memory to the user).
fn has_cap_ipc_lock() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[derive(Clone, Copy, Default)]
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version 3 header and room for its two data words.
    let r = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    r == 0 && data[0].effective & (1 << CAP_IPC_LOCK) != 0
}

const PAGE_BYTES: usize = 4096;
/// The kernel refuses a registered buffer larger than 1 GiB.
const MAX_REGISTERED_BYTES: usize = 1 << 30;
/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the kernel copied after all.
const SEND_ZC_REPORT_USAGE: u16 = 8;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's result.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// The most pages a zero-copy datagram may pin: the kernel's `MAX_SKB_FRAGS` (17), less one for
/// a piece the kernel may put in the buffer's linear part.
const MAX_ZC_PAGES: usize = 16;

/// How many pages the pieces span: what a zero-copy send pins, one fragment each.
fn pages(iovs: &[libc::iovec]) -> usize {
    const PAGE: usize = 4096;
    iovs.iter()
        .map(|v| {
            let start = v.iov_base as usize;
            (start + v.iov_len).div_ceil(PAGE) - start / PAGE
        })
        .sum()
}
