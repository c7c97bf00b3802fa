#![allow(dead_code)]
//! Review helper: two endpoints wired by hand, with a per-datagram drop filter, so a test can lose
//! exactly the datagrams it wants (the in-memory cluster only has random loss).

use bytes::Bytes;
use substrate::id::{Locator, NodeId, SessionHandle, StreamId};
use substrate::proto::Protocol;
use substrate::proto::session::{Endpoint, EndpointConfig, Event, SessionConfig};
use substrate::rand::Rng;
use substrate::testing::test_locator;
use substrate::time::{Duration, Instant};
use substrate::wire::{Frame, MAX_DATAGRAM_BYTES, decode_datagram};

/// What a filter sees of one datagram.
pub(crate) struct Seen<'a> {
    /// 0 = sent by `a`, 1 = sent by `b`.
    pub(crate) from: usize,
    pub(crate) bytes: &'a [u8],
}

impl Seen<'_> {
    /// The (stream, sequence) of every Data frame inside.
    pub(crate) fn data_seqs(&self) -> Vec<(u32, u64)> {
        let Ok((_, frames)) = decode_datagram(self.bytes) else {
            return Vec::new();
        };
        frames
            .flatten()
            .filter_map(|f| match f {
                Frame::Data(d) => Some((d.stream.0, d.sequence)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn has_gap(&self) -> bool {
        let Ok((_, frames)) = decode_datagram(self.bytes) else {
            return false;
        };
        frames.flatten().any(|f| matches!(f, Frame::Gap(_)))
    }

    pub(crate) fn has_nak(&self) -> bool {
        let Ok((_, frames)) = decode_datagram(self.bytes) else {
            return false;
        };
        frames.flatten().any(|f| matches!(f, Frame::Nak(_)))
    }
}

pub(crate) type Filter = Box<dyn FnMut(&Seen<'_>) -> bool>;

pub(crate) struct Duo {
    pub(crate) ep: [Endpoint; 2],
    pub(crate) loc: [Locator; 2],
    pub(crate) now: Instant,
    pub(crate) rng: Rng,
    pub(crate) latency: Duration,
    /// (arrival, to, from-locator, bytes)
    flight: Vec<(Instant, usize, Locator, Bytes)>,
    /// Where endpoints write their datagrams; never cleared, as on the engine.
    buf: Box<[u8]>,
    pub(crate) events: [Vec<Event>; 2],
    /// Returns true to DROP the datagram.
    pub(crate) drop: Filter,
    pub(crate) sa: SessionHandle,
    pub(crate) sb: SessionHandle,
    pub(crate) dropped: u64,
    pub(crate) sent: [u64; 2],
}

pub(crate) fn endpoint(n: u64, session: SessionConfig) -> Endpoint {
    let mut config = EndpointConfig::new(NodeId::from_u64(n));
    config.session = session;
    Endpoint::new(config).expect("test config is valid")
}

impl Duo {
    pub(crate) fn connect(latency: Duration, ca: SessionConfig, cb: SessionConfig) -> Self {
        let mut d = Self::connect_lazy(latency, ca, cb);
        d.finish_handshake();
        d
    }

    /// Starts the handshake (a's Hello is queued) without running it.
    pub(crate) fn connect_lazy(latency: Duration, ca: SessionConfig, cb: SessionConfig) -> Self {
        let mut d = Self {
            ep: [endpoint(1, ca), endpoint(2, cb)],
            loc: [test_locator(1), test_locator(2)],
            now: Instant::ZERO,
            rng: Rng::with_seed(7),
            latency,
            flight: Vec::new(),
            buf: vec![0; MAX_DATAGRAM_BYTES].into_boxed_slice(),
            events: [Vec::new(), Vec::new()],
            drop: Box::new(|_| false),
            sa: SessionHandle::new(0, 0),
            sb: SessionHandle::new(0, 0),
            dropped: 0,
            sent: [0, 0],
        };
        let to = d.loc[1];
        let now = d.now;
        d.sa = d.ep[0].connect(now, to, &mut d.rng).expect("room");
        d
    }

    /// Runs until both sides report Connected.
    pub(crate) fn finish_handshake(&mut self) {
        let d = self;
        d.drain();
        for _ in 0..1000 {
            let a_ok = d.events[0]
                .iter()
                .any(|e| matches!(e, Event::Connected { .. }));
            let b = d.events[1].iter().find_map(|e| match e {
                Event::Connected { session, .. } => Some(*session),
                _ => None,
            });
            if let (true, Some(b)) = (a_ok, b) {
                d.sb = b;
                d.events = [Vec::new(), Vec::new()];
                return;
            }
            assert!(d.step(), "handshake stalled");
        }
        panic!("handshake did not complete");
    }

    /// Drains both endpoints' transmits and events.
    pub(crate) fn drain(&mut self) {
        for i in 0..2 {
            while let Some(t) = self.ep[i].poll_transmit(self.now, &mut self.buf) {
                // On the wire the gathered parts are spliced into the written bytes.
                let wire = t.gather.to_vec(&self.buf[..t.len]);
                let buf = &wire[..];
                self.sent[i] += 1;
                let to = self
                    .loc
                    .iter()
                    .position(|l| *l == t.destination)
                    .expect("known destination");
                let seen = Seen {
                    from: i,
                    bytes: buf,
                };
                if (self.drop)(&seen) {
                    self.dropped += 1;
                    continue;
                }
                let bytes = Bytes::copy_from_slice(buf);
                self.flight
                    .push((self.now + self.latency, to, self.loc[i], bytes));
            }
            while let Some(e) = self.ep[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Advances to the next arrival or timeout and handles it. False if nothing is scheduled.
    pub(crate) fn step(&mut self) -> bool {
        let next_arrival = self.flight.iter().map(|f| f.0).min();
        let timeouts = [self.ep[0].poll_timeout(), self.ep[1].poll_timeout()];
        let next = [next_arrival, timeouts[0], timeouts[1]]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        // Arrivals first, in send order.
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].0 <= self.now {
                let (_, to, from, bytes) = self.flight.remove(i);
                let now = self.now;
                self.ep[to].handle_datagram(now, from, &bytes, &mut self.rng);
                self.drain();
            } else {
                i += 1;
            }
        }
        for k in 0..2 {
            if self.ep[k].poll_timeout().is_some_and(|t| t <= self.now) {
                let now = self.now;
                self.ep[k].handle_timeout(now, &mut self.rng);
            }
        }
        self.drain();
        true
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            if !self.step() {
                break;
            }
        }
    }

    pub(crate) fn offer(&mut self, stream: StreamId, payload: Bytes) -> u64 {
        let now = self.now;
        let n = self.ep[0]
            .offer(now, self.sa, stream, payload)
            .expect("offer accepted");
        self.drain();
        n
    }

    /// Everything b can read now, by message number.
    pub(crate) fn read_b(&mut self, stream: StreamId) -> Vec<u64> {
        let sb = self.sb;
        let v = std::iter::from_fn(|| self.ep[1].recv(sb, stream))
            .map(|m| m.number)
            .collect();
        self.drain();
        v
    }

    /// Steps for up to `d`, reading `stream` at b after each step; returns what b read.
    pub(crate) fn read_b_for(&mut self, stream: StreamId, d: Duration) -> Vec<u64> {
        let mut delivered = Vec::new();
        let end = self.now + d;
        while self.now < end && self.step() {
            delivered.extend(self.read_b(stream));
        }
        delivered
    }

    /// Hands `bytes` to endpoint `to` as if it came from `from`, then drains.
    pub(crate) fn inject(&mut self, to: usize, from: Locator, bytes: &[u8]) {
        let now = self.now;
        let bytes = Bytes::copy_from_slice(bytes);
        self.ep[to].handle_datagram(now, from, &bytes, &mut self.rng);
        self.drain();
    }

    pub(crate) fn lost_b(&self) -> Vec<std::ops::Range<u64>> {
        self.events[1]
            .iter()
            .filter_map(|e| match e {
                Event::MessagesLost { range, .. } => Some(range.clone()),
                _ => None,
            })
            .collect()
    }
}
