//! Checkers: the properties every run must keep, checked online as events happen.
//!
//! A broken property is recorded as a typed [`Violation`] (the world keeps running, so one run
//! shows every kind of failure it has); [`SimFailure`] carries the violations with the seed that
//! reproduces them. Nothing here panics on protocol behaviour.
//!
//! - Exactly once and per-source FIFO: per (node, group, source, epoch) delivered sequence
//!   numbers strictly increase.
//! - No silent skip: between a node's first delivery from a source and its last, every sequence
//!   number is delivered or reported in a `MessagesLost` range; nothing is delivered after it
//!   was reported lost.
//! - Bounded fan-out: one node sends one message's payload to at most `active_size` peers at a
//!   time.

use core::fmt;

use substrate::id::NodeId;
use thiserror::Error;

/// One broken property, with where and when.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Violation {
    /// A sequence number at or below one already delivered or reported lost: a duplicate, a
    /// reordering, or a delivery after a loss report.
    NotIncreasing {
        /// Virtual time, ns.
        at_ns: u64,
        /// The delivering node.
        node: u32,
        /// The source.
        source: NodeId,
        /// The source's epoch.
        epoch: u32,
        /// What was delivered.
        seq: u64,
        /// The least sequence number that could have come next.
        expected: u64,
    },
    /// A gap between deliveries that no `MessagesLost` covered.
    SilentSkip {
        /// Virtual time, ns.
        at_ns: u64,
        /// The delivering node.
        node: u32,
        /// The source.
        source: NodeId,
        /// The source's epoch.
        epoch: u32,
        /// The first sequence number skipped.
        expected: u64,
        /// What was delivered instead.
        seq: u64,
    },
    /// A `MessagesLost` range that covers messages already delivered.
    LossOfDelivered {
        /// Virtual time, ns.
        at_ns: u64,
        /// The reporting node.
        node: u32,
        /// The source.
        source: NodeId,
        /// Start of the reported range.
        first: u64,
        /// Its last delivered sequence number, inside the range.
        last_delivered: u64,
    },
    /// One node sent one message to more peers at once than its active view may hold.
    FanOut {
        /// Virtual time, ns.
        at_ns: u64,
        /// The sending node.
        node: u32,
        /// The broadcast's index.
        broadcast: u32,
        /// Copies sent.
        copies: u32,
        /// The bound (`active_size`).
        bound: u32,
    },
    /// A node delivered a payload that is not the broadcast its message id names.
    WrongPayload {
        /// Virtual time, ns.
        at_ns: u64,
        /// The delivering node.
        node: u32,
        /// The delivered message's source.
        source: NodeId,
        /// Its sequence number.
        seq: u64,
    },
    /// A node addressed a frame to a NodeId that is not in the world.
    UnknownPeer {
        /// Virtual time, ns.
        at_ns: u64,
        /// The sending node.
        node: u32,
        /// The unknown peer.
        peer: NodeId,
    },
    /// The simulator could not make a protocol call the plan asked for (a refused join or
    /// publish).
    Refused {
        /// Virtual time, ns.
        at_ns: u64,
        /// The node.
        node: u32,
        /// What was refused and why.
        what: String,
    },
}

/// A run that broke a property: its seed and what broke (the first
/// [`MAX_VIOLATIONS_KEPT`] violations, and how many there were).
#[derive(Clone, Debug, Error, Eq, PartialEq)]
pub struct SimFailure {
    /// The seed that reproduces the run.
    pub seed: u64,
    /// The first violations, oldest first.
    pub violations: Vec<Violation>,
    /// How many violations there were in all.
    pub total: u64,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} violation(s); first: {:?}",
            self.seed,
            self.total,
            self.violations.first()
        )
    }
}

/// The online checker: per-node delivery cursors and the violations seen.
#[derive(Debug)]
pub struct Checker {
    /// Per node, one cursor per (group, source, epoch) it has heard of.
    cursors: Vec<Vec<Cursor>>,
    violations: Vec<Violation>,
    total: u64,
}

#[derive(Clone, Debug)]
struct Cursor {
    group: u32,
    source: NodeId,
    epoch: u32,
    /// Every sequence number below this was delivered or reported lost.
    next: u64,
    /// The last sequence number delivered.
    last_delivered: Option<u64>,
    /// Reported lost ranges beyond `next`, not yet contiguous with it.
    pending_lost: Vec<(u64, u64)>,
}

impl Cursor {
    /// Advances `next` over pending lost ranges that have become contiguous with it.
    fn absorb(&mut self) {
        while let Some(i) = self.pending_lost.iter().position(|&(f, _)| f <= self.next) {
            let (_, last) = self.pending_lost.swap_remove(i);
            self.next = self.next.max(last + 1);
        }
    }
}

impl Checker {
    /// A checker for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Self {
            cursors: vec![Vec::new(); nodes],
            violations: Vec::new(),
            total: 0,
        }
    }

    /// Node `node` delivered `seq` of (`group`, `source`, `epoch`).
    pub fn delivered(
        &mut self,
        at_ns: u64,
        node: u32,
        group: u32,
        source: NodeId,
        epoch: u32,
        seq: u64,
    ) {
        let Some(cursor) = self.cursor(node, group, source, epoch) else {
            self.cursors[node as usize].push(Cursor {
                group,
                source,
                epoch,
                next: seq + 1,
                last_delivered: Some(seq),
                pending_lost: Vec::new(),
            });
            return;
        };
        cursor.absorb();
        let expected = cursor.next;
        cursor.next = cursor.next.max(seq + 1);
        cursor.last_delivered = Some(seq);
        let violation = if seq < expected {
            Violation::NotIncreasing {
                at_ns,
                node,
                source,
                epoch,
                seq,
                expected,
            }
        } else if seq > expected {
            Violation::SilentSkip {
                at_ns,
                node,
                source,
                epoch,
                expected,
                seq,
            }
        } else {
            return;
        };
        self.record(violation);
    }

    /// Node `node` reported `first..=last` of (`group`, `source`, `epoch`) lost.
    #[allow(clippy::too_many_arguments, reason = "one flat record of the event")]
    pub fn lost(
        &mut self,
        at_ns: u64,
        node: u32,
        group: u32,
        source: NodeId,
        epoch: u32,
        first: u64,
        last: u64,
    ) {
        let Some(cursor) = self.cursor(node, group, source, epoch) else {
            self.cursors[node as usize].push(Cursor {
                group,
                source,
                epoch,
                next: last.saturating_add(1),
                last_delivered: None,
                pending_lost: Vec::new(),
            });
            return;
        };
        cursor.absorb();
        if let Some(delivered) = cursor.last_delivered
            && (first..=last).contains(&delivered)
        {
            self.record(Violation::LossOfDelivered {
                at_ns,
                node,
                source,
                first,
                last_delivered: delivered,
            });
            return;
        }
        if first <= cursor.next {
            cursor.next = cursor.next.max(last.saturating_add(1));
        } else {
            cursor.pending_lost.push((first, last));
        }
    }

    /// A node's incarnation ended (crash): its cursors go with it.
    pub fn forget(&mut self, node: u32) {
        self.cursors[node as usize] = Vec::new();
    }

    /// Records a violation found elsewhere (fan-out, payloads, refused calls).
    pub fn record(&mut self, violation: Violation) {
        self.total += 1;
        if self.violations.len() < MAX_VIOLATIONS_KEPT {
            self.violations.push(violation);
        }
    }

    /// The violations kept so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many violations there were.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// `Ok` if nothing was violated, else the failure with `seed`.
    ///
    /// # Errors
    /// [`SimFailure`] with the violations.
    pub fn verdict(&self, seed: u64) -> Result<(), SimFailure> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(SimFailure {
                seed,
                violations: self.violations.clone(),
                total: self.total,
            })
        }
    }

    fn cursor(&mut self, node: u32, group: u32, source: NodeId, epoch: u32) -> Option<&mut Cursor> {
        self.cursors[node as usize]
            .iter_mut()
            .find(|c| c.group == group && c.epoch == epoch && c.source == source)
    }
}

/// Violations kept in full; later ones are only counted.
pub const MAX_VIOLATIONS_KEPT: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> NodeId {
        NodeId::from_u64(9)
    }

    #[test]
    fn in_order_deliveries_pass() {
        let mut c = Checker::new(2);
        for seq in 3..10 {
            c.delivered(0, 1, 0, src(), 1, seq);
        }
        assert_eq!(c.verdict(5), Ok(()));
    }

    #[test]
    fn duplicates_and_reordering_fail() {
        let mut c = Checker::new(2);
        c.delivered(0, 1, 0, src(), 1, 0);
        c.delivered(0, 1, 0, src(), 1, 1);
        c.delivered(0, 1, 0, src(), 1, 1);
        let failure = c.verdict(42).unwrap_err();
        assert_eq!(failure.seed, 42);
        assert!(matches!(
            failure.violations[0],
            Violation::NotIncreasing {
                seq: 1,
                expected: 2,
                ..
            }
        ));
        assert!(failure.to_string().contains("seed 42"));
    }

    #[test]
    fn gaps_need_a_loss_report() {
        let mut c = Checker::new(1);
        c.delivered(0, 0, 0, src(), 1, 0);
        c.lost(0, 0, 0, src(), 1, 1, 2);
        c.delivered(0, 0, 0, src(), 1, 3);
        assert_eq!(c.total(), 0);
        // Out-of-order loss reports are fine as long as the gap is covered when it is crossed.
        c.lost(0, 0, 0, src(), 1, 6, 6);
        c.lost(0, 0, 0, src(), 1, 4, 5);
        c.delivered(0, 0, 0, src(), 1, 7);
        assert_eq!(c.total(), 0);
        c.delivered(0, 0, 0, src(), 1, 9);
        assert!(matches!(
            c.violations()[0],
            Violation::SilentSkip {
                expected: 8,
                seq: 9,
                ..
            }
        ));
    }

    #[test]
    fn epochs_and_groups_are_separate_streams() {
        let mut c = Checker::new(1);
        c.delivered(0, 0, 0, src(), 1, 5);
        c.delivered(0, 0, 0, src(), 2, 0);
        c.delivered(0, 0, 1, src(), 1, 0);
        assert_eq!(c.total(), 0);
        c.forget(0);
        c.delivered(0, 0, 0, src(), 1, 0);
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn delivery_after_a_loss_report_fails() {
        let mut c = Checker::new(1);
        c.delivered(0, 0, 0, src(), 1, 0);
        c.lost(0, 0, 0, src(), 1, 1, 1);
        c.delivered(0, 0, 0, src(), 1, 1);
        assert!(matches!(
            c.violations()[0],
            Violation::NotIncreasing { seq: 1, .. }
        ));
        c.lost(0, 0, 0, src(), 1, 0, 3);
        assert!(matches!(
            c.violations()[1],
            Violation::LossOfDelivered {
                last_delivered: 1,
                ..
            }
        ));
    }
}
