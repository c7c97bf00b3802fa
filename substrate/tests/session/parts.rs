//! Messages offered in two parts (`Endpoint::offer_parts`): delivered byte-identical to the same
//! bytes offered whole, whatever the split, the fragment boundaries, the gather threshold and the
//! loss; a gathered body part ends its datagram; and the send side's copy counters account for
//! every payload byte sent, first sends and retransmissions alike.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;
use substrate::id::SessionHandle;
use substrate::proto::session::{OfferError, SessionConfig, SessionStats};
use substrate::rand::Rng;
use substrate::testing::{LinkConfig, Loss};
use substrate::time::Duration;
use substrate::wire::{Frame, decode_datagram};

use crate::common::{Pair, STREAM, payload};

/// Message sizes around the fragment boundaries of 1,472-byte datagrams (a full fragment carries
/// about 1,450 bytes), plus empty, tiny and large ones.
const SIZES: &[usize] = &[
    0, 1, 63, 64, 65, 500, 1_023, 1_024, 1_025, 1_430, 1_440, 1_445, 1_450, 1_455, 1_460, 1_500,
    2_880, 2_900, 2_910, 4_000, 4_350, 10_000, 65_000,
];

/// The messages of a run: `(head, body)`, the whole being `payload(n, size)` cut somewhere. The
/// cuts are at the ends, at fragment boundaries and at random.
fn messages(seed: u64) -> Vec<(Bytes, Bytes)> {
    let mut rng = Rng::with_seed(seed);
    let mut out = Vec::new();
    for (k, &size) in SIZES.iter().enumerate() {
        let cuts = [
            0,
            size,
            size.min(1),
            size.min(1_440),
            size.min(1_450),
            rng.below(size as u64 + 1) as usize,
        ];
        for cut in cuts {
            let n = out.len() as u64;
            let whole = payload(n ^ ((k as u64) << 32), size);
            out.push((whole.slice(..cut), whole.slice(cut..)));
        }
    }
    out
}

/// A datagram `a` sent: its bytes on the wire and where in them the gathered parts are.
type Datagram = (Vec<u8>, Vec<Range<usize>>);
type Sent = Rc<RefCell<Vec<Datagram>>>;

struct Run {
    delivered: Vec<Bytes>,
    sent: Vec<Datagram>,
    sender: SessionStats,
    endpoint_copied: u64,
    endpoint_gathered: u64,
}

/// Offers `messages` from `a` (in parts, or joined when `whole`), runs until `b` has read them
/// all, and returns what `b` read and what `a` sent.
fn run(seed: u64, link: LinkConfig, gather: usize, msgs: &[(Bytes, Bytes)], whole: bool) -> Run {
    let config = SessionConfig {
        gather_min_bytes: gather,
        ..SessionConfig::default()
    };
    run_with(seed, link, config, msgs, whole, msgs.len())
}

/// As [`run`], with any session configuration, offering the messages `batch` at a time: each
/// batch is offered at once, and goes out (as far as the windows allow) before the next is
/// offered. Messages offered together share datagrams; one offered alone is the last thing to
/// send when it is written.
fn run_with(
    seed: u64,
    link: LinkConfig,
    config: SessionConfig,
    msgs: &[(Bytes, Bytes)],
    whole: bool,
    batch: usize,
) -> Run {
    let mut p = Pair::connect(seed, link, config.clone(), config);
    let sent: Sent = Rc::default();
    let sink = sent.clone();
    let a = p.a;
    p.c.set_on_transmit(move |t| {
        if t.node == a {
            sink.borrow_mut()
                .push((t.bytes.to_vec(), t.gathered.clone()));
        }
    });
    let (sa, sb) = (p.sa, p.sb);
    for msgs in msgs.chunks(batch) {
        p.c.with_node(p.a, |e, now, _| {
            for (head, body) in msgs {
                let (head, body) = (head.clone(), body.clone());
                let r = if whole {
                    let mut joined = head.to_vec();
                    joined.extend_from_slice(&body);
                    e.offer(now, sa, STREAM, Bytes::from(joined))
                        .map_err(|e| e.to_string())
                } else {
                    e.offer_parts(now, sa, STREAM, head, body)
                        .map_err(|e| e.to_string())
                };
                r.expect("room in the send buffer");
            }
        });
    }
    let mut delivered = Vec::new();
    let deadline = p.c.now() + Duration::from_secs(120);
    while delivered.len() < msgs.len() && p.c.now() < deadline {
        let got = p.c.with_node(p.b, |e, _, _| {
            std::iter::from_fn(|| e.recv(sb, STREAM)).collect::<Vec<_>>()
        });
        for m in got {
            assert_eq!(m.number, delivered.len() as u64, "in order, exactly once");
            delivered.push(m.payload);
        }
        if !p.c.step() {
            break;
        }
    }
    assert!(p.c.fault().is_none(), "harness fault: {:?}", p.c.fault());
    p.c.clear_on_transmit();
    let sender = stats(&p, p.a, sa);
    let e = p.c.node(p.a).stats();
    let (endpoint_copied, endpoint_gathered) =
        (e.tx_payload_bytes_copied, e.payload_bytes_gathered);
    let sent = sent.borrow().clone();
    Run {
        delivered,
        sent,
        sender,
        endpoint_copied,
        endpoint_gathered,
    }
}

fn stats(p: &Pair, node: substrate::testing::NodeIdx, s: SessionHandle) -> SessionStats {
    p.c.node(node).session_info(s).expect("session alive").stats
}

/// What the datagrams say was sent: payload bytes of every data frame, and gathered bytes.
/// Checks that every gathered part is at least `gather` bytes and lies within one data frame's
/// payload, at its end.
fn wire_account(sent: &[Datagram], gather: usize) -> (u64, u64) {
    let (mut data, mut gathered) = (0u64, 0u64);
    for (bytes, parts) in sent {
        let (_, frames) = decode_datagram(bytes).expect("a valid datagram");
        let mut payloads = Vec::new();
        for f in frames {
            if let Frame::Data(d) = f.expect("a valid frame") {
                data += d.payload.len() as u64;
                let start = d.payload.as_ptr() as usize - bytes.as_ptr() as usize;
                payloads.push(start..start + d.payload.len());
            }
        }
        for part in parts {
            assert!(
                part.len() >= gather,
                "a part of {} bytes is below {gather}",
                part.len()
            );
            assert!(
                payloads
                    .iter()
                    .any(|p| p.start <= part.start && p.end == part.end),
                "gathered part {part:?} is not the end of a data frame's payload"
            );
            gathered += part.len() as u64;
        }
    }
    (data, gathered)
}

fn joined(msgs: &[(Bytes, Bytes)]) -> Vec<Bytes> {
    msgs.iter()
        .map(|(h, b)| {
            let mut v = h.to_vec();
            v.extend_from_slice(b);
            Bytes::from(v)
        })
        .collect()
}

#[test]
fn parts_without_gathering_put_the_same_bytes_on_the_wire_as_whole_messages() {
    let msgs = messages(1);
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let parts = run(3, link, usize::MAX, &msgs, false);
    let whole = run(3, link, usize::MAX, &msgs, true);
    assert_eq!(parts.delivered, joined(&msgs));
    assert_eq!(whole.delivered, joined(&msgs));
    assert!(
        parts.sent == whole.sent,
        "the split changed the datagrams on the wire"
    );
    assert_eq!(parts.sender.payload_bytes_gathered, 0);
}

#[test]
fn parts_are_delivered_as_whole_messages_at_every_gather_threshold_through_loss() {
    let link = LinkConfig::default()
        .latency(Duration::from_millis(2))
        .loss(Loss::Uniform(0.1));
    for (seed, gather) in [(5, 1), (6, 64), (7, 1_024), (8, 1_441), (9, usize::MAX)] {
        let msgs = messages(seed);
        for whole in [false, true] {
            let r = run(seed, link, gather, &msgs, whole);
            assert_eq!(
                r.delivered,
                joined(&msgs),
                "gather {gather}, whole {whole}: delivered bytes differ"
            );
            assert!(
                r.sender.fragments_retransmitted > 0,
                "10 % loss must cause repairs (gather {gather})"
            );
            let (data, tails) = wire_account(&r.sent, gather);
            let s = r.sender;
            assert_eq!(
                s.tx_payload_bytes_copied + s.payload_bytes_gathered,
                data,
                "gather {gather}, whole {whole}: the counters do not add up to the bytes sent"
            );
            assert_eq!(s.payload_bytes_gathered, tails, "gather {gather}");
            assert_eq!(r.endpoint_copied, s.tx_payload_bytes_copied);
            assert_eq!(r.endpoint_gathered, s.payload_bytes_gathered);
            if gather == usize::MAX {
                assert_eq!(tails, 0);
            } else {
                assert!(tails > 0, "gather {gather}: nothing was gathered");
            }
        }
    }
}

#[test]
fn a_small_head_before_a_large_body_sent_alone_is_the_only_copy() {
    // A group frame's case: a short head, a payload of 1 KiB, offered one at a time (each is the
    // last thing to send when written): every body goes uncopied, one datagram per message.
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let msgs: Vec<(Bytes, Bytes)> = (0..200u64)
        .map(|n| (payload(n, 30), payload(n + 1_000, 1_024)))
        .collect();
    let config = SessionConfig {
        gather_min_bytes: 1_024,
        ..SessionConfig::default()
    };
    let r = run_with(11, link, config.clone(), &msgs, false, 1);
    assert_eq!(r.delivered, joined(&msgs));
    assert_eq!(r.sender.payload_bytes_gathered, 200 * 1_024);
    assert_eq!(r.sender.tx_payload_bytes_copied, 200 * 30);
    let gathered = r.sent.iter().filter(|(_, parts)| parts.len() == 1).count();
    assert_eq!(
        gathered, 200,
        "one datagram per message, each with its body"
    );

    // Offered all at once, the same: two do not fit in a datagram, and a message an empty
    // datagram holds whole is never cut to fill one, so each starts its own datagram, its body
    // gathered.
    let r = run_with(11, link, config, &msgs, false, msgs.len());
    assert_eq!(r.delivered, joined(&msgs));
    let with_data = r.sent.iter().filter(|(bytes, _)| bytes.len() > 500).count();
    assert_eq!(with_data, 200, "one datagram per message");
    assert_eq!(r.sender.fragments_sent, 200, "no message cut");
    assert_eq!(r.sender.payload_bytes_gathered, 200 * 1_024);
}

#[test]
fn refused_parts_are_handed_back() {
    let config = SessionConfig::default();
    let mut p = Pair::connect(
        13,
        LinkConfig::default(),
        config.clone(),
        SessionConfig {
            window_bytes: 64 << 10,
            ..config
        },
    );
    let sa = p.sa;
    let (head, body) = (Bytes::from_static(b"head"), Bytes::from(vec![7u8; 1 << 20]));
    let e = p.c.with_node(p.a, |e, now, _| {
        e.offer_parts(now, sa, STREAM, head.clone(), body.clone())
    });
    match e {
        Err(OfferError::MessageTooLarge((h, b))) => assert!(h == head && b == body),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    let bogus = SessionHandle::new(99, 0);
    let e = p.c.with_node(p.a, |e, now, _| {
        e.offer_parts(now, bogus, STREAM, head.clone(), Bytes::new())
    });
    assert!(matches!(e, Err(OfferError::NotConnected((h, b))) if h == head && b.is_empty()));
}

#[test]
fn a_message_an_empty_datagram_holds_is_never_cut() {
    // Pairs of a 600-byte message and a 30 + 1,024-byte one, offered together. After the first,
    // about 850 bytes are left in the datagram: not room for the second whole. Cut, it would
    // cost the receiver a reassembly copy and save no datagram; so it starts the next datagram
    // whole, gathered or not.
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let msgs: Vec<(Bytes, Bytes)> = (0..20u64)
        .flat_map(|n| {
            [
                (Bytes::new(), payload(n, 600)),
                (payload(n + 100, 30), payload(n + 200, 1_024)),
            ]
        })
        .collect();
    let config = |gather| SessionConfig {
        gather_min_bytes: gather,
        ..SessionConfig::default()
    };
    let gathered = run_with(21, link, config(1_024), &msgs, false, 2);
    let copied = run_with(21, link, config(usize::MAX), &msgs, false, 2);
    for r in [&gathered, &copied] {
        assert_eq!(r.delivered, joined(&msgs));
        assert_eq!(r.sender.fragments_sent, 40, "every message in one fragment");
    }
    assert_eq!(gathered.sender.payload_bytes_gathered, 20 * 1_024);
    assert_eq!(gathered.sender.tx_payload_bytes_copied, 20 * (600 + 30));
    assert_eq!(copied.sender.payload_bytes_gathered, 0);
}

#[test]
fn messages_sent_back_to_back_share_datagrams_and_are_all_gathered() {
    // 1 KiB bodies in datagrams of up to 65,507 bytes, offered at once: they share datagrams,
    // about sixty to each, and every body goes from where it is, between the frames' fields.
    let config = SessionConfig {
        max_datagram_bytes: 65_507,
        gather_min_bytes: 1_024,
        ..SessionConfig::default()
    };
    let msgs: Vec<(Bytes, Bytes)> = (0..600u64)
        .map(|n| (payload(n, 30), payload(n + 1_000, 1_024)))
        .collect();
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let r = run_with(31, link, config, &msgs, false, msgs.len());
    assert_eq!(r.delivered, joined(&msgs));
    let with_data = r
        .sent
        .iter()
        .filter(|(bytes, _)| bytes.len() > 2_000)
        .count();
    assert!(with_data <= 15, "{with_data} datagrams for 600 messages");
    assert_eq!(r.sender.fragments_sent, 600, "no message cut");
    assert_eq!(r.sender.payload_bytes_gathered, 600 * 1_024);
    assert_eq!(r.sender.tx_payload_bytes_copied, 600 * 30);
    let (data, gathered) = wire_account(&r.sent, 1_024);
    assert_eq!((data, gathered), (600 * 1_054, 600 * 1_024));
    let most = r.sent.iter().map(|(_, parts)| parts.len()).max();
    assert!(most > Some(50), "{most:?} parts at most in a datagram");
    assert_eq!(
        r.sender.tx_payload_bytes_copied + r.sender.payload_bytes_gathered,
        600 * 1_054
    );
}
