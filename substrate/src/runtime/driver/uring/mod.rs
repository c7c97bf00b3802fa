//! The io_uring driver: one ring per shard, batched submissions, multishot receive into a provided
//! buffer ring, zero-copy send for large datagrams, optional SQPOLL.
//!
//! # Choices that are not obvious
//! - **Receive is one multishot `RecvMsg` per socket into a provided buffer ring.** The kernel
//!   picks a free receive slot itself for each datagram and posts one completion per datagram,
//!   so nothing is re-submitted per datagram, and no slot is tied up waiting on a quiet socket
//!   (with one `RecvMsg` per slot, every idle socket would pin slots). The ring's buffers *are*
//!   the [`RxPool`](crate::runtime::buf) slots (buffer id = slot index), so a datagram reaches
//!   the application as a `Bytes` view of the memory the kernel wrote. Each slot starts with the
//!   kernel's `io_uring_recvmsg_out` header and the sender's address; the view starts after
//!   them. A slot returns to the ring at the first `poll` after its last view drops. When every
//!   slot is lent out, the kernel ends the receive with `ENOBUFS` (counted as
//!   `rx_pool_exhausted`) and is armed again once slots come back. Meanwhile `poll` reads that
//!   socket with plain `recvfrom` into scratch memory and hands out copies (counted in
//!   [`COPIES`](crate::runtime::buf::COPIES)), with a one-shot readability poll so that a wait
//!   still ends when a datagram arrives: an application that holds every slot slows its receive
//!   down but never stops it.
//! - **Gathered sends** (a slot's bytes with parts from the application's or received buffers
//!   spliced in) are `SendMsg` with an iovec per piece, or `SendMsgZc` when the whole datagram
//!   qualifies for zero copy; the parts are dropped when the slot frees (see `send.rs`).
//! - **Zero copy only for large datagrams.** A zero-copy send saves the copy into the kernel but
//!   costs a second completion (the notification, after which the slot is free) and page
//!   pinning; below [`DriverConfig::zero_copy_min_bytes`] a plain `SendMsg` is cheaper. The
//!   transmit arena is registered once as fixed buffers so that `SendZc` skips pinning; that
//!   locks memory, so `RLIMIT_MEMLOCK` is checked first and a shortfall is the typed
//!   [`DriverError::MemLock`]. If registration fails for another reason, `SendMsgZc` from
//!   unregistered memory is used, or plain sends if the kernel lacks it. Measured on the 2-core
//!   development machine (the `crossover` tests): a datagram that leaves the host unfragmented
//!   is sent 1.35-1.4 times as fast by zero-copy at 8 KiB and 4.7 times at 64 KiB, within 10 %
//!   either way at 1-4 KiB. Over loopback, or above the interface MTU (fragmented), the kernel
//!   copies anyway (the notification says so; see [`UringDriver::zero_copy_copied`]) and
//!   zero-copy is 5-30 % slower.
//! - **`user_data` is `OpKind:8 | slot:32 | generation:24`** (see `op.rs`): the kind says which
//!   table the slot indexes (sockets for receives, transmit slots for sends, watched wakers), and
//!   the generation, bumped per send, lets a stale completion be told from a live one.
//! - **Batching.** `send`, re-arms and `watch` only write submission entries; `poll` makes at most
//!   one `io_uring_enter` (`submit` or, when nothing is ready and waiting is allowed,
//!   `submit_with_args` with a timeout), then drains every completion. With SQPOLL the kernel
//!   thread picks entries up itself, and `poll` enters only to wake it or to wait. Without
//!   SQPOLL the ring uses cooperative task running, so completions are never delivered by
//!   interrupting the shard; `poll` enters when the kernel flags pending work.
//! - **Lifetimes.** Every pointer handed to the kernel points into memory the driver owns at a
//!   stable address (the transmit side table, the arenas, a boxed receive header, a gathered
//!   send's tail `Bytes` held in the side table) and keeps until the operation's last completion. A socket's descriptor is closed only after its receive has
//!   ended and its sends have completed, so a queued entry never names a reused descriptor. Drop
//!   cancels everything and waits (bounded) for the completions before freeing; if the kernel
//!   does not answer in time, the memory is leaked rather than freed under it.

mod op;
mod probe;
mod recv;
mod send;
#[cfg(test)]
mod tests;

pub use self::probe::probe;

use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use self::op::{OpKind, UserData};
use self::recv::{Rx, Spill, Spilled};
use self::send::{MemLockLimit, SendDone, Tx};
use super::{
    Driver, DriverConfig, DriverError, DriverKind, DriverStats, Received, SocketId, Wait, Waker,
    open_socket, socket_addr,
};
use crate::proto::Gather;
use crate::runtime::buf::TxSlot;
use crate::time::Duration;

/// The io_uring driver of one shard (see the module doc).
pub struct UringDriver {
    ring: IoUring,
    sockets: Vec<Socket>,
    free_sockets: Vec<u32>,
    /// Dropped by hand, after the kernel has let go of it (or leaked if it might not have).
    rx: ManuallyDrop<Rx>,
    /// As `rx`.
    tx: ManuallyDrop<Tx>,
    /// Where datagrams are read while every receive slot is lent out.
    spill: Spill,
    wakers: Vec<Watched>,
    stats: DriverStats,
    socket_buffer_bytes: usize,
    sqpoll: bool,
    /// Some receive or waker poll waits to be armed.
    rearm: bool,
}

impl UringDriver {
    /// A driver with its own ring, receive pool and transmit arena, sized by `config`.
    ///
    /// # Errors
    /// - [`DriverError::MemLock`] if the ring and the registered transmit arena need more locked
    ///   memory than `RLIMIT_MEMLOCK` allows (and the process lacks `CAP_IPC_LOCK`);
    /// - [`DriverError::Unsupported`] if the kernel lacks a feature the driver needs;
    /// - [`DriverError::Io`] if the ring cannot be made or the configuration is out of range.
    pub fn new(config: &DriverConfig) -> Result<Self, DriverError> {
        validate(config)?;
        let mut rx = Rx::new(
            config.rx_slot_bytes,
            config.rx_slots,
            config.rx_copybreak_bytes,
        );
        let tx = Tx::new(
            config.tx_slot_bytes,
            config.tx_slots,
            config.zero_copy_min_bytes,
            config.zero_copy_loopback,
        );
        let sq_entries = (config.tx_slots + 64).next_power_of_two().clamp(64, 4096) as u32;
        let cq_entries = (config.rx_slots + 2 * config.tx_slots + 64)
            .next_power_of_two()
            .clamp(2 * sq_entries as usize, MAX_CQ_ENTRIES) as u32;
        let limit = MemLockLimit::current();
        let ring_bytes = u64::from(sq_entries) * (64 + 4) + u64::from(cq_entries) * 16 + 8192;
        let buf_ring_bytes = (config.rx_slots.next_power_of_two() * 16).next_multiple_of(4096);
        let zero_copy_bytes = if tx.wants_zero_copy() {
            tx.arena_bytes()
        } else {
            0
        };
        let need = ring_bytes + buf_ring_bytes as u64 + zero_copy_bytes;
        limit.check(need)?;

        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries).setup_clamp();
        if config.sqpoll {
            builder.setup_sqpoll(SQPOLL_IDLE_MS);
        } else {
            // Completions wait for our next `io_uring_enter` instead of interrupting the shard.
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        let ring = builder
            .build(sq_entries)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOMEM) => limit.error(need),
                _ => DriverError::io("io_uring_setup", e),
            })?;
        let features = probe::check(&ring)?;
        rx.ring
            .register(&ring.submitter())
            .map_err(|e| DriverError::io("io_uring_register(PBUF_RING)", e))?;
        rx.ring.publish();
        let mut driver = Self {
            ring,
            sockets: Vec::new(),
            free_sockets: Vec::new(),
            rx: ManuallyDrop::new(rx),
            tx: ManuallyDrop::new(tx),
            spill: Spill::new(config.rx_slot_bytes),
            wakers: Vec::new(),
            stats: DriverStats::default(),
            socket_buffer_bytes: config.socket_buffer_bytes,
            sqpoll: config.sqpoll,
            rearm: false,
        };
        // On error, dropping `driver` unregisters the buffer ring before freeing it.
        let submitter = driver.ring.submitter();
        driver.tx.enable_zero_copy(
            &submitter,
            features.send_msg_zc,
            features.report_usage,
            limit,
            need,
        )?;
        Ok(driver)
    }

    /// How zero-copy sends are made (decided at start).
    #[cfg(test)]
    pub(crate) fn zero_copy(&self) -> send::ZeroCopy {
        self.tx.zero_copy()
    }

    /// Zero-copy sends whose notification said the kernel copied the data after all (always the
    /// case on loopback; 0 if the kernel cannot report it).
    pub fn zero_copy_copied(&self) -> u64 {
        self.tx.zero_copy_copied
    }

    /// Receive slots the kernel may fill right now (the others are lent out).
    #[cfg(test)]
    pub(crate) fn rx_slots_available(&self) -> usize {
        self.rx.ring.available()
    }

    /// Receive slots in all.
    #[cfg(test)]
    pub(crate) fn rx_slots(&self) -> usize {
        self.rx.pool.count()
    }

    /// Transmit slots not free.
    #[cfg(test)]
    pub(crate) fn tx_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// The socket `id` names, if it is still open.
    fn open_socket(&self, id: SocketId) -> Option<usize> {
        let index = (id.0 & SOCKET_INDEX_MASK) as usize;
        let s = self.sockets.get(index)?;
        (s.id == id && s.open && s.fd.is_some()).then_some(index)
    }

    /// The socket `id` names, open or closing.
    fn live_socket(&self, id: SocketId) -> Option<usize> {
        let index = (id.0 & SOCKET_INDEX_MASK) as usize;
        let s = self.sockets.get(index)?;
        (s.id == id && s.fd.is_some()).then_some(index)
    }

    /// Queues a submission; if the queue is full, hands what it holds to the kernel and retries.
    /// Returns false if the entry could not be queued.
    fn push(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..PUSH_ATTEMPTS {
            // SAFETY: every entry this driver builds points only into memory it owns at a stable
            // address until the entry's last completion: the transmit arena and side table, the
            // boxed receive header and receive pool, and the descriptors of sockets and watched
            // wakers, which stay open until then (see the module doc).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            self.stats.syscalls += 1;
            let submitted = self.ring.submit();
            if self.sqpoll && submitted.is_ok() && self.ring.submission().is_full() {
                self.stats.syscalls += 1;
                let _ = self.ring.submitter().squeue_wait();
            }
            if submitted.as_ref().is_err_and(|e| !is_transient(e)) {
                return false;
            }
        }
        false
    }

    /// Returns lent-out slots to the buffer ring and arms what waits to be armed.
    fn replenish(&mut self) {
        self.rx.replenish();
        if !self.rearm {
            return;
        }
        self.rearm = false;
        for index in 0..self.sockets.len() {
            let s = &self.sockets[index];
            let Some(fd) = s.fd.as_ref().map(AsRawFd::as_raw_fd) else {
                continue;
            };
            if !(s.open && s.recv_wanted) {
                continue;
            }
            if self.rx.ring.available() == 0 {
                // Every slot is lent out: arm once some come back.
                self.rearm = true;
                continue;
            }
            let entry = self.rx.arm(fd, s.id.0);
            if self.push(&entry) {
                let s = &mut self.sockets[index];
                s.recv_wanted = false;
                s.recv_armed = true;
            } else {
                self.rearm = true;
            }
        }
        for index in 0..self.wakers.len() {
            if self.wakers[index].armed {
                continue;
            }
            let entry = opcode::PollAdd::new(
                types::Fd(self.wakers[index].waker.raw_fd()),
                libc::POLLIN as u32,
            )
            .multi(true)
            .build()
            .user_data(UserData::new(OpKind::Wake, index as u32, 0).pack());
            if self.push(&entry) {
                self.wakers[index].armed = true;
            } else {
                self.rearm = true;
            }
        }
    }

    /// The one `io_uring_enter` of a poll, if one is needed: submits queued entries and, for
    /// `Wait::For`, waits for a completion or the timeout.
    fn enter(&mut self, wait: Wait) -> Result<(), DriverError> {
        let result = match wait {
            Wait::For(d) if !d.is_zero() => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.stats.syscalls += 1;
                self.ring.submitter().submit_with_args(1, &args)
            }
            _ => {
                let sq = self.ring.submission();
                let pending = !sq.is_empty();
                let needed = if self.sqpoll {
                    (pending && sq.need_wakeup()) || sq.cq_overflow()
                } else {
                    pending || sq.taskrun() || sq.cq_overflow()
                };
                drop(sq);
                if !needed {
                    return Ok(());
                }
                self.stats.syscalls += 1;
                self.ring.submit()
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(DriverError::io("io_uring_enter", e)),
        }
    }

    /// Handles every completion ready now; returns the work done.
    fn reap<F: FnMut(Received)>(&mut self, sink: &mut F) -> usize {
        let mut work = 0;
        // Bounded, so that a flood of completions cannot keep one poll going forever.
        let mut budget = 2 * self.ring.params().cq_entries() as usize;
        loop {
            let mut batch = [const { MaybeUninit::<cqueue::Entry>::uninit() }; REAP_BATCH];
            let cqes = self.ring.completion().fill(&mut batch);
            let n = cqes.len();
            for cqe in cqes.iter() {
                work += self.complete(cqe, sink);
            }
            budget = budget.saturating_sub(n);
            if n < REAP_BATCH || budget == 0 {
                return work;
            }
        }
    }

    fn complete<F: FnMut(Received)>(&mut self, cqe: &cqueue::Entry, sink: &mut F) -> usize {
        let (res, flags) = (cqe.result(), cqe.flags());
        let Some(user_data) = UserData::unpack(cqe.user_data()) else {
            return 0;
        };
        match user_data.kind {
            OpKind::Recv => self.on_recv_complete(user_data, res, flags, sink),
            OpKind::Send | OpKind::SendZc => self.on_send_complete(user_data, res, flags),
            OpKind::Wake => self.on_wake_complete(user_data, res, flags),
            OpKind::Readable => self.on_readable_complete(user_data, res),
            OpKind::Cancel => 0,
        }
    }

    fn on_recv_complete<F: FnMut(Received)>(
        &mut self,
        user_data: UserData,
        res: i32,
        flags: u32,
        sink: &mut F,
    ) -> usize {
        let socket = SocketId(user_data.slot);
        let index = self.live_socket(socket);
        let deliver = index.is_some_and(|i| self.sockets[i].open);
        let mut work = 1;
        if let Some((from, datagram)) = self.rx.complete(res, flags, deliver, &mut self.stats) {
            sink(Received {
                socket,
                from,
                datagram,
            });
        } else if res < 0 {
            match -res {
                libc::ENOBUFS => self.stats.rx_pool_exhausted += 1,
                libc::ECANCELED => work = 0,
                _ => self.stats.recv_errors += 1,
            }
        }
        if let (false, Some(index)) = (cqueue::more(flags), index) {
            let s = &mut self.sockets[index];
            s.recv_armed = false;
            if s.open {
                s.recv_wanted = true;
                self.rearm = true;
            } else {
                self.release_if_done(index);
            }
        }
        work
    }

    fn on_send_complete(&mut self, user_data: UserData, res: i32, flags: u32) -> usize {
        match self.tx.complete(user_data, res, flags, &mut self.stats) {
            SendDone::Result(socket) => {
                if let Some(index) = self.live_socket(socket) {
                    let s = &mut self.sockets[index];
                    s.sends = s.sends.saturating_sub(1);
                    if !s.open {
                        self.release_if_done(index);
                    }
                }
                1
            }
            SendDone::Notification => 1,
            SendDone::Stale => 0,
        }
    }

    fn on_wake_complete(&mut self, user_data: UserData, res: i32, flags: u32) -> usize {
        let Some(watched) = self.wakers.get_mut(user_data.slot as usize) else {
            return 0;
        };
        if res >= 0 {
            Waker::drain(watched.waker.raw_fd());
            self.stats.syscalls += 1;
        }
        if !cqueue::more(flags) {
            watched.armed = false;
            if res != -libc::ECANCELED {
                self.rearm = true;
            }
        }
        usize::from(res >= 0)
    }

    fn on_readable_complete(&mut self, user_data: UserData, res: i32) -> usize {
        let Some(index) = self.live_socket(SocketId(user_data.slot)) else {
            return 0;
        };
        let s = &mut self.sockets[index];
        s.readable_armed = false;
        if !s.open {
            self.release_if_done(index);
        }
        // The datagram itself is read by `receive_starved`, later in this poll.
        usize::from(res > 0)
    }

    /// Reads sockets whose receive waits for slots (every one is lent out) with `recvfrom`,
    /// handing out copies; arms a readability poll on each once it is drained, so that a wait
    /// ends when the next datagram arrives. Returns the work done.
    fn receive_starved<F: FnMut(Received)>(&mut self, sink: &mut F) -> usize {
        if !self.rearm || self.rx.ring.available() > 0 {
            return 0;
        }
        let mut work = 0;
        for index in 0..self.sockets.len() {
            let s = &self.sockets[index];
            let Some(fd) = s.fd.as_ref().map(AsRawFd::as_raw_fd) else {
                continue;
            };
            if !(s.open && s.recv_wanted) {
                continue;
            }
            let socket = s.id;
            let mut drained = false;
            for _ in 0..SPILL_BATCH {
                match self.spill.read(fd, &mut self.stats) {
                    Spilled::Datagram(from, datagram) => {
                        work += 1;
                        sink(Received {
                            socket,
                            from,
                            datagram,
                        });
                    }
                    Spilled::Dropped => work += 1,
                    Spilled::Empty => {
                        drained = true;
                        break;
                    }
                }
            }
            if drained && !self.sockets[index].readable_armed {
                let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                    .build()
                    .user_data(UserData::new(OpKind::Readable, socket.0, 0).pack());
                if self.push(&entry) {
                    self.sockets[index].readable_armed = true;
                }
            }
        }
        work
    }

    /// Closes a closed socket's descriptor once nothing in flight names it.
    fn release_if_done(&mut self, index: usize) {
        let s = &mut self.sockets[index];
        if !s.open && !s.recv_armed && !s.readable_armed && s.sends == 0 && s.fd.take().is_some() {
            self.free_sockets.push(index as u32);
        }
    }

    /// Operations the kernel has not finished with.
    fn outstanding(&self) -> usize {
        let receives = self.sockets.iter().filter(|s| s.recv_armed).count()
            + self.sockets.iter().filter(|s| s.readable_armed).count();
        let wakers = self.wakers.iter().filter(|w| w.armed).count();
        receives + wakers + self.tx.awaiting_kernel()
    }

    /// Cancels every operation and waits, bounded, for their completions. True when the kernel
    /// no longer references any of the driver's memory.
    fn shutdown(&mut self) -> bool {
        for s in &mut self.sockets {
            s.open = false;
            s.recv_wanted = false;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(UserData::new(OpKind::Cancel, 0, 0).pack());
        for _ in 0..SHUTDOWN_ROUNDS {
            if self.outstanding() == 0 {
                return true;
            }
            // Cancel again each round: an entry queued after the last cancel ran is caught too.
            if !self.push(&cancel) {
                return false;
            }
            let ts = types::Timespec::from(SHUTDOWN_WAIT);
            let args = types::SubmitArgs::new().timespec(&ts);
            let entered = self.ring.submitter().submit_with_args(1, &args);
            if entered.is_err_and(|e| !is_transient(&e)) {
                return false;
            }
            self.reap(&mut |_| {});
        }
        self.outstanding() == 0
    }
}

impl Driver for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Uring
    }

    fn bind(&mut self, addr: SocketAddr) -> Result<SocketId, DriverError> {
        let fd = open_socket(addr, self.socket_buffer_bytes)?;
        let local = socket_addr(fd.as_raw_fd());
        let index = match self.free_sockets.pop() {
            Some(i) => i,
            None if self.sockets.len() <= SOCKET_INDEX_MASK as usize => {
                self.sockets.push(Socket::vacant());
                (self.sockets.len() - 1) as u32
            }
            None => {
                return Err(DriverError::io(
                    "bind",
                    io::Error::from_raw_os_error(libc::EMFILE),
                ));
            }
        };
        let s = &mut self.sockets[index as usize];
        let generation = (s.id.0 >> SOCKET_INDEX_BITS).wrapping_add(1);
        let id = SocketId(index | (generation << SOCKET_INDEX_BITS));
        *s = Socket {
            id,
            fd: Some(fd),
            local,
            open: true,
            recv_armed: false,
            recv_wanted: true,
            readable_armed: false,
            sends: 0,
        };
        self.rearm = true;
        self.replenish();
        Ok(id)
    }

    fn local_addr(&self, socket: SocketId) -> Option<SocketAddr> {
        self.open_socket(socket).and_then(|i| self.sockets[i].local)
    }

    fn close(&mut self, socket: SocketId) {
        let Some(index) = self.open_socket(socket) else {
            return;
        };
        let s = &mut self.sockets[index];
        s.open = false;
        s.recv_wanted = false;
        if s.recv_armed || s.readable_armed || s.sends > 0 {
            let fd = s.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            // Ends the receive and any send still waiting on the socket; completions that race
            // with it are dropped (the socket is no longer open).
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                .build()
                .user_data(UserData::new(OpKind::Cancel, socket.0, 0).pack());
            self.push(&cancel);
        }
        self.release_if_done(index);
    }

    fn tx_acquire(&mut self) -> Option<(TxSlot, &mut [u8])> {
        self.tx.acquire()
    }

    fn tx_abandon(&mut self, slot: TxSlot) {
        self.tx.abandon(slot);
    }

    fn send_gather(
        &mut self,
        socket: SocketId,
        to: SocketAddr,
        slot: TxSlot,
        len: usize,
        gather: Gather,
    ) {
        if !self.tx.is_held(slot) {
            debug_assert!(false, "send of a transmit slot not acquired: {slot:?}");
            return;
        }
        let Some(index) = self.open_socket(socket) else {
            self.tx.fail(slot, &mut self.stats);
            return;
        };
        let Some(fd) = self.sockets[index].fd.as_ref().map(AsRawFd::as_raw_fd) else {
            self.tx.fail(slot, &mut self.stats);
            return;
        };
        if len > self.tx.slot_bytes() || len + gather.bytes() > u32::MAX as usize {
            self.tx.fail(slot, &mut self.stats);
            return;
        }
        let entry = self.tx.prepare(slot, fd, socket, to, len, gather);
        if self.push(&entry) {
            self.sockets[index].sends += 1;
        } else {
            self.tx.unprepare(slot, &mut self.stats);
        }
    }

    fn poll<F: FnMut(Received)>(&mut self, wait: Wait, mut sink: F) -> Result<usize, DriverError> {
        let mut work = self.reap(&mut sink);
        self.replenish();
        work += self.receive_starved(&mut sink);
        self.enter(if work == 0 { wait } else { Wait::No })?;
        work += self.reap(&mut sink);
        work += self.receive_starved(&mut sink);
        Ok(work)
    }

    fn watch(&mut self, waker: &Waker) -> Result<(), DriverError> {
        if self
            .wakers
            .iter()
            .any(|w| w.waker.raw_fd() == waker.raw_fd())
        {
            return Ok(());
        }
        self.wakers.push(Watched {
            waker: waker.clone(),
            armed: false,
        });
        self.rearm = true;
        self.replenish();
        Ok(())
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("sockets", &self.sockets.iter().filter(|s| s.open).count())
            .field("rx", &*self.rx)
            .field("tx", &*self.tx)
            .field("sqpoll", &self.sqpoll)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        let quiet = self.shutdown();
        let submitter = self.ring.submitter();
        let released = quiet
            && self.rx.ring.unregister(&submitter).is_ok()
            && self.tx.unregister(&submitter).is_ok();
        if released {
            // SAFETY: each is dropped once, here, and not used afterwards; the kernel no longer
            // references them (every operation completed and the registrations are gone).
            unsafe {
                ManuallyDrop::drop(&mut self.rx);
                ManuallyDrop::drop(&mut self.tx);
            }
        }
        // Otherwise they are leaked: the kernel might still write into the receive slots.
    }
}

/// One socket of the driver.
#[derive(Debug)]
struct Socket {
    /// Index in the low 16 bits, generation above, so that a stale id names nothing.
    id: SocketId,
    /// `None` once closed and released (the slot is then free).
    fd: Option<OwnedFd>,
    local: Option<SocketAddr>,
    /// False after `close`; the descriptor stays until nothing in flight names it.
    open: bool,
    /// The multishot receive is in the kernel (or queued for it).
    recv_armed: bool,
    /// The receive waits to be armed (at bind, after it ended, after the pool ran dry).
    recv_wanted: bool,
    /// A one-shot readability poll is in the kernel (the socket is starved of slots).
    readable_armed: bool,
    /// Sends queued or in flight whose result has not come back.
    sends: u32,
}

impl Socket {
    fn vacant() -> Self {
        Self {
            id: SocketId(0),
            fd: None,
            local: None,
            open: false,
            recv_armed: false,
            recv_wanted: false,
            readable_armed: false,
            sends: 0,
        }
    }
}

/// A waker whose eventfd the ring polls.
#[derive(Debug)]
struct Watched {
    /// Held so that the eventfd stays open while polled.
    waker: Waker,
    armed: bool,
}

/// Rejects configurations the kernel interfaces cannot express.
fn validate(config: &DriverConfig) -> Result<(), DriverError> {
    config.validate()?;
    // On top of what every driver needs: buffer ids are 16 bits and lengths 32 bits.
    let problem = if config.rx_slots > recv::MAX_ENTRIES {
        Some("rx_slots must be in 1..=32768 (buffer ids are 16 bits)")
    } else if config.rx_slot_bytes > 1 << 30 || config.tx_slot_bytes > 1 << 30 {
        Some("rx_slot_bytes and tx_slot_bytes must be at most 1 GiB")
    } else if config.tx_slots > 1 << 24 {
        Some("tx_slots must be at most 16 Mi")
    } else {
        None
    };
    problem.map_or(Ok(()), |p| Err(DriverError::invalid_config(p)))
}

/// Errors of `io_uring_enter` after which trying again later is right: the timeout expired
/// (`ETIME`), a signal came (`EINTR`), or the completion queue is backed up (`EBUSY`, `EAGAIN`)
/// and draining it is the cure.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

/// Socket ids: index in the low bits, generation above.
const SOCKET_INDEX_BITS: u32 = 16;
const SOCKET_INDEX_MASK: u32 = (1 << SOCKET_INDEX_BITS) - 1;
/// The kernel's limit on completion queue entries.
const MAX_CQ_ENTRIES: usize = 1 << 17;
/// How long the SQPOLL thread spins without work before it sleeps (then `poll` must wake it).
const SQPOLL_IDLE_MS: u32 = 50;
/// Completions copied out of the ring at a time (on the stack).
const REAP_BATCH: usize = 128;
/// Datagrams read by `recvfrom` from one starved socket per `receive_starved`.
const SPILL_BATCH: usize = 64;
/// Tries to queue an entry when the submission queue is full.
const PUSH_ATTEMPTS: usize = 4;
/// Drop waits at most `SHUTDOWN_ROUNDS * SHUTDOWN_WAIT` for cancelled operations to complete.
const SHUTDOWN_ROUNDS: usize = 100;
const SHUTDOWN_WAIT: Duration = Duration::from_millis(10);
