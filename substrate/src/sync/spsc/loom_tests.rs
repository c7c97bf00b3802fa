//! loom: every interleaving of a producer and a consumer, up to the preemption bound.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::*;

#[test]
fn loom_spsc_delivers_in_order_through_a_full_ring() {
    loom::model(|| {
        let (mut p, mut c) = channel::<u32>(2);
        let producer = thread::spawn(move || {
            for i in 0..3 {
                let mut v = i;
                while let Err(Full(back)) = p.try_push(v) {
                    v = back;
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            match c.try_pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        producer.join().expect("producer finished");
        assert_eq!(got, [0, 1, 2]);
    });
}

#[test]
fn loom_spsc_drops_leftovers_once_whoever_drops_last() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (mut p, mut c) = channel(2);
        let d = drops.clone();
        let producer = thread::spawn(move || {
            let _ = p.try_push(Counted(d.clone()));
            let _ = p.try_push(Counted(d));
        });
        drop(c.try_pop());
        drop(c);
        producer.join().expect("producer finished");
        assert_eq!(
            drops.load(Ordering::Relaxed),
            2,
            "each value dropped exactly once"
        );
    });
}
