//! Regression tests: scenarios found by review that once stalled, panicked or broke a bound.
//! Each asserts the intended behaviour.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use substrate::id::StreamId;
use substrate::proto::session::SessionConfig;
use substrate::time::Duration;

use crate::common::datagram;
use crate::manual::{Duo, Seen};

const S: StreamId = StreamId(1);

/// A Gap whose `sequence_end` is itself a hole (its repair lost) leaves the receiver with
/// out-of-order fragments beyond the gap and no NAK timer: nothing ever NAKs the hole again, so
/// the stream stalls for good (neither delivered nor reported lost).
#[test]
fn gap_ending_at_a_hole_keeps_nak_timer() {
    let config = SessionConfig {
        window_bytes: 1 << 20,
        // Room for two one-datagram messages: older ones are evicted.
        retransmit_window_bytes: Some(4_000),
        heartbeat_interval: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    // Count the transmissions of each data sequence: lose seq 0 always, and the first two
    // transmissions of seq 16 (the original, and the repair sent right after the Gap).
    let counts: Rc<RefCell<substrate::collections::HashMap<u64, u32>>> = Rc::default();
    let c2 = counts.clone();
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from != 0 {
            return false;
        }
        let mut drop = false;
        for (_, seq) in s.data_seqs() {
            let mut c = c2.borrow_mut();
            let n = c.entry(seq).or_insert(0);
            *n += 1;
            if seq == 0 || (seq == 16 && *n <= 2) {
                drop = true;
            }
        }
        drop
    });
    // 1,453 bytes: exactly one full data frame in a 1,472-byte datagram, so a repair never
    // shares a datagram with a Gap.
    const N: u64 = 18;
    for n in 0..N {
        d.offer(S, Bytes::from(vec![n as u8; 1_453]));
    }
    let delivered = d.read_b_for(S, Duration::from_secs(30));
    let lost: u64 = d.lost_b().iter().map(|r| r.end - r.start).sum();
    eprintln!(
        "transmissions per seq: {:?}",
        counts
            .borrow()
            .iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    eprintln!("delivered {delivered:?}, lost {:?}", d.lost_b());
    let info = d.ep[1].session_info(d.sb).unwrap();
    eprintln!("receiver stats: {:?}", info.stats);
    assert_eq!(
        delivered.len() as u64 + lost,
        N,
        "every message delivered or reported lost within 30 s"
    );
}

/// Learns b's connection id from a datagram a sends it.
fn b_cid(d: &mut Duo) -> substrate::id::ConnectionId {
    let cid: Rc<RefCell<Option<substrate::id::ConnectionId>>> = Rc::default();
    let c2 = cid.clone();
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 0 {
            if let Ok((h, _)) = substrate::wire::decode_datagram(s.bytes) {
                *c2.borrow_mut() = Some(h.destination);
            }
        }
        false
    });
    d.offer(S, Bytes::from_static(b"hello"));
    d.run_for(Duration::from_millis(100));
    d.drop = Box::new(|_| false);
    let c = *cid.borrow();
    c.expect("a sent to b")
}

/// A Gap whose `bytes_end` is below the bytes the receiver absorbs from fragments inside the gap
/// sets `offset_next_expected` below `ready_bytes`: `RecvStream::limit()` underflows, a panic
/// (overflow checks are on in test and sim builds) reachable from one crafted datagram.
#[test]
fn gap_with_small_bytes_end_does_not_panic() {
    use substrate::wire::{Data, DataFlags, Frame, Gap};
    let config = SessionConfig::default();
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    let cid = b_cid(&mut d);
    let stream = StreamId(9);
    let payload = [7u8; 100];
    let bytes = datagram(
        cid,
        &[
            Frame::Data(Data {
                stream,
                sequence: 1,
                flags: DataFlags::WHOLE,
                message: 0,
                payload: &payload,
            }),
            Frame::Gap(Gap {
                stream,
                sequence_start: 0,
                sequence_end: 2,
                message_end: 0,
                bytes_end: 0,
            }),
        ],
    );
    let from = d.loc[0];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.inject(1, from, &bytes);
        d.run_for(Duration::from_millis(100));
    }));
    assert!(r.is_ok(), "a crafted Gap panicked the receiving endpoint");
}

/// With small datagrams a NAK of up to MAX_NAK_RANGES ranges can be larger than a whole
/// datagram. `missing()` bounds the count, not the bytes, so the NAK never fits, `nak_due` stays
/// set, and no hole is ever repaired: the stream stalls.
#[test]
fn nak_fits_in_small_datagrams() {
    let config = SessionConfig {
        max_datagram_bytes: 128,
        window_bytes: 1 << 20,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    // Lose every third datagram a sends, among its first 180 data datagrams: ~60 holes.
    let mut k = 0u32;
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from != 0 || s.data_seqs().is_empty() {
            return false;
        }
        k += 1;
        k <= 180 && k % 3 == 0
    });
    const N: u64 = 400;
    for n in 0..N {
        d.offer(S, Bytes::from(vec![n as u8; 50]));
    }
    let delivered = d.read_b_for(S, Duration::from_secs(30));
    let info = d.ep[1].session_info(d.sb).unwrap();
    eprintln!(
        "delivered {} of {N}; receiver stats {:?}",
        delivered.len(),
        info.stats
    );
    assert_eq!(delivered.len() as u64, N, "all delivered within 30 s");
}

/// A message is evicted only once fully sent, so one larger than the retransmit window would be
/// retained whole past the bound: `offer` refuses it, and messages that fit keep the bound.
#[test]
fn retained_bounded_by_retransmit_window_for_large_message() {
    use substrate::proto::session::OfferError;
    let config = SessionConfig {
        window_bytes: 1 << 20,
        retransmit_window_bytes: Some(4_000),
        // Paced, so the messages go out over time rather than in one burst.
        default_rate: Some(substrate::proto::rate::Rate::bytes_per_second(100_000)),
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    let (sa, now) = (d.sa, d.now);
    let big = d.ep[0].offer(now, sa, S, Bytes::from(vec![1u8; 60_000]));
    assert!(
        matches!(big, Err(OfferError::MessageTooLarge(_))),
        "a 60 kB message was accepted"
    );
    for _ in 0..30 {
        d.offer(S, Bytes::from(vec![1u8; 2_000]));
    }
    let mut max = 0;
    let end = d.now + Duration::from_secs(2);
    while d.now < end && d.step() {
        max = max.max(d.ep[0].retained_bytes(d.sa, S).unwrap_or(0));
        d.read_b(S);
    }
    assert!(max > 0 && max <= 4_000, "retained {max} outside (0, 4000]");
}

/// Empty messages cost no bytes in any account: `offer` never backpressures and the receiver
/// holds any number of them unread (buffered_bytes stays 0, the window never closes).
#[test]
fn empty_messages_are_bounded() {
    let config = SessionConfig {
        window_bytes: 64 << 10,
        send_buffer_bytes: 64 << 10,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    const N: u64 = 200_000;
    let (sa, now) = (d.sa, d.now);
    let mut accepted = 0u64;
    for _ in 0..N {
        if d.ep[0].offer(now, sa, S, Bytes::new()).is_ok() {
            accepted += 1;
        }
    }
    d.drain();
    d.run_for(Duration::from_secs(2));
    // The application at b never read; count what b holds.
    let held = d.read_b(S).len();
    eprintln!(
        "offers accepted {accepted}/{N}, b held {held} unread messages, buffered_bytes was 0 throughout"
    );
    assert!(
        accepted < N && (held as u64) < N,
        "nothing bounds empty messages: {accepted} offered, {held} held unread"
    );
}

/// Before the Accept names the peer's window, no message size is known to be safe, so `offer`
/// refuses with `NotConnected`; afterwards a message that could never fit the peer's window is
/// refused as too large, and one that fits is delivered. (Once, a message queued before the
/// handshake could exceed the peer's window and deadlock the stream.)
#[test]
fn offer_waits_for_handshake_and_respects_peer_window() {
    use substrate::proto::session::OfferError;
    let ca = SessionConfig::default(); // 4 MiB window
    let cb = SessionConfig {
        window_bytes: 256 << 10,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect_lazy(Duration::from_millis(10), ca, cb);
    let (sa, now) = (d.sa, d.now);
    let early = d.ep[0].offer(now, sa, S, Bytes::from(vec![3u8; 1 << 10]));
    assert!(
        matches!(early, Err(OfferError::NotConnected(_))),
        "{early:?}"
    );
    d.finish_handshake();
    let now = d.now;
    let big = d.ep[0].offer(now, sa, S, Bytes::from(vec![3u8; 1 << 20]));
    assert!(
        matches!(big, Err(OfferError::MessageTooLarge(_))),
        "{big:?}"
    );
    let n = d.offer(S, Bytes::from(vec![4u8; 200 << 10]));
    assert_eq!(n, 0);
    let delivered = d.read_b_for(S, Duration::from_secs(20));
    assert_eq!(
        delivered,
        vec![0],
        "the message that fits the peer's window is delivered"
    );
}

/// `on_ack` samples the RTT from the newest fragment a cumulative ack covers whenever that
/// fragment was sent once. After a hole is repaired, the ack that covers it also covers
/// fragments sent long before, never retransmitted: the sample includes the whole repair time
/// (NAK delay + round trip), so srtt (and with it the PTO and NAK delays) inflates under loss.
#[test]
fn rtt_not_inflated_by_cumulative_ack_after_repair() {
    use crate::common::{Pair, Transfer};
    use substrate::testing::{LinkConfig, Loss};
    let link = LinkConfig::default()
        .latency(Duration::from_millis(5))
        .loss(Loss::Uniform(0.05));
    let config = SessionConfig {
        window_bytes: 2 << 20,
        // Heartbeats give clean samples too; make them rare so the ack samples dominate.
        heartbeat_interval: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(60),
        ..SessionConfig::default()
    };
    let mut p = Pair::connect(3, link, config.clone(), config.clone());
    let mut t = Transfer::new(20_000, |_| 1_000, config.window_bytes, config.window_bytes);
    t.run(&mut p, Duration::from_secs(120));
    t.assert_all_delivered_in_order();
    let rtt = p.c.node(p.a).session_info(p.sa).unwrap().rtt;
    eprintln!("sender srtt after a 5 % loss transfer over a 10 ms RTT path: {rtt:?}");
    assert!(
        rtt < Duration::from_millis(20),
        "srtt {rtt:?} on a 10 ms path"
    );
}

/// `abort` truncates the reason to MAX_REASON_BYTES (512) but not to what fits in a datagram:
/// with a small negotiated datagram the Close frame does not fit, `w.put` fails silently, an
/// empty datagram goes out, and the peer never learns of the close (it only times out).
#[test]
fn abort_with_long_reason_reaches_peer_on_small_datagrams() {
    use substrate::proto::session::{CloseCause, Event};
    use substrate::wire::CloseCode;
    let config = SessionConfig {
        max_datagram_bytes: 256,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    let reason = "x".repeat(400);
    let sa = d.sa;
    d.ep[0].abort(sa, CloseCode::Other(77), &reason);
    d.drain();
    d.run_for(Duration::from_millis(500));
    let peer_closed = d.events[1].iter().any(|e| {
        matches!(
            e,
            Event::Closed {
                cause: CloseCause::Peer { .. },
                ..
            }
        )
    });
    eprintln!("b events: {:?}", d.events[1]);
    assert!(peer_closed, "b never saw the Close");
}

/// (Before fragments were charged an overhead, a count bound on reordering existed.) Fragments
/// beyond `next_expected + max_out_of_order_fragments` were dropped without a trace
/// (`highest_seen` is not raised, nothing is held), so once the first hole is repaired the
/// receiver knows of no hole to NAK. The sender's only timer-driven repair, the tail-loss probe,
/// re-sends the *newest* fragment, which is again beyond the reorder bound and dropped: no
/// timer ever makes progress and the stream stalls for good. Small messages (one fragment each)
/// reach the default bound of 65,536 fragments well inside the default 4 MiB window.
#[test]
fn fragments_beyond_reorder_bound_are_recovered() {
    // A small window holds few tiny fragments: each is charged its overhead.
    let cb = SessionConfig {
        window_bytes: 16 << 10,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), SessionConfig::default(), cb);
    // Lose a's first data datagram.
    let mut first = true;
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 0 && first && !s.data_seqs().is_empty() {
            first = false;
            return true;
        }
        false
    });
    const N: u64 = 1_000;
    for n in 0..N {
        d.offer(S, Bytes::from(vec![n as u8; 10]));
    }
    let delivered = d.read_b_for(S, Duration::from_secs(30));
    let rs = d.ep[1].session_info(d.sb).unwrap().stats;
    let ss = d.ep[0].session_info(d.sa).unwrap().stats;
    eprintln!(
        "delivered {} of {N}; receiver over_window {} naks {}; sender retransmitted {}",
        delivered.len(),
        rs.fragments_over_window,
        rs.naks_sent,
        ss.fragments_retransmitted
    );
    assert_eq!(delivered.len() as u64, N, "all delivered within 30 s");
}

/// The same stall with default settings: 200,000 16-byte messages (3.2 MB, inside the 4 MiB
/// window, more than twice the 65,536-fragment reorder bound) and one datagram lost at the start.
#[test]
fn fragments_beyond_reorder_bound_defaults() {
    let config = SessionConfig::default();
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    let mut first = true;
    d.drop = Box::new(move |s: &Seen<'_>| {
        if s.from == 0 && first && !s.data_seqs().is_empty() {
            first = false;
            return true;
        }
        false
    });
    const N: u64 = 200_000;
    let sa = d.sa;
    let mut offered = 0u64;
    let mut delivered = 0u64;
    let end = d.now + Duration::from_secs(30);
    loop {
        let now = d.now;
        while offered < N
            && d.ep[0]
                .offer(now, sa, S, Bytes::from(vec![offered as u8; 16]))
                .is_ok()
        {
            offered += 1;
        }
        d.drain();
        if d.now >= end || !d.step() {
            break;
        }
        delivered += d.read_b(S).len() as u64;
        if delivered == N {
            break;
        }
    }
    let rs = d.ep[1].session_info(d.sb).unwrap().stats;
    eprintln!(
        "delivered {delivered} of {N}; receiver over_window {}",
        rs.fragments_over_window
    );
    assert_eq!(delivered, N, "all delivered within 30 s");
}

/// With `retransmit_window_bytes: None` the sender retains up to the window the *peer*
/// advertised, with no local cap. A peer that advertises a huge window and never acknowledges
/// makes the sender keep everything the application offers (no backpressure either, since the
/// offer queue drains into the retained set): memory driven by the peer, not by local config.
#[test]
fn sender_memory_not_bounded_by_peer_window() {
    let ca = SessionConfig::default(); // 4 MiB window, 4 MiB send buffer
    let cb = SessionConfig {
        window_bytes: 1 << 40,
        ..SessionConfig::default()
    };
    let mut d = Duo::connect(Duration::from_millis(10), ca, cb);
    // From now on b is silent (or malicious): nothing it sends reaches a.
    d.drop = Box::new(|s: &Seen<'_>| s.from == 1);
    let (sa, mut offered) = (d.sa, 0u64);
    let end = d.now + Duration::from_secs(5);
    while d.now < end {
        let now = d.now;
        while d.ep[0]
            .offer(now, sa, S, Bytes::from(vec![0u8; 60_000]))
            .is_ok()
        {
            offered += 60_000;
            if offered >= 64 << 20 {
                break;
            }
        }
        d.drain();
        if offered >= 64 << 20 || !d.step() {
            break;
        }
    }
    d.drain();
    let retained = d.ep[0].retained_bytes(sa, S).unwrap();
    eprintln!("a offered {offered} bytes, retains {retained} bytes for a peer that never acks");
    assert!(
        retained <= 4 << 20,
        "sender retains {retained} bytes, more than any local bound (4 MiB)"
    );
}

/// (c4291f3) The responder takes its first RTT sample from "Accept sent" to "first datagram from
/// the initiator", but the initiator sends nothing after the Accept until it has something to
/// say (its first heartbeat, a heartbeat interval later). The first sample sets srtt outright, so
/// an idle start leaves the responder with srtt ≈ heartbeat interval (1 s on a 20 ms path), and
/// its NAK delay and PTO scale with it for many seconds.
#[test]
fn responder_first_rtt_sample_not_inflated_by_idle_initiator() {
    let config = SessionConfig::default();
    let mut d = Duo::connect(Duration::from_millis(10), config.clone(), config);
    d.run_for(Duration::from_secs(3));
    let rtt_b = d.ep[1].session_info(d.sb).unwrap().rtt;
    let rtt_a = d.ep[0].session_info(d.sa).unwrap().rtt;
    eprintln!("after 3 s idle on a 20 ms path: initiator srtt {rtt_a:?}, responder srtt {rtt_b:?}");
    assert!(
        rtt_b < Duration::from_millis(100),
        "responder srtt {rtt_b:?}"
    );
}
