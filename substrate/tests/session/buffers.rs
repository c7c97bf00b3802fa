//! The driver's buffers: received payloads are delivered as slices of the datagram they came in
//! (only reassembly copies, and it is counted), and datagrams are written into a caller-owned
//! slice of any length from `MIN_DATAGRAM_BYTES` up, whatever it held before.

use bytes::Bytes;
use substrate::id::StreamId;
use substrate::proto::session::{CloseCause, Event, SessionConfig};
use substrate::proto::{MIN_DATAGRAM_BYTES, Protocol};
use substrate::time::Duration;
use substrate::wire::CloseCode;

use crate::manual::Duo;

const S: StreamId = StreamId(1);

fn duo() -> Duo {
    let config = SessionConfig::default();
    Duo::connect(Duration::from_millis(5), config.clone(), config)
}

/// Everything `a` wants to send now, each datagram written into `buf` and then copied out (as a
/// receive buffer of its own).
fn from_a(d: &mut Duo, buf: &mut [u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(t) = d.ep[0].poll_transmit(d.now, buf) {
        assert!(t.datagram_len() <= buf.len());
        out.push(Bytes::from(t.gather.to_vec(&buf[..t.len])));
    }
    out
}

/// Hands `datagrams` to `b` as they are (no copy), in the given order.
fn to_b(d: &mut Duo, datagrams: &[Bytes]) {
    let (now, from) = (d.now, d.loc[0]);
    for dg in datagrams {
        d.ep[1].handle_datagram(now, from, dg, &mut d.rng);
    }
}

fn offer(d: &mut Duo, payload: Bytes) {
    let (now, sa) = (d.now, d.sa);
    d.ep[0].offer(now, sa, S, payload).expect("offer accepted");
}

fn recv_b(d: &mut Duo) -> Vec<Bytes> {
    let sb = d.sb;
    std::iter::from_fn(|| d.ep[1].recv(sb, S))
        .map(|m| m.payload)
        .collect()
}

/// Bytes copied on receive, as the endpoint and as b's session count them.
fn copied_at_b(d: &Duo) -> (u64, u64) {
    let session = d.ep[1].session_info(d.sb).expect("alive").stats;
    (
        d.ep[1].stats().payload_bytes_copied,
        session.payload_bytes_copied,
    )
}

/// Whether `inner`'s bytes lie inside `outer`'s buffer.
fn inside(inner: &Bytes, outer: &Bytes) -> bool {
    let range = outer.as_ptr_range();
    let (start, end) = (inner.as_ptr(), inner.as_ptr_range().end);
    range.start <= start && end <= range.end
}

#[test]
fn single_fragment_payloads_are_slices_of_the_received_datagram() {
    let mut d = duo();
    let mut buf = vec![0u8; 1_472];
    // Two datagrams, each with whole messages only (too little room is left after 1,400 bytes
    // to cut the next message there), handed over in reverse order, so that one message also
    // waits out of order before delivery.
    offer(&mut d, Bytes::from(vec![1u8; 1_400]));
    offer(&mut d, Bytes::from(vec![2u8; 1_400]));
    offer(&mut d, Bytes::from(vec![3u8; 10]));
    let mut datagrams = from_a(&mut d, &mut buf);
    assert!(datagrams.len() >= 2, "{} datagrams", datagrams.len());
    datagrams.reverse();
    to_b(&mut d, &datagrams);
    let got = recv_b(&mut d);
    assert_eq!(got.len(), 3);
    for (payload, (fill, len)) in got.iter().zip([(1u8, 1_400), (2, 1_400), (3, 10)]) {
        assert_eq!(payload.len(), len);
        assert!(payload.iter().all(|&b| b == fill));
        assert!(
            datagrams.iter().any(|dg| inside(payload, dg)),
            "message of {fill}s was copied out of its datagram"
        );
    }
    assert_eq!(copied_at_b(&d), (0, 0));
}

#[test]
fn only_multi_fragment_messages_are_copied() {
    let mut d = duo();
    let mut buf = vec![0u8; 1_472];
    let big: Vec<u8> = (0..4_000u32).map(|i| i as u8).collect();
    offer(&mut d, Bytes::from(big.clone()));
    let mut datagrams = from_a(&mut d, &mut buf);
    assert!(datagrams.len() >= 3, "{} datagrams", datagrams.len());
    datagrams.reverse();
    to_b(&mut d, &datagrams);
    let got = recv_b(&mut d);
    assert_eq!(got, vec![Bytes::from(big)]);
    assert!(!datagrams.iter().any(|dg| inside(&got[0], dg)));
    assert_eq!(copied_at_b(&d), (4_000, 4_000));

    // A single-fragment message after it adds nothing.
    offer(&mut d, Bytes::from(vec![9u8; 500]));
    let datagrams = from_a(&mut d, &mut buf);
    to_b(&mut d, &datagrams);
    let got = recv_b(&mut d);
    assert_eq!(got.len(), 1);
    assert!(datagrams.iter().any(|dg| inside(&got[0], dg)));
    assert_eq!(copied_at_b(&d), (4_000, 4_000));
}

#[test]
fn a_buffer_below_the_minimum_gets_nothing_and_loses_nothing() {
    let mut d = duo();
    offer(&mut d, Bytes::from_static(b"kept for a buffer that fits"));
    let now = d.now;
    let mut short = vec![0u8; MIN_DATAGRAM_BYTES - 1];
    assert_eq!(d.ep[0].poll_transmit(now, &mut short), None);
    assert_eq!(d.ep[0].poll_transmit(now, &mut []), None);
    let datagrams = from_a(&mut d, &mut [0u8; MIN_DATAGRAM_BYTES]);
    assert!(!datagrams.is_empty());
    to_b(&mut d, &datagrams);
    assert_eq!(
        recv_b(&mut d),
        vec![Bytes::from_static(b"kept for a buffer that fits")]
    );
}

#[test]
fn short_buffers_get_short_datagrams_and_the_close_still_fits() {
    let mut d = duo();
    let mut buf = vec![0u8; 200];
    for i in 0..20u8 {
        offer(&mut d, Bytes::from(vec![i; 60]));
    }
    let datagrams = from_a(&mut d, &mut buf);
    assert!(datagrams.len() > 1);
    assert!(datagrams.iter().all(|dg| dg.len() <= 200));
    to_b(&mut d, &datagrams);
    assert_eq!(recv_b(&mut d).len(), 20);

    // The reason was cut for 1,472-byte datagrams; this buffer is shorter still.
    let sa = d.sa;
    d.ep[0].abort(sa, CloseCode::Normal, &"why ".repeat(100));
    let mut buf = vec![0u8; MIN_DATAGRAM_BYTES];
    let datagrams = from_a(&mut d, &mut buf);
    assert_eq!(datagrams.len(), 1);
    to_b(&mut d, &datagrams);
    let closed = std::iter::from_fn(|| d.ep[1].poll_event()).find_map(|e| match e {
        Event::Closed {
            cause: CloseCause::Peer { code, reason },
            ..
        } => Some((code, reason)),
        _ => None,
    });
    let (code, reason) = closed.expect("b heard the Close");
    assert_eq!(code, CloseCode::Normal);
    assert!(!reason.is_empty() && "why ".repeat(100).starts_with(&reason));
}

#[test]
fn stale_buffer_contents_do_not_reach_the_wire() {
    let (mut clean, mut dirty) = (duo(), duo());
    for d in [&mut clean, &mut dirty] {
        for i in 0..50u8 {
            offer(d, Bytes::from(vec![i; 1 + 37 * usize::from(i)]));
        }
    }
    let a = from_a(&mut clean, &mut vec![0u8; 1_472]);
    let b = from_a(&mut dirty, &mut vec![0xa5u8; 1_472]);
    assert!(a.len() > 1);
    assert_eq!(a, b);
}
