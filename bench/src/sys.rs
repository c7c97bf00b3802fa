//! The few system calls std does not offer: forced socket buffers, `recv` with flags,
//! `sendmmsg`/`recvmmsg` batches and `uname`.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

/// Sets a socket buffer (`SO_RCVBUF` or `SO_SNDBUF`) to `bytes`, first with the `*FORCE` option
/// that root may use past `net.core.[rw]mem_max`, then the plain one. Returns the size the kernel
/// reports afterwards (it doubles the request for its own bookkeeping) and whether the force
/// worked.
pub(crate) fn set_socket_buffer(
    fd: RawFd,
    receive: bool,
    bytes: usize,
) -> io::Result<(usize, bool)> {
    let (force, plain) = if receive {
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)
    } else {
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)
    };
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let forced = setsockopt_int(fd, force, value).is_ok();
    if !forced {
        setsockopt_int(fd, plain, value)?;
    }
    let mut actual: libc::c_int = 0;
    let mut length = socklen_of::<libc::c_int>();
    // SAFETY: `actual` and `length` are valid for writes and `length` is the size of `actual`.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            plain,
            (&raw mut actual).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((usize::try_from(actual).unwrap_or(0), forced))
}

/// `recv(2)` with flags (e.g. `MSG_DONTWAIT`) on a connected socket.
pub(crate) fn recv(fd: RawFd, buffer: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buffer`, which is valid for writes.
    let received = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), flags) };
    usize::try_from(received).map_err(|_| io::Error::last_os_error())
}

/// `count` copies of one payload, ready for `sendmmsg(2)` on a connected socket.
#[derive(Debug)]
pub(crate) struct SendBatch {
    // The headers point into `iovecs`, which point into `payload`: all three live on the heap and
    // are never resized after construction, so the pointers stay valid while `self` lives.
    payload: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// A batch of `count` datagrams, each carrying `payload`.
    pub(crate) fn new(count: usize, payload: Vec<u8>) -> Self {
        let mut batch = Self {
            payload,
            iovecs: Vec::new(),
            headers: Vec::new(),
        };
        let base = batch.payload.as_mut_ptr();
        batch.iovecs = (0..count)
            .map(|_| libc::iovec {
                iov_base: base.cast(),
                iov_len: batch.payload.len(),
            })
            .collect();
        batch.headers = batch.iovecs.iter_mut().map(header).collect();
        batch
    }

    /// Sends the whole batch once; returns how many datagrams the kernel took.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        let count = libc::c_uint::try_from(self.headers.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `headers` holds `count` initialised entries whose iovecs point into `payload`
        // (see the field comment); the kernel only reads them and writes `msg_len`.
        let sent = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), count, 0) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }
}

/// `count` receive buffers of `size` bytes for `recvmmsg(2)`.
#[derive(Debug)]
pub(crate) struct RecvBatch {
    // As in `SendBatch`: heap storage that is never resized, so the pointers stay valid.
    buffers: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    /// `count` buffers of `size` bytes each.
    pub(crate) fn new(count: usize, size: usize) -> Self {
        let mut batch = Self {
            buffers: vec![0; count * size],
            iovecs: Vec::new(),
            headers: Vec::new(),
        };
        batch.iovecs = batch
            .buffers
            .chunks_exact_mut(size)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: size,
            })
            .collect();
        batch.headers = batch.iovecs.iter_mut().map(header).collect();
        batch
    }

    /// Receives up to a batch with `MSG_WAITFORONE` (block for the first datagram, then take what
    /// is queued); returns how many datagrams arrived. A timeout set with `SO_RCVTIMEO` shows as
    /// `WouldBlock`.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let count = libc::c_uint::try_from(self.headers.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `headers` holds `count` entries whose iovecs point into `buffers` (see the field
        // comment), valid for writes of `iov_len` bytes each; a null timeout is allowed.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                count,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(received).map_err(|_| io::Error::last_os_error())
    }

    /// Bytes in the `index`-th datagram of the last receive.
    pub(crate) fn len(&self, index: usize) -> usize {
        self.headers
            .get(index)
            .map_or(0, |header| header.msg_len as usize)
    }
}

/// Kernel name, release and machine as `uname -srm` prints them, and the kernel's build string
/// (`uname -v`).
pub(crate) fn uname() -> Option<(String, String)> {
    // SAFETY: `utsname` is plain old data; all-zero is a valid value.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `names` is valid for writes of a whole `utsname`.
    if unsafe { libc::uname(&mut names) } != 0 {
        return None;
    }
    let field = |chars: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(chars.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    let kernel = format!(
        "{} {} {}",
        field(&names.sysname),
        field(&names.release),
        field(&names.machine)
    );
    Some((kernel, field(&names.version)))
}

fn header(iovec: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: `msghdr` is plain old data; all-zero means no address, no control data, no flags.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iovec;
    message.msg_iovlen = 1;
    libc::mmsghdr {
        msg_hdr: message,
        msg_len: 0,
    }
}

fn setsockopt_int(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which lives across the call.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}
