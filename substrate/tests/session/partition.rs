//! Partitions: a permanent one ends in a timeout and a closed session, not a hang; one shorter
//! than the idle timeout loses nothing.

use substrate::proto::session::{CloseCause, Event, SessionConfig};
use substrate::testing::LinkConfig;
use substrate::time::Duration;

use crate::common::{Pair, Transfer, events};

fn link() -> LinkConfig {
    LinkConfig::default()
        .latency(Duration::from_millis(10))
        .bandwidth(10_000_000)
}

#[test]
fn session_times_out_and_closes_under_permanent_partition() {
    let config = SessionConfig::default();
    let mut p = Pair::connect(3, link(), config.clone(), config.clone());
    let mut t = Transfer::new(2_000, |_| 500, config.window_bytes, config.window_bytes);
    t.run(&mut p, Duration::from_secs(5));
    let (a, b) = (p.a, p.b);
    p.c.net_mut().partition(&[a], &[b]);
    let quiet =
        p.c.run_until_quiet(p.c.now() + Duration::from_secs(60))
            .expect("harness ran");
    assert!(
        quiet,
        "a partitioned session must stop scheduling work, not spin"
    );
    for (node, session) in [(a, p.sa), (b, p.sb)] {
        let ev = events(&mut p.c, node);
        assert!(ev.contains(&Event::PeerTimedOut { session }), "{ev:?}");
        assert!(
            ev.contains(&Event::Closed {
                session,
                cause: CloseCause::TimedOut
            }),
            "{ev:?}"
        );
        assert!(
            p.c.node(node).session_info(session).is_none(),
            "closed session is freed"
        );
    }
}

#[test]
fn session_loses_nothing_across_partition_shorter_than_timeout() {
    let config = SessionConfig::default();
    let mut p = Pair::connect(4, link(), config.clone(), config.clone());
    let mut t = Transfer::new(
        30_000,
        |n| 100 + (n % 900) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    // Stream for a while, cut the link for 4 s (idle timeout is 10 s), then heal.
    let cut_at = p.c.now() + Duration::from_millis(300);
    while p.c.now() < cut_at {
        t.step(&mut p);
    }
    assert!(!t.finished(), "the partition must fall mid-stream");
    let (a, b) = (p.a, p.b);
    p.c.net_mut().partition(&[a], &[b]);
    let heal_at = p.c.now() + Duration::from_secs(4);
    while p.c.now() < heal_at {
        if !t.step(&mut p) {
            break;
        }
    }
    p.c.net_mut().heal();
    t.run(&mut p, Duration::from_secs(120));
    t.assert_all_delivered_in_order();
    let mut ev_b = t.events_b.clone();
    ev_b.extend(events(&mut p.c, b));
    for ev in [events(&mut p.c, a), ev_b] {
        assert!(
            !ev.iter()
                .any(|e| matches!(e, Event::PeerTimedOut { .. } | Event::Closed { .. })),
            "{ev:?}"
        );
    }
}
