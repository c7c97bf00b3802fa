//! A set of returned slot indices: any thread may return a slot, one owner collects them.
//!
//! This is how a buffer lent out as a `Bytes` view comes home. The view may be dropped on any
//! thread (the application's, after the shard handed it a message); the drop sets the slot's
//! bit with a release `fetch_or`, and the owning shard later swaps each word to zero with an
//! acquire load and reuses the slots it finds. No lock, no allocation, and a return never waits.
//! A slot must be lent to at most one holder at a time, so each bit has one setter per loan.

use super::primitive::{AtomicUsize, Ordering};

const BITS: usize = usize::BITS as usize;

/// Slot indices returned by holders on any thread, waiting for the owner to collect them.
#[derive(Debug)]
pub struct ReturnSet {
    words: Box<[AtomicUsize]>,
    slots: usize,
}

impl ReturnSet {
    /// An empty set for slots `0..slots`.
    pub fn new(slots: usize) -> Self {
        let words = (0..slots.div_ceil(BITS))
            .map(|_| AtomicUsize::new(0))
            .collect();
        Self { words, slots }
    }

    /// How many slots the set covers.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Returns `slot` to the owner. Out-of-range slots are ignored (they were never lent).
    pub fn put(&self, slot: usize) {
        if let Some(word) = self.words.get(slot / BITS) {
            // Release: the holder's last reads of the buffer happen before the owner reuses it.
            word.fetch_or(1 << (slot % BITS), Ordering::Release);
        }
    }

    /// Moves every returned slot to `out`, in index order; returns how many there were.
    pub fn collect(&self, out: &mut Vec<u32>) -> usize {
        let before = out.len();
        for (i, word) in self.words.iter().enumerate() {
            // A cheap load first: most words are empty, and a swap would dirty the cache line.
            if word.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = word.swap(0, Ordering::Acquire);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out.push((i * BITS + b) as u32);
            }
        }
        out.len() - before
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn returns_each_slot_once_in_order() {
        let set = ReturnSet::new(130);
        for s in [129, 0, 64, 63, 5] {
            set.put(s);
        }
        set.put(1000); // never lent: ignored
        let mut out = Vec::new();
        assert_eq!(set.collect(&mut out), 5);
        assert_eq!(out, [0, 5, 63, 64, 129]);
        assert_eq!(set.collect(&mut out), 0);
    }

    /// The loom scenario, as a plain test with real threads and many rounds.
    #[test]
    fn concurrent_returns_are_all_collected() {
        let set = std::sync::Arc::new(ReturnSet::new(256));
        let mut seen = vec![0u32; 256];
        let mut out = Vec::new();
        for _round in 0..200 {
            std::thread::scope(|s| {
                for t in 0..2 {
                    let set = &set;
                    s.spawn(move || (t * 128..t * 128 + 128).for_each(|i| set.put(i)));
                }
                set.collect(&mut out);
            });
            set.collect(&mut out);
            for &i in &out {
                seen[i as usize] += 1;
            }
            out.clear();
        }
        assert!(
            seen.iter().all(|&n| n == 200),
            "every return collected once per round"
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::primitive::{Arc, UnsafeCell};

    /// A lent buffer written by the owner, read by a holder on another thread, returned, then
    /// reused by the owner: loom checks the holder's read happens before the owner's reuse.
    #[test]
    fn loom_return_orders_the_holders_reads_before_reuse() {
        loom::model(|| {
            let set = Arc::new(ReturnSet::new(2));
            let buf = Arc::new(UnsafeCell::new([0u8; 2]));
            // SAFETY: no other thread exists yet.
            buf.with_mut(|b| unsafe { (*b)[1] = 7 });
            let holder = {
                let (set, buf) = (set.clone(), buf.clone());
                loom::thread::spawn(move || {
                    // SAFETY: slot 1 is lent to this thread until it is put back.
                    let v = buf.with_mut(|b| unsafe { (*b)[1] });
                    assert_eq!(v, 7);
                    set.put(1);
                })
            };
            let mut out = Vec::new();
            set.collect(&mut out);
            if out == [1] {
                // SAFETY: the slot came back, so the holder is done with it.
                buf.with_mut(|b| unsafe { (*b)[1] = 9 });
            }
            holder.join().unwrap();
            set.collect(&mut out);
            assert_eq!(out, [1], "returned exactly once");
        });
    }

    /// Two holders return slots that share one word while the owner collects.
    #[test]
    fn loom_concurrent_returns_in_one_word_are_not_lost() {
        loom::model(|| {
            let set = Arc::new(ReturnSet::new(4));
            let threads: Vec<_> = [0usize, 3]
                .into_iter()
                .map(|slot| {
                    let set = set.clone();
                    loom::thread::spawn(move || set.put(slot))
                })
                .collect();
            let mut out = Vec::new();
            set.collect(&mut out);
            for t in threads {
                t.join().unwrap();
            }
            set.collect(&mut out);
            out.sort_unstable();
            assert_eq!(out, [0, 3]);
        });
    }
}
