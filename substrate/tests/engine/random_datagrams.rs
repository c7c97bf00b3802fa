//! Junk at a node's port: 100,000 random datagrams, some dressed with a valid-looking header,
//! hit B while A streams to it. Each one B reads is counted as invalid or as for an unknown
//! connection, nothing panics, and the stream completes in order.

use std::net::UdpSocket;

use substrate::id::StreamId;
use substrate::rand::Rng;
use substrate::runtime::NodeEvent;
use substrate::runtime::driver::DriverKind;
use substrate::wire::{FrameKind, HEADER_LEN, MAGIC, VERSION_1};

use crate::adversary::{build_pair_or_skip, one_at_a_time, quiesce};
use crate::common::{
    PATIENCE, connect, node, offer_numbered, on_each_driver, open_stream, read_numbered,
};

on_each_driver!(
    random_datagrams,
    random_datagrams_are_counted_and_harmless_on_poll,
    random_datagrams_are_counted_and_harmless_on_uring
);

/// Junk datagrams sent.
const JUNK: u64 = 100_000;
/// Junk datagrams sent per round (between two duty cycles of each node).
const JUNK_PER_ROUND: u64 = 16;

fn random_datagrams(driver: DriverKind) {
    let _heavy = one_at_a_time();
    let Some((mut a, mut b)) = build_pair_or_skip(node(1, driver), node(2, driver), driver) else {
        return;
    };
    let (sa, sb) = connect(&mut a, &mut b);
    let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(3));
    let (before, session_before) = quiesce(&mut b, sb);

    let junk = UdpSocket::bind("127.0.0.1:0").expect("junk socket");
    let target = b.locators()[0];
    let mut rng = Rng::with_seed(0x6a75_6e6b);
    let mut buf = vec![0u8; 1500];
    // The stream runs alongside the junk (one message per junk datagram), then to its end.
    let messages = JUNK;
    let (mut sent_junk, mut sent, mut next) = (0u64, 0u64, 0u64);
    let start = std::time::Instant::now();
    while next < messages {
        for _ in 0..JUNK_PER_ROUND.min(JUNK - sent_junk) {
            let len = junk_datagram(&mut rng, &mut buf);
            // Loopback may refuse a send when B's buffer is full; that datagram is then not
            // received either, and the count below is of what B read.
            let _ = junk.send_to(&buf[..len], target);
            sent_junk += 1;
        }
        let allowed = if sent_junk == JUNK {
            messages
        } else {
            sent_junk
        };
        offer_numbered(&mut publication, &mut sent, allowed);
        a.invoke();
        b.invoke();
        read_numbered(&mut sub, &mut next, driver);
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: gave up with {next} of {messages} messages and {sent_junk} junk sent"
        );
    }
    for (who, n) in [("a", &mut a), ("b", &mut b)] {
        while let Some(e) = n.poll_event() {
            assert!(
                !matches!(
                    e,
                    NodeEvent::Closed { .. }
                        | NodeEvent::PeerTimedOut { .. }
                        | NodeEvent::Connected { .. }
                        | NodeEvent::MessagesLost { .. }
                        | NodeEvent::DriverFailed { .. }
                ),
                "{driver:?}: {who} reported {e:?}"
            );
        }
    }

    let (after, session_after) = quiesce(&mut b, sb);
    let read = after.datagrams_received - before.datagrams_received;
    let for_session = session_after.datagrams_received - session_before.datagrams_received;
    let junk_read = read - for_session;
    let invalid = after.datagrams_invalid - before.datagrams_invalid;
    let unknown = after.unknown_connection - before.unknown_connection;
    println!(
        "{driver:?}: {junk_read} of {JUNK} junk datagrams read: {invalid} invalid, {unknown} for \
         unknown connections"
    );
    assert_eq!(
        invalid + unknown,
        junk_read,
        "{driver:?}: every junk datagram read is counted ({before:?} -> {after:?})"
    );
    assert!(
        junk_read >= JUNK / 2,
        "{driver:?}: only {junk_read} of {JUNK} junk datagrams reached B"
    );
    assert!(
        invalid > 0 && unknown > 0,
        "{driver:?}: both kinds of junk were sent"
    );
    assert_eq!(
        after.sessions_accepted, before.sessions_accepted,
        "{driver:?}"
    );
    assert_eq!(after.hellos_refused, before.hellos_refused, "{driver:?}");
    assert_eq!(session_after.frames_invalid, session_before.frames_invalid);
    assert_eq!(b.counters().messages_delivered, messages, "{driver:?}");
}

/// Writes one junk datagram into `buf`; returns its length. A quarter are random bytes of any
/// length; the rest pass the header check (magic and version), a third of those addressed to
/// connection id 0 (the Hello path) and the others to random ids; a tenth of those end after the
/// header, and half of the others carry a frame of a known kind with a random body.
fn junk_datagram(rng: &mut Rng, buf: &mut [u8]) -> usize {
    let len = rng.below(buf.len() as u64 + 1) as usize;
    rng.fill_bytes(&mut buf[..len]);
    if rng.chance(0.25) || len < HEADER_LEN {
        return len;
    }
    buf[..2].copy_from_slice(&MAGIC);
    buf[2] = VERSION_1;
    if rng.chance(1.0 / 3.0) {
        buf[4..HEADER_LEN].fill(0);
    }
    if rng.chance(0.1) {
        // A header and no frames.
        return HEADER_LEN;
    }
    if rng.chance(0.5) && len > HEADER_LEN + 2 {
        const KINDS: [FrameKind; 9] = [
            FrameKind::Handshake,
            FrameKind::Data,
            FrameKind::Ack,
            FrameKind::Nak,
            FrameKind::Gap,
            FrameKind::Heartbeat,
            FrameKind::PathChallenge,
            FrameKind::PathResponse,
            FrameKind::Close,
        ];
        buf[HEADER_LEN] = KINDS[rng.below(KINDS.len() as u64) as usize] as u8;
        // A one-byte varint body length, often right, sometimes not.
        let body = (len - HEADER_LEN - 2).min(63);
        buf[HEADER_LEN + 1] = if rng.chance(0.5) {
            body as u8
        } else {
            rng.below(64) as u8
        };
    }
    len
}
