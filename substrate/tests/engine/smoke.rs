//! The basics: connect, stream messages, receive them in order, zero-copy.

use substrate::id::StreamId;

use crate::common::{
    DRIVERS, connect, node, offer_numbered, open_stream, read_numbered, run_until,
};

#[test]
fn messages_arrive_in_order_on_each_driver() {
    for driver in DRIVERS {
        let mut a = node(1, driver).build().expect("node a");
        let mut b = node(2, driver).build().expect("node b");
        let (sa, _) = connect(&mut a, &mut b);
        let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(7));
        const N: u64 = 100_000;
        let (mut sent, mut next) = (0u64, 0u64);
        run_until(&mut a, &mut b, |_, _| {
            offer_numbered(&mut publication, &mut sent, N);
            read_numbered(&mut sub, &mut next, driver);
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
