//! The receiver's clock for throughput: a warm-up from the first message, then a measured window.
//!
//! A receiver receives with a timeout of at most [`RECEIVE_TIMEOUT`], calls [`Meter::record`] after
//! every receive that returned messages (or after every few, to keep clock reads off the
//! per-message path) and [`Meter::idle`] after one that timed out, until either returns `false`:
//!
//! ```text
//! loop {
//!     match receive_with_timeout() {
//!         Ok(batch) => if !meter.record(batch.messages, batch.bytes) { break },
//!         Err(timed_out) => if !meter.idle()? { break },
//!     }
//! }
//! ```
//!
//! After the window the receiver keeps draining until the sender has been quiet for
//! [`DRAIN_QUIET`]; those messages count only in the totals, which the parent compares with what
//! the sender sent to report losses (zero for a reliable transport).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::throughput::RxReport;

/// How long the receiver waits for the first message before giving up.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A window that started but saw no message for this long ends early, marked incomplete.
pub const QUIET_TIMEOUT: Duration = Duration::from_secs(1);

/// After the window, draining stops once nothing arrived for this long.
pub const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// After the window, draining stops after this long whatever arrives.
pub const DRAIN_MAX: Duration = Duration::from_secs(3);

/// The longest receive timeout a receiver should use, so that [`DRAIN_QUIET`] is noticed in time.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_millis(50);

/// Counts messages and bytes over a measured window that starts `warmup` after the first message.
#[derive(Clone, Debug)]
pub struct Meter {
    warmup: Duration,
    duration: Duration,
    created: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    window_start: Option<Instant>,
    window_end: Option<Instant>,
    complete: bool,
    messages: u64,
    bytes: u64,
    messages_total: u64,
    bytes_total: u64,
}

impl Meter {
    /// A meter that measures `duration` after a `warmup`.
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        Self {
            warmup,
            duration,
            created: Instant::now(),
            first: None,
            last: None,
            window_start: None,
            window_end: None,
            complete: false,
            messages: 0,
            bytes: 0,
            messages_total: 0,
            bytes_total: 0,
        }
    }

    /// Records `messages` carrying `bytes` that arrived just now; `false` when the receiver should
    /// stop (the window is over and draining has gone on for [`DRAIN_MAX`]).
    pub fn record(&mut self, messages: u64, bytes: u64) -> bool {
        self.record_at(Instant::now(), messages, bytes)
    }

    /// A receive returned nothing (timed out). `Ok(false)` when the receiver should stop: the
    /// window is over and nothing arrived for [`DRAIN_QUIET`], or the sender went quiet for
    /// [`QUIET_TIMEOUT`] in the middle of the window (which then ends early, marked incomplete).
    ///
    /// # Errors
    /// When no message at all arrived within [`FIRST_MESSAGE_TIMEOUT`].
    pub fn idle(&mut self) -> Result<bool> {
        self.idle_at(Instant::now())
    }

    /// Whether the measured window is over.
    pub fn done(&self) -> bool {
        self.window_end.is_some()
    }

    /// What was measured (totals include messages after the window).
    pub fn report(&self) -> RxReport {
        let window = match (self.window_start, self.window_end) {
            (Some(start), Some(end)) => end - start,
            _ => Duration::ZERO,
        };
        RxReport {
            messages: self.messages,
            bytes: self.bytes,
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            messages_total: self.messages_total,
            bytes_total: self.bytes_total,
            complete: self.complete,
            extra: serde_json::Map::new(),
        }
    }

    fn record_at(&mut self, now: Instant, messages: u64, bytes: u64) -> bool {
        if messages == 0 {
            return self.window_end.is_none_or(|end| now < end + DRAIN_MAX);
        }
        self.messages_total += messages;
        self.bytes_total += bytes;
        self.last = Some(now);
        let first = *self.first.get_or_insert(now);
        match (self.window_start, self.window_end) {
            (None, _) if now >= first + self.warmup => self.window_start = Some(now),
            (Some(start), None) => {
                self.messages += messages;
                self.bytes += bytes;
                if now >= start + self.duration {
                    self.window_end = Some(now);
                    self.complete = true;
                }
            }
            _ => {}
        }
        self.window_end.is_none_or(|end| now < end + DRAIN_MAX)
    }

    fn idle_at(&mut self, now: Instant) -> Result<bool> {
        let Some(last) = self.last else {
            if now >= self.created + FIRST_MESSAGE_TIMEOUT {
                bail!("no message arrived within {FIRST_MESSAGE_TIMEOUT:?}");
            }
            return Ok(true);
        };
        if let Some(end) = self.window_end {
            return Ok(now < last + DRAIN_QUIET && now < end + DRAIN_MAX);
        }
        if now >= last + QUIET_TIMEOUT {
            // The sender stopped early: close the window at the last message, marked incomplete.
            let start = *self.window_start.get_or_insert(last);
            self.window_end = Some(last.max(start));
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_counts_only_inside_the_window() {
        let mut meter = Meter::new(Duration::from_millis(100), Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(meter.record_at(t0, 10, 100)); // first message: warm-up starts
        assert!(meter.record_at(t0 + Duration::from_millis(50), 10, 100));
        assert!(meter.record_at(t0 + Duration::from_millis(100), 5, 50)); // opens the window
        assert!(meter.record_at(t0 + Duration::from_millis(600), 7, 70));
        assert!(meter.record_at(t0 + Duration::from_millis(1100), 3, 30)); // closes it
        assert!(meter.done());
        assert!(meter.record_at(t0 + Duration::from_millis(1200), 4, 40)); // drained afterwards
        assert!(meter.idle_at(t0 + Duration::from_millis(1250)).unwrap());
        assert!(!meter.idle_at(t0 + Duration::from_millis(1300)).unwrap()); // quiet: stop
        assert!(!meter.record_at(t0 + Duration::from_millis(1100) + DRAIN_MAX, 1, 10));
        let report = meter.report();
        assert_eq!((report.messages, report.bytes), (10, 100));
        assert_eq!(report.window_ns, 1_000_000_000);
        assert_eq!((report.messages_total, report.bytes_total), (40, 400));
        assert!(report.complete);
    }

    #[test]
    fn meter_ends_early_when_the_sender_goes_quiet() {
        let mut meter = Meter::new(Duration::ZERO, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(meter.record_at(t0, 1, 1));
        assert!(meter.record_at(t0 + Duration::from_millis(10), 1, 1));
        assert!(meter.idle_at(t0 + Duration::from_millis(500)).unwrap());
        assert!(!meter.idle_at(t0 + Duration::from_secs(2)).unwrap());
        let report = meter.report();
        assert!(!report.complete);
        assert_eq!(report.window_ns, 10_000_000);
    }
}
