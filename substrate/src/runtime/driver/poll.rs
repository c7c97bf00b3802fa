//! The `poll` driver: mio (epoll) readiness with `sendmmsg`/`recvmmsg` batching, for hosts where
//! io_uring is missing or disabled (containers often disable it). Same contract, fewer features:
//! sends are copies made by the kernel at `sendmmsg` time, so a transmit slot is free again (and
//! a gathered send's parts dropped) as soon as `poll` returns. A gathered send is one message of
//! the batch with an iovec per piece: the slot's bytes with the parts spliced in.
//!
//! Receiving tries `recvmmsg` on every socket at every poll before waiting, and waits on epoll
//! only when nothing was read or written. Sockets are registered edge-triggered: a datagram that
//! arrives after a read came back empty raises an edge that the next wait sees, so nothing is
//! missed between the last read and the wait.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::addr::RawAddr;
use super::{
    Driver, DriverConfig, DriverError, DriverKind, DriverStats, Received, SocketId, Wait, Waker,
    gather_iovecs,
};
use crate::proto::Gather;
use crate::runtime::buf::{COPIES, RxPool, TxArena, TxSlot};

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// Most datagrams read from one socket per `poll`, so one busy socket cannot starve the rest
/// of the duty cycle.
const MAX_READ_PER_POLL: usize = 1024;
const WAKE_TOKEN: Token = Token(usize::MAX);

#[derive(Debug)]
struct Socket {
    fd: OwnedFd,
    /// The last send hit EAGAIN: wait for a writable edge before trying again.
    blocked: bool,
}

#[derive(Debug)]
struct Pending {
    socket: SocketId,
    to: RawAddr,
    slot: TxSlot,
    len: usize,
    /// Spliced into the slot's bytes, sent from where they are; dropped once the kernel has
    /// them.
    gather: Gather,
}

impl Pending {
    /// The datagram's whole length.
    fn datagram_len(&self) -> usize {
        self.len + self.gather.bytes()
    }
}

/// The mio/epoll driver with `sendmmsg`/`recvmmsg` batching.
pub struct PollDriver {
    poll: Poll,
    events: Events,
    sockets: Vec<Option<Socket>>,
    rx: RxPool,
    tx: TxArena,
    queue: VecDeque<Pending>,
    waker: Option<Waker>,
    socket_buffer_bytes: usize,
    stats: DriverStats,
    // Batch scratch, kept to avoid allocating per poll.
    msgs: Vec<libc::mmsghdr>,
    /// Up to [`Gather::MAX_IOVECS`] per message, packed one message after another; each
    /// message header points at its first.
    iovs: Vec<libc::iovec>,
    addrs: Vec<RawAddr>,
    rx_msgs: Vec<libc::mmsghdr>,
    rx_iovs: Vec<libc::iovec>,
    rx_addrs: Vec<RawAddr>,
    /// Free pool slots set up as the next `recvmmsg` targets (shared by every socket).
    armed: Vec<u32>,
    /// Receive headers the kernel wrote in the last call, to reset before the next.
    rx_touched: usize,
    /// Consecutive reads that found data, on any socket.
    rx_streak: u32,
    /// The last read filled every armed slot: the socket may hold more.
    rx_more: bool,
    /// Moving average of datagrams per poll that found any, times 16.
    rx_average: u32,
    spill: Vec<u8>,
}

// SAFETY: the raw pointers in the batch headers point only into memory this driver owns (its
// own vectors, which never reallocate, and its pool arena) and are used only through `&mut self`;
// moving the driver to another thread moves that ownership with it.
unsafe impl Send for PollDriver {}

impl std::fmt::Debug for PollDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollDriver")
            .field("sockets", &self.sockets.iter().flatten().count())
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PollDriver {
    /// A driver with the pool and arena sizes of `config`.
    ///
    /// # Errors
    /// [`DriverError::Io`] if epoll cannot be set up.
    pub fn new(config: &DriverConfig) -> Result<Self, DriverError> {
        config.validate()?;
        let poll = Poll::new().map_err(|e| DriverError::io("epoll_create", e))?;
        let mut d = Self {
            poll,
            events: Events::with_capacity(256),
            sockets: Vec::new(),
            rx: RxPool::new(config.rx_slot_bytes, config.rx_slots)
                .with_copybreak(config.rx_copybreak_bytes),
            tx: TxArena::new(config.tx_slot_bytes, config.tx_slots),
            queue: VecDeque::new(),
            waker: None,
            socket_buffer_bytes: config.socket_buffer_bytes,
            stats: DriverStats::default(),
            // SAFETY: mmsghdr and iovec are plain C structs; all-zero is valid for both.
            msgs: vec![unsafe { std::mem::zeroed() }; BATCH],
            // SAFETY: as above.
            iovs: vec![unsafe { std::mem::zeroed() }; Gather::MAX_IOVECS * BATCH],
            addrs: vec![RawAddr::empty(); BATCH],
            // SAFETY: as above.
            rx_msgs: vec![unsafe { std::mem::zeroed() }; BATCH],
            // SAFETY: as above.
            rx_iovs: vec![unsafe { std::mem::zeroed() }; BATCH],
            rx_addrs: vec![RawAddr::empty(); BATCH],
            armed: Vec::with_capacity(BATCH),
            rx_touched: 0,
            rx_streak: 0,
            rx_more: false,
            rx_average: 0,
            spill: vec![0; config.rx_slot_bytes.max(64)],
        };
        // Receive headers point at their own iovec and address entries for the driver's life
        // (the vectors never grow, so their buffers never move).
        for i in 0..BATCH {
            let h = &mut d.rx_msgs[i].msg_hdr;
            h.msg_name = d.rx_addrs[i].as_mut_ptr().cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut d.rx_iovs[i];
            h.msg_iovlen = 1;
        }
        Ok(d)
    }

    fn socket(&self, id: SocketId) -> Option<&Socket> {
        self.sockets.get(id.0 as usize)?.as_ref()
    }

    /// Sends queued datagrams, in order, in `sendmmsg` batches of consecutive same-socket sends.
    fn flush(&mut self) -> usize {
        let mut done = 0;
        while let Some(first) = self.queue.front() {
            let socket = first.socket;
            let Some(fd) = self.socket(socket).map(|s| s.fd.as_raw_fd()) else {
                // Closed since queued: drop it.
                if let Some(p) = self.queue.pop_front() {
                    self.tx.release(p.slot);
                }
                continue;
            };
            if self.socket(socket).is_some_and(|s| s.blocked) {
                break;
            }
            let n = self
                .queue
                .iter()
                .take(BATCH)
                .take_while(|p| p.socket == socket)
                .count();
            let mut used = 0;
            for (i, p) in self.queue.iter().take(n).enumerate() {
                self.addrs[i] = p.to;
                // SAFETY: the slot is queued for this send, so nothing writes it until it is
                // released below, and `len` is at most the slot's size (`send_gather`).
                let written =
                    unsafe { std::slice::from_raw_parts(self.tx.slot_ptr(p.slot), p.len) };
                let pieces = gather_iovecs(written, &p.gather, &mut self.iovs[used..]);
                let h = &mut self.msgs[i].msg_hdr;
                h.msg_iov = &raw mut self.iovs[used];
                h.msg_iovlen = pieces;
                used += pieces;
            }
            for i in 0..n {
                let h = &mut self.msgs[i].msg_hdr;
                h.msg_name = self.addrs[i].as_mut_ptr().cast();
                h.msg_namelen = self.addrs[i].len;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            self.stats.syscalls += 1;
            // SAFETY: `msgs[..n]` point at `addrs`/`iovs` entries, transmit slots and gathered
            // parts that stay valid and unaliased for the duration of the call (the parts are
            // owned by the queued sends, which are popped only after it).
            let r = unsafe { libc::sendmmsg(fd, self.msgs.as_mut_ptr(), n as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    if let Some(Some(s)) = self.sockets.get_mut(socket.0 as usize) {
                        s.blocked = true;
                    }
                    break;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram is refused (unreachable, too big...): drop it, go on.
                self.stats.send_errors += 1;
                if let Some(p) = self.queue.pop_front() {
                    self.tx.release(p.slot);
                }
                done += 1;
                continue;
            }
            for _ in 0..r as usize {
                // The kernel has copied the datagram: the slot is free, the parts dropped.
                if let Some(p) = self.queue.pop_front() {
                    self.stats.datagrams_sent += 1;
                    self.stats.bytes_sent += p.datagram_len() as u64;
                    self.tx.release(p.slot);
                }
            }
            done += r as usize;
        }
        done
    }

    /// Reads what each socket holds, up to a cap per socket.
    fn receive<F: FnMut(Received)>(&mut self, sink: &mut F) -> usize {
        self.rx.reclaim(|_| false);
        let mut done = 0;
        for i in 0..self.sockets.len() {
            let Some(fd) = self.sockets[i].as_ref().map(|s| s.fd.as_raw_fd()) else {
                continue;
            };
            let id = SocketId(i as u32);
            let mut read = 0;
            while read < MAX_READ_PER_POLL {
                let got = if self.rx.free_count() == 0 && self.armed.is_empty() {
                    self.receive_spill(fd, id, sink)
                } else {
                    self.receive_batch(fd, id, sink)
                };
                read += got;
                if got == 0 || !self.rx_more {
                    break;
                }
            }
            if read > 0 {
                // Datagrams per read that found any, averaged (x16): runs of traffic batch.
                let r = read.min(1024) as u32 * 16;
                self.rx_average = (self.rx_average * 7 + r) / 8;
            }
            done += read;
        }
        done
    }

    /// One `recvmmsg` into free pool slots; returns datagrams read (0 when the socket is empty).
    /// Slots stay armed across calls, so an empty read costs only the system call.
    fn receive_batch<F: FnMut(Received)>(
        &mut self,
        fd: RawFd,
        id: SocketId,
        sink: &mut F,
    ) -> usize {
        let size = self.rx.slot_size();
        while self.armed.len() < BATCH {
            let Some(slot) = self.rx.take() else { break };
            let i = self.armed.len();
            self.armed.push(slot);
            self.rx_iovs[i] = libc::iovec {
                iov_base: self.rx.slot_ptr(slot).cast(),
                iov_len: size,
            };
        }
        let n = self.armed.len();
        if n == 0 {
            return 0;
        }
        // Headers point at fixed iovec and address entries (set up in `new`); the kernel
        // rewrote only the length fields of those the last call touched.
        for i in 0..self.rx_touched.min(n) {
            let h = &mut self.rx_msgs[i].msg_hdr;
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_flags = 0;
        }
        self.rx_touched = n.min(2);
        self.stats.syscalls += 1;
        // One plain `recvmsg` first: an empty socket (the common case when spinning) then costs
        // what a `recvfrom` costs, not the heavier `recvmmsg` set-up.
        // SAFETY: the header points at an armed pool slot of `size` bytes and an address buffer,
        // all valid and owned by this driver for the duration of the call.
        let r = unsafe { libc::recvmsg(fd, &raw mut self.rx_msgs[0].msg_hdr, libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                self.stats.recv_errors += 1;
            }
            self.rx_streak = 0;
            return 0;
        }
        self.rx_msgs[0].msg_len = r as u32;
        let mut got = 1;
        // A lone datagram after an empty read (a request, a reply) is handled at once; the
        // socket is read again next cycle. Only a run of reads that all found data pays for a
        // batch: otherwise every reply would cost a second, empty system call.
        self.rx_streak = self.rx_streak.saturating_add(1);
        self.rx_more = self.rx_streak >= 2 || self.rx_average >= 24;
        if n > 1 && self.rx_more {
            self.stats.syscalls += 1;
            // SAFETY: as above, for every armed entry after the first.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.rx_msgs[1..].as_mut_ptr(),
                    (n - 1) as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r > 0 {
                got += r as usize;
            }
            self.rx_more = got == n;
            self.rx_touched = (got + 1).min(n);
        }
        for i in 0..got {
            let slot = self.armed[i];
            let len = self.rx_msgs[i].msg_len as usize;
            let truncated = self.rx_msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.rx_addrs[i].len = self.rx_msgs[i].msg_hdr.msg_namelen;
            match self.rx_addrs[i].to_socket_addr() {
                Some(from) if !truncated => {
                    self.stats.datagrams_received += 1;
                    self.stats.bytes_received += len as u64;
                    let datagram = self.rx.deliver(slot, 0, len);
                    sink(Received {
                        socket: id,
                        from,
                        datagram,
                    });
                }
                _ => {
                    self.stats.truncated += u64::from(truncated);
                    self.rx.give_back(slot);
                }
            }
        }
        // The unused armed slots move to the front, keeping their iovecs.
        self.armed.drain(..got);
        self.rx_iovs.copy_within(got..n, 0);
        got
    }

    /// Every slot is lent out: read one datagram into scratch memory and copy it (counted).
    fn receive_spill<F: FnMut(Received)>(
        &mut self,
        fd: RawFd,
        id: SocketId,
        sink: &mut F,
    ) -> usize {
        let mut from = RawAddr::empty();
        self.stats.syscalls += 1;
        // SAFETY: reads into our scratch buffer and address storage, both valid and exclusive.
        let r = unsafe {
            libc::recvfrom(
                fd,
                self.spill.as_mut_ptr().cast(),
                self.spill.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                from.as_mut_ptr(),
                &raw mut from.len,
            )
        };
        if r < 0 {
            return 0;
        }
        self.stats.rx_pool_exhausted += 1;
        let len = r as usize;
        if len > self.spill.len() {
            self.stats.truncated += 1;
            return 1;
        }
        if let Some(from) = from.to_socket_addr() {
            self.stats.datagrams_received += 1;
            self.stats.bytes_received += len as u64;
            COPIES
                .rx_fallback_bytes
                .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
            let datagram = Bytes::copy_from_slice(&self.spill[..len]);
            sink(Received {
                socket: id,
                from,
                datagram,
            });
        }
        1
    }

    /// Waits on epoll up to `timeout`; returns whether the waker fired (its wake is consumed).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, DriverError> {
        self.stats.syscalls += 1;
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(DriverError::io("epoll_wait", e)),
        }
        let mut woken = false;
        for ev in &self.events {
            if ev.token() == WAKE_TOKEN {
                if let Some(w) = &self.waker {
                    Waker::drain(w.raw_fd());
                    woken = true;
                }
            } else if ev.is_writable() {
                if let Some(Some(s)) = self.sockets.get_mut(ev.token().0) {
                    s.blocked = false;
                }
            }
        }
        Ok(woken)
    }
}

impl Driver for PollDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Poll
    }

    fn bind(&mut self, addr: SocketAddr) -> Result<SocketId, DriverError> {
        let fd = super::open_socket(addr, self.socket_buffer_bytes)?;
        let i = self
            .sockets
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.sockets.len());
        let raw = fd.as_raw_fd();
        self.poll
            .registry()
            .register(
                &mut SourceFd(&raw),
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| DriverError::io("epoll_ctl", e))?;
        let s = Socket { fd, blocked: false };
        if i == self.sockets.len() {
            self.sockets.push(Some(s));
        } else {
            self.sockets[i] = Some(s);
        }
        Ok(SocketId(i as u32))
    }

    fn local_addr(&self, socket: SocketId) -> Option<SocketAddr> {
        super::socket_addr(self.socket(socket)?.fd.as_raw_fd())
    }

    fn close(&mut self, socket: SocketId) {
        if let Some(s) = self
            .sockets
            .get_mut(socket.0 as usize)
            .and_then(Option::take)
        {
            let raw = s.fd.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
        }
        let tx = &mut self.tx;
        self.queue.retain(|p| {
            let keep = p.socket != socket;
            if !keep {
                tx.release(p.slot);
            }
            keep
        });
    }

    fn tx_acquire(&mut self) -> Option<(TxSlot, &mut [u8])> {
        self.tx.acquire()
    }

    fn tx_abandon(&mut self, slot: TxSlot) {
        self.tx.release(slot);
    }

    fn send_gather(
        &mut self,
        socket: SocketId,
        to: SocketAddr,
        slot: TxSlot,
        len: usize,
        gather: Gather,
    ) {
        let len = len.min(self.tx.slot_size());
        self.queue.push_back(Pending {
            socket,
            to: RawAddr::from_socket_addr(to),
            slot,
            len,
            gather,
        });
    }

    fn poll<F: FnMut(Received)>(&mut self, wait: Wait, mut sink: F) -> Result<usize, DriverError> {
        // A blocked socket is unblocked by its writable edge, which only `wait` reads: look for
        // it now, or a shard that never waits (busy spin, invoker mode, steady work) would never
        // send on that socket again. That look consumes a pending wake too, so a wake seen here
        // counts as work: the shard has something in its rings, and must not wait below.
        let mut woken = false;
        if self.sockets.iter().flatten().any(|s| s.blocked) {
            woken = self.wait(std::time::Duration::ZERO)?;
        }
        let mut work = self.flush() + self.receive(&mut sink) + usize::from(woken);
        if work == 0 {
            if let Wait::For(d) = wait {
                self.wait(d)?;
                work = self.flush() + self.receive(&mut sink);
            }
        }
        Ok(work)
    }

    fn watch(&mut self, waker: &Waker) -> Result<(), DriverError> {
        let raw = waker.raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&raw), WAKE_TOKEN, Interest::READABLE)
            .map_err(|e| DriverError::io("epoll_ctl", e))?;
        self.waker = Some(waker.clone());
        Ok(())
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_consumed_while_unblocking_a_socket_ends_the_poll() {
        let mut d = PollDriver::new(&DriverConfig::default()).expect("driver");
        let waker = Waker::new().expect("waker");
        d.watch(&waker).expect("watch");
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        // As after a send that hit EAGAIN, with the application's wake already pending.
        if let Some(Some(sock)) = d.sockets.get_mut(s.0 as usize) {
            sock.blocked = true;
        }
        waker.wake();
        // Before the fix the zero-timeout look drained the wake and this waited the whole
        // minute with nothing to end it, then reported no work.
        let work = d
            .poll(Wait::For(std::time::Duration::from_secs(60)), |_| {})
            .expect("poll");
        assert!(
            work > 0,
            "the wake was consumed and the poll went on to wait"
        );
    }

    #[test]
    fn a_blocked_socket_sends_again_without_waiting() {
        let mut d = PollDriver::new(&DriverConfig::default()).expect("driver");
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_nonblocking(true).expect("nonblocking");
        // As after a send that hit EAGAIN: the writable edge that ends it is pending in epoll.
        if let Some(Some(sock)) = d.sockets.get_mut(s.0 as usize) {
            sock.blocked = true;
        }
        let (slot, buf) = d.tx_acquire().expect("slot");
        buf[..5].copy_from_slice(b"hello");
        d.send(s, peer.local_addr().expect("addr"), slot, 5);
        let mut got = [0u8; 16];
        for _ in 0..100 {
            d.poll(Wait::No, |_| {}).expect("poll");
            if let Ok(n) = peer.recv(&mut got) {
                assert_eq!(&got[..n], b"hello");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("the queued datagram never left a socket that was blocked once");
    }

    #[test]
    fn a_gathered_send_arrives_whole_and_its_tail_is_released_once_sent() {
        use std::sync::atomic::Ordering;
        let mut d = PollDriver::new(&DriverConfig::default()).expect("driver");
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_nonblocking(true).expect("nonblocking");
        let to = peer.local_addr().expect("addr");
        let body: Vec<u8> = (0..3_000u32).map(|i| (i * 13) as u8).collect();
        let (tail, released) = crate::runtime::driver::watched_bytes(body.clone());
        // The same tail goes in two datagrams, the first after its head, the second twice,
        // between and after its written bytes, and one plain send between them (a batch mixes
        // messages of one to four iovecs).
        for (i, head) in [&b"first head "[..], b"plain", b"second"]
            .into_iter()
            .enumerate()
        {
            let (slot, buf) = d.tx_acquire().expect("slot");
            buf[..head.len()].copy_from_slice(head);
            let mut gather = Gather::new();
            match i {
                0 => gather.push(head.len(), tail.clone()),
                1 => {}
                _ => {
                    gather.push(3, tail.clone());
                    gather.push(head.len(), tail.clone());
                }
            }
            d.send_gather(s, to, slot, head.len(), gather);
        }
        drop(tail);
        assert!(
            !released.load(Ordering::SeqCst),
            "queued sends hold their tails"
        );
        d.poll(Wait::No, |_| {}).expect("poll");
        assert!(
            released.load(Ordering::SeqCst),
            "the tails are dropped once the kernel has the datagrams"
        );
        let mut got = Vec::new();
        let mut buf = [0u8; 8_192];
        for _ in 0..1000 {
            if let Ok(n) = peer.recv(&mut buf) {
                got.push(buf[..n].to_vec());
                if got.len() == 3 {
                    break;
                }
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let second = [&b"sec"[..], &body, b"ond", &body].concat();
        assert_eq!(
            got,
            vec![
                [&b"first head "[..], &body].concat(),
                b"plain".to_vec(),
                second
            ]
        );
        assert_eq!(d.stats().bytes_sent, (11 + 5 + 6 + 3 * 3_000) as u64);
        assert_eq!(d.stats().datagrams_sent, 3);
    }

    #[test]
    fn a_send_dropped_with_its_socket_releases_its_tail() {
        use std::sync::atomic::Ordering;
        let mut d = PollDriver::new(&DriverConfig::default()).expect("driver");
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let (tail, released) = crate::runtime::driver::watched_bytes(vec![1; 100]);
        let (slot, _) = d.tx_acquire().expect("slot");
        d.send_gather(
            s,
            SocketAddr::from(([127, 0, 0, 1], 9)),
            slot,
            1,
            Gather::tail(0, tail),
        );
        assert!(!released.load(Ordering::SeqCst));
        d.close(s);
        assert!(released.load(Ordering::SeqCst));
    }
}
