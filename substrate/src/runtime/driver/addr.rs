//! `SocketAddr` to and from the kernel's `sockaddr` forms, without allocation.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Storage for any socket address the kernel may write or read.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RawAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawAddr({:?})", self.to_socket_addr())
    }
}

impl RawAddr {
    /// Zeroed storage, sized for the kernel to fill.
    pub(crate) fn empty() -> Self {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
        let storage = unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
        Self {
            storage,
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The kernel form of `addr`.
    pub(crate) fn from_socket_addr(addr: SocketAddr) -> Self {
        let mut r = Self::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&raw mut r.storage).cast(), sin) };
                r.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&raw mut r.storage).cast(), sin6) };
                r.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        r
    }

    /// Reads a kernel address of `len` bytes at `p` (as found in a recvmsg header).
    ///
    /// # Safety
    /// `p` must point to `len` readable bytes.
    pub(crate) unsafe fn read(p: *const u8, len: usize) -> Option<SocketAddr> {
        let mut r = Self::empty();
        let len = len.min(size_of::<libc::sockaddr_storage>());
        // SAFETY: the caller guarantees `len` readable bytes; the destination is large enough.
        unsafe { std::ptr::copy_nonoverlapping(p, (&raw mut r.storage).cast::<u8>(), len) };
        r.len = len as libc::socklen_t;
        r.to_socket_addr()
    }

    /// The address, if it is IPv4 or IPv6.
    pub(crate) fn to_socket_addr(self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin: libc::sockaddr_in =
                    unsafe { std::ptr::read((&raw const self.storage).cast()) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 if self.len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&raw const self.storage).cast()) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&raw mut self.storage).cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        for a in [
            "127.0.0.1:9",
            "198.18.0.7:65535",
            "[::1]:4000",
            "[fe80::1%3]:1",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(RawAddr::from_socket_addr(a).to_socket_addr(), Some(a));
        }
        assert_eq!(RawAddr::empty().to_socket_addr(), None);
    }
}
