//! The network model of protocol mode: per-pair latency, per-node uplinks, loss and partitions.
//!
//! Links are reliable and ordered, as Phyla sessions are: a pair's latency is fixed for the run,
//! a node's uplink is one FIFO queue, and a retransmitted frame holds back the frames behind it
//! on its link. [`Network::route`] turns a send into an arrival time, or says the frame is lost.
//! It keeps only `O(nodes)` state plus the links currently held back by a retransmission.

use substrate::collections::HashMap;
use substrate::rand::Rng;
use substrate::time::{Duration, duration_ns};

use super::plan::{LatencyModel, Loss, LossMode};

/// The simulated network between `nodes` nodes.
#[derive(Debug)]
pub struct Network {
    seed: u64,
    latency: LatencyModel,
    loss: Loss,
    uplink_bytes_per_s: Option<u64>,
    /// When each node's uplink is free again (ns); empty without a bandwidth limit.
    uplink_free_ns: Vec<u64>,
    /// Each node's side while a partition is active; empty otherwise.
    side: Vec<u8>,
    /// Links whose last frame was held back by a retransmission: `(from, to)` to its arrival.
    held_until_ns: HashMap<(u32, u32), u64>,
    /// Size of `held_until_ns` at which passed holds are pruned.
    held_prune_at: usize,
    rng: Rng,
}

/// What happens to one frame.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Route {
    /// It arrives at this time (ns).
    Arrives(u64),
    /// Lost on the link ([`LossMode::Drop`]).
    Lost,
}

impl Network {
    /// A network of `nodes` nodes; `rng` draws losses (latencies derive from `seed` alone).
    pub fn new(
        seed: u64,
        nodes: usize,
        latency: LatencyModel,
        loss: Loss,
        uplink_bytes_per_s: Option<u64>,
        rng: Rng,
    ) -> Self {
        Self {
            seed,
            latency,
            loss,
            uplink_bytes_per_s,
            uplink_free_ns: if uplink_bytes_per_s.is_some() {
                vec![0; nodes]
            } else {
                Vec::new()
            },
            side: Vec::new(),
            held_until_ns: HashMap::default(),
            held_prune_at: HELD_PRUNE_MIN,
            rng,
        }
    }

    /// The one-way latency from `a` to `b` in ns: symmetric, and the same all run long.
    pub fn latency_ns(&self, a: u32, b: u32) -> u64 {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let pair = mix(
            self.seed ^ PAIR_SALT,
            (u64::from(low) << 32) | u64::from(high),
        );
        match self.latency {
            LatencyModel::Uniform { min, max } => draw(pair, min, max),
            LatencyModel::Regions { near, far, .. } => {
                let (region_a, region_b) = (self.region(low), self.region(high));
                if region_a == region_b {
                    draw(pair, near.0, near.1)
                } else {
                    let (ra, rb) = (region_a.min(region_b), region_a.max(region_b));
                    let regions = mix(self.seed ^ REGION_PAIR_SALT, (ra << 32) | rb);
                    let jitter = near.1.saturating_sub(near.0);
                    draw(regions, far.0, far.1) + draw(pair, Duration::ZERO, jitter)
                }
            }
        }
    }

    /// The region of node `node` (0 under a uniform model).
    pub fn region(&self, node: u32) -> u64 {
        match self.latency {
            LatencyModel::Uniform { .. } => 0,
            LatencyModel::Regions { regions, .. } => {
                mix(self.seed ^ REGION_SALT, u64::from(node)) % u64::from(regions.max(1))
            }
        }
    }

    /// Sends `bytes` bytes from `from` to `to` at `now_ns`: when the frame arrives, or that it is
    /// lost. Partitions are checked on arrival ([`Network::separated`]), not here.
    pub fn route(&mut self, now_ns: u64, from: u32, to: u32, bytes: usize) -> Route {
        let mut depart = now_ns;
        if let Some(rate) = self.uplink_bytes_per_s {
            let free = &mut self.uplink_free_ns[from as usize];
            let start = (*free).max(now_ns);
            let serialise = (bytes as u128 * 1_000_000_000 / u128::from(rate.max(1))) as u64;
            *free = start + serialise;
            depart = *free;
        }
        let latency = self.latency_ns(from, to);
        let natural = depart + latency;
        let mut arrival = natural;
        if self.loss.probability > 0.0 {
            match self.loss.mode {
                LossMode::Drop => {
                    if self.rng.chance(self.loss.probability) {
                        return Route::Lost;
                    }
                }
                LossMode::Retransmit => {
                    let rto = 3 * latency.max(1);
                    let mut tries = 0;
                    while tries < MAX_RETRANSMITS && self.rng.chance(self.loss.probability) {
                        arrival += rto;
                        tries += 1;
                    }
                }
            }
            // FIFO per link: a frame never overtakes one held back by a retransmission.
            if let Some(&held) = self.held_until_ns.get(&(from, to)) {
                arrival = arrival.max(held);
            }
            if arrival > natural {
                self.held_until_ns.insert((from, to), arrival);
                if self.held_until_ns.len() > self.held_prune_at {
                    self.prune_held(now_ns);
                }
            }
        }
        Route::Arrives(arrival)
    }

    /// Starts a partition: `sides[i]` is node `i`'s side; frames between sides are dropped on
    /// arrival until [`Network::heal`].
    pub fn partition(&mut self, sides: Vec<u8>) {
        self.side = sides;
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.side = Vec::new();
    }

    /// Whether a partition separates `a` from `b` now.
    pub fn separated(&self, a: u32, b: u32) -> bool {
        match (self.side.get(a as usize), self.side.get(b as usize)) {
            (Some(x), Some(y)) => x != y,
            _ => false,
        }
    }

    /// Whether a partition is active.
    pub fn is_partitioned(&self) -> bool {
        !self.side.is_empty()
    }

    /// Forgets held-back links whose hold has passed: a later frame arrives after `now` anyway.
    fn prune_held(&mut self, now_ns: u64) {
        self.held_until_ns.retain(|_, until| *until > now_ns);
        self.held_prune_at = (2 * self.held_until_ns.len()).max(HELD_PRUNE_MIN);
    }
}

/// `min..=max` by a hash value, in ns.
fn draw(hash: u64, min: Duration, max: Duration) -> u64 {
    let (min, max) = (duration_ns(min), duration_ns(max));
    let span = max.saturating_sub(min).saturating_add(1);
    min + ((u128::from(hash) * u128::from(span)) >> 64) as u64
}

/// A keyed 64-bit mix (splitmix64 finaliser over key and value).
pub(crate) fn mix(key: u64, value: u64) -> u64 {
    let mut x = key ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const PAIR_SALT: u64 = 0x5041_4952_0000_0001;
const REGION_SALT: u64 = 0x5245_4749_4f4e_0002;
const REGION_PAIR_SALT: u64 = 0x5250_4149_5200_0003;
/// A frame is resent at most this often; past it, it arrives anyway (a session that gave up
/// would be a crash, which the plan models separately).
const MAX_RETRANSMITS: u32 = 32;
const HELD_PRUNE_MIN: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(min_ms: u64, max_ms: u64) -> LatencyModel {
        LatencyModel::Uniform {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn latency_is_constant_per_pair_symmetric_and_in_bounds() {
        let net = Network::new(
            7,
            100,
            uniform(5, 50),
            Loss::default(),
            None,
            Rng::with_seed(1),
        );
        let mut distinct = substrate::collections::HashSet::default();
        for a in 0..100 {
            for b in 0..100 {
                let l = net.latency_ns(a, b);
                assert!((5_000_000..=50_000_000).contains(&l), "{l}");
                assert_eq!(l, net.latency_ns(b, a));
                assert_eq!(l, net.latency_ns(a, b));
                distinct.insert(l);
            }
        }
        assert!(distinct.len() > 1000, "latencies barely vary");
        let other = Network::new(
            8,
            100,
            uniform(5, 50),
            Loss::default(),
            None,
            Rng::with_seed(1),
        );
        assert_ne!(net.latency_ns(1, 2), other.latency_ns(1, 2));
    }

    #[test]
    fn region_latency_is_near_within_and_far_across() {
        let model = LatencyModel::default();
        let net = Network::new(3, 500, model, Loss::default(), None, Rng::with_seed(1));
        let (mut near, mut far) = (0, 0);
        for a in 0..200 {
            for b in 0..200 {
                let l = net.latency_ns(a, b);
                if net.region(a) == net.region(b) {
                    assert!((2_000_000..=10_000_000).contains(&l), "{l}");
                    near += 1;
                } else {
                    assert!((40_000_000..=128_000_000).contains(&l), "{l}");
                    far += 1;
                }
            }
        }
        assert!(near > 0 && far > 0);
    }

    #[test]
    fn uplink_serialises_frames_in_order() {
        let mut net = Network::new(
            1,
            4,
            uniform(10, 10),
            Loss::default(),
            Some(1_000_000),
            Rng::with_seed(1),
        );
        // 1,000 bytes at 1 MB/s take 1 ms each.
        assert_eq!(net.route(0, 0, 1, 1_000), Route::Arrives(11_000_000));
        assert_eq!(net.route(0, 0, 2, 1_000), Route::Arrives(12_000_000));
        assert_eq!(net.route(0, 1, 2, 1_000), Route::Arrives(11_000_000));
    }

    #[test]
    fn retransmit_loss_delays_but_keeps_each_link_fifo() {
        let loss = Loss {
            probability: 0.3,
            mode: LossMode::Retransmit,
        };
        let mut net = Network::new(5, 8, uniform(1, 20), loss, None, Rng::with_seed(9));
        let mut last = vec![0u64; 64];
        let mut delayed = 0;
        for step in 0..20_000u64 {
            let now = step * 100_000;
            let (from, to) = ((step % 8) as u32, ((step / 8) % 8) as u32);
            let Route::Arrives(at) = net.route(now, from, to, 100) else {
                panic!("retransmit mode never loses a frame");
            };
            let natural = now + net.latency_ns(from, to);
            assert!(at >= natural);
            if at > natural {
                delayed += 1;
            }
            let link = (from * 8 + to) as usize;
            assert!(
                at >= last[link],
                "frame overtook its predecessor on {from}->{to}"
            );
            last[link] = at;
        }
        assert!(delayed > 1_000, "{delayed}");
    }

    #[test]
    fn drop_loss_loses_about_p() {
        let loss = Loss {
            probability: 0.05,
            mode: LossMode::Drop,
        };
        let mut net = Network::new(5, 8, uniform(1, 2), loss, None, Rng::with_seed(9));
        let lost = (0..20_000)
            .filter(|_| net.route(0, 0, 1, 10) == Route::Lost)
            .count();
        assert!((800..1200).contains(&lost), "{lost}");
    }

    #[test]
    fn partition_separates_sides_until_healed() {
        let mut net = Network::new(
            1,
            4,
            uniform(1, 1),
            Loss::default(),
            None,
            Rng::with_seed(1),
        );
        assert!(!net.separated(0, 3));
        net.partition(vec![0, 0, 1, 1]);
        assert!(net.is_partitioned());
        assert!(net.separated(0, 3) && net.separated(2, 1));
        assert!(!net.separated(0, 1) && !net.separated(2, 3));
        net.heal();
        assert!(!net.separated(0, 3));
    }
}
