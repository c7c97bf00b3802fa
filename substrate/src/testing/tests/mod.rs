//! Tests of the harness itself, with a tiny probe protocol. All timing is virtual.
//!
//! - `network`: link behaviour (latency, jitter, bandwidth, loss, duplication, reordering,
//!   MTU), partitions, rebinding, scale.
//! - `harness`: scheduling, timeouts, safety valves, observers, determinism.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::*;
use crate::id::Locator;
use crate::proto::{Protocol, Transmit};
use crate::rand::Rng;
use crate::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at_ms(n: u64) -> Instant {
    Instant::ZERO + ms(n)
}

#[derive(Clone, Debug, Eq, PartialEq)]
enum Ev {
    Got {
        at: Instant,
        from: Locator,
        seq: u64,
        len: usize,
    },
    Fired(Instant),
}

/// Sends what it is told to, reports every datagram (its first 8 bytes are a sequence number),
/// optionally echoes, and keeps one timer. `spin` makes it a buggy protocol that always wants an
/// immediate timeout.
#[derive(Debug, Default)]
struct Probe {
    out: VecDeque<(Locator, Vec<u8>)>,
    events: VecDeque<Ev>,
    timer: Option<Instant>,
    echo: bool,
    spin: bool,
}

impl Probe {
    fn echo() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }

    fn send(&mut self, to: Locator, seq: u64, len: usize) {
        let mut b = vec![0xab; len.max(8)];
        b[..8].copy_from_slice(&seq.to_le_bytes());
        self.out.push_back((to, b));
    }
}

impl Protocol for Probe {
    type Event = Ev;

    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, _: &mut Rng) {
        let seq = u64::from_le_bytes(datagram[..8].try_into().unwrap());
        self.events.push_back(Ev::Got {
            at: now,
            from,
            seq,
            len: datagram.len(),
        });
        if self.echo {
            self.out.push_back((from, datagram.to_vec()));
        }
    }

    fn handle_timeout(&mut self, now: Instant, _: &mut Rng) {
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            self.events.push_back(Ev::Fired(now));
        }
    }

    fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if self.out.front()?.1.len() > buf.len() {
            return None;
        }
        let (to, bytes) = self.out.pop_front()?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Some(Transmit {
            destination: to,
            len: bytes.len(),
            gather: crate::proto::Gather::new(),
        })
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.spin {
            Some(Instant::ZERO)
        } else {
            self.timer
        }
    }
}

fn pair(seed: u64, link: LinkConfig) -> TestPair<Probe> {
    TestPair::new(seed, link, Probe::default(), Probe::default())
}

/// Sends `n` datagrams of `len` bytes from `a` to `b` now, with sequence numbers from 0.
fn blast(p: &mut TestPair<Probe>, n: u64, len: usize) {
    let to = p.locator(p.b);
    p.with_a(|a, _, _| (0..n).for_each(|seq| a.send(to, seq, len)));
}

fn arrivals(p: &mut TestPair<Probe>) -> Vec<(Instant, u64)> {
    let b = p.b;
    p.take_events(b)
        .into_iter()
        .filter_map(|e| match e {
            Ev::Got { at, seq, .. } => Some((at, seq)),
            Ev::Fired(_) => None,
        })
        .collect()
}

fn send_at(c: &mut Cluster<Probe>, from: NodeIdx, to: NodeIdx, seq: u64) {
    let dst = c.locator(to);
    c.with_node(from, |p, _, _| p.send(dst, seq, 8));
}

fn got_seqs(c: &mut Cluster<Probe>, n: NodeIdx) -> Vec<u64> {
    c.take_events(n)
        .into_iter()
        .filter_map(|e| {
            if let Ev::Got { seq, .. } = e {
                Some(seq)
            } else {
                None
            }
        })
        .collect()
}

mod harness;
mod network;
