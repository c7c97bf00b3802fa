//! Fault injection: a driver wrapper that drops, duplicates, reorders and delays datagrams from a
//! seeded RNG. netem is unavailable on the machines Phyla is tested on, so this is how
//! multi-process tests make loopback lossy (Aeron's loss generators do the same job).
//!
//! Faults apply to received datagrams (drop, duplicate, reorder, delay) and to sent ones (drop;
//! a dropped send's tail is dropped with it).
//! The wrapper keeps the driver contract: a delayed datagram is held as its `Bytes` view, which
//! keeps its receive slot until it is delivered.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{Driver, DriverError, DriverKind, DriverStats, Received, SocketId, Wait, Waker};
use crate::proto::Gather;
use crate::rand::Rng;
use crate::runtime::buf::TxSlot;
use crate::runtime::clock::Clock;
use crate::time::{Duration, Instant};

/// Which faults to inject, and the seed that makes them repeatable.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Seeds the fault RNG.
    pub seed: u64,
    /// Probability that a received datagram is dropped.
    pub drop_rx: f64,
    /// Probability that a sent datagram is dropped.
    pub drop_tx: f64,
    /// Probability that a received datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a received datagram is held back and delivered after the next one.
    pub reorder: f64,
    /// Probability that a received datagram is delayed.
    pub delay: f64,
    /// How long a delayed datagram waits (uniform in this range).
    pub delay_range: (Duration, Duration),
}

impl FaultConfig {
    /// No faults.
    pub fn none(seed: u64) -> Self {
        Self {
            seed,
            drop_rx: 0.0,
            drop_tx: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: 0.0,
            delay_range: (Duration::ZERO, Duration::ZERO),
        }
    }

    /// Drops `p` of the datagrams received and `p` of those sent.
    pub fn loss(seed: u64, p: f64) -> Self {
        Self {
            drop_rx: p,
            drop_tx: p,
            ..Self::none(seed)
        }
    }
}

/// Counters of injected faults.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct FaultStats {
    /// Received datagrams dropped.
    pub dropped_rx: u64,
    /// Sent datagrams dropped.
    pub dropped_tx: u64,
    /// Received datagrams duplicated.
    pub duplicated: u64,
    /// Received datagrams reordered.
    pub reordered: u64,
    /// Received datagrams delayed.
    pub delayed: u64,
}

/// A driver that injects faults into another.
#[derive(Debug)]
pub struct FaultDriver<D> {
    inner: D,
    config: FaultConfig,
    rng: Rng,
    clock: Clock,
    /// Delayed datagrams with when they are due, in arrival order.
    delayed: VecDeque<(Instant, Received)>,
    /// A datagram held back to be delivered after the next one.
    reordered: Option<Received>,
    ready: Vec<Received>,
    faults: FaultStats,
}

impl<D: Driver> FaultDriver<D> {
    /// Wraps `inner`.
    pub fn new(inner: D, config: FaultConfig) -> Self {
        Self {
            inner,
            rng: Rng::with_seed(config.seed),
            config,
            clock: Clock::new(),
            delayed: VecDeque::new(),
            reordered: None,
            ready: Vec::new(),
            faults: FaultStats::default(),
        }
    }

    /// Faults injected so far.
    pub fn faults(&self) -> FaultStats {
        self.faults
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = self.config.delay_range;
        let span = hi.saturating_sub(lo).as_nanos() as u64;
        lo + Duration::from_nanos(if span == 0 { 0 } else { self.rng.below(span) })
    }
}

impl<D: Driver> Driver for FaultDriver<D> {
    fn kind(&self) -> DriverKind {
        self.inner.kind()
    }

    fn bind(&mut self, addr: SocketAddr) -> Result<SocketId, DriverError> {
        self.inner.bind(addr)
    }

    fn local_addr(&self, socket: SocketId) -> Option<SocketAddr> {
        self.inner.local_addr(socket)
    }

    fn close(&mut self, socket: SocketId) {
        self.inner.close(socket);
    }

    fn tx_acquire(&mut self) -> Option<(TxSlot, &mut [u8])> {
        self.inner.tx_acquire()
    }

    fn tx_abandon(&mut self, slot: TxSlot) {
        self.inner.tx_abandon(slot);
    }

    fn send_gather(
        &mut self,
        socket: SocketId,
        to: SocketAddr,
        slot: TxSlot,
        len: usize,
        gather: Gather,
    ) {
        if self.rng.chance(self.config.drop_tx) {
            // The datagram is lost whole: its slot is freed and its parts dropped here.
            self.faults.dropped_tx += 1;
            self.inner.tx_abandon(slot);
        } else {
            self.inner.send_gather(socket, to, slot, len, gather);
        }
    }

    fn poll<F: FnMut(Received)>(&mut self, wait: Wait, mut sink: F) -> Result<usize, DriverError> {
        let now = self.clock.now();
        // Wait no longer than the first delayed datagram is due (delays differ, so that is the
        // earliest due, not the earliest arrival), and not at all while one is held back.
        let due = self.delayed.iter().map(|&(due, _)| due).min();
        let wait = match (wait, due) {
            _ if self.reordered.is_some() => Wait::No,
            (Wait::For(d), Some(due)) => Wait::For(d.min(due.saturating_duration_since(now))),
            (w, _) => w,
        };
        let mut arrived = std::mem::take(&mut self.ready);
        let work = self.inner.poll(wait, |r| arrived.push(r))?;
        let now = self.clock.now();
        let received = arrived.len();
        let mut delivered = 0;
        for r in arrived.drain(..) {
            if self.rng.chance(self.config.drop_rx) {
                self.faults.dropped_rx += 1;
                continue;
            }
            if self.rng.chance(self.config.delay) {
                self.faults.delayed += 1;
                let due = now + self.delay();
                self.delayed.push_back((due, r));
                continue;
            }
            if self.rng.chance(self.config.duplicate) {
                self.faults.duplicated += 1;
                sink(Received {
                    socket: r.socket,
                    from: r.from,
                    datagram: r.datagram.clone(),
                });
                delivered += 1;
            }
            if self.reordered.is_none() && self.rng.chance(self.config.reorder) {
                self.faults.reordered += 1;
                self.reordered = Some(r);
                continue;
            }
            sink(r);
            delivered += 1;
            if let Some(held) = self.reordered.take() {
                sink(held);
                delivered += 1;
            }
        }
        self.ready = arrived;
        // Delays differ, so release every due datagram, not just a due prefix.
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                if let Some((_, r)) = self.delayed.remove(i) {
                    sink(r);
                    delivered += 1;
                }
            } else {
                i += 1;
            }
        }
        // A reordered datagram with nothing after it must not wait forever (nor while this
        // side only sends).
        if received == 0 {
            if let Some(held) = self.reordered.take() {
                sink(held);
                delivered += 1;
            }
        }
        Ok(work.max(delivered))
    }

    fn watch(&mut self, waker: &Waker) -> Result<(), DriverError> {
        self.inner.watch(waker)
    }

    fn stats(&self) -> DriverStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::driver::DriverConfig;
    use crate::runtime::driver::poll::PollDriver;

    fn driver(config: FaultConfig) -> (FaultDriver<PollDriver>, std::net::UdpSocket, SocketAddr) {
        let inner = PollDriver::new(&DriverConfig::default()).expect("driver");
        let mut d = FaultDriver::new(inner, config);
        let s = d.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let to = d.local_addr(s).expect("addr");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        (d, peer, to)
    }

    #[test]
    fn a_delayed_datagram_due_first_ends_the_wait_though_it_arrived_second() {
        let delays = (Duration::from_millis(1), Duration::from_millis(1500));
        // A seed whose first delay is long and second short (found by trying a few).
        for seed in 0..64 {
            let config = FaultConfig {
                delay: 1.0,
                delay_range: delays,
                ..FaultConfig::none(seed)
            };
            let (mut d, peer, to) = driver(config);
            peer.send_to(b"first", to).expect("send");
            peer.send_to(b"second", to).expect("send");
            let start = std::time::Instant::now();
            while d.faults().delayed < 2 {
                d.poll(Wait::No, |_| panic!("nothing is due yet"))
                    .expect("poll");
                // A give-up bound, not a speed check: loopback datagrams that never arrive.
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the two datagrams never arrived"
                );
            }
            let (first, second) = (d.delayed[0].0, d.delayed[1].0);
            let now = d.clock.now();
            if first.saturating_duration_since(now) < Duration::from_millis(1000)
                || second.saturating_duration_since(now) > Duration::from_millis(100)
            {
                continue;
            }
            // Parked with nothing else arriving: the second must come when due, not with the
            // first.
            let mut got = Vec::new();
            while got.is_empty() {
                d.poll(Wait::For(Duration::from_secs(10)), |r| got.push(r.datagram))
                    .expect("poll");
            }
            assert_eq!(&got[0][..], b"second");
            // Released when due, not with the first: the first (due about a second later) is
            // still held, which a wait until the first's due time could not leave it.
            assert_eq!(got.len(), 1, "only the second was due");
            assert_eq!(d.delayed.len(), 1, "the first is still held back");
            return;
        }
        panic!("no seed gave a long first delay and a short second one");
    }

    #[test]
    fn a_reordered_datagram_is_released_while_this_side_only_sends() {
        let config = FaultConfig {
            reorder: 1.0,
            ..FaultConfig::none(1)
        };
        let (mut d, peer, to) = driver(config);
        let socket = SocketId(0);
        let back = peer.local_addr().expect("addr");
        peer.send_to(b"alone", to).expect("send");
        let mut got = Vec::new();
        for _ in 0..1000 {
            // This side keeps sending (as a sender streaming data does), so every poll works.
            let (slot, buf) = d.tx_acquire().expect("slot");
            buf[0] = 0;
            d.send(socket, back, slot, 1);
            d.poll(Wait::For(Duration::from_secs(1)), |r| got.push(r.datagram))
                .expect("poll");
            if !got.is_empty() {
                assert_eq!(&got[0][..], b"alone");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the held-back datagram never came while nothing else arrived");
    }

    #[test]
    fn a_dropped_send_drops_its_tail_and_a_passed_one_arrives_whole() {
        use std::sync::atomic::Ordering;
        let (mut d, peer, _) = driver(FaultConfig {
            drop_tx: 1.0,
            ..FaultConfig::none(3)
        });
        let to = peer.local_addr().expect("addr");
        let (tail, released) = crate::runtime::driver::watched_bytes(vec![7; 64]);
        let (slot, _) = d.tx_acquire().expect("slot");
        d.send_gather(SocketId(0), to, slot, 0, Gather::tail(0, tail));
        assert!(released.load(Ordering::SeqCst), "dropped with its datagram");
        assert_eq!(d.faults().dropped_tx, 1);

        let (mut d, peer, _) = driver(FaultConfig::none(3));
        peer.set_nonblocking(true).expect("nonblocking");
        let to = peer.local_addr().expect("addr");
        let (tail, released) = crate::runtime::driver::watched_bytes(vec![7; 64]);
        let (slot, buf) = d.tx_acquire().expect("slot");
        buf[..3].copy_from_slice(b"abc");
        d.send_gather(SocketId(0), to, slot, 3, Gather::tail(3, tail));
        d.poll(Wait::No, |_| {}).expect("poll");
        assert!(released.load(Ordering::SeqCst), "released once sent");
        let mut got = [0u8; 128];
        for _ in 0..1000 {
            if let Ok(n) = peer.recv(&mut got) {
                assert_eq!(&got[..n], [&b"abc"[..], &[7; 64]].concat());
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the gathered datagram never arrived");
    }
}
