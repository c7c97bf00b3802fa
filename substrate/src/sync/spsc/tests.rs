//! Plain tests: an oracle model against `VecDeque`, two real threads, and drop accounting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;

proptest! {
    /// Any sequence of pushes and pops behaves like a bounded `VecDeque`.
    #[test]
    fn spsc_matches_bounded_queue_model(
        capacity in 1usize..9,
        ops in proptest::collection::vec(any::<Option<u16>>(), 0..400),
    ) {
        let (mut p, mut c) = channel(capacity);
        let cap = p.capacity();
        prop_assert!(cap >= capacity && cap.is_power_of_two());
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Some(v) => {
                    let pushed = p.try_push(v);
                    if model.len() < cap {
                        prop_assert!(pushed.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(pushed.map_err(Full::into_inner), Err(v));
                    }
                }
                None => prop_assert_eq!(c.try_pop(), model.pop_front()),
            }
        }
    }
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "a real second thread is the point of the test"
)]
fn spsc_carries_a_million_values_in_order_between_threads() {
    const N: u64 = 1_000_000;
    let (mut p, mut c) = channel::<u64>(64);
    let producer = std::thread::spawn(move || {
        let mut next = 0;
        while next < N {
            match p.try_push(next) {
                Ok(()) => next += 1,
                Err(Full(_)) => std::hint::spin_loop(),
            }
        }
    });
    let mut expected = 0;
    while expected < N {
        if let Some(v) = c.try_pop() {
            assert_eq!(v, expected);
            expected += 1;
        }
    }
    producer.join().expect("producer finished");
    assert_eq!(c.try_pop(), None);
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn spsc_drops_values_left_in_the_ring_exactly_once() {
    let (mut p, mut c) = channel(4);
    for _ in 0..4 {
        assert!(p.try_push(Counted).is_ok());
    }
    let refused = p.try_push(Counted).expect_err("full");
    drop(refused);
    drop(c.try_pop());
    assert_eq!(
        DROPS.load(Ordering::Relaxed),
        2,
        "the refused value and the popped one"
    );
    drop(p);
    drop(c);
    assert_eq!(
        DROPS.load(Ordering::Relaxed),
        5,
        "the three left in the ring, once each"
    );
}
