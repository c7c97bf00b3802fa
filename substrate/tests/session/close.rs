//! Orderly close: everything offered before `close` is delivered, then both sides see `Closed`.

use substrate::proto::session::{CloseCause, Event, SessionConfig};
use substrate::testing::{LinkConfig, Loss};
use substrate::time::Duration;
use substrate::wire::CloseCode;

use crate::common::{Pair, Transfer, events};

#[test]
fn session_close_flushes_then_closes_both_sides() {
    let config = SessionConfig::default();
    let link = LinkConfig::default()
        .latency(Duration::from_millis(4))
        .loss(Loss::Uniform(0.05));
    let mut p = Pair::connect(51, link, config.clone(), config.clone());
    let mut t = Transfer::new(
        2_000,
        |n| 10 + (n % 3_000) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    // Offer everything, then close at once: the close must wait for the data.
    while t.offered < t.total {
        t.step(&mut p);
    }
    let sa = p.sa;
    p.c.with_node(p.a, |e, _, _| e.close(sa));
    t.run(&mut p, Duration::from_secs(60));
    t.assert_all_delivered_in_order();
    p.c.run_for(Duration::from_secs(5)).expect("harness ran");
    let ev_a = events(&mut p.c, p.a);
    assert!(
        ev_a.contains(&Event::Closed {
            session: sa,
            cause: CloseCause::Local(CloseCode::Normal)
        }),
        "{ev_a:?}"
    );
    let mut ev_b = t.events_b.clone();
    ev_b.extend(events(&mut p.c, p.b));
    let peer_closed = Event::Closed {
        session: p.sb,
        cause: CloseCause::Peer {
            code: CloseCode::Normal,
            reason: String::new(),
        },
    };
    assert!(ev_b.contains(&peer_closed), "{ev_b:?}");
    assert!(
        p.c.node(p.a).session_info(sa).is_none(),
        "closed sessions are freed"
    );
}
