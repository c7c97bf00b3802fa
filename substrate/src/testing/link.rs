//! Link behaviour: [`LinkConfig`] and the [`Loss`] models, applied per directed link by the
//! [`Network`](super::Network).

use crate::time::Duration;

/// How a directed link loses datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Loss {
    /// Nothing is lost.
    #[default]
    None,
    /// Each datagram is lost independently with this probability.
    Uniform(f64),
    /// Bursty loss from a two-state Markov chain, one chain per directed link.
    Burst(GilbertElliott),
}

/// The Gilbert–Elliott loss model: a link is *good* or *bad*; before each datagram it moves
/// between the states with the given probabilities, then loses the datagram with the loss
/// probability of its state. A bad spell lasts `1 / p_leave_bad` datagrams on average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability, per datagram, that a good link turns bad.
    pub p_enter_bad: f64,
    /// Probability, per datagram, that a bad link turns good.
    pub p_leave_bad: f64,
    /// Loss probability while good.
    pub loss_in_good: f64,
    /// Loss probability while bad.
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// The classic Gilbert model: nothing lost while good, everything lost while bad, so losses
    /// come in bursts of mean length `1 / p_leave_bad`.
    pub const fn bursts(p_enter_bad: f64, p_leave_bad: f64) -> Self {
        Self {
            p_enter_bad,
            p_leave_bad,
            loss_in_good: 0.0,
            loss_in_bad: 1.0,
        }
    }

    /// The long-run fraction of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        let total = self.p_enter_bad + self.p_leave_bad;
        if total <= 0.0 {
            return self.loss_in_good;
        }
        let bad = self.p_enter_bad / total;
        bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good
    }
}

/// The behaviour of one directed link. `Default` is an ideal link: no delay, no loss, unlimited
/// bandwidth, and an MTU that admits any UDP datagram. Build with the chained setters:
/// `LinkConfig::default().latency(ms(20)).loss(Loss::Uniform(0.01))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Fixed propagation delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` per datagram (jitter alone reorders).
    pub jitter: Duration,
    /// Serialization rate in bytes per second, or unlimited. A datagram waits until the link is
    /// free, then occupies it for `len / bandwidth`.
    pub bandwidth: Option<u64>,
    /// With a bandwidth: a datagram that would wait longer than this for the link is dropped
    /// (a finite router queue). `None` queues without limit.
    pub max_queue_delay: Option<Duration>,
    /// The loss model.
    pub loss: Loss,
    /// Probability that a delivered datagram also arrives a second time, with its own delay.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay`, so later ones overtake it.
    pub reorder: f64,
    /// Extra delay given to a datagram chosen for reordering.
    pub reorder_delay: Duration,
    /// Largest datagram, in bytes, the link carries; larger ones are dropped and counted.
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth: None,
            max_queue_delay: None,
            loss: Loss::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            mtu: 65_535,
        }
    }
}

impl LinkConfig {
    /// Sets the fixed propagation delay.
    pub const fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the maximum uniform extra delay.
    pub const fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Limits the link to `bytes_per_sec` (zero means unlimited).
    pub const fn bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth = if bytes_per_sec == 0 {
            None
        } else {
            Some(bytes_per_sec)
        };
        self
    }

    /// Bounds the queueing delay in front of a bandwidth-limited link.
    pub const fn max_queue_delay(mut self, delay: Duration) -> Self {
        self.max_queue_delay = Some(delay);
        self
    }

    /// Sets the loss model.
    pub const fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Sets the duplication probability.
    pub const fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Holds back a fraction `p` of datagrams by `extra`, so that later ones overtake them.
    pub const fn reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }

    /// Sets the MTU in bytes.
    pub const fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }
}
