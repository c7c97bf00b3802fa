//! A receiver that stops reading makes the sender see backpressure, with bounded memory, and
//! the stream resumes when it reads again.

use substrate::proto::session::{Event, SessionConfig};
use substrate::testing::LinkConfig;
use substrate::time::Duration;

use crate::common::{Pair, Transfer, events};

#[test]
fn session_backpressures_sender_when_receiver_stops_reading() {
    let config = SessionConfig {
        window_bytes: 256 << 10,
        send_buffer_bytes: 128 << 10,
        ..SessionConfig::default()
    };
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let mut p = Pair::connect(41, link, config.clone(), config.clone());
    let mut t = Transfer::new(50_000, |_| 1_000, config.window_bytes, config.window_bytes);
    t.reading = false;
    let stop = p.c.now() + Duration::from_secs(3);
    while p.c.now() < stop {
        t.step(&mut p);
    }
    // The sender is stuck at window + send buffer: memory is flat, not growing with time.
    let offered_then = t.offered;
    let queued =
        p.c.node(p.a)
            .queued_bytes(p.sa, crate::common::STREAM)
            .unwrap_or(0);
    assert!(queued <= config.send_buffer_bytes);
    assert!(offered_then * 1_000 <= config.window_bytes + config.send_buffer_bytes + 1_000);
    let stop = p.c.now() + Duration::from_secs(3);
    while p.c.now() < stop {
        t.step(&mut p);
    }
    assert_eq!(
        t.offered, offered_then,
        "no more is accepted while the receiver is stalled"
    );
    let ev = events(&mut p.c, p.a);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Backpressured { .. })),
        "{ev:?}"
    );
    let info = p.c.node(p.a).session_info(p.sa).expect("alive");
    assert!(info.stats.offers_backpressured > 0);
    assert_eq!(
        t.max_buffered,
        p.c.node(p.b)
            .buffered_bytes(p.sb, crate::common::STREAM)
            .unwrap_or(0)
    );

    // Reading again drains everything, in order, and the sender is told it may write.
    t.reading = true;
    t.run(&mut p, Duration::from_secs(60));
    t.assert_all_delivered_in_order();
    let ev = events(&mut p.c, p.a);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Writable { .. })),
        "{ev:?}"
    );
}
