//! The seeded random number generator that protocols are handed.
//!
//! Protocol code never draws ambient randomness: every random choice comes from an [`Rng`] passed
//! in by `&mut`, so a seed reproduces a run. [`Rng::fork`] derives independent streams (one per
//! simulated node, say) from one seed, so results do not depend on scheduling order.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A small, fast, seeded PRNG (xoshiro256++). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// An independent generator for sub-stream `stream`, derived from this one's next output.
    /// Forking the same parent state with the same `stream` gives the same child.
    pub fn fork(&mut self, stream: u64) -> Self {
        let base = self.next_u64();
        Self::with_seed(splitmix64(base ^ splitmix64(stream)))
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniformly random integer in `0..bound`; `bound` must be non-zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        // Lemire's multiply-shift; the bias is below 2^-64 * bound, negligible for protocol use.
        ((u128::from(self.next_u64()) * u128::from(bound.max(1))) >> 64) as u64
    }

    /// A uniformly random float in `[0, 1)`.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit_f64() < p)
    }

    /// Fills `dest` with random bytes.
    pub fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

/// SplitMix64 finaliser: spreads nearby seeds far apart.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_same_seed_same_sequence() {
        let (mut a, mut b) = (Rng::with_seed(7), Rng::with_seed(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::with_seed(7).next_u64(), Rng::with_seed(8).next_u64());
    }

    #[test]
    fn rng_fork_is_deterministic_and_distinct() {
        let (mut a, mut b) = (Rng::with_seed(1), Rng::with_seed(1));
        let (mut a1, mut b1) = (a.fork(3), b.fork(3));
        assert_eq!(a1.next_u64(), b1.next_u64());
        let mut c = Rng::with_seed(1);
        assert_ne!(c.fork(4).next_u64(), Rng::with_seed(1).fork(3).next_u64());
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut r = Rng::with_seed(9);
        for bound in [1, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below(bound) < bound);
            }
        }
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
    }
}
