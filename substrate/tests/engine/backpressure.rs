//! A publisher that never stops and a subscriber that never reads: the publisher is told so
//! (`offer` refuses, `Backpressured` arrives), and memory stays flat however long it keeps
//! trying. Once the subscriber reads, everything that was accepted arrives, in order.

use substrate::id::StreamId;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::{NodeEvent, OfferError};

use crate::adversary::{build_pair_or_skip, one_at_a_time};
use crate::common::{PATIENCE, connect, node, on_each_driver, open_stream};

on_each_driver!(
    backpressure,
    a_subscriber_that_never_reads_backpressures_the_publisher_on_poll,
    a_subscriber_that_never_reads_backpressures_the_publisher_on_uring
);

/// The publication's byte budget.
const BUDGET: u64 = 1 << 20;
/// Bytes per message.
const MESSAGE_BYTES: usize = 256;
/// Rounds of offering (until refused) and running both nodes, after the first refusal.
const ROUNDS: u64 = 200_000;
/// How much the process may grow while the publisher keeps pushing: a bound, generous.
const GROWTH_BOUND: u64 = 64 << 20;

fn backpressure(driver: DriverKind) {
    let _heavy = one_at_a_time();
    let publisher = node(1, driver).publication_bytes(BUDGET);
    let Some((mut a, mut b)) = build_pair_or_skip(publisher, node(2, driver), driver) else {
        return;
    };
    let (sa, _) = connect(&mut a, &mut b);
    let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(5));
    let rss_start = rss_bytes();

    let mut msg = [0u8; MESSAGE_BYTES];
    let mut accepted = 0u64;
    let mut offer = |publication: &mut substrate::runtime::Publication, accepted: &mut u64| {
        msg[..8].copy_from_slice(&accepted.to_le_bytes());
        match publication.offer(&msg) {
            Ok(n) => {
                assert_eq!(n, *accepted);
                *accepted += 1;
                true
            }
            Err(OfferError::BackPressured) => false,
            Err(e) => panic!("{driver:?}: offer: {e}"),
        }
    };
    let mut events = Events::default();

    // As fast as possible, until the first refusal.
    let start = std::time::Instant::now();
    while offer(&mut publication, &mut accepted) {
        if accepted % 64 == 0 {
            a.invoke();
            b.invoke();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: never backpressured"
        );
    }
    let first_refusal = accepted;
    let rss_first_refusal = rss_bytes();

    // Then on and on: offer until refused, run both nodes; the subscriber never reads.
    let mut accepted_at_half = 0;
    let mut most_pending = 0;
    for round in 0..ROUNDS {
        while offer(&mut publication, &mut accepted) {}
        a.invoke();
        b.invoke();
        events.take(&mut a);
        let pending = publication.pending_bytes();
        assert!(pending <= BUDGET, "{driver:?}: {pending} bytes pending");
        most_pending = most_pending.max(pending);
        if round == ROUNDS / 2 {
            accepted_at_half = accepted;
        }
    }
    let rss_end = rss_bytes();
    let delivered_unread = b.counters().messages_delivered;
    println!(
        "{driver:?}: first refusal after {first_refusal} messages; {accepted} accepted in all \
         ({accepted_at_half} half-way), {} offers refused, {} Backpressured events, most pending \
         {most_pending} B; {delivered_unread} messages wait unread; RSS {} -> {} -> {} KiB",
        publication.backpressured(),
        events.backpressured,
        rss_start >> 10,
        rss_first_refusal >> 10,
        rss_end >> 10,
    );
    assert!(
        events.backpressured > 0,
        "{driver:?}: no Backpressured event"
    );
    assert_eq!(
        accepted, accepted_at_half,
        "{driver:?}: the publisher kept gaining ground on a subscriber that reads nothing"
    );
    let growth = rss_end.saturating_sub(rss_first_refusal);
    assert!(
        growth < GROWTH_BOUND,
        "{driver:?}: the process grew by {growth} bytes while backpressured"
    );
    let growth = rss_end.saturating_sub(rss_start);
    assert!(
        growth < GROWTH_BOUND,
        "{driver:?}: the process grew by {growth} bytes in all"
    );

    // The subscriber reads at last: every accepted message arrives, in order, and the publisher
    // is writable again.
    let mut next = 0u64;
    let start = std::time::Instant::now();
    while next < accepted || events.writable == 0 {
        a.invoke();
        b.invoke();
        events.take(&mut a);
        sub.poll(
            |d| {
                assert_eq!(d.number, next, "{driver:?}");
                assert_eq!(d.payload[..8], next.to_le_bytes(), "{driver:?}");
                next += 1;
            },
            usize::MAX,
        );
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: {next} of {accepted} arrived, {} Writable events",
            events.writable
        );
    }
    assert_eq!(next, accepted, "{driver:?}");
    assert_eq!(events.lost, 0, "{driver:?}");
}

/// What the publisher's node reported.
#[derive(Debug, Default)]
struct Events {
    backpressured: u64,
    writable: u64,
    lost: u64,
}

impl Events {
    fn take(&mut self, node: &mut substrate::runtime::Node) {
        while let Some(e) = node.poll_event() {
            match e {
                NodeEvent::Backpressured { .. } => self.backpressured += 1,
                NodeEvent::Writable { .. } => self.writable += 1,
                NodeEvent::MessagesLost { .. } => self.lost += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// This process's resident set, from `/proc/self/status` (`VmRSS`, in KiB there).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        << 10
}
