//! The same seed yields the same trace (every transmit and event hashed); another seed differs.

use substrate::proto::session::SessionConfig;
use substrate::testing::{LinkConfig, Loss};
use substrate::time::Duration;

use crate::common::{Pair, Transfer, mixed_size};

fn trace(seed: u64) -> (u64, Vec<u64>) {
    let link = LinkConfig::default()
        .latency(Duration::from_millis(3))
        .jitter(Duration::from_millis(2))
        .loss(Loss::Uniform(0.05))
        .duplicate(0.02)
        .reorder(0.05, Duration::from_millis(2));
    let config = SessionConfig::default();
    let mut p = Pair::connect(seed, link, config.clone(), config.clone());
    let mut t = Transfer::new(3_000, mixed_size, config.window_bytes, config.window_bytes);
    t.run(&mut p, Duration::from_secs(120));
    t.assert_all_delivered_in_order();
    (p.c.trace_hash(), t.delivered)
}

#[test]
fn session_same_seed_same_trace() {
    let (h1, d1) = trace(77);
    let (h2, d2) = trace(77);
    assert_eq!(h1, h2, "same seed must give the same trace");
    assert_eq!(d1, d2);
    let (h3, _) = trace(78);
    assert_ne!(h1, h3, "a different seed must give a different trace");
}
