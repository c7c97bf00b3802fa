//! A rolling 64-bit hash of everything a run did, for determinism checks: two runs from the same
//! seed must end with the same [`TraceHash::finish`]; a change anywhere in the traffic or the
//! events changes it (with overwhelming probability).

use core::fmt;
use std::net::IpAddr;

use crate::id::Locator;

/// An order-sensitive 64-bit hash, fed word by word. Not cryptographic; no dependencies.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TraceHash(u64);

impl TraceHash {
    /// The empty trace.
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in one word. Each step is a bijection of the state, so no input is absorbed.
    pub fn write_u64(&mut self, x: u64) {
        let s = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = s ^ (s >> 29);
    }

    /// Mixes in a byte string (length included, so concatenations differ).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w));
        }
        self.write_u64(bytes.len() as u64);
    }

    /// Mixes in a locator.
    pub fn write_locator(&mut self, locator: &Locator) {
        match locator {
            Locator::Udp(addr) => {
                match addr.ip() {
                    IpAddr::V4(ip) => self.write_u64(u64::from(u32::from(ip))),
                    IpAddr::V6(ip) => self.write_bytes(&ip.octets()),
                }
                self.write_u64(u64::from(addr.port()));
            }
        }
    }

    /// The hash value (finalized so that nearby states give distant values).
    pub fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

impl Default for TraceHash {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for TraceHash {
    /// Lets `write!(hash, "{value:?}")` hash a `Debug` rendering without allocating.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
