//! Rate control: the token-bucket pacer that enforces a stream's rate. It is the hook where
//! bandwidth reservations plug in: a granted rate becomes the pacer's rate.

use crate::time::{Instant, duration_ns};

/// A rate in bytes per second.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Rate {
    bytes_per_second: u64,
}

impl Rate {
    /// `n` bytes per second (at least 1).
    pub const fn bytes_per_second(n: u64) -> Self {
        Self {
            bytes_per_second: if n == 0 { 1 } else { n },
        }
    }

    /// The rate in bytes per second.
    pub const fn as_bytes_per_second(self) -> u64 {
        self.bytes_per_second
    }
}

/// A token bucket over virtual time: `rate` bytes per second, up to `burst_bytes` saved up.
///
/// A send is allowed while the balance is positive and may take it negative (a datagram is never
/// split to fit), so over any long interval the bytes sent stay within `burst + rate * t + one
/// datagram`. Balances are kept in byte-nanoseconds, so no rounding accumulates.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    burst_bytes: u64,
    /// Balance in bytes × 10^9 (one byte earned per `10^9 / rate` ns).
    balance: i128,
    updated: Instant,
}

const NS_PER_S: i128 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant, rate: Rate, burst_bytes: u64) -> Self {
        Self {
            rate,
            burst_bytes,
            balance: i128::from(burst_bytes) * NS_PER_S,
            updated: now,
        }
    }

    /// The current rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Changes the rate from `now` on; tokens earned so far are kept.
    pub fn set_rate(&mut self, now: Instant, rate: Rate) {
        self.refill(now);
        self.rate = rate;
    }

    /// Whether a send is allowed at `now`.
    pub fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.balance > 0
    }

    /// Charges `bytes` just sent.
    pub fn consume(&mut self, bytes: u64) {
        self.balance -= i128::from(bytes) * NS_PER_S;
    }

    /// When a blocked bucket will allow a send again; `None` if it allows one already (a
    /// caller waiting on something else must not mistake "ready" for a deadline).
    pub fn next_ready(&self) -> Option<Instant> {
        if self.balance > 0 {
            return None;
        }
        let need = 1 - self.balance;
        let rate = i128::from(self.rate.bytes_per_second);
        let wait_ns = (need + rate - 1) / rate;
        let wait = crate::time::Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX));
        Some(self.updated.saturating_add(wait))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = i128::from(duration_ns(now - self.updated));
        let cap = i128::from(self.burst_bytes) * NS_PER_S;
        self.balance = (self.balance + elapsed * i128::from(self.rate.bytes_per_second)).min(cap);
        self.updated = self.updated.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn token_bucket_sends_at_rate_over_time() {
        let rate = Rate::bytes_per_second(1_000_000);
        let mut now = Instant::ZERO;
        let mut tb = TokenBucket::new(now, rate, 3_000);
        let mut sent = 0u64;
        let end = Instant::ZERO + Duration::from_secs(2);
        while now < end {
            if tb.ready(now) {
                tb.consume(1_200);
                sent += 1_200;
            } else {
                now = tb.next_ready().expect("blocked");
            }
        }
        let expected = 2_000_000 + 3_000;
        assert!(
            sent.abs_diff(expected) <= 1_200,
            "sent {sent}, expected about {expected}"
        );
    }

    #[test]
    fn token_bucket_caps_saved_tokens_at_burst() {
        let mut tb = TokenBucket::new(Instant::ZERO, Rate::bytes_per_second(1_000), 500);
        let later = Instant::ZERO + Duration::from_secs(100);
        let mut n = 0;
        while tb.ready(later) {
            tb.consume(100);
            n += 1;
        }
        assert_eq!(n, 5, "only the burst may be spent at once");
        assert!(tb.next_ready().is_some_and(|t| t > later));
    }
}
