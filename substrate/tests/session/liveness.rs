//! Heartbeats keep an idle session alive far past the idle timeout, and measure the RTT.

use substrate::proto::session::{Event, SessionConfig};
use substrate::testing::LinkConfig;
use substrate::time::Duration;

use crate::common::{Pair, events};

#[test]
fn session_stays_alive_while_idle_on_heartbeats() {
    let config = SessionConfig::default();
    let link = LinkConfig::default().latency(Duration::from_millis(15));
    let mut p = Pair::connect(71, link, config.clone(), config.clone());
    // Six idle timeouts with no application traffic at all.
    p.c.run_for(config.idle_timeout * 6).expect("harness ran");
    for (node, session) in [(p.a, p.sa), (p.b, p.sb)] {
        let ev = events(&mut p.c, node);
        assert!(
            !ev.iter()
                .any(|e| matches!(e, Event::PeerTimedOut { .. } | Event::Closed { .. })),
            "{ev:?}"
        );
        let info = p.c.node(node).session_info(session).expect("alive");
        assert!(
            info.stats.heartbeats_sent >= 2 * 50,
            "one request and one reply per second each way"
        );
        let rtt_ms = info.rtt.as_secs_f64() * 1e3;
        assert!(
            (29.0..32.0).contains(&rtt_ms),
            "heartbeats measure the 30 ms RTT: {rtt_ms} ms"
        );
    }
}
