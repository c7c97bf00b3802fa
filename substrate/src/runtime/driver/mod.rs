//! Drivers: the I/O back ends of a shard, behind one contract.
//!
//! # The contract every driver meets
//! - **Sockets.** [`Driver::bind`] opens a non-blocking UDP socket with large kernel buffers and
//!   names it by a [`SocketId`]; [`Driver::close`] closes it, dropping what it still queues.
//! - **Transmit.** The driver owns a transmit arena of fixed slots (registered with the kernel
//!   where the driver can use that). [`Driver::tx_acquire`] lends a free slot to write one
//!   datagram into; [`Driver::send_gather`] queues it; the slot is busy until the kernel is done
//!   with it (for a zero-copy send, until its notification), then free again. Sends are queued,
//!   not performed: they reach the kernel at the next [`Driver::poll`], as one batch. A send that
//!   fails is counted in [`DriverStats::send_errors`] and its slot freed: UDP may drop, and the
//!   protocol above repairs.
//! - **Gather.** A send may carry gathered parts (a protocol's [`Transmit::gather`]): the
//!   datagram on the wire is the slot's first `len` bytes with the parts spliced in at their
//!   places, each sent from where it is (one `sendmsg` with an iovec per piece, at most
//!   [`Gather::MAX_IOVECS`]), never copied by the driver. The driver holds the parts exactly as
//!   long as the slot (until the kernel is done with the send, its notification included) and
//!   drops them with the slot, whether the send succeeded, failed or was dropped (socket
//!   closed, fault injection). Zero-copy is decided on the whole datagram's length. The per-send
//!   kernel structures (message header, iovecs, address) live in per-slot storage that only
//!   grows, so a gather send allocates nothing once warm.
//!
//! [`Transmit::gather`]: crate::proto::Transmit::gather
//! - **Receive.** The driver owns a receive pool. Datagrams are handed to the sink of
//!   [`Driver::poll`] as `Bytes` views of the pool slot the kernel wrote; the slot returns when
//!   the last view drops, on any thread. When every slot is lent out the driver copies rather
//!   than stall (counted in [`crate::runtime::buf::COPIES`]) or, if it cannot, leaves datagrams
//!   in the socket buffer; it never blocks on the application.
//! - **Poll.** [`Driver::poll`] submits the queued sends, reaps completions and received
//!   datagrams, and waits up to [`Wait`] only if there was nothing to do. It returns how much it
//!   did (0 = idle), which the idle strategy uses. A [`Waker`] registered with
//!   [`Driver::watch`] ends a wait early from another thread.
//! - **No locks, no allocation per datagram, no blocking outside `poll`'s wait.**
//!
//! The driver is chosen at start-up by [`select`]: `uring` if the kernel has every io_uring
//! feature it uses (probed, not assumed), else `poll` with one log line naming what was missing.
//! `PHYLA_DRIVER=uring|poll` or the node configuration forces a choice.

pub(crate) mod addr;
pub mod fault;
pub mod poll;
pub mod uring;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use crate::proto::Gather;
use crate::runtime::buf::TxSlot;
use crate::time::Duration;

/// A socket of one driver.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct SocketId(pub(crate) u32);

/// One received datagram.
#[derive(Debug)]
pub struct Received {
    /// The socket it arrived on.
    pub socket: SocketId,
    /// Who sent it.
    pub from: SocketAddr,
    /// The datagram, a view of the receive slot the kernel wrote.
    pub datagram: Bytes,
}

/// How long [`Driver::poll`] may wait when it finds nothing to do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Wait {
    /// Do not wait.
    No,
    /// Wait at most this long.
    For(Duration),
}

/// Which driver.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum DriverKind {
    /// io_uring.
    Uring,
    /// mio readiness with `sendmmsg`/`recvmmsg`.
    Poll,
}

impl DriverKind {
    /// The name used in configuration, `PHYLA_DRIVER` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Poll => "poll",
        }
    }

    /// Parses `uring` or `poll`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "uring" => Some(Self::Uring),
            "poll" => Some(Self::Poll),
            _ => None,
        }
    }
}

/// Sizes and switches of a driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Receive slots (each holds one datagram; held while the application holds a message).
    pub rx_slots: usize,
    /// Bytes per receive slot: the largest datagram accepted.
    pub rx_slot_bytes: usize,
    /// Transmit slots (datagrams queued or in flight at once).
    pub tx_slots: usize,
    /// Bytes per transmit slot: the largest datagram sent.
    pub tx_slot_bytes: usize,
    /// `SO_RCVBUF`/`SO_SNDBUF` asked for (root may exceed the sysctl limits).
    pub socket_buffer_bytes: usize,
    /// io_uring: datagrams of at least this many bytes go by zero-copy send (`usize::MAX` off).
    /// Measured crossover (see `driver/uring/mod.rs`): 8 KiB, for datagrams that leave the host
    /// and fit the interface MTU.
    pub zero_copy_min_bytes: usize,
    /// io_uring: use zero-copy send to loopback destinations too. Off by default: the kernel
    /// copies loopback sends anyway, and zero-copy then loses 5-25 % (measured).
    pub zero_copy_loopback: bool,
    /// io_uring: a kernel thread polls the submission queue (SQPOLL), sparing `io_uring_enter`.
    pub sqpoll: bool,
    /// Received datagrams shorter than this are copied out of their slot, which is free again at
    /// once (as network drivers do with small packets: "copybreak"). A slot is held while any
    /// message in it is, so with large slots a few short datagrams kept for long (cached,
    /// reordered) would hold the whole pool; copying them costs less than the system calls that
    /// large datagrams save. 0 (the default) never copies. Counted in
    /// [`COPIES`](crate::runtime::buf::COPIES)`.rx_copybreak_bytes`.
    pub rx_copybreak_bytes: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            rx_slots: 1024,
            rx_slot_bytes: 65_536,
            tx_slots: 256,
            tx_slot_bytes: 65_536,
            socket_buffer_bytes: 8 << 20,
            zero_copy_min_bytes: 8 * 1024,
            zero_copy_loopback: false,
            sqpoll: false,
            rx_copybreak_bytes: 0,
        }
    }
}

impl DriverConfig {
    /// Largest arena (slots times slot size) a driver maps, per direction.
    pub const MAX_ARENA_BYTES: u64 = 64 << 30;

    /// Checks the sizes every driver relies on, so that a bad configuration is a typed error at
    /// start-up, never an overflow or a failed mapping later.
    ///
    /// # Errors
    /// [`DriverError::Io`] with `InvalidInput`, naming the setting.
    pub fn validate(&self) -> Result<(), DriverError> {
        let arena = |slots: usize, bytes: usize| (slots as u64).checked_mul(bytes as u64);
        let problem = if self.rx_slots == 0 || self.tx_slots == 0 {
            Some("rx_slots and tx_slots must be at least 1")
        } else if self.rx_slot_bytes < 64 || self.tx_slot_bytes < 64 {
            Some("rx_slot_bytes and tx_slot_bytes must be at least 64")
        } else if arena(self.rx_slots, self.rx_slot_bytes).is_none_or(|b| b > Self::MAX_ARENA_BYTES)
        {
            Some("rx_slots x rx_slot_bytes must be at most 64 GiB")
        } else if arena(self.tx_slots, self.tx_slot_bytes).is_none_or(|b| b > Self::MAX_ARENA_BYTES)
        {
            Some("tx_slots x tx_slot_bytes must be at most 64 GiB")
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(DriverError::invalid_config(p)))
    }
}

/// Counters of one driver.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct DriverStats {
    /// Datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// Bytes handed to the kernel.
    pub bytes_sent: u64,
    /// Datagrams sent by zero-copy send.
    pub zero_copy_sends: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Sends the kernel refused (the datagram is lost; the protocol repairs).
    pub send_errors: u64,
    /// Receive errors (other than "nothing to read").
    pub recv_errors: u64,
    /// Received datagrams cut short because they exceeded a slot (dropped).
    pub truncated: u64,
    /// Times every receive slot was lent out.
    pub rx_pool_exhausted: u64,
    /// System calls made (`io_uring_enter`, `sendmmsg`, `recvmmsg`, `epoll_wait`).
    pub syscalls: u64,
}

/// Errors of drivers, typed so that the operator learns what to change.
#[derive(Debug, Error)]
pub enum DriverError {
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Registering buffers needs more locked memory than `RLIMIT_MEMLOCK` allows.
    #[error(
        "io_uring buffer registration needs {need} bytes of locked memory but RLIMIT_MEMLOCK is \
         {have} bytes: raise it (`ulimit -l {need_kib}`, or LimitMEMLOCK= in the systemd unit), \
         run with CAP_IPC_LOCK, or shrink tx_slots/tx_slot_bytes"
    )]
    MemLock {
        /// The limit the process has, in bytes.
        have: u64,
        /// What Phyla needs, in bytes.
        need: u64,
        /// `need` in KiB, as `ulimit -l` takes it.
        need_kib: u64,
    },
    /// The kernel lacks an io_uring feature this driver uses.
    #[error("io_uring lacks {feature}")]
    Unsupported {
        /// The missing feature.
        feature: &'static str,
    },
    /// No such socket.
    #[error("no socket {0:?}")]
    NoSocket(SocketId),
}

impl DriverError {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Self::Io { op, source }
    }

    /// A configuration a driver cannot run with; `problem` names the setting and its bounds.
    pub(crate) fn invalid_config(problem: &'static str) -> Self {
        Self::io(
            "configuration",
            io::Error::new(io::ErrorKind::InvalidInput, problem),
        )
    }
}

/// What every driver provides (see the module doc for the contract).
pub trait Driver {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;

    /// Opens a UDP socket bound to `addr`.
    ///
    /// # Errors
    /// [`DriverError::Io`] if the socket cannot be made or bound.
    fn bind(&mut self, addr: SocketAddr) -> Result<SocketId, DriverError>;

    /// Where a socket is bound.
    fn local_addr(&self, socket: SocketId) -> Option<SocketAddr>;

    /// Closes a socket; queued sends on it are dropped.
    fn close(&mut self, socket: SocketId);

    /// A free transmit slot and its memory, or `None` while every slot is in flight.
    fn tx_acquire(&mut self) -> Option<(TxSlot, &mut [u8])>;

    /// Frees a slot acquired but not sent.
    fn tx_abandon(&mut self, slot: TxSlot);

    /// Queues the datagram of the first `len` bytes of `slot` with the parts of `gather`
    /// spliced in (see [`Gather::segments`]) to `to` from `socket`. The driver keeps the parts
    /// until the kernel is done with the send, then drops them (see "Gather" in the module doc).
    fn send_gather(
        &mut self,
        socket: SocketId,
        to: SocketAddr,
        slot: TxSlot,
        len: usize,
        gather: Gather,
    );

    /// Queues the first `len` bytes of `slot` to `to` from `socket`: [`send_gather`] without
    /// gathered parts.
    ///
    /// [`send_gather`]: Self::send_gather
    fn send(&mut self, socket: SocketId, to: SocketAddr, slot: TxSlot, len: usize) {
        self.send_gather(socket, to, slot, len, Gather::new());
    }

    /// Submits queued sends, reaps completions, hands received datagrams to `sink`; waits up
    /// to `wait` only when nothing was ready. Returns the work done (0 = idle).
    ///
    /// # Errors
    /// [`DriverError::Io`] if the driver itself failed (not a single datagram's error).
    fn poll<F: FnMut(Received)>(&mut self, wait: Wait, sink: F) -> Result<usize, DriverError>;

    /// Makes `waker` end this driver's waits.
    ///
    /// # Errors
    /// [`DriverError::Io`] if it cannot be registered.
    fn watch(&mut self, waker: &Waker) -> Result<(), DriverError>;

    /// Counters.
    fn stats(&self) -> DriverStats;
}

/// Ends a driver's wait from another thread (an eventfd).
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// A new waker.
    ///
    /// # Errors
    /// [`DriverError::Io`] if no eventfd can be made.
    pub fn new() -> Result<Self, DriverError> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(DriverError::io("eventfd", io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Self { fd })
    }

    /// Wakes the driver (cheap if it is not waiting: one write to a counter).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd; failure (counter full) means a
        // wake is already pending, which is all we want.
        unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Clears pending wakes (called by the driver after a wake ended its wait).
    pub(crate) fn drain(fd: RawFd) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from a non-blocking eventfd.
        unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
    }

    /// The descriptor to watch.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// How the driver was chosen, for the one log line and the node's report.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Selection {
    /// The driver to use.
    pub kind: DriverKind,
    /// Why (forced by configuration or the environment, or the probe's finding).
    pub reason: String,
}

/// Chooses the driver: `forced` (configuration) first, then `PHYLA_DRIVER`, then the probe.
///
/// # Errors
/// A message if `PHYLA_DRIVER` names no driver.
pub fn select(forced: Option<DriverKind>) -> Result<Selection, String> {
    select_with(forced, std::env::var("PHYLA_DRIVER").ok(), uring::probe)
}

/// [`select`] with the environment and the probe passed in, so that every branch is testable.
fn select_with(
    forced: Option<DriverKind>,
    env: Option<String>,
    probe: impl FnOnce() -> Result<(), DriverError>,
) -> Result<Selection, String> {
    if let Some(kind) = forced {
        return Ok(Selection {
            kind,
            reason: "configured".into(),
        });
    }
    if let Some(v) = env {
        let kind = DriverKind::parse(&v)
            .ok_or_else(|| format!("PHYLA_DRIVER={v:?}: expected `uring` or `poll`"))?;
        return Ok(Selection {
            kind,
            reason: "PHYLA_DRIVER".into(),
        });
    }
    Ok(match probe() {
        Ok(()) => Selection {
            kind: DriverKind::Uring,
            reason: "probe: every io_uring feature present".into(),
        },
        Err(e) => Selection {
            kind: DriverKind::Poll,
            reason: format!("probe: {e}; falling back to poll"),
        },
    })
}

/// Opens a non-blocking UDP socket for a driver: large buffers, bound to `addr`.
pub(crate) fn open_socket(addr: SocketAddr, buffer_bytes: usize) -> Result<OwnedFd, DriverError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(addr);
    let s = Socket::new(
        domain,
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )
    .map_err(|e| DriverError::io("socket", e))?;
    // Root may exceed net.core.{r,w}mem_max with the FORCE variants; others get what is allowed.
    set_buffer(&s, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer_bytes);
    set_buffer(&s, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, buffer_bytes);
    s.bind(&addr.into())
        .map_err(|e| DriverError::io("bind", e))?;
    Ok(s.into())
}

fn set_buffer(s: &socket2::Socket, force: libc::c_int, plain: libc::c_int, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [force, plain] {
        // SAFETY: setsockopt with a valid int option value and its size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const v).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// Writes the iovecs of a datagram to the start of `iovs` and returns how many: the pieces of
/// [`Gather::segments`] (the written bytes with the parts spliced in, in wire order). `iovs`
/// must hold `2 * gather.parts() + 1` (at most [`Gather::MAX_IOVECS`]). The iovecs point at
/// `written` and at the parts' memory: they are valid while both are.
pub(crate) fn gather_iovecs(written: &[u8], gather: &Gather, iovs: &mut [libc::iovec]) -> usize {
    let mut n = 0;
    for piece in gather.segments(written) {
        // The kernel only reads through a send's iovec; `*mut` is what the C type asks for.
        iovs[n] = libc::iovec {
            iov_base: piece.as_ptr().cast_mut().cast(),
            iov_len: piece.len(),
        };
        n += 1;
    }
    n
}

/// The address a socket is bound to.
pub(crate) fn socket_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: a borrowed descriptor we own; `SockRef` does not close it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd).local_addr().ok()?.as_socket()
}

/// A `Bytes` whose memory's release can be observed: the flag turns true when the last view of
/// it drops. For tests that check a driver lets go of gathered parts.
#[cfg(test)]
pub(crate) fn watched_bytes(data: Vec<u8>) -> (Bytes, Arc<std::sync::atomic::AtomicBool>) {
    struct Owner(Vec<u8>, Arc<std::sync::atomic::AtomicBool>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    (Bytes::from_owner(Owner(data, dropped.clone())), dropped)
}

#[cfg(test)]
mod tests {
    use super::poll::PollDriver;
    use super::*;
    use crate::runtime::buf::COPIES;

    fn present() -> Result<(), DriverError> {
        Ok(())
    }

    fn missing() -> Result<(), DriverError> {
        Err(DriverError::Unsupported { feature: "SendZc" })
    }

    #[test]
    fn configuration_beats_the_environment_which_beats_the_probe() {
        let s = select_with(Some(DriverKind::Poll), Some("uring".into()), present);
        assert_eq!(s.map(|s| s.kind), Ok(DriverKind::Poll));
        let s = select_with(None, Some(" poll".into()), present);
        assert_eq!(s.map(|s| s.kind), Ok(DriverKind::Poll));
        let s = select_with(None, None, present);
        assert_eq!(s.map(|s| s.kind), Ok(DriverKind::Uring));
    }

    #[test]
    fn a_missing_feature_falls_back_to_poll_and_is_named() {
        let s = select_with(None, None, missing).expect("a fallback, not an error");
        assert_eq!(s.kind, DriverKind::Poll);
        assert!(s.reason.contains("SendZc"), "{}", s.reason);
    }

    #[test]
    fn absurd_sizes_are_refused_before_anything_is_mapped() {
        assert!(DriverConfig::default().validate().is_ok());
        let huge = DriverConfig {
            rx_slots: usize::MAX / 2,
            ..DriverConfig::default()
        };
        let e = huge.validate().expect_err("refused");
        assert!(e.to_string().contains("rx_slots x rx_slot_bytes"), "{e}");
        let empty = DriverConfig {
            tx_slots: 0,
            ..DriverConfig::default()
        };
        assert!(empty.validate().is_err());
        assert!(
            PollDriver::new(&huge).is_err(),
            "the poll driver checks too"
        );
    }

    /// With a copybreak, short datagrams arrive as copies and leave their slot free, so a pool
    /// of four slots takes forty short datagrams held at once; long ones are still views, and
    /// hold their slots. On each driver.
    fn copybreak_frees_slots_of_short_datagrams<D: Driver>(mut d: D) {
        use std::sync::atomic::Ordering;
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let to = d.local_addr(s).expect("bound");
        let copied_before = COPIES.rx_copybreak_bytes.load(Ordering::Relaxed);
        let send = |d: &mut D, len: usize, tag: u8| {
            let (slot, buf) = d.tx_acquire().expect("a slot");
            buf[..len].fill(tag);
            d.send(s, to, slot, len);
        };
        let mut held = Vec::new();
        let receive = |d: &mut D, held: &mut Vec<Bytes>, want: usize| {
            for _ in 0..500 {
                d.poll(Wait::For(Duration::from_millis(2)), |r| {
                    held.push(r.datagram)
                })
                .expect("poll");
                if held.len() >= want {
                    return;
                }
            }
            panic!("{} of {want} datagrams arrived", held.len());
        };
        for i in 0..40u8 {
            send(&mut d, 100, i);
            receive(&mut d, &mut held, usize::from(i) + 1);
        }
        for (i, b) in held.iter().enumerate() {
            assert!(
                b.len() == 100 && b.iter().all(|&x| x == i as u8),
                "datagram {i}"
            );
        }
        let copied = COPIES.rx_copybreak_bytes.load(Ordering::Relaxed) - copied_before;
        assert!(copied >= 40 * 100, "{copied} bytes counted");
        assert_eq!(
            d.stats().rx_pool_exhausted,
            0,
            "short datagrams held no slot"
        );
        // Long datagrams are lent: four fill the pool, whatever short ones are held.
        for i in 0..4u8 {
            send(&mut d, 1_000, 100 + i);
            receive(&mut d, &mut held, 41 + usize::from(i));
        }
        assert!(held[40..].iter().all(|b| b.len() == 1_000));
        assert_eq!(d.stats().truncated, 0);
    }

    fn small_pool() -> DriverConfig {
        DriverConfig {
            rx_slots: 4,
            rx_slot_bytes: 2_048,
            tx_slots: 8,
            tx_slot_bytes: 2_048,
            rx_copybreak_bytes: 512,
            ..DriverConfig::default()
        }
    }

    #[test]
    fn copybreak_frees_slots_of_short_datagrams_on_poll() {
        copybreak_frees_slots_of_short_datagrams(PollDriver::new(&small_pool()).expect("poll"));
    }

    #[test]
    fn copybreak_frees_slots_of_short_datagrams_on_uring() {
        let d = uring::UringDriver::new(&small_pool()).expect("uring");
        copybreak_frees_slots_of_short_datagrams(d);
    }

    #[test]
    fn a_bad_phyla_driver_is_a_clear_error() {
        let e = select_with(None, Some("epoll".into()), present).expect_err("refused");
        assert!(e.contains("PHYLA_DRIVER") && e.contains("epoll"), "{e}");
    }
}
