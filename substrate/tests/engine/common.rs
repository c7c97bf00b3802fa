//! Helpers: two nodes on loopback, driven on this thread (invoker mode), and a stream of numbered
//! messages between them.

use std::time::{Duration, Instant};

use substrate::id::{NodeId, StreamId};
use substrate::runtime::driver::DriverKind;
use substrate::runtime::{Node, NodeEvent, Publication, SessionId, Subscription, Threading};

/// Both drivers, for tests that must pass on each.
pub(crate) const DRIVERS: [DriverKind; 2] = [DriverKind::Poll, DriverKind::Uring];

/// How long a test may wait for something before it fails (a bound, not a measurement).
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A node on loopback in invoker mode with one shard.
pub(crate) fn node(id: u64, driver: DriverKind) -> substrate::runtime::NodeBuilder {
    Node::builder(NodeId::from_u64(id))
        .shards(1)
        .driver(driver)
        .threading(Threading::Invoker)
        .seed(id)
}

/// Two tests, `$on_poll` and `$on_uring`, each calling `$run` (a `fn(DriverKind)`) with its
/// driver.
macro_rules! on_each_driver {
    ($run:ident, $on_poll:ident, $on_uring:ident) => {
        #[test]
        fn $on_poll() {
            $run(substrate::runtime::driver::DriverKind::Poll);
        }

        #[test]
        fn $on_uring() {
            $run(substrate::runtime::driver::DriverKind::Uring);
        }
    };
}
pub(crate) use on_each_driver;

/// Runs both nodes until `done` says so; panics after [`PATIENCE`].
pub(crate) fn run_until(
    a: &mut Node,
    b: &mut Node,
    mut done: impl FnMut(&mut Node, &mut Node) -> bool,
) {
    let start = Instant::now();
    while !done(a, b) {
        a.invoke();
        b.invoke();
        assert!(start.elapsed() < PATIENCE, "gave up waiting");
    }
}

/// Connects `a` to `b`; returns the session on each side once both report `Connected`.
pub(crate) fn connect(a: &mut Node, b: &mut Node) -> (SessionId, SessionId) {
    let to = b.locators()[0];
    let sa = a.connect(to).expect("connect");
    let (mut ca, mut cb) = (false, None);
    run_until(a, b, |a, b| {
        while let Some(e) = a.poll_event() {
            if matches!(e, NodeEvent::Connected { session, .. } if session == sa) {
                ca = true;
            }
        }
        while let Some(e) = b.poll_event() {
            if let NodeEvent::Connected { session, .. } = e {
                cb = Some(session);
            }
        }
        ca && cb.is_some()
    });
    (sa, cb.expect("connected"))
}

/// A publication on `a`'s `session` and a subscription on `b`, both to `stream`.
pub(crate) fn open_stream(
    a: &mut Node,
    session: SessionId,
    b: &mut Node,
    stream: StreamId,
) -> (Publication, Subscription) {
    let publication = a.publication(session, stream).expect("publication");
    let sub = b.subscribe(stream).expect("subscription");
    (publication, sub)
}

/// Offers the numbered messages `*sent`, `*sent + 1`, ... (each its number, 8 bytes little-endian)
/// until `up_to` or until the publication refuses one; `sent` counts those accepted.
pub(crate) fn offer_numbered(publication: &mut Publication, sent: &mut u64, up_to: u64) {
    while *sent < up_to && publication.offer(&sent.to_le_bytes()).is_ok() {
        *sent += 1;
    }
}

/// Reads what `sub` holds, asserting that each message is number `*next` and carries its number
/// as its whole payload; `next` counts those read.
pub(crate) fn read_numbered(sub: &mut Subscription, next: &mut u64, driver: DriverKind) {
    sub.poll(
        |d| {
            assert_eq!(d.number, *next, "{driver:?}");
            assert_eq!(d.payload[..], next.to_le_bytes(), "{driver:?}");
            *next += 1;
        },
        usize::MAX,
    );
}
