//! A paced publisher of checkable messages ([`crate::check`]): the daemon's `publish` load and
//! `phyla publish`. It writes each message in place in the group's publication buffer
//! ([`Group::claim`], no copy), keeps to a rate if one is set, and stops offering while the
//! engine pushes back, without losing or reordering a message.

#![allow(clippy::disallowed_methods, reason = "a tool: pacing reads the clock")]

use std::time::{Duration, Instant};

use group_comm::engine::{Group, PublishError};

use crate::check;

/// What one [`Publisher::pump`] did.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Pumped {
    /// Offered this many messages; more are due later (or now, if the count is large).
    Offered(u64),
    /// The engine pushed back: wait for it to make progress (a datagram, an ack).
    BackPressured,
    /// Every message has been offered.
    Done,
}

/// Publishes `total` checkable messages of `size` bytes at up to `rate` per second.
#[derive(Debug)]
pub struct Publisher {
    total: u64,
    size: usize,
    rate: Option<f64>,
    /// Messages offered so far.
    pub sent: u64,
    /// Payload bytes offered so far.
    pub bytes: u64,
    /// Offers refused for backpressure (each retried later).
    pub backpressured: u64,
    started: Option<Instant>,
    finished: Option<Instant>,
}

/// Most messages offered per pump, so that the caller's loop keeps driving the engine.
const BATCH: u64 = 256;

impl Publisher {
    /// A publisher of `total` messages of `size` bytes (at least [`check::HEADER_BYTES`]), at
    /// most `rate` per second (`None`: as fast as backpressure allows).
    pub fn new(total: u64, size: usize, rate: Option<f64>) -> Self {
        Self {
            total,
            size: size.max(check::HEADER_BYTES),
            rate,
            sent: 0,
            bytes: 0,
            backpressured: 0,
            started: None,
            finished: None,
        }
    }

    /// Offers the messages that are due.
    ///
    /// # Errors
    /// [`PublishError::TooLarge`] or [`PublishError::Closed`]: nothing more can be published.
    pub fn pump(&mut self, group: &mut Group, now: Instant) -> Result<Pumped, PublishError> {
        if self.sent >= self.total {
            return Ok(Pumped::Done);
        }
        let started = *self.started.get_or_insert(now);
        let due = match self.rate {
            None => self.total,
            Some(r) => {
                let allowed = (now.duration_since(started).as_secs_f64() * r).floor() as u64 + 1;
                allowed.min(self.total)
            }
        };
        let mut offered = 0;
        while self.sent < due && offered < BATCH {
            let index = self.sent + 1;
            let mut claim = match group.claim(self.size) {
                Ok(c) => c,
                Err(PublishError::BackPressured) => {
                    self.backpressured += 1;
                    return Ok(if offered > 0 {
                        Pumped::Offered(offered)
                    } else {
                        Pumped::BackPressured
                    });
                }
                Err(e) => return Err(e),
            };
            check::fill(claim.buffer(), index, self.total);
            match claim.commit() {
                Ok(_) => {}
                Err(PublishError::BackPressured) => {
                    self.backpressured += 1;
                    return Ok(Pumped::BackPressured);
                }
                Err(e) => return Err(e),
            }
            self.sent += 1;
            self.bytes += self.size as u64;
            offered += 1;
        }
        if self.sent >= self.total {
            self.finished = Some(now);
            return Ok(Pumped::Done);
        }
        Ok(Pumped::Offered(offered))
    }

    /// When the next message is due (`None`: now, or never if done).
    pub fn next_due(&self) -> Option<Instant> {
        let (Some(rate), Some(started)) = (self.rate, self.started) else {
            return None;
        };
        if self.sent >= self.total {
            return None;
        }
        Some(started + Duration::from_secs_f64(self.sent as f64 / rate))
    }

    /// Whether every message has been offered.
    pub fn done(&self) -> bool {
        self.sent >= self.total
    }

    /// Time from the first offer to the last (so far).
    pub fn elapsed(&self, now: Instant) -> Duration {
        match self.started {
            Some(s) => self.finished.unwrap_or(now).duration_since(s),
            None => Duration::ZERO,
        }
    }

    /// How many messages, how large.
    pub fn plan(&self) -> (u64, usize, Option<f64>) {
        (self.total, self.size, self.rate)
    }
}
