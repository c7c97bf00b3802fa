//! What a shard does when a duty cycle found no work (Aeron's idle strategies).

use crate::time::Duration;

/// How a shard idles. A shard that waits does so inside its driver, so a datagram or a wake
/// ends the wait at once: the timeout only bounds how late a timer may fire.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum IdleStrategy {
    /// Never wait: lowest latency, one core at 100 %.
    BusySpin,
    /// Yield the core to other threads between idle cycles, never sleep.
    Yield,
    /// Spin `spins` idle cycles, then yield `yields` times, then wait in the kernel for I/O (at
    /// most `max`, and never past the next protocol timer).
    Backoff {
        /// Idle cycles spent spinning first.
        spins: u32,
        /// Idle cycles spent yielding next.
        yields: u32,
        /// Longest wait in the kernel.
        max: Duration,
    },
}

impl IdleStrategy {
    /// Wait in the kernel as soon as there is no work: lowest CPU, latency of a wake-up.
    pub const fn park() -> Self {
        Self::Backoff {
            spins: 0,
            yields: 0,
            max: Duration::from_millis(100),
        }
    }

    /// Parses `spin`, `yield`, `park` or `backoff` (for tools and benchmarks).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "spin" | "busy-spin" => Some(Self::BusySpin),
            "yield" => Some(Self::Yield),
            "park" => Some(Self::park()),
            "backoff" => Some(Self::default()),
            _ => None,
        }
    }
}

impl Default for IdleStrategy {
    fn default() -> Self {
        Self::Backoff {
            spins: 1000,
            yields: 100,
            max: Duration::from_millis(100),
        }
    }
}

/// What the idle strategy decided for the next driver poll.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum IdleStep {
    /// Poll without waiting.
    Spin,
    /// Yield the thread, then poll without waiting.
    Yield,
    /// Let the driver wait up to this long.
    Wait(Duration),
}

/// The running state of an idle strategy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Idler {
    strategy: IdleStrategy,
    idle_cycles: u64,
}

impl Idler {
    pub(crate) fn new(strategy: IdleStrategy) -> Self {
        Self {
            strategy,
            idle_cycles: 0,
        }
    }

    /// The step after a cycle that did `work`, with `until_timer` left before the next timer.
    pub(crate) fn step(&mut self, work: usize, until_timer: Option<Duration>) -> IdleStep {
        if work > 0 {
            self.idle_cycles = 0;
            return IdleStep::Spin;
        }
        self.idle_cycles += 1;
        match self.strategy {
            IdleStrategy::BusySpin => IdleStep::Spin,
            IdleStrategy::Yield => IdleStep::Yield,
            IdleStrategy::Backoff { spins, yields, max } => {
                let n = self.idle_cycles;
                if n <= u64::from(spins) {
                    IdleStep::Spin
                } else if n <= u64::from(spins) + u64::from(yields) {
                    IdleStep::Yield
                } else {
                    IdleStep::Wait(until_timer.map_or(max, |t| t.min(max)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spins_then_yields_then_waits_no_later_than_the_timer() {
        let max = Duration::from_millis(100);
        let mut i = Idler::new(IdleStrategy::Backoff {
            spins: 2,
            yields: 1,
            max,
        });
        assert_eq!(i.step(0, None), IdleStep::Spin);
        assert_eq!(i.step(0, None), IdleStep::Spin);
        assert_eq!(i.step(0, None), IdleStep::Yield);
        assert_eq!(i.step(0, None), IdleStep::Wait(max));
        let t = Duration::from_millis(3);
        assert_eq!(i.step(0, Some(t)), IdleStep::Wait(t));
        assert_eq!(
            i.step(1, Some(t)),
            IdleStep::Spin,
            "work resets the backoff"
        );
        assert_eq!(i.step(0, None), IdleStep::Spin);
    }

    #[test]
    fn names_parse() {
        assert_eq!(IdleStrategy::parse("spin"), Some(IdleStrategy::BusySpin));
        assert_eq!(IdleStrategy::parse("park"), Some(IdleStrategy::park()));
        assert_eq!(IdleStrategy::parse("nap"), None);
    }
}
