//! Pacing: over virtual time, a stream limited to R bytes/s sends at R within 2 %.

use std::cell::RefCell;
use std::rc::Rc;

use substrate::proto::rate::Rate;
use substrate::proto::session::SessionConfig;
use substrate::testing::LinkConfig;
use substrate::time::{Duration, Instant};
use substrate::wire::{Frame, decode_datagram};

use crate::common::{Pair, STREAM, Transfer};

#[test]
fn session_paces_stream_at_configured_rate_within_two_percent() {
    const RATE: u64 = 2_000_000;
    let config = SessionConfig {
        default_rate: Some(Rate::bytes_per_second(RATE)),
        ..SessionConfig::default()
    };
    let link = LinkConfig::default().latency(Duration::from_millis(2));
    let mut p = Pair::connect(31, link, config.clone(), config.clone());

    // Bytes of data frames on the stream, by send time.
    let sent: Rc<RefCell<Vec<(Instant, usize)>>> = Rc::default();
    let tap = sent.clone();
    let a = p.a;
    p.c.set_on_transmit(move |t| {
        if t.node != a {
            return;
        }
        let (_, frames) = decode_datagram(t.bytes).expect("own datagrams decode");
        for f in frames.flatten() {
            if let Frame::Data(d) = &f {
                if d.stream == STREAM {
                    tap.borrow_mut().push((t.at, f.encoded_len()));
                }
            }
        }
    });
    let mut t = Transfer::new(
        u64::MAX,
        |n| 100 + (n % 1_400) as usize,
        config.window_bytes,
        config.window_bytes,
    );
    let start = p.c.now();
    let end = start + Duration::from_secs(12);
    while p.c.now() < end {
        t.step(&mut p);
    }
    // Measure over 10 s after a 1 s warm-up (the first burst is the bucket's saved tokens).
    let (from, to) = (
        start + Duration::from_secs(1),
        start + Duration::from_secs(11),
    );
    let bytes: usize = sent
        .borrow()
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, n)| n)
        .sum();
    let expected = RATE * 10;
    let error = (bytes as f64 - expected as f64).abs() / expected as f64;
    assert!(
        error < 0.02,
        "sent {bytes} bytes in 10 s, expected {expected} (error {:.2} %)",
        error * 100.0
    );
    assert!(!t.delivered.is_empty());
}
