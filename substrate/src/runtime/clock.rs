//! The one place that reads the monotonic clock and maps it onto [`crate::time::Instant`].

use crate::time::Instant;

/// A monotonic clock whose zero is (a second before) its creation.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

/// Protocol instants start here rather than at zero, so "zero" never means "now".
const OFFSET_NS: u64 = 1_000_000_000;

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        let ns = self.origin.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX - OFFSET_NS) + OFFSET_NS)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Seeds a shard's RNG from the kernel (connection ids must not be predictable).
pub(crate) fn os_seed() -> u64 {
    let mut v = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into our buffer.
    let n = unsafe { libc::getrandom(v.as_mut_ptr().cast(), 8, 0) };
    if n == 8 {
        u64::from_le_bytes(v)
    } else {
        // No entropy source: fall back to the clock and the address of a stack value.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ ((&raw const v) as u64).rotate_left(32)
    }
}
