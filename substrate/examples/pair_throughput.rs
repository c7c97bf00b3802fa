//! Two nodes on two pinned threads of one process, one streaming to the other: a quick probe of
//! the engine's per-message cost while tuning. The benchmark programs in `bench/` are the
//! reference (separate processes, baselines in the same run).
//!
//! `cargo run --release -p phyla-substrate --example pair_throughput -- [poll|uring] [size] [secs] [max_datagram]`

#![allow(clippy::disallowed_methods, reason = "a probe owns its clock")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use substrate::id::{NodeId, StreamId};
use substrate::proto::session::SessionConfig;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;
use substrate::runtime::{Node, NodeEvent, Threading};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let driver = args
        .get(1)
        .and_then(|s| DriverKind::parse(s))
        .unwrap_or(DriverKind::Poll);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dgram: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(65_000);
    let session = SessionConfig {
        max_datagram_bytes: dgram,
        window_bytes: 32 << 20,
        send_buffer_bytes: 32 << 20,
        ..SessionConfig::default()
    };
    let cores = core_affinity_ids();
    let port = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let build = |id| {
        Node::builder(NodeId::from_u64(id))
            .shards(1)
            .driver(driver)
            .threading(Threading::Invoker)
            .idle(IdleStrategy::BusySpin)
            .session(session.clone())
            .publication_bytes(8 << 20)
            .build()
            .expect("node")
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(&cores, 1);
            let mut b = build(2);
            port.store(u64::from(b.locators()[0].port()), Ordering::SeqCst);
            let mut sub = b.subscribe(StreamId(1)).expect("sub");
            let mut n = 0u64;
            let mut bytes = 0u64;
            let mut start = None;
            while !done.load(Ordering::Relaxed) {
                b.invoke();
                sub.poll(
                    |d| {
                        n += 1;
                        bytes += d.payload.len() as u64;
                    },
                    usize::MAX,
                );
                if n > 0 && start.is_none() {
                    start = Some((Instant::now(), n));
                }
                if let Some((t, n0)) = start {
                    if t.elapsed() >= Duration::from_secs(secs) {
                        let rate = (n - n0) as f64 / t.elapsed().as_secs_f64();
                        println!(
                            "{driver:?} size {size} dgram {dgram}: {:.2} M msg/s, {:.1} MB/s",
                            rate / 1e6,
                            rate * size as f64 / 1e6
                        );
                        received.store(n, Ordering::SeqCst);
                        done.store(true, Ordering::SeqCst);
                    }
                }
            }
            let c = b.counters();
            println!("rx counters: {c:?}");
        });
        s.spawn(|| {
            pin(&cores, 0);
            let mut a = build(1);
            while port.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let to = ([127, 0, 0, 1], port.load(Ordering::SeqCst) as u16).into();
            let sa = a.connect(to).expect("connect");
            let mut p = a.publication(sa, StreamId(1)).expect("pub");
            let payload = vec![7u8; size];
            while !done.load(Ordering::Relaxed) {
                for _ in 0..256 {
                    if p.offer(&payload).is_err() {
                        break;
                    }
                }
                a.invoke();
                while let Some(e) = a.poll_event() {
                    if !matches!(
                        e,
                        NodeEvent::Connected { .. }
                            | NodeEvent::Backpressured { .. }
                            | NodeEvent::Writable { .. }
                    ) {
                        println!("tx event {e:?}");
                    }
                }
            }
            println!("tx counters: {:?}", a.counters());
        });
    });
}

fn core_affinity_ids() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, usize::from)).collect()
}

fn pin(cores: &[usize], i: usize) {
    let Some(&c) = cores.get(i % cores.len().max(1)) else {
        return;
    };
    // SAFETY: sched_setaffinity on the calling thread with a valid cpu set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(c, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}
