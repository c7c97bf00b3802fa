//! Garbage at an endpoint is counted and dropped; the session it serves carries on.

use substrate::proto::session::SessionConfig;
use substrate::rand::Rng;
use substrate::testing::LinkConfig;
use substrate::time::Duration;
use substrate::wire::{HEADER_LEN, MAGIC, VERSION_1};

use crate::common::{Pair, Transfer, endpoint, tap};

#[test]
fn endpoint_counts_garbage_and_keeps_serving() {
    let config = SessionConfig::default();
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let mut p = Pair::connect(61, link, config.clone(), config.clone());
    let attacker = p.c.add_node(endpoint(666, SessionConfig::default()));
    let mut t = Transfer::new(
        5_000,
        |n| 1 + (n % 2_000) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    let mut rng = Rng::with_seed(5);
    let to = p.c.locator(p.b);
    let mut sent = 0u64;
    let mut steps = 0u64;
    while !t.finished() {
        steps += 1;
        // Random bytes, and random bytes behind a valid-looking header, interleaved with traffic.
        if steps % 4 == 0 {
            let len = 1 + rng.below(1_500) as usize;
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            if rng.chance(0.5) && len > HEADER_LEN {
                junk[..2].copy_from_slice(&MAGIC);
                junk[2] = VERSION_1;
            }
            let now = p.c.now();
            p.c.net_mut().send(now, attacker, to, &junk);
            sent += 1;
        }
        assert!(t.step(&mut p));
    }
    t.run(&mut p, Duration::from_secs(30));
    p.c.run_for(Duration::from_secs(1)).expect("harness ran");
    t.assert_all_delivered_in_order();
    let stats = *p.c.node(p.b).stats();
    let rejected = stats.datagrams_invalid + stats.unknown_connection;
    assert_eq!(
        rejected, sent,
        "every garbage datagram is counted as rejected: {stats:?}"
    );
    assert!(stats.invalid_magic > 0 && stats.unknown_connection + stats.invalid_truncated > 0);
}

#[test]
fn session_skips_unknown_optional_frame_and_keeps_the_rest() {
    let config = SessionConfig::default();
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let mut p = Pair::connect(62, link, config.clone(), config.clone());
    let a = p.a;
    let seen = tap(&mut p.c, a);
    // a's latest datagram again, with an optional frame of a future kind appended (kind 0xC1,
    // 3 bytes of body): the unknown frame is skipped, the rest is processed as usual.
    p.c.run_for(Duration::from_millis(1_100))
        .expect("harness ran");
    let mut datagram = seen.borrow().last().cloned().expect("a has sent datagrams");
    datagram.extend_from_slice(&[0xC1, 3, 1, 2, 3]);
    let before = p.c.node(p.b).session_info(p.sb).expect("alive").stats;
    let (now, to) = (p.c.now(), p.c.locator(p.b));
    p.c.net_mut().send(now, a, to, &datagram);
    p.c.run_for(Duration::from_millis(10)).expect("harness ran");
    let after = p.c.node(p.b).session_info(p.sb).expect("alive").stats;
    assert_eq!(after.frames_unknown, before.frames_unknown + 1);
    assert_eq!(
        after.datagrams_received,
        before.datagrams_received + 1,
        "the datagram counted as valid"
    );
    assert_eq!(p.c.node(p.b).stats().datagrams_invalid, 0);
}
