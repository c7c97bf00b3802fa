//! An application that closes a session and stops running its node as soon as it reads `Closed`
//! (the natural way to end a program) must still have told its peer: the peer hears the Close
//! and reports `Closed`, not a timeout an idle period later.

use substrate::id::StreamId;
use substrate::proto::session::SessionConfig;
use substrate::runtime::NodeEvent;
use substrate::runtime::driver::DriverKind;
use substrate::time::Duration;

use crate::adversary::{build_pair_or_skip, one_at_a_time};
use crate::common::{PATIENCE, connect, node, offer_numbered, on_each_driver, open_stream};

on_each_driver!(
    close_then_stop,
    a_node_that_stops_at_closed_has_told_its_peer_on_poll,
    a_node_that_stops_at_closed_has_told_its_peer_on_uring
);

/// Rounds, each with new nodes and a different amount of data in flight at the close.
const ROUNDS: u64 = 8;

fn close_then_stop(driver: DriverKind) {
    let _heavy = one_at_a_time();
    // A short idle timeout, so that a lost Close shows as a timeout soon.
    let session = SessionConfig {
        idle_timeout: Duration::from_secs(3),
        ..SessionConfig::default()
    };
    for round in 0..ROUNDS {
        let a = node(1, driver).session(session.clone());
        let b = node(2, driver).session(session.clone());
        let Some((mut a, mut b)) = build_pair_or_skip(a, b, driver) else {
            return;
        };
        let (sa, sb) = connect(&mut a, &mut b);
        let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(9));
        let messages = round * 5_000;
        let (mut sent, mut next) = (0u64, 0u64);
        let mut closing = false;
        let start = std::time::Instant::now();
        // Run both until A reads `Closed` (its Close goes once B acknowledged everything).
        'a: loop {
            offer_numbered(&mut publication, &mut sent, messages);
            if sent == messages && !closing && publication.pending_bytes() == 0 {
                a.close(sa).expect("close");
                closing = true;
            }
            a.invoke();
            b.invoke();
            sub.poll(|_| next += 1, usize::MAX);
            while let Some(e) = a.poll_event() {
                match e {
                    NodeEvent::Closed { session, .. } if session == sa => break 'a,
                    NodeEvent::Backpressured { .. } | NodeEvent::Writable { .. } => {}
                    other => panic!("{driver:?} round {round}: a reported {other:?}"),
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{driver:?} round {round}: A never closed"
            );
        }
        // A's program ends here.
        drop(a);
        let start = std::time::Instant::now();
        let cause = loop {
            b.invoke();
            sub.poll(|_| next += 1, usize::MAX);
            match b.poll_event() {
                Some(NodeEvent::Closed { session, cause }) if session == sb => break cause,
                Some(NodeEvent::PeerTimedOut { .. }) | None => {}
                Some(other) => panic!("{driver:?} round {round}: b reported {other:?}"),
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{driver:?} round {round}: B never closed"
            );
        };
        assert!(
            cause.starts_with("Peer"),
            "{driver:?} round {round} ({messages} messages): B's session ended by {cause}, not \
             by A's Close"
        );
        assert_eq!(next, messages, "{driver:?} round {round}");
    }
}
