//! The basics: connect, stream messages, receive them in order, zero-copy.

use substrate::id::StreamId;

use crate::common::{DRIVERS, connect, node, run_until};

#[test]
fn messages_arrive_in_order_on_each_driver() {
    for driver in DRIVERS {
        let mut a = node(1, driver).build().expect("node a");
        let mut b = node(2, driver).build().expect("node b");
        let (sa, _) = connect(&mut a, &mut b);
        let stream = StreamId(7);
        let mut publication = a.publication(sa, stream).expect("publication");
        let mut sub = b.subscribe(stream).expect("subscription");
        const N: u64 = 100_000;
        let (mut sent, mut next) = (0u64, 0u64);
        run_until(&mut a, &mut b, |_, _| {
            while sent < N && publication.offer(&sent.to_le_bytes()).is_ok() {
                sent += 1;
            }
            sub.poll(
                |d| {
                    assert_eq!(d.number, next, "{driver:?}");
                    assert_eq!(d.payload[..], next.to_le_bytes(), "{driver:?}");
                    next += 1;
                },
                usize::MAX,
            );
            next == N
        });
        let c = b.counters();
        assert_eq!(c.messages_delivered, N);
        assert_eq!(c.datagrams_invalid, 0);
    }
}

/// A node may be built on one thread and run on another (invoker mode included).
#[test]
fn nodes_are_send() {
    fn is_send<T: Send>() {}
    is_send::<substrate::runtime::Node>();
    is_send::<substrate::runtime::Publication>();
    is_send::<substrate::runtime::Subscription>();
}
