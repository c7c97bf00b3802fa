//! A receive pool smaller than what the session may hold: under loss, the receiver keeps
//! out-of-order datagrams (zero-copy views of their receive slots) until the gap is repaired. If
//! they take every slot, the driver must still read the repair (the poll driver copies into
//! scratch memory when the pool is empty); otherwise the stream stalls until the idle timeout.

use substrate::id::StreamId;
use substrate::proto::session::SessionConfig;
use substrate::runtime::NodeEvent;
use substrate::runtime::driver::fault::FaultConfig;
use substrate::runtime::driver::{DriverConfig, DriverKind};
use substrate::time::Duration;

use crate::adversary::{build_pair_or_skip, one_at_a_time};
use crate::common::{
    PATIENCE, connect, node, offer_numbered, on_each_driver, open_stream, read_numbered,
};

on_each_driver!(
    small_rx_pool,
    a_lossy_stream_completes_with_a_receive_pool_smaller_than_the_window_on_poll,
    a_lossy_stream_completes_with_a_receive_pool_smaller_than_the_window_on_uring
);

/// Receive slots of the receiver: far fewer datagrams than its 4 MiB window holds.
const RX_SLOTS: usize = 64;
/// Messages streamed.
const MESSAGES: u64 = 200_000;

fn small_rx_pool(driver: DriverKind) {
    let _heavy = one_at_a_time();
    // A stall shows as a timeout soon.
    let session = SessionConfig {
        idle_timeout: Duration::from_secs(3),
        ..SessionConfig::default()
    };
    let sender = node(1, driver).session(session.clone());
    let receiver = node(2, driver)
        .session(session)
        .driver_config(DriverConfig {
            rx_slots: RX_SLOTS,
            ..DriverConfig::default()
        })
        .faults(FaultConfig {
            drop_rx: 0.02,
            ..FaultConfig::none(5)
        });
    let Some((mut a, mut b)) = build_pair_or_skip(sender, receiver, driver) else {
        return;
    };
    let (sa, _) = connect(&mut a, &mut b);
    let (mut publication, mut sub) = open_stream(&mut a, sa, &mut b, StreamId(4));
    let (mut sent, mut next) = (0u64, 0u64);
    let start = std::time::Instant::now();
    while next < MESSAGES {
        offer_numbered(&mut publication, &mut sent, MESSAGES);
        a.invoke();
        b.invoke();
        read_numbered(&mut sub, &mut next, driver);
        while let Some(e) = b.poll_event() {
            assert!(
                !matches!(e, NodeEvent::PeerTimedOut { .. } | NodeEvent::Closed { .. }),
                "{driver:?}: the receiver's session ended ({e:?}) with {next} of {MESSAGES} \
                 messages read; counters {:?}",
                b.counters()
            );
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{driver:?}: stalled at {next} of {MESSAGES}; counters {:?}",
            b.counters()
        );
    }
    let c = b.counters();
    println!(
        "{driver:?}: {} datagrams read while every slot was lent out",
        c.rx_pool_exhausted
    );
}
