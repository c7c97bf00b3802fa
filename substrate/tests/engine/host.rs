//! `runtime::host`: a tiny echo service of our own on the generic host, on both drivers and in
//! both threading modes. Each `Send` command becomes one UDP datagram to a peer locator (a ping
//! is answered with a pong), each datagram received is reported as an event, and a `Burst`
//! command reports numbered local events (to fill the event ring). Shards that park do so for
//! longer than the tests wait, so a lost wake-up fails a test instead of slowing it.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use substrate::id::Locator;
use substrate::proto::{Gather, Protocol, Transmit};
use substrate::rand::Rng;
use substrate::runtime::driver::{DriverError, DriverKind};
use substrate::runtime::host::{Host, HostBuilder, Hosted, Service, ShardContext, ShardWake};
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{NodeError, Threading};
use substrate::sync::spsc::{self, Consumer, Full, Producer};

use crate::adversary::one_at_a_time;
use crate::common::PATIENCE;

/// Datagram kinds: a ping is answered with a pong.
const PING: u8 = 0;
const PONG: u8 = 1;

/// The host's bound on events held for an application that does not read them.
const MAX_OVERFLOW_EVENTS: u64 = 65_536;

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Cmd {
    /// Send datagram `kind`, `n` to `to`.
    Send { to: SocketAddr, kind: u8, n: u64 },
    /// Report `count` local events, numbered on from the last burst.
    Burst(u64),
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Ev {
    /// Send command `n` was taken (reported as it is carried out).
    Taken(u64),
    /// A datagram arrived.
    Got { from: SocketAddr, kind: u8, n: u64 },
    /// Local event `n` of a burst.
    Local(u64),
}

/// What the application gets from each shard's service as it is built.
struct Started {
    index: usize,
    locator: SocketAddr,
    /// Pings offered to the shard through a ring it shares with the application.
    offers: Producer<(SocketAddr, u64)>,
    /// The wake handle the service was built with.
    wake: ShardWake,
}

struct Echo {
    out: VecDeque<(SocketAddr, u8, u64)>,
    events: VecDeque<Ev>,
    local: u64,
    offers: Consumer<(SocketAddr, u64)>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Protocol for Echo {
    type Event = Ev;

    fn handle_datagram(
        &mut self,
        _now: substrate::time::Instant,
        from: Locator,
        datagram: &Bytes,
        _rng: &mut Rng,
    ) {
        let Locator::Udp(from) = from;
        if datagram.len() != 9 {
            return;
        }
        let kind = datagram[0];
        let n = u64::from_le_bytes(datagram[1..9].try_into().expect("8 bytes"));
        self.events.push_back(Ev::Got { from, kind, n });
        if kind == PING {
            self.out.push_back((from, PONG, n));
        }
    }

    fn handle_timeout(&mut self, _now: substrate::time::Instant, _rng: &mut Rng) {}

    fn poll_transmit(
        &mut self,
        _now: substrate::time::Instant,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        if buf.len() < 9 {
            return None;
        }
        let (to, kind, n) = self.out.pop_front()?;
        buf[0] = kind;
        buf[1..9].copy_from_slice(&n.to_le_bytes());
        Some(Transmit {
            destination: Locator::Udp(to),
            len: 9,
            gather: Gather::new(),
        })
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<substrate::time::Instant> {
        None
    }
}

impl Service for Echo {
    type Command = Cmd;

    fn command(&mut self, _now: substrate::time::Instant, command: Cmd, _rng: &mut Rng) {
        match command {
            Cmd::Send { to, kind, n } => {
                self.events.push_back(Ev::Taken(n));
                self.out.push_back((to, kind, n));
            }
            Cmd::Burst(count) => {
                for _ in 0..count {
                    self.events.push_back(Ev::Local(self.local));
                    self.local += 1;
                }
            }
        }
    }

    fn service(&mut self, _now: substrate::time::Instant, _rng: &mut Rng) -> usize {
        let mut n = 0;
        while let Some((to, ping)) = self.offers.try_pop() {
            self.out.push_back((to, PING, ping));
            n += 1;
        }
        n
    }

    fn has_pending(&mut self) -> bool {
        !self.offers.is_empty()
    }

    fn publish(&mut self, _now: substrate::time::Instant) {}
}

/// Builds echo services, reporting each through `started`; fails on shard `fail_on`.
fn factory(
    started: mpsc::Sender<Started>,
    dropped: Arc<AtomicUsize>,
    fail_on: Option<usize>,
) -> impl Fn(ShardContext) -> Result<Echo, String> + Clone + Send + 'static {
    move |ctx: ShardContext| {
        if fail_on == Some(ctx.index) {
            return Err(format!("no echo on shard {}", ctx.index));
        }
        let (offers_tx, offers_rx) = spsc::channel(64);
        started
            .send(Started {
                index: ctx.index,
                locator: ctx.locator,
                offers: offers_tx,
                wake: ctx.wake.clone(),
            })
            .map_err(|e| e.to_string())?;
        Ok(Echo {
            out: VecDeque::new(),
            events: VecDeque::new(),
            local: 0,
            offers: offers_rx,
            dropped: dropped.clone(),
        })
    }
}

/// A host of echo services, with what its shards reported as they started.
struct Side {
    host: Host<Echo>,
    started: Vec<Started>,
    dropped: Arc<AtomicUsize>,
}

/// Parks at once, for longer than the tests' patience: only wake-ups end a wait early.
fn long_park() -> IdleStrategy {
    IdleStrategy::Backoff {
        spins: 0,
        yields: 0,
        max: Duration::from_secs(120),
    }
}

/// How each mode idles: dedicated shards park for long; invoker hosts (both driven on the test
/// thread) may wait only briefly, or one would sit in its driver while the other has work.
fn idle_for(threading: Threading) -> IdleStrategy {
    match threading {
        Threading::Dedicated => long_park(),
        Threading::Invoker => IdleStrategy::Backoff {
            spins: 4,
            yields: 4,
            max: Duration::from_millis(1),
        },
    }
}

fn builder(driver: DriverKind, threading: Threading, seed: u64) -> HostBuilder {
    HostBuilder::default()
        .driver(Some(driver))
        .threading(threading)
        .idle(idle_for(threading))
        .seed(Some(seed))
        .pin(false)
        .name("host-test")
}

/// Whether `e` says the kernel cannot run the driver (the test then skips, saying so).
fn unsupported(e: &NodeError, driver: DriverKind) -> bool {
    if let NodeError::Driver(e @ DriverError::Unsupported { .. }) = e {
        println!("skipping on {}: {e}", driver.name());
        true
    } else {
        false
    }
}

/// Starts a host of echo services, or `None` (printing why) if the driver cannot start.
fn start(builder: HostBuilder, driver: DriverKind) -> Option<Side> {
    let (tx, rx) = mpsc::channel();
    let dropped = Arc::new(AtomicUsize::new(0));
    let shards = builder.shard_count();
    let host = match builder.build(factory(tx, dropped.clone(), None)) {
        Ok(h) => h,
        Err(e) if unsupported(&e, driver) => return None,
        Err(e) => panic!("building a host on {}: {e}", driver.name()),
    };
    let mut started: Vec<Started> = rx.try_iter().collect();
    assert_eq!(started.len(), shards, "{driver:?}: one service per shard");
    started.sort_by_key(|s| s.index);
    Some(Side {
        host,
        started,
        dropped,
    })
}

/// Lets the shards of `side` run: one idle-aware duty cycle in invoker mode, a yield otherwise.
fn pump(side: &mut Side, threading: Threading) {
    match threading {
        Threading::Invoker => {
            side.host.invoke_idle();
        }
        Threading::Dedicated => std::thread::yield_now(),
    }
}

/// The next event of `side`, which must be a service event.
fn next_event(side: &mut Side, driver: DriverKind) -> Option<(usize, Ev)> {
    match side.host.poll_event()? {
        (i, Hosted::Event(e)) => Some((i, e)),
        (i, Hosted::DriverFailed { error }) => panic!("{driver:?}: shard {i}: {error}"),
    }
}

/// Drops `host` on another thread, failing (instead of hanging) if that does not finish.
fn drop_within_patience<T: Send + 'static>(host: T, what: &str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(host);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(PATIENCE).is_ok(),
        "{what}: dropping the host did not return"
    );
}

macro_rules! on_each_driver_and_threading {
    ($run:ident, $poll_invoker:ident, $poll_dedicated:ident, $uring_invoker:ident, $uring_dedicated:ident) => {
        #[test]
        fn $poll_invoker() {
            $run(DriverKind::Poll, Threading::Invoker);
        }

        #[test]
        fn $poll_dedicated() {
            $run(DriverKind::Poll, Threading::Dedicated);
        }

        #[test]
        fn $uring_invoker() {
            $run(DriverKind::Uring, Threading::Invoker);
        }

        #[test]
        fn $uring_dedicated() {
            $run(DriverKind::Uring, Threading::Dedicated);
        }
    };
}

/// Host `a` pings host `b` 5,000 times (at most 32 unanswered): `a` takes the commands in order,
/// `b` reports the pings in order, `a` reports the pongs in order.
fn commands_and_events_in_order(driver: DriverKind, threading: Threading) {
    let _heavy = one_at_a_time();
    let Some(mut a) = start(builder(driver, threading, 1), driver) else {
        return;
    };
    let Some(mut b) = start(builder(driver, threading, 2), driver) else {
        return;
    };
    let (to_a, to_b) = (a.host.locators()[0], b.host.locators()[0]);
    const N: u64 = 5_000;
    const WINDOW: u64 = 32;
    let (mut sent, mut taken, mut pinged, mut ponged) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    while ponged < N || taken < N || pinged < N {
        while sent < N && sent < ponged + WINDOW {
            let cmd = Cmd::Send {
                to: to_b,
                kind: PING,
                n: sent,
            };
            match a.host.command(0, cmd) {
                Ok(()) => sent += 1,
                Err(Full(back)) => {
                    assert_eq!(back, cmd, "{driver:?} {threading:?}");
                    break;
                }
            }
        }
        pump(&mut a, threading);
        pump(&mut b, threading);
        while let Some((shard, e)) = next_event(&mut a, driver) {
            assert_eq!(shard, 0);
            match e {
                Ev::Taken(n) => {
                    assert_eq!(n, taken, "{driver:?} {threading:?}: command order");
                    taken += 1;
                }
                Ev::Got {
                    from,
                    kind: PONG,
                    n,
                } => {
                    assert_eq!(from, to_b, "{driver:?} {threading:?}");
                    assert_eq!(n, ponged, "{driver:?} {threading:?}: pong order");
                    assert!(
                        n < taken,
                        "{driver:?} {threading:?}: pong before its command"
                    );
                    ponged += 1;
                }
                e => panic!("{driver:?} {threading:?}: unexpected {e:?} on a"),
            }
        }
        while let Some((shard, e)) = next_event(&mut b, driver) {
            assert_eq!(shard, 0);
            match e {
                Ev::Got {
                    from,
                    kind: PING,
                    n,
                } => {
                    assert_eq!(from, to_a, "{driver:?} {threading:?}");
                    assert_eq!(n, pinged, "{driver:?} {threading:?}: ping order");
                    pinged += 1;
                }
                e => panic!("{driver:?} {threading:?}: unexpected {e:?} on b"),
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?} {threading:?}: sent {sent}, taken {taken}, pinged {pinged}, ponged {ponged}"
        );
    }
    assert_eq!(a.host.events_dropped() + b.host.events_dropped(), 0);
    drop_within_patience(a.host, "a");
    drop_within_patience(b.host, "b");
}

on_each_driver_and_threading!(
    commands_and_events_in_order,
    commands_and_events_flow_in_order_on_poll_invoker,
    commands_and_events_flow_in_order_on_poll_dedicated,
    commands_and_events_flow_in_order_on_uring_invoker,
    commands_and_events_flow_in_order_on_uring_dedicated
);

/// 1,000 round trips between two dedicated hosts whose shards park for longer than the test
/// waits; each starts after `a` had time to park, by a command or by an offer on a ring the
/// service shares with the application (woken through `Host::wake_handle` or the
/// `ShardContext`'s handle), and ends by datagrams waking `b` then `a`.
fn parked_shards_wake(driver: DriverKind) {
    let _heavy = one_at_a_time();
    let threading = Threading::Dedicated;
    let Some(mut a) = start(builder(driver, threading, 3), driver) else {
        return;
    };
    let Some(mut b) = start(builder(driver, threading, 4), driver) else {
        return;
    };
    let to_b = b.host.locators()[0];
    let host_wake = a.host.wake_handle(0).expect("shard 0");
    for i in 0..1_000u64 {
        // Time to park: the shards wait in their drivers as soon as a cycle finds nothing.
        std::thread::sleep(Duration::from_millis(1));
        match i % 4 {
            0 | 2 => a
                .host
                .command(
                    0,
                    Cmd::Send {
                        to: to_b,
                        kind: PING,
                        n: i,
                    },
                )
                .expect("command ring has room"),
            1 => {
                assert!(a.started[0].offers.try_push((to_b, i)).is_ok());
                host_wake.wake();
            }
            _ => {
                assert!(a.started[0].offers.try_push((to_b, i)).is_ok());
                a.started[0].wake.wake();
            }
        }
        let start = Instant::now();
        loop {
            match next_event(&mut a, driver) {
                Some((_, Ev::Got { kind: PONG, n, .. })) => {
                    assert_eq!(n, i, "{driver:?}");
                    break;
                }
                Some((_, Ev::Taken(n))) => assert_eq!(n, i, "{driver:?}"),
                Some((_, e)) => panic!("{driver:?}: unexpected {e:?}"),
                None => std::thread::yield_now(),
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{driver:?}: round trip {i} never completed (lost wake-up?)"
            );
        }
        while let Some((_, e)) = next_event(&mut b, driver) {
            assert!(
                matches!(e, Ev::Got { kind: PING, n, .. } if n == i),
                "{driver:?}: {e:?}"
            );
        }
    }
    drop_within_patience(a.host, "a");
    drop_within_patience(b.host, "b");
}

#[test]
fn parked_dedicated_shard_wakes_for_commands_offers_and_datagrams_on_poll() {
    parked_shards_wake(DriverKind::Poll);
}

#[test]
fn parked_dedicated_shard_wakes_for_commands_offers_and_datagrams_on_uring() {
    parked_shards_wake(DriverKind::Uring);
}

/// A parked dedicated shard holding events for want of room in a small event ring wakes when
/// the application reads: 5,000 events through a ring of 2, in order.
fn parked_shard_refills_the_event_ring(driver: DriverKind) {
    let b = builder(driver, Threading::Dedicated, 5).ring_capacity(2);
    let Some(mut a) = start(b, driver) else {
        return;
    };
    const N: u64 = 5_000;
    a.host.command(0, Cmd::Burst(N)).expect("room");
    let start = Instant::now();
    let mut next = 0;
    while next < N {
        match next_event(&mut a, driver) {
            Some((_, Ev::Local(n))) => {
                assert_eq!(n, next, "{driver:?}");
                next += 1;
                if next % 500 == 0 {
                    // Let the shard park with the ring full.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Some((_, e)) => panic!("{driver:?}: unexpected {e:?}"),
            None => std::thread::yield_now(),
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: {next} of {N} events read (lost wake-up?)"
        );
    }
    assert_eq!(a.host.events_dropped(), 0, "{driver:?}");
    drop_within_patience(a.host, "a");
}

#[test]
fn parked_dedicated_shard_wakes_to_refill_a_small_event_ring_on_poll() {
    parked_shard_refills_the_event_ring(DriverKind::Poll);
}

#[test]
fn parked_dedicated_shard_wakes_to_refill_a_small_event_ring_on_uring() {
    parked_shard_refills_the_event_ring(DriverKind::Uring);
}

/// Two shards: each service's `ShardContext` names its index and bound locator, which
/// `Host::locators` repeats; wake handles exist for both shards and not for a third; a command
/// to the missing shard comes back; a command to shard 1 is carried out by shard 1.
fn context_and_locators(driver: DriverKind, threading: Threading) {
    let Some(mut a) = start(builder(driver, threading, 6).shards(2), driver) else {
        return;
    };
    assert_eq!(a.host.shard_count(), 2);
    assert_eq!(a.host.driver().0, driver);
    let locators = a.host.locators();
    assert_eq!(locators.len(), 2);
    for (i, s) in a.started.iter().enumerate() {
        assert_eq!(s.index, i, "{driver:?} {threading:?}");
        assert_eq!(s.locator, locators[i], "{driver:?} {threading:?}");
        assert!(s.locator.ip().is_loopback(), "{:?}", s.locator);
        assert_ne!(s.locator.port(), 0, "{driver:?} {threading:?}: unbound");
    }
    assert_ne!(locators[0], locators[1]);
    assert!(a.host.wake_handle(0).is_some());
    assert!(a.host.wake_handle(1).is_some());
    assert!(a.host.wake_handle(2).is_none());
    let cmd = Cmd::Send {
        to: locators[0],
        kind: PING,
        n: 7,
    };
    match a.host.command(2, cmd) {
        Err(Full(back)) => assert_eq!(back, cmd),
        Ok(()) => panic!("{driver:?} {threading:?}: a command reached no shard"),
    }
    // Shard 1 pings shard 0, which answers: the datagrams carry the locators.
    a.host.command(1, cmd).expect("room");
    let (mut taken, mut pinged, mut ponged) = (false, false, false);
    let start = Instant::now();
    while !(taken && pinged && ponged) {
        pump(&mut a, threading);
        while let Some((shard, e)) = next_event(&mut a, driver) {
            match (shard, e) {
                (1, Ev::Taken(7)) => taken = true,
                (0, Ev::Got { from, kind, n: 7 }) if kind == PING => {
                    assert_eq!(from, locators[1]);
                    pinged = true;
                }
                (1, Ev::Got { from, kind, n: 7 }) if kind == PONG => {
                    assert_eq!(from, locators[0]);
                    ponged = true;
                }
                other => panic!("{driver:?} {threading:?}: unexpected {other:?}"),
            }
        }
        assert!(start.elapsed() < PATIENCE, "{driver:?} {threading:?}");
    }
    drop_within_patience(a.host, "a");
}

on_each_driver_and_threading!(
    context_and_locators,
    shard_context_locators_wake_handles_and_missing_shard_on_poll_invoker,
    shard_context_locators_wake_handles_and_missing_shard_on_poll_dedicated,
    shard_context_locators_wake_handles_and_missing_shard_on_uring_invoker,
    shard_context_locators_wake_handles_and_missing_shard_on_uring_dedicated
);

/// Invoker mode, nothing read: the ring (4) and the overflow queue (65,536) hold the first events,
/// the rest are dropped and counted; reading then yields the held ones in order, and later
/// events follow them.
fn unread_events_dropped(driver: DriverKind) {
    let b = builder(driver, Threading::Invoker, 7).ring_capacity(4);
    let Some(mut a) = start(b, driver) else {
        return;
    };
    const RING: u64 = 4;
    const EXTRA: u64 = 1_000;
    const TOTAL: u64 = RING + MAX_OVERFLOW_EVENTS + EXTRA;
    let mut queued = 0;
    while queued < TOTAL {
        let n = (TOTAL - queued).min(10_000);
        a.host.command(0, Cmd::Burst(n)).expect("room");
        queued += n;
        a.host.invoke();
    }
    for _ in 0..4 {
        a.host.invoke();
    }
    assert_eq!(a.host.events_dropped(), EXTRA, "{driver:?}");
    let held = RING + MAX_OVERFLOW_EVENTS;
    let mut next = 0;
    let start = Instant::now();
    while next < held {
        while let Some((_, e)) = next_event(&mut a, driver) {
            assert_eq!(e, Ev::Local(next), "{driver:?}");
            next += 1;
        }
        a.host.invoke();
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: read {next} of {held}"
        );
    }
    for _ in 0..4 {
        a.host.invoke();
    }
    assert_eq!(
        next_event(&mut a, driver),
        None,
        "{driver:?}: more than was held"
    );
    // The dropped events are gone for good; new ones come next.
    a.host.command(0, Cmd::Burst(3)).expect("room");
    a.host.invoke();
    for k in 0..3 {
        assert_eq!(
            next_event(&mut a, driver),
            Some((0, Ev::Local(TOTAL + k))),
            "{driver:?}"
        );
    }
    assert_eq!(a.host.events_dropped(), EXTRA, "{driver:?}");
}

#[test]
fn unread_events_beyond_ring_and_overflow_are_dropped_and_counted_on_poll() {
    unread_events_dropped(DriverKind::Poll);
}

#[test]
fn unread_events_beyond_ring_and_overflow_are_dropped_and_counted_on_uring() {
    unread_events_dropped(DriverKind::Uring);
}

/// A factory that fails fails the build with `NodeError::Service`, for a single shard and for
/// the second of two; the first of two, already started, is stopped: its service is dropped and
/// its socket closed.
fn failing_factory(driver: DriverKind, threading: Threading) {
    let (tx, _rx) = mpsc::channel();
    let dropped = Arc::new(AtomicUsize::new(0));
    match builder(driver, threading, 8).build(factory(tx, dropped.clone(), Some(0))) {
        Err(NodeError::Service(e)) => assert_eq!(e, "no echo on shard 0"),
        Err(e) if unsupported(&e, driver) => return,
        Err(e) => panic!("{driver:?} {threading:?}: unexpected error {e}"),
        Ok(_) => panic!("{driver:?} {threading:?}: built without a service"),
    }

    let (tx, rx) = mpsc::channel();
    let b = builder(driver, threading, 9).shards(2);
    let (done_tx, done_rx) = mpsc::channel();
    let make = factory(tx, dropped.clone(), Some(1));
    // On another thread, so that a shard that never stops fails the test instead of hanging it.
    std::thread::spawn(move || {
        let result = b.build(make).map(|_| ());
        let _ = done_tx.send(result);
    });
    match done_rx.recv_timeout(PATIENCE) {
        Ok(Err(NodeError::Service(e))) => assert_eq!(e, "no echo on shard 1"),
        Ok(Err(e)) => panic!("{driver:?} {threading:?}: unexpected error {e}"),
        Ok(Ok(())) => panic!("{driver:?} {threading:?}: built without a service"),
        Err(_) => panic!("{driver:?} {threading:?}: build did not return"),
    }
    let first: Vec<Started> = rx.try_iter().collect();
    assert_eq!(first.len(), 1, "{driver:?} {threading:?}");
    assert_eq!(first[0].index, 0);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "{driver:?} {threading:?}: shard 0's service outlived the failed build"
    );
    assert!(
        UdpSocket::bind(first[0].locator).is_ok(),
        "{driver:?} {threading:?}: shard 0 still holds its socket after the build failed"
    );
}

on_each_driver_and_threading!(
    failing_factory,
    failing_service_factory_fails_build_on_poll_invoker,
    failing_service_factory_fails_build_on_poll_dedicated,
    failing_service_factory_fails_build_on_uring_invoker,
    failing_service_factory_fails_build_on_uring_dedicated
);

/// Dropping the host stops its shards (dedicated ones parked for longer than the test waits)
/// and joins their threads: when `drop` returns the services are gone and the sockets closed.
fn drop_stops_shards(driver: DriverKind, threading: Threading) {
    let Some(mut a) = start(builder(driver, threading, 10).shards(2), driver) else {
        return;
    };
    // Some work first, then time for dedicated shards to park.
    a.host.command(0, Cmd::Burst(1)).expect("room");
    a.host.command(1, Cmd::Burst(1)).expect("room");
    let mut got = 0;
    let start = Instant::now();
    while got < 2 {
        pump(&mut a, threading);
        while next_event(&mut a, driver).is_some() {
            got += 1;
        }
        assert!(start.elapsed() < PATIENCE, "{driver:?} {threading:?}");
    }
    std::thread::sleep(Duration::from_millis(20));
    let locators = a.host.locators();
    let dropped = a.dropped.clone();
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(a.started);
    drop_within_patience(a.host, "a");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "{driver:?} {threading:?}: services outlived the host"
    );
    for l in locators {
        assert!(
            UdpSocket::bind(l).is_ok(),
            "{driver:?} {threading:?}: {l} still bound after the host was dropped"
        );
    }
}

on_each_driver_and_threading!(
    drop_stops_shards,
    dropping_the_host_stops_and_joins_shards_on_poll_invoker,
    dropping_the_host_stops_and_joins_shards_on_poll_dedicated,
    dropping_the_host_stops_and_joins_shards_on_uring_invoker,
    dropping_the_host_stops_and_joins_shards_on_uring_dedicated
);
