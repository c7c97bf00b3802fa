//! A loss burst longer than the retransmit window becomes `MessagesLost` with the exact range,
//! and delivery continues after it.

use substrate::proto::session::SessionConfig;
use substrate::testing::LinkConfig;
use substrate::time::Duration;

use crate::common::{Pair, Transfer};

#[test]
fn session_reports_exact_loss_when_burst_exceeds_retransmit_window() {
    let retransmit = 64 << 10;
    let config = SessionConfig {
        window_bytes: 1 << 20,
        retransmit_window_bytes: Some(retransmit),
        ..SessionConfig::default()
    };
    let link = LinkConfig::default().latency(Duration::from_millis(5));
    let mut p = Pair::connect(5, link, config.clone(), config.clone());
    let mut t = Transfer::new(20_000, |_| 1_000, config.window_bytes, retransmit);
    let burst_at = p.c.now() + Duration::from_millis(50);
    while p.c.now() < burst_at {
        t.step(&mut p);
    }
    let (a, b) = (p.a, p.b);
    // Everything from a to b is lost for 500 ms: far more than 64 KiB is sent into the void.
    p.c.net_mut().block_one_way(&[a], &[b]);
    let heal_at = p.c.now() + Duration::from_millis(500);
    while p.c.now() < heal_at {
        t.step(&mut p);
    }
    p.c.net_mut().heal();
    t.run(&mut p, Duration::from_secs(120));
    assert!(t.finished(), "every message is delivered or reported lost");

    assert_eq!(t.lost.len(), 1, "one burst, one loss report: {:?}", t.lost);
    let lost = t.lost[0].clone();
    assert!(
        lost.end - lost.start > (retransmit / 1_000),
        "the burst outran the window: {lost:?}"
    );
    // Exact: the delivered numbers are precisely all numbers outside the lost range, in order.
    let expected: Vec<u64> = (0..t.total).filter(|n| !lost.contains(n)).collect();
    assert_eq!(
        t.delivered, expected,
        "delivered = everything but the reported range"
    );
    assert!(
        t.delivered.last() == Some(&(t.total - 1)),
        "delivery continued after the burst"
    );
    let stats = p.c.node(p.a).session_info(p.sa).expect("alive").stats;
    assert!(stats.gaps_sent > 0 && stats.fragments_evicted > 0);
}
