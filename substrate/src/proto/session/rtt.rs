//! Round-trip time estimation (RFC 6298 smoothing), feeding NAK timing and tail-loss probes.

use crate::time::{Duration, duration_ns};

/// Smoothed RTT and its variation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RttEstimator {
    smoothed_ns: u64,
    variation_ns: u64,
    min_ns: u64,
    has_sample: bool,
}

/// Timer granularity: no probe deadline is shorter than this.
const GRANULARITY_NS: u64 = 1_000_000;

impl RttEstimator {
    pub(crate) fn new(initial: Duration) -> Self {
        let ns = duration_ns(initial).max(1);
        Self {
            smoothed_ns: ns,
            variation_ns: ns / 2,
            min_ns: u64::MAX,
            has_sample: false,
        }
    }

    pub(crate) fn on_sample(&mut self, rtt: Duration) {
        let sample = duration_ns(rtt).max(1);
        self.min_ns = self.min_ns.min(sample);
        if self.has_sample {
            let diff = self.smoothed_ns.abs_diff(sample);
            self.variation_ns = (3 * self.variation_ns + diff) / 4;
            self.smoothed_ns = (7 * self.smoothed_ns + sample) / 8;
        } else {
            self.has_sample = true;
            self.smoothed_ns = sample;
            self.variation_ns = sample / 2;
        }
    }

    pub(crate) fn smoothed(&self) -> Duration {
        Duration::from_nanos(self.smoothed_ns)
    }

    /// The probe timeout: how long to wait for an answer before asking again.
    pub(crate) fn pto(&self) -> Duration {
        Duration::from_nanos(self.smoothed_ns + (4 * self.variation_ns).max(GRANULARITY_NS))
    }

    /// How long a receiver waits for a reordered fragment before it NAKs the gap.
    pub(crate) fn nak_delay(&self, min: Duration) -> Duration {
        Duration::from_nanos(self.smoothed_ns / 4).max(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_converges_to_steady_samples() {
        let mut r = RttEstimator::new(Duration::from_millis(100));
        for _ in 0..50 {
            r.on_sample(Duration::from_millis(10));
        }
        assert!(r.smoothed().as_micros().abs_diff(10_000) < 100);
        assert!(r.pto() >= Duration::from_millis(11));
        assert!(r.pto() < Duration::from_millis(20));
    }
}
