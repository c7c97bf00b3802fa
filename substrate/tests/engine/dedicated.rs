//! Dedicated shard threads end to end: connect, stream 100k messages, receive them in order, and
//! drop both nodes cleanly (their threads are joined). The shards park as soon as they are idle,
//! for longer than the test waits, and the sessions' heartbeats are two minutes apart, so every step relies on the
//! application waking them: a lost wake-up stalls the run until the test gives up. Lost wake-ups
//! were rare (2 runs in 120 before the fix), hence the repetitions.

use std::time::{Duration, Instant};

use substrate::id::{NodeId, StreamId};
use substrate::proto::session::SessionConfig;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{Node, NodeEvent, Threading};

use crate::adversary::{build_or_skip, one_at_a_time};
use crate::common::{PATIENCE, offer_numbered, on_each_driver, open_stream, read_numbered};

fn dedicated(id: u64, driver: DriverKind, idle: IdleStrategy) -> Option<Node> {
    // No protocol timer may end a parked wait early and hide a lost wake-up.
    let session = SessionConfig {
        // Both beyond the test's patience (60 s), so that no timer ends a lost wake-up's stall.
        heartbeat_interval: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(600),
        ..SessionConfig::default()
    };
    let builder = Node::builder(NodeId::from_u64(id))
        .session(session)
        .shards(1)
        .driver(driver)
        .threading(Threading::Dedicated)
        .idle(idle)
        .pin(false)
        .seed(id);
    build_or_skip(builder, driver)
}

fn stream_100k(driver: DriverKind, idle: IdleStrategy) {
    let _heavy = one_at_a_time();
    let Some(mut a) = dedicated(1, driver, idle) else {
        return;
    };
    let Some(mut b) = dedicated(2, driver, idle) else {
        return;
    };
    let start = Instant::now();
    let sa = a.connect(b.locators()[0]).expect("connect");
    let (mut ca, mut cb) = (false, false);
    while !(ca && cb) {
        while let Some(e) = a.poll_event() {
            ca |= matches!(e, NodeEvent::Connected { session, .. } if session == sa);
        }
        while let Some(e) = b.poll_event() {
            cb |= matches!(e, NodeEvent::Connected { .. });
        }
        assert!(start.elapsed() < PATIENCE, "{driver:?}: never connected");
        std::thread::yield_now();
    }
    let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(9));
    const N: u64 = 100_000;
    let (mut sent, mut next) = (0u64, 0u64);
    while next < N {
        offer_numbered(&mut publication, &mut sent, N);
        read_numbered(&mut sub, &mut next, driver);
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: {next} of {N} arrived"
        );
        std::thread::yield_now();
    }
    assert_eq!(b.counters().datagrams_invalid, 0, "{driver:?}");
    drop(publication);
    drop(sub);
    drop(a);
    drop(b);
}

/// Parks at once, for longer than any protocol timer: only wake-ups end a wait early.
fn long_park() -> IdleStrategy {
    IdleStrategy::Backoff {
        spins: 0,
        yields: 0,
        // Longer than the test's patience: a lost wake-up fails the test instead of slowing it.
        max: Duration::from_secs(120),
    }
}

fn repeatedly(driver: DriverKind) {
    for _ in 0..20 {
        stream_100k(driver, long_park());
    }
}

on_each_driver!(
    repeatedly,
    dedicated_threads_stream_in_order_and_stop_on_poll,
    dedicated_threads_stream_in_order_and_stop_on_uring
);
