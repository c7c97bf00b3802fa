//! Session lifecycle at the endpoint: handshake edge cases, close, handle reuse, event order,
//! and the work one datagram can cause. Found by review; each once failed.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use substrate::id::{ConnectionId, NodeId, StreamId};
use substrate::proto::Protocol;
use substrate::proto::session::{CloseCause, Endpoint, Event, OfferError, SessionConfig};
use substrate::testing::{Cluster, LinkConfig, test_locator};
use substrate::time::Duration;
use substrate::wire::{
    CloseCode, Frame, HEADER_LEN, Handshake, HandshakeStage, VERSION_1, decode_datagram,
};

use crate::common::{Pair, datagram, endpoint, events};
use crate::manual::{Duo, Seen};

const S: StreamId = StreamId(1);

fn has_close(bytes: &[u8]) -> bool {
    decode_datagram(bytes).is_ok_and(|(_, fr)| fr.flatten().any(|f| matches!(f, Frame::Close(_))))
}

fn hello_cid(bytes: &[u8]) -> Option<ConnectionId> {
    let (_, frames) = decode_datagram(bytes).ok()?;
    frames.flatten().find_map(|f| match f {
        Frame::Handshake(h) if h.stage == HandshakeStage::Hello => Some(h.source_cid),
        _ => None,
    })
}

/// `close` (or `abort`) on a session whose handshake has not completed turns it `Closed` at once
/// and it is reaped, but no `Event::Closed` is ever reported (conn.rs `close`, Handshaking arm).
/// The API promises `Closed` after `close`, and the handle is silently recycled.
#[test]
fn close_during_handshake_reports_closed() {
    let mut c = Cluster::new(1, LinkConfig::default().latency(Duration::from_millis(10)));
    let a = c.add_node(endpoint(1, SessionConfig::default()));
    let b = c.add_node(endpoint(2, SessionConfig::default()));
    let to = c.locator(b);
    let s = c
        .with_node(a, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.with_node(a, |e, _, _| e.close(s));
    c.run_for(Duration::from_secs(1)).unwrap();
    let ev = events(&mut c, a);
    assert!(c.node(a).session_info(s).is_none(), "session was freed");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Closed { session, .. } if *session == s)),
        "session freed without any Closed event: {ev:?}"
    );
}

/// One datagram carrying an Accept with an unsupported version (from anyone who saw the Hello's
/// source cid, or a buggy peer) makes the initiator drop the session silently: no Closed, no
/// PeerTimedOut, no Connected; the genuine Accept that follows is `unknown_connection`.
/// (conn.rs `on_handshake` calls `close`, which in Handshaking emits nothing.)
#[test]
fn bad_accept_does_not_kill_handshake_silently() {
    let config = SessionConfig::default();
    let mut d = Duo::connect_lazy(Duration::from_millis(10), config.clone(), config);
    let cid: Rc<RefCell<Option<ConnectionId>>> = Rc::default();
    let c2 = cid.clone();
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 0 {
            if let Some(c) = hello_cid(s.bytes) {
                *c2.borrow_mut() = Some(c);
            }
        }
        false
    });
    d.drain();
    let a_cid = cid.borrow().expect("a sent its Hello");
    let bad = Handshake {
        stage: HandshakeStage::Accept,
        node_id: NodeId::from_u64(2),
        source_cid: ConnectionId(0x1234),
        versions: &[9],
        features: 0,
        window_bytes: None,
        max_datagram_bytes: None,
        idle_timeout_ms: None,
    };
    let from = d.loc[1];
    d.inject(0, from, &datagram(a_cid, &[Frame::Handshake(bad)]));
    d.run_for(Duration::from_secs(15));
    let ev = &d.events[0];
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Connected { .. } | Event::Closed { .. } | Event::PeerTimedOut { .. }
        )),
        "initiator's session vanished without any event: {ev:?}; a stats {:?}",
        d.ep[0].stats()
    );
}

/// The initiator changes address while its handshake is in progress (here: its first Accept is
/// lost, then it rebinds). Its repeated Hello reaches the responder from the new address, but
/// `on_hello_again` re-sends the Accept to the old path, which is dead: the handshake can never
/// complete and times out, although both nodes can reach each other.
#[test]
fn hello_repeated_from_new_address_completes_handshake() {
    let mut c = Cluster::new(3, LinkConfig::default().latency(Duration::from_millis(5)));
    let a = c.add_node(endpoint(1, SessionConfig::default()));
    let b = c.add_node(endpoint(2, SessionConfig::default()));
    c.net_mut().block_one_way(&[b], &[a]);
    let to = c.locator(b);
    let s = c
        .with_node(a, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.run_for(Duration::from_millis(30)).unwrap();
    assert!(
        c.events(b)
            .iter()
            .any(|e| matches!(e, Event::Connected { .. })),
        "b accepted the first Hello"
    );
    c.net_mut().rebind(a, test_locator(500));
    c.net_mut().heal();
    c.run_for(Duration::from_secs(15)).unwrap();
    let ev = events(&mut c, a);
    assert!(
        ev.contains(&Event::Connected {
            session: s,
            peer: NodeId::from_u64(2)
        }),
        "handshake never completed after the initiator moved: {ev:?}"
    );
}

/// The closing side sends its Close once and then only answers stray datagrams for 3 PTOs.
/// If that one datagram is lost and the peer is idle (its next heartbeat comes after the 3
/// PTOs, here ~63 ms vs 1 s), the peer never learns of the close: it waits the whole idle
/// timeout and then reports `PeerTimedOut`/`Closed{TimedOut}` instead of `Closed{Peer}`.
#[test]
fn lost_close_is_noticed_before_idle_timeout() {
    let config = SessionConfig::default();
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    d.run_for(Duration::from_secs(3));
    let mut dropped = false;
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 0 && !dropped && has_close(s.bytes) {
            dropped = true;
            return true;
        }
        false
    });
    let sa = d.sa;
    d.ep[0].abort(sa, CloseCode::Other(42), "bye");
    d.drain();
    assert!(
        d.events[0]
            .iter()
            .any(|e| matches!(e, Event::Closed { .. })),
        "a closed: {:?}",
        d.events[0]
    );
    d.run_for(Duration::from_secs(5));
    let ev = d.events[1].clone();
    d.run_for(Duration::from_secs(10));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Closed {
                cause: CloseCause::Peer { .. },
                ..
            }
        )),
        "peer did not learn of the close within 5 s: {ev:?}; later: {:?}",
        d.events[1]
    );
}

/// `abort` after `close` is ignored (`Session::close` returns early once `closing` is set). A
/// graceful close waits for every stream to be acknowledged, which never happens while the
/// receiver does not read and the send buffer holds more than its window: the session lives on
/// forever (heartbeats keep it alive) and the application has no way to end it.
#[test]
fn abort_overrides_stuck_graceful_close() {
    let config = SessionConfig {
        window_bytes: 64 << 10,
        send_buffer_bytes: 64 << 10,
        ..SessionConfig::default()
    };
    let mut p = Pair::connect(
        9,
        LinkConfig::default().latency(Duration::from_millis(5)),
        config.clone(),
        config,
    );
    let sa = p.sa;
    // b never reads; a fills window and send buffer.
    let mut n = 0;
    loop {
        let r = p.c.with_node(p.a, |e, now, _| {
            e.offer(now, sa, S, Bytes::from(vec![1u8; 1_000]))
        });
        match r {
            Ok(_) => n += 1,
            Err(OfferError::BackPressured(_)) => {
                p.c.run_for(Duration::from_millis(50)).unwrap();
                if p.c.node(p.a).queued_bytes(sa, S).unwrap_or(0) > 0
                    && matches!(
                        p.c.with_node(p.a, |e, now, _| e.offer(
                            now,
                            sa,
                            S,
                            Bytes::from(vec![1u8; 1_000])
                        )),
                        Err(OfferError::BackPressured(_))
                    )
                {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
        assert!(n < 10_000);
    }
    p.c.with_node(p.a, |e, _, _| e.close(sa));
    p.c.run_for(Duration::from_secs(30)).unwrap();
    assert!(
        p.c.node(p.a).session_info(sa).is_some(),
        "graceful close is still waiting (expected: the reader is stalled)"
    );
    p.c.with_node(p.a, |e, _, _| e.abort(sa, CloseCode::Other(7), "give up"));
    p.c.run_for(Duration::from_secs(1)).unwrap();
    let ev = events(&mut p.c, p.a);
    assert!(
        ev.contains(&Event::Closed {
            session: sa,
            cause: CloseCause::Local(CloseCode::Other(7))
        }),
        "abort after close had no effect; a's events: {ev:?}"
    );
}

/// A handle is recycled as soon as its session is reaped, even while the application may still
/// hold it (its `Closed` event not yet processed): the free list is FIFO, but with one free slot
/// the freshly freed handle is the next one given out. A stale `offer` then reaches another peer.
#[test]
fn closed_handle_is_not_recycled_for_another_peer() {
    let link = LinkConfig::default().latency(Duration::from_millis(5));
    let mut c: Cluster<Endpoint> = Cluster::new(4, link);
    let a1 = c.add_node(endpoint(1, SessionConfig::default()));
    let a2 = c.add_node(endpoint(3, SessionConfig::default()));
    let b = c.add_node(endpoint(2, SessionConfig::default()));
    let to = c.locator(b);
    let s1 = c
        .with_node(a1, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.run_for(Duration::from_millis(100)).unwrap();
    let h1 = events(&mut c, b)
        .iter()
        .find_map(|e| match e {
            Event::Connected { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    // a1 leaves; b's application has not looked at its events yet when a2 arrives.
    c.with_node(a1, |e, _, _| e.abort(s1, CloseCode::Normal, ""));
    c.run_for(Duration::from_millis(100)).unwrap();
    c.with_node(a2, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.run_for(Duration::from_millis(100)).unwrap();
    let ev_b = events(&mut c, b);
    let h2 = ev_b
        .iter()
        .find_map(|e| match e {
            Event::Connected { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    // The application, still thinking h1 is a1's session, replies on it.
    let stale = c.with_node(b, |e, now, _| {
        e.offer(now, h1, S, Bytes::from_static(b"for a1 only"))
    });
    c.run_for(Duration::from_millis(100)).unwrap();
    let a2_got = c
        .events(a2)
        .iter()
        .any(|e| matches!(e, Event::Readable { .. }));
    assert!(
        h2 != h1 && stale.is_err() && !a2_got,
        "handle {h1:?} was reused for a2 at once ({ev_b:?}); stale offer {stale:?}; a2 got it: {a2_got}"
    );
}

/// A copy of a session's Hello that arrives after the responder's session closed and was reaped
/// (a replay, or a duplicate delayed in the network) opens a phantom session: a second
/// `Connected` for a peer that opened nothing, which then lives until the idle timeout.
#[test]
fn replayed_hello_after_close_does_not_open_phantom_session() {
    let link = LinkConfig::default().latency(Duration::from_millis(5));
    let mut c: Cluster<Endpoint> = Cluster::new(5, link);
    let a = c.add_node(endpoint(1, SessionConfig::default()));
    let b = c.add_node(endpoint(2, SessionConfig::default()));
    let hello: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let tap = hello.clone();
    c.set_on_transmit(move |t| {
        if hello_cid(t.bytes).is_some() && tap.borrow().is_none() {
            *tap.borrow_mut() = Some(t.bytes.to_vec());
        }
    });
    let to = c.locator(b);
    let s = c
        .with_node(a, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.run_for(Duration::from_millis(100)).unwrap();
    c.with_node(a, |e, _, _| e.close(s));
    c.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(c.node(b).sessions().count(), 0, "b's session is gone");
    events(&mut c, b);
    let replay = hello.borrow().clone().unwrap();
    let now = c.now();
    c.net_mut().send(now, a, to, &replay);
    c.run_for(Duration::from_millis(100)).unwrap();
    let ev = events(&mut c, b);
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Connected { .. })),
        "old Hello opened a phantom session: {ev:?}"
    );
}

/// If the Accept is lost and the responder sends data at once (it may: it is established as soon
/// as it accepts), the initiator, still handshaking, accepts the data and reports `Readable`
/// before `Connected`. `Readable` is edge-triggered, so an application that ignores events of
/// sessions it has not seen connect never reads them.
#[test]
fn readable_is_not_reported_before_connected() {
    let config = SessionConfig::default();
    let mut d = Duo::connect_lazy(Duration::from_millis(10), config.clone(), config);
    let mut dropped = false;
    d.drop = Box::new(move |s: &Seen<'_>| {
        // b's first datagram is the Accept.
        if s.from == 1 && !dropped {
            dropped = true;
            return true;
        }
        false
    });
    d.drain();
    // Until b accepts, then b sends at once.
    while !d.events[1]
        .iter()
        .any(|e| matches!(e, Event::Connected { .. }))
    {
        assert!(d.step());
    }
    let sb = d.events[1]
        .iter()
        .find_map(|e| match e {
            Event::Connected { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    let now = d.now;
    d.ep[1]
        .offer(now, sb, S, Bytes::from_static(b"early"))
        .expect("responder may send once it accepted");
    d.drain();
    d.run_for(Duration::from_secs(2));
    let ev = &d.events[0];
    let connected = ev.iter().position(|e| matches!(e, Event::Connected { .. }));
    let readable = ev.iter().position(|e| matches!(e, Event::Readable { .. }));
    assert!(
        connected.is_some() && readable.is_some_and(|r| r > connected.unwrap()),
        "initiator's events out of order: {ev:?}"
    );
}

fn crafted_hello(node: u64, cid: u64) -> Vec<u8> {
    let h = Handshake {
        stage: HandshakeStage::Hello,
        node_id: NodeId::from_u64(node),
        source_cid: ConnectionId(cid),
        versions: &[VERSION_1],
        features: 0,
        window_bytes: Some(1 << 20),
        max_datagram_bytes: Some(1_472),
        idle_timeout_ms: Some(10_000),
    };
    datagram(ConnectionId::NONE, &[Frame::Handshake(h)])
}

/// A responder session that has never received a datagram on its own connection id (the
/// handshake was never confirmed) is kept alive by nothing but repeats of the Hello:
/// `on_hello_again` refreshes `last_received`. Replaying a few captured (or forged) Hellos every
/// few seconds therefore pins half-open sessions forever and, at `max_sessions`, locks every
/// genuine peer out (`Refused`), at a cost of one small datagram per slot per idle timeout.
#[test]
fn half_open_sessions_expire_despite_repeated_hellos() {
    let mut cfg = substrate::proto::session::EndpointConfig::new(NodeId::from_u64(2));
    cfg.max_sessions = 4;
    let server = Endpoint::new(cfg).unwrap();
    let link = LinkConfig::default().latency(Duration::from_millis(5));
    let mut c: Cluster<Endpoint> = Cluster::new(6, link);
    let a = c.add_node(endpoint(1, SessionConfig::default()));
    let b = c.add_node(server);
    let junk = c.add_node(endpoint(666, SessionConfig::default()));
    let to = c.locator(b);
    for _round in 0..12 {
        for k in 0..4 {
            let now = c.now();
            c.net_mut()
                .send(now, junk, to, &crafted_hello(1_000 + k, 77 + k));
        }
        c.run_for(Duration::from_secs(5)).unwrap();
    }
    // 60 s later: nobody ever answered an Accept, yet b still holds all four sessions.
    let held = c.node(b).sessions().count();
    let s = c
        .with_node(a, |e, now, rng| e.connect(now, to, rng))
        .unwrap();
    c.run_for(Duration::from_secs(1)).unwrap();
    let ev = events(&mut c, a);
    assert!(
        ev.contains(&Event::Connected {
            session: s,
            peer: NodeId::from_u64(2)
        }),
        "b still holds {held} half-open sessions after 60 s; genuine peer got {ev:?}"
    );
}

/// `CloseCode::Other(n)` for a code that has a name encodes to the named code's value and decodes
/// as the named variant: protocol.md's "A frame that encodes always decodes back to an equal
/// value" does not hold, and `abort(s, CloseCode::Other(1), ..)` reaches the peer as
/// `ProtocolViolation`.
#[test]
fn close_code_other_with_a_named_value_round_trips() {
    use substrate::wire::Close;
    let f = Frame::Close(Close {
        code: CloseCode::Other(1),
        reason: "",
    });
    let mut buf = vec![0u8; 16];
    let n = f.encode(&mut buf).expect("encodes");
    let (back, used) = Frame::decode(VERSION_1, &buf[..n]).expect("decodes");
    assert_eq!(used, n);
    assert_eq!(back, f, "encoded frame decodes to a different value");
}

/// Random lifecycles (connects, offers, reads, close, abort, rebinds, partitions, lossy and
/// duplicating links, tiny datagrams): no timer spins (a low per-instant step limit), and once
/// everything is aborted and read the endpoints go quiet with every session freed. Passes today;
/// kept as a guard.
#[test]
fn random_lifecycles_end_quiet_with_every_session_freed() {
    use substrate::rand::Rng;
    use substrate::testing::{Limits, Loss};
    for seed in 0..100u64 {
        let mut r = Rng::with_seed(seed);
        let link = LinkConfig::default()
            .latency(Duration::from_micros(100 + r.below(20_000)))
            .jitter(Duration::from_micros(r.below(3_000)))
            .loss(Loss::Uniform(r.unit_f64() * 0.3))
            .duplicate(r.unit_f64() * 0.1)
            .reorder(r.unit_f64() * 0.1, Duration::from_micros(r.below(5_000)));
        let cfg = SessionConfig {
            max_datagram_bytes: [128usize, 256, 1472][r.below(3) as usize],
            retransmit_window_bytes: r.chance(0.5).then_some(8_000),
            ..SessionConfig::default()
        };
        let mut c: Cluster<Endpoint> = Cluster::new(seed, link);
        c.set_limits(Limits {
            max_steps_per_instant: 20_000,
            ..Limits::default()
        });
        let a = c.add_node(endpoint(1, cfg.clone()));
        let b = c.add_node(endpoint(2, cfg.clone()));
        let to = c.locator(b);
        let mut sa = vec![];
        for _ in 0..1 + r.below(3) {
            sa.push(
                c.with_node(a, |e, now, rng| e.connect(now, to, rng))
                    .unwrap(),
            );
        }
        let end = c.now() + Duration::from_secs(40);
        let mut k = 0u32;
        while c.now() < end {
            let act = r.below(40);
            let s = sa[r.below(sa.len() as u64) as usize];
            let sb: Vec<_> = c.node(b).sessions().collect();
            match act {
                0 => c.with_node(a, |e, _, _| e.close(s)),
                1 => c.with_node(a, |e, _, _| e.abort(s, CloseCode::Normal, "x")),
                2 if !sb.is_empty() => {
                    let h = sb[r.below(sb.len() as u64) as usize];
                    c.with_node(b, |e, _, _| e.close(h))
                }
                3 => {
                    k += 1;
                    c.net_mut().rebind(a, test_locator(100 + k))
                }
                4 => c.net_mut().partition(&[a], &[b]),
                5 | 6 => c.net_mut().heal(),
                7 => {
                    let n = c.with_node(a, |e, now, rng| e.connect(now, to, rng));
                    if let Ok(n) = n {
                        sa.push(n)
                    }
                }
                _ => {
                    for _ in 0..r.below(20) {
                        let size = r.below(5_000) as usize;
                        let _ = c.with_node(a, |e, now, _| {
                            e.offer(
                                now,
                                s,
                                StreamId(r.below(3) as u32),
                                Bytes::from(vec![0u8; size]),
                            )
                        });
                    }
                    for h in sb {
                        c.with_node(b, |e, _, _| {
                            for st in 0..3 {
                                while e.recv(h, StreamId(st)).is_some() {}
                            }
                        });
                    }
                }
            }
            if let Err(e) = c.run_for(Duration::from_millis(r.below(300))) {
                panic!("seed {seed}: {e}");
            }
        }
        c.net_mut().heal();
        for s in c.node(a).sessions().collect::<Vec<_>>() {
            c.with_node(a, |e, _, _| e.abort(s, CloseCode::Normal, ""));
        }
        for h in c.node(b).sessions().collect::<Vec<_>>() {
            c.with_node(b, |e, _, _| {
                for st in 0..3 {
                    while e.recv(h, StreamId(st)).is_some() {}
                }
            });
        }
        let quiet = c
            .run_until_quiet(c.now() + Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for n in [a, b] {
            for h in c.node(n).sessions().collect::<Vec<_>>() {
                c.with_node(n, |e, _, _| {
                    for st in 0..3 {
                        while e.recv(h, StreamId(st)).is_some() {}
                    }
                });
            }
        }
        let left = (c.node(a).sessions().count(), c.node(b).sessions().count());
        assert!(
            quiet && left == (0, 0),
            "seed {seed}: quiet {quiet}, sessions left {left:?}, deadlines {:?} {:?}",
            c.deadline(a),
            c.deadline(b)
        );
    }
}

/// `EndpointConfig::validate` accepts a `window_bytes` above `MAX_VARINT` (say `u64::MAX` for
/// "unlimited"), but the handshake parameter cannot be encoded: `Writer::put` fails silently and
/// the initiator sends header-only datagrams instead of its Hello, forever, until the handshake
/// times out. Either validation should refuse it or the parameter should be clamped.
#[test]
fn window_above_varint_range_is_refused_or_works() {
    let cfg = SessionConfig {
        window_bytes: u64::MAX,
        ..SessionConfig::default()
    };
    let mut ec = substrate::proto::session::EndpointConfig::new(NodeId::from_u64(1));
    ec.session = cfg.clone();
    if Endpoint::new(ec).is_err() {
        return; // refused up front: fine
    }
    let r = Pair::try_connect(
        8,
        LinkConfig::default().latency(Duration::from_millis(5)),
        cfg,
        SessionConfig::default(),
    );
    assert!(
        r.is_ok(),
        "config accepted, but the handshake never completes: {:?}",
        r.err()
    );
}

/// A NAK costs the sender a pass over its retained fragments. A datagram packed with NAKs for one
/// stream must not multiply that: only the first NAK per stream per datagram is acted on, and
/// the rest are counted as ignored. Datagrams larger than the endpoint's `max_datagram_bytes`
/// (which it advertised, so no honest peer sends them) are dropped unread.
#[test]
fn one_datagram_of_naks_costs_bounded_work() {
    let config = SessionConfig::default();
    let mut d = Duo::connect(Duration::from_millis(5), config.clone(), config);
    // Learn a's connection id from a datagram b sends it, then cut b -> a so nothing is acked.
    let a_cid: Rc<RefCell<Option<ConnectionId>>> = Rc::default();
    let tap = a_cid.clone();
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 1 {
            if let Ok((h, _)) = decode_datagram(s.bytes) {
                *tap.borrow_mut() = Some(h.destination);
            }
            return true;
        }
        false
    });
    let sa = d.sa;
    while d.ep[0]
        .offer(d.now, sa, S, Bytes::from_static(b"x"))
        .is_ok()
    {}
    d.drain();
    d.run_for(Duration::from_millis(200));
    let cid = a_cid.borrow().expect("b sent to a");
    // One maximum-size datagram full of whole-stream NAKs.
    let range = core::slice::from_ref(&(0..(1u64 << 61)));
    let nak = Frame::Nak(substrate::wire::Nak {
        stream: S,
        received_end: 0,
        ranges: substrate::wire::RangeList::Slice(range),
    });
    let per = nak.encoded_len();
    let frames = vec![nak; (1_472 - HEADER_LEN) / per];
    let dg = datagram(cid, &frames);
    let (from, now) = (d.loc[1], d.now);
    let before = d.ep[0].session_info(sa).expect("alive").stats;
    d.ep[0].handle_datagram(now, from, &Bytes::from(dg), &mut d.rng);
    let after = d.ep[0].session_info(sa).expect("alive").stats;
    let k = frames.len() as u64;
    assert!(k > 10);
    assert_eq!(after.naks_received - before.naks_received, k);
    assert_eq!(
        after.naks_ignored - before.naks_ignored,
        k - 1,
        "only the first NAK is acted on"
    );
    // Larger than the advertised maximum: dropped before any frame is read.
    let big = datagram(cid, &vec![frames[0].clone(); 2 * k as usize]);
    assert!(big.len() > 1_472);
    let invalid = d.ep[0].stats().datagrams_invalid;
    d.ep[0].handle_datagram(now, from, &Bytes::from(big), &mut d.rng);
    assert_eq!(d.ep[0].stats().datagrams_invalid, invalid + 1);
    let last = d.ep[0].session_info(sa).expect("alive").stats;
    assert_eq!(
        last.naks_received, after.naks_received,
        "no frame of it was read"
    );
}
