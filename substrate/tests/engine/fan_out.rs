//! Two subscriptions to the same stream each get every message, in order, without a copy.

use substrate::id::StreamId;

use crate::adversary::{build_pair_or_skip, one_at_a_time};
use crate::common::{DRIVERS, connect, node, offer_numbered, open_stream, run_until};

#[test]
fn every_subscription_to_a_stream_gets_every_message() {
    let _heavy = one_at_a_time();
    for driver in DRIVERS {
        let Some((mut a, mut b)) = build_pair_or_skip(node(1, driver), node(2, driver), driver)
        else {
            continue;
        };
        let (sa, _) = connect(&mut a, &mut b);
        let stream = StreamId(3);
        let (mut publication, mut first) = open_stream(&mut a, sa, &mut b, stream);
        let mut second = b.subscribe(stream).expect("subscription");
        // More than a ring holds, and the second reads only every other round: it falls behind
        // and holds the stream back, but loses nothing.
        const N: u64 = 20_000;
        let (mut sent, mut next) = (0u64, [0u64; 2]);
        let mut round = 0u64;
        run_until(&mut a, &mut b, |_, _| {
            offer_numbered(&mut publication, &mut sent, N);
            round += 1;
            for (i, sub) in [&mut first, &mut second].into_iter().enumerate() {
                if i == 1 && round % 2 == 0 {
                    continue;
                }
                let next = &mut next[i];
                sub.poll(
                    |d| {
                        assert_eq!(d.number, *next, "{driver:?}, subscription {i}");
                        assert_eq!(d.payload[..], next.to_le_bytes(), "{driver:?}");
                        *next += 1;
                    },
                    usize::MAX,
                );
            }
            next == [N, N]
        });
        assert_eq!(b.counters().messages_delivered, N, "{driver:?}");
    }
}
