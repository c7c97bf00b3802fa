//! 100,000 messages of mixed sizes through 5 % loss, 2 % duplication and reordering arrive
//! exactly once and in order, within the receiver's window and the sender's retransmit bound.

use substrate::proto::session::SessionConfig;
use substrate::testing::{LinkConfig, Loss};
use substrate::time::Duration;

use crate::common::{Pair, Transfer, mixed_size};

#[test]
fn session_delivers_mixed_sizes_exactly_once_in_order_over_lossy_link() {
    let link = LinkConfig::default()
        .latency(Duration::from_millis(5))
        .jitter(Duration::from_millis(1))
        .loss(Loss::Uniform(0.05))
        .duplicate(0.02)
        .reorder(0.02, Duration::from_millis(3));
    let config = SessionConfig {
        window_bytes: 2 << 20,
        ..SessionConfig::default()
    };
    let mut p = Pair::connect(11, link, config.clone(), config.clone());
    let mut t = Transfer::new(
        100_000,
        mixed_size,
        config.window_bytes,
        config.window_bytes,
    );
    t.run(&mut p, Duration::from_secs(600));
    t.assert_all_delivered_in_order();

    let sender =
        p.c.node(p.a)
            .session_info(p.sa)
            .expect("session alive")
            .stats;
    let receiver =
        p.c.node(p.b)
            .session_info(p.sb)
            .expect("session alive")
            .stats;
    assert!(
        sender.fragments_retransmitted > 0,
        "5 % loss must cause repairs"
    );
    assert!(receiver.naks_sent > 0, "gaps are repaired by NAKs");
    assert!(
        receiver.fragments_duplicate > 0,
        "duplicates are recognised"
    );
    assert_eq!(receiver.messages_lost, 0);
    assert!(t.max_buffered > 0);
}
