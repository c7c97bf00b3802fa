//! Edge cases found by a third review of the session: pacing with an unconfirmed responder,
//! the first RTT sample, message-size bounds under control-frame pressure, and migration of an
//! idle peer. Each once failed.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use substrate::id::ConnectionId;
use substrate::id::StreamId;
use substrate::proto::Protocol;
use substrate::proto::rate::Rate;
use substrate::proto::session::{Event, OfferError, SessionConfig};
use substrate::testing::{LinkConfig, test_locator};
use substrate::time::Duration;
use substrate::wire::decode_datagram;

use crate::common::{Pair, endpoint, tap};
use crate::manual::Duo;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An unconfirmed responder sends nothing but its Accept, yet a paced stream with queued data
/// reports the pacer's (past) ready time as its deadline. `on_timeout` cannot move it, so
/// `poll_timeout` stays in the past: a driver obeying the drain contract spins at one instant
/// (here: until the initiator's first datagram arrives, or forever if it is lost).
#[test]
fn unconfirmed_responder_with_paced_stream_does_not_spin() {
    let config = SessionConfig::default();
    let mut d = Duo::connect_lazy(ms(10), config.clone(), config);
    d.drain();
    assert!(d.step(), "Hello delivered");
    let sb = d.events[1]
        .iter()
        .find_map(|e| match e {
            Event::Connected { session, .. } => Some(*session),
            _ => None,
        })
        .expect("b accepted the Hello");
    let now = d.now;
    let stream = StreamId(3);
    // A server that greets every new peer, on a paced stream.
    d.ep[1]
        .offer(now, sb, stream, Bytes::from_static(b"welcome"))
        .expect("responder may offer at once");
    assert!(d.ep[1].set_rate(now, sb, stream, Some(Rate::bytes_per_second(1_000_000))));
    d.drain();
    for _ in 0..100 {
        let t = d.ep[1].poll_timeout().expect("b has a timer");
        if t > d.now {
            return;
        }
        let now = d.now;
        d.ep[1].handle_timeout(now, &mut d.rng);
        d.drain();
    }
    panic!(
        "b's poll_timeout stays at {:?} (now {:?}) after 100 handle_timeout calls: spin",
        d.ep[1].poll_timeout(),
        d.now
    );
}

/// The responder's first RTT sample runs from its Accept to the initiator's first datagram. The
/// initiator answers the Accept at once, but if that datagram is lost the next one is a heartbeat
/// a heartbeat interval later, and that interval becomes the responder's srtt (rttvar = srtt/2,
/// so PTO ≈ 3 s on a 20 ms path).
#[test]
fn responder_rtt_not_inflated_when_first_heartbeat_is_lost() {
    let config = SessionConfig::default();
    let mut d = Duo::connect_lazy(ms(10), config.clone(), config);
    let mut dropped = false;
    d.drop = Box::new(move |s| {
        let Ok((h, _)) = decode_datagram(s.bytes) else {
            return false;
        };
        if s.from == 0 && h.destination != ConnectionId::NONE && !dropped {
            dropped = true;
            return true;
        }
        false
    });
    d.finish_handshake();
    d.run_for(Duration::from_millis(1_500));
    let rtt_b = d.ep[1].session_info(d.sb).unwrap().rtt;
    let rtt_a = d.ep[0].session_info(d.sa).unwrap().rtt;
    assert_eq!(d.dropped, 1);
    assert!(
        rtt_b < ms(200),
        "20 ms path: initiator srtt {rtt_a:?}, responder srtt {rtt_b:?}"
    );
}

/// `max_message_bytes` assumes every fragment but the first and last carries a full datagram's
/// payload (less 32 bytes). Control frames are written first, so a sender that is also a busy
/// receiver (acks for many streams) cuts its middle fragments short; the message's charged size
/// then exceeds the peer's window, which can never hold the whole partial message: the stream
/// deadlocks (reliable mode, no loss).
#[test]
fn max_size_message_delivered_while_acks_share_its_datagrams() {
    let ca = SessionConfig::default();
    let cb = SessionConfig {
        window_bytes: 16 * 1024,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(ms(5), ca, cb);
    let frags = Rc::new(RefCell::new(0u64));
    // Every datagram is captured and delivered by hand (no latency): [from a, from b].
    let wire: Rc<RefCell<[Vec<Vec<u8>>; 2]>> = Rc::default();
    let (f2, w2) = (frags.clone(), wire.clone());
    d.drop = Box::new(move |s| {
        for (stream, seq) in s.data_seqs() {
            if stream == 2 {
                let mut f = f2.borrow_mut();
                *f = (*f).max(seq + 1);
            }
        }
        w2.borrow_mut()[s.from].push(s.bytes.to_vec());
        true
    });
    let s2 = StreamId(2);
    let (sa, sb) = (d.sa, d.sb);
    let now = d.now;
    // The largest message the session admits, found by asking it.
    let (mut lo, mut hi) = (0usize, 16 * 1024);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        match d.ep[0].offer(now, sa, StreamId(3), Bytes::from(vec![0u8; mid])) {
            Err(OfferError::MessageTooLarge(_)) => hi = mid - 1,
            _ => lo = mid,
        }
        // Admitted probes just wait on stream 3, which has its own window and is never read.
    }
    let max = lo;
    assert!(
        max > 8 * 1024,
        "a 16 KiB window admits messages of more than 8 KiB: {max}"
    );
    assert!(matches!(
        d.ep[0].offer(now, sa, s2, Bytes::from(vec![1u8; max + 1])),
        Err(OfferError::MessageTooLarge(_))
    ));
    d.ep[0]
        .offer(now, sa, s2, Bytes::from(vec![2u8; max]))
        .expect("the largest admitted message");
    assert!(d.ep[0].set_rate(now, sa, s2, Some(Rate::bytes_per_second(100_000))));
    let mut got = Vec::new();
    for round in 0..300u64 {
        // b sends a little on 60 streams; it reaches a just as a's pacer lets the next fragment
        // go, so a's datagram carries 60 acks and then the fragment.
        for k in 0..60u32 {
            let now = d.now;
            let _ = d.ep[1].offer(
                now,
                sb,
                StreamId(100 + k),
                Bytes::from(round.to_be_bytes().to_vec()),
            );
        }
        d.drain();
        let Some(t) = d.ep[0].poll_timeout() else {
            break;
        };
        d.now = d.now.max(t);
        let (la, lb) = (d.loc[0], d.loc[1]);
        let to_a = std::mem::take(&mut wire.borrow_mut()[1]);
        for bytes in to_a {
            d.inject(0, lb, &bytes);
        }
        for k in 0..2 {
            if d.ep[k].poll_timeout().is_some_and(|t| t <= d.now) {
                let now = d.now;
                d.ep[k].handle_timeout(now, &mut d.rng);
            }
        }
        d.drain();
        let to_b = std::mem::take(&mut wire.borrow_mut()[0]);
        for bytes in to_b {
            d.inject(1, la, &bytes);
        }
        for k in 0..60u32 {
            while d.ep[0].recv(sa, StreamId(100 + k)).is_some() {}
        }
        got.extend(d.read_b(s2));
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(
        got,
        vec![0],
        "max-size message ({max} B): {} fragments sent, a still queues {:?} B of it (never fully \
         cut), b holds {:?} B of its 16384 B window and the limit cannot move; now {:?}",
        frags.borrow(),
        d.ep[0].queued_bytes(sa, s2),
        d.ep[1].buffered_bytes(sb, s2),
        d.now
    );
}

/// Migration gating: an idle peer moves; only its heartbeats come from the new address. Stale
/// datagrams keep arriving from the old address (a replayer there, or the peer's old binding),
/// each refreshing `heard_on_path`, so no heartbeat from the new address ever starts validation.
/// The session keeps sending to the old address; the moved peer hears nothing and times out.
#[test]
fn idle_migration_not_blocked_by_replays_from_old_address() {
    let config = SessionConfig::default();
    let link = LinkConfig::default().latency(ms(5));
    let mut p = Pair::connect(31, link, config.clone(), config.clone());
    let seen = tap(&mut p.c, p.a);
    p.c.run_for(Duration::from_secs(2)).expect("ran");
    let captured = seen.borrow().last().cloned().expect("a sent heartbeats");
    let old = p.c.locator(p.a);
    let new = test_locator(3_000);
    p.c.net_mut().rebind(p.a, new);
    let replayer = p.c.add_node_at(endpoint(666, config), old);
    let to = p.c.locator(p.b);
    for _ in 0..(15_000 / 4) {
        let now = p.c.now();
        p.c.net_mut().send(now, replayer, to, &captured);
        p.c.run_for(ms(4)).expect("ran");
    }
    let ev_a = p.c.take_events(p.a);
    let info = p.c.node(p.b).session_info(p.sb);
    assert!(
        !ev_a.iter().any(|e| matches!(e, Event::PeerTimedOut { .. })),
        "moved peer timed out: b path {:?}, challenges {:?}",
        info.as_ref().map(|i| i.path),
        info.as_ref().map(|i| i.stats.path_challenges_sent)
    );
}
