//! Gathered sends end to end: messages whose bodies go out as gathered parts of datagrams (no
//! copy into the transmit slot) arrive byte-identical through real sockets and a lossy driver, and the node's
//! counters say which bytes were copied and which were gathered.

use bytes::Bytes;
use substrate::id::StreamId;
use substrate::proto::session::SessionConfig;
use substrate::runtime::buf::COPIES;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::driver::fault::FaultConfig;

use crate::common::{connect, node, on_each_driver, open_stream, run_until};

/// Message `n`: a size across fragment boundaries and bytes that depend on `n`.
fn message(n: u64) -> Bytes {
    let sizes = [
        1usize, 100, 1_023, 1_024, 1_440, 1_500, 3_000, 8_192, 20_000,
    ];
    let len = sizes[n as usize % sizes.len()];
    Bytes::from(
        (0..len)
            .map(|i| (i as u64 ^ n.wrapping_mul(0x9e37)) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// On each driver, in datagrams of at most one Ethernet frame and of the loopback limit (where
/// a datagram carries dozens of gathered bodies between the frames' fields).
fn gathered_messages_arrive_intact(driver: DriverKind) {
    for max_datagram_bytes in [1_472, 65_507] {
        gathered_messages_arrive_intact_in(driver, max_datagram_bytes);
    }
}

fn gathered_messages_arrive_intact_in(driver: DriverKind, max_datagram_bytes: usize) {
    const N: u64 = 3_000;
    let session = SessionConfig {
        gather_min_bytes: 1_024,
        max_datagram_bytes,
        ..SessionConfig::default()
    };
    let lossy = |seed| FaultConfig::loss(seed, 0.02);
    let mut a = node(1, driver)
        .session(session.clone())
        .faults(lossy(1))
        .build()
        .expect("node a");
    let mut b = node(2, driver)
        .session(session)
        .faults(lossy(2))
        .build()
        .expect("node b");
    let (sa, _) = connect(&mut a, &mut b);
    let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(3));
    let copies_before = COPIES
        .tx_payload_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut sent, mut next) = (0u64, 0u64);
    let mut payload_bytes = 0u64;
    run_until(&mut a, &mut b, |_, _| {
        while sent < N && publication.offer_bytes(message(sent)).is_ok() {
            payload_bytes += message(sent).len() as u64;
            sent += 1;
        }
        sub.poll(
            |d| {
                assert_eq!(d.number, next, "{driver:?} {max_datagram_bytes}");
                assert!(
                    d.payload == message(next),
                    "{driver:?} {max_datagram_bytes}: message {next} differs"
                );
                next += 1;
            },
            usize::MAX,
        );
        next == N
    });
    let c = a.counters();
    let s = a.session_counters(sa).expect("session alive");
    assert!(
        s.fragments_retransmitted > 0,
        "{driver:?} {max_datagram_bytes}: the loss caused repairs"
    );
    assert!(
        c.tx_payload_bytes_copied + c.payload_bytes_gathered >= payload_bytes,
        "{driver:?} {max_datagram_bytes}: every payload byte was sent, copied or gathered: {c:?}"
    );
    // Most bytes are in fragments of 1 KiB or more and go uncopied; what is copied is small
    // messages and the pieces that fragmentation leaves (a message's start in the room left
    // after another, a short last fragment).
    assert!(
        c.payload_bytes_gathered > 2 * c.tx_payload_bytes_copied,
        "{driver:?} {max_datagram_bytes}: {c:?}"
    );
    let copies = COPIES
        .tx_payload_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        copies - copies_before >= c.tx_payload_bytes_copied,
        "{driver:?} {max_datagram_bytes}: the process-wide counter includes this node's copies"
    );
    assert_eq!(
        b.counters().datagrams_invalid,
        0,
        "{driver:?} {max_datagram_bytes}"
    );
}

on_each_driver!(
    gathered_messages_arrive_intact,
    gathered_messages_arrive_intact_on_poll,
    gathered_messages_arrive_intact_on_uring
);
