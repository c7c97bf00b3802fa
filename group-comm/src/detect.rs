//! Failure detection on active links: heartbeats, phi-accrual timing, and suspicion with direct
//! and indirect probes before a peer is declared failed.
//!
//! Phi-accrual (Hayashibara et al., 2004): the detector keeps the recent inter-arrival times of a
//! peer's heartbeats and turns the silence since the last frame into a suspicion level `phi`,
//! the negative log10 of the probability that a live peer would be that late. Crossing
//! `phi_suspect` starts SWIM's probing (§4: a direct ping, and `probe_fanout` neighbours asked to
//! ping on our behalf, so that one bad link does not fail a live node). Lifeguard (§3.2): a
//! suspicion lasts at least `suspicion_timeout` before it can become a failure, so a slow answer
//! still refutes it. Any frame from the peer, or a relayed answer, refutes a suspicion.

use std::collections::VecDeque;

use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::{Duration, Instant};

use crate::GroupId;
use crate::config::GroupConfig;
use crate::event::GroupEvent;
use crate::node::{GroupNode, earliest};
use crate::wire::{GroupFrame, NodeRef};

/// Per-node failure-detector state: one entry per peer in any active view.
#[derive(Debug)]
pub(crate) struct Detector {
    peers: Vec<Health>,
    hb_due: Instant,
    hb_seq: u32,
    interval: Duration,
    window: usize,
    min_std_ns: f64,
    /// Standard deviations past the mean at which phi reaches `phi_suspect` and `phi_fail`.
    z_suspect: f64,
    z_fail: f64,
    suspicion_timeout: Duration,
    pings: VecDeque<PendingPing>,
}

#[derive(Debug)]
struct Health {
    node: NodeRef,
    last_heard: Instant,
    last_heartbeat: Option<Instant>,
    samples: VecDeque<u64>,
    sum: f64,
    sum_sq: f64,
    suspicion: Option<Suspicion>,
}

#[derive(Clone, Copy, Debug)]
struct Suspicion {
    since: Instant,
    nonce: u64,
}

/// Why a ping was sent, so that its answer goes to the right place.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum PingPurpose {
    /// Round-trip time of a new active neighbour.
    Rtt,
    /// Round-trip time of a passive candidate for a latency-biased slot of a group.
    Optimize(GroupId),
    /// A suspected peer.
    Suspect,
}

#[derive(Clone, Copy, Debug)]
struct PendingPing {
    nonce: u64,
    target: NodeRef,
    sent: Instant,
    purpose: PingPurpose,
}

impl Detector {
    pub(crate) fn new(config: &GroupConfig, rng: &mut Rng) -> Self {
        let interval = config.heartbeat_interval;
        Self {
            peers: Vec::new(),
            hb_due: Instant::ZERO + crate::membership::jitter(interval, rng),
            hb_seq: 0,
            interval,
            window: config.detector_window,
            min_std_ns: config.min_std_dev.as_nanos() as f64,
            z_suspect: z_for_phi(config.phi_suspect),
            z_fail: z_for_phi(config.phi_fail),
            suspicion_timeout: config.suspicion_timeout,
            pings: VecDeque::new(),
        }
    }

    pub(crate) fn is_watched(&self, peer: NodeId) -> bool {
        self.peers.iter().any(|h| h.node.id == peer)
    }

    pub(crate) fn node_ref(&self, peer: NodeId) -> Option<NodeRef> {
        self.peers
            .iter()
            .find(|h| h.node.id == peer)
            .map(|h| h.node)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut t = (!self.peers.is_empty()).then_some(self.hb_due);
        for h in &self.peers {
            t = earliest(t, Some(self.deadline(h)));
        }
        t
    }

    /// When `h` is next due for suspicion (or, if suspected, for failure).
    fn deadline(&self, h: &Health) -> Instant {
        let (mean, std) = self.stats(h);
        match h.suspicion {
            None => h.last_heard + Duration::from_nanos((mean + self.z_suspect * std) as u64),
            Some(s) => {
                let phi = h.last_heard + Duration::from_nanos((mean + self.z_fail * std) as u64);
                phi.max(s.since + self.suspicion_timeout)
            }
        }
    }

    fn stats(&self, h: &Health) -> (f64, f64) {
        let n = h.samples.len().max(1) as f64;
        let mean = h.sum / n;
        let var = (h.sum_sq / n - mean * mean).max(0.0);
        (mean, var.sqrt().max(self.min_std_ns))
    }

    fn sample(&mut self, i: usize, interval_ns: u64) {
        let window = self.window;
        let h = &mut self.peers[i];
        if h.samples.len() >= window {
            if let Some(old) = h.samples.pop_front() {
                h.sum -= old as f64;
                h.sum_sq -= (old as f64) * (old as f64);
            }
        }
        h.samples.push_back(interval_ns);
        h.sum += interval_ns as f64;
        h.sum_sq += (interval_ns as f64) * (interval_ns as f64);
    }
}

impl GroupNode {
    /// Starts watching `node` (a new active neighbour); `measure` pings it for its round trip.
    pub(crate) fn watch(&mut self, node: NodeRef, now: Instant, measure: bool) {
        if let Some(h) = self
            .detector
            .peers
            .iter_mut()
            .find(|h| h.node.id == node.id)
        {
            if node.locator.is_some() {
                h.node.locator = node.locator;
            }
            return;
        }
        let first = self.detector.interval.as_nanos() as u64;
        let mut h = Health {
            node,
            last_heard: now,
            last_heartbeat: None,
            samples: VecDeque::with_capacity(self.detector.window),
            sum: 0.0,
            sum_sq: 0.0,
            suspicion: None,
        };
        // Prime with one nominal interval: a new link has no history yet.
        h.samples.push_back(first);
        h.sum = first as f64;
        h.sum_sq = (first as f64) * (first as f64);
        self.detector.peers.push(h);
        if measure {
            // The nonce only has to be unique among this node's pings.
            let nonce = u64::from(self.detector.hb_seq) << 32 | self.detector.pings.len() as u64;
            self.ping_with_nonce(node, PingPurpose::Rtt, now, nonce);
        }
    }

    /// Stops watching `peer` if no group has it as a neighbour any more.
    pub(crate) fn unwatch_if_unused(&mut self, peer: NodeId) {
        if !self.is_neighbor(peer) {
            self.detector.peers.retain(|h| h.node.id != peer);
        }
    }

    /// A frame from `peer` arrived: it is alive.
    pub(crate) fn detector_heard(&mut self, peer: NodeId, now: Instant, heartbeat: bool) {
        let Some(i) = self.detector.peers.iter().position(|h| h.node.id == peer) else {
            return;
        };
        if heartbeat {
            if let Some(prev) = self.detector.peers[i].last_heartbeat {
                let gap = now.saturating_duration_since(prev).as_nanos() as u64;
                self.detector.sample(i, gap);
            }
            self.detector.peers[i].last_heartbeat = Some(now);
        }
        let h = &mut self.detector.peers[i];
        h.last_heard = h.last_heard.max(now);
        if h.suspicion.take().is_some() {
            self.stats.suspicions_refuted += 1;
            self.events.push_back(GroupEvent::PeerRecovered { peer });
        }
    }

    pub(crate) fn detector_timeout(&mut self, now: Instant, rng: &mut Rng) {
        if !self.detector.peers.is_empty() && self.detector.hb_due <= now {
            self.detector.hb_seq = self.detector.hb_seq.wrapping_add(1);
            let seq = self.detector.hb_seq;
            let peers: Vec<NodeRef> = self.detector.peers.iter().map(|h| h.node).collect();
            for p in peers {
                self.send(GroupId::NODE, p, &GroupFrame::Heartbeat { seq });
            }
            let next = self.detector.hb_due + self.detector.interval;
            self.detector.hb_due = if next > now {
                next
            } else {
                now + self.detector.interval
            };
        } else if self.detector.peers.is_empty() && self.detector.hb_due <= now {
            self.detector.hb_due = now + self.detector.interval;
        }
        // Suspicions and failures.
        let mut suspect = Vec::new();
        let mut failed = Vec::new();
        for h in &self.detector.peers {
            if self.detector.deadline(h) <= now {
                if h.suspicion.is_some() {
                    failed.push(h.node);
                } else {
                    suspect.push(h.node);
                }
            }
        }
        for node in suspect {
            self.suspect(node, now, rng);
        }
        for node in failed {
            self.peer_failed(node.id, now, rng);
        }
        // Forget pings nobody answered.
        let horizon = Duration::from_secs(10);
        while self
            .detector
            .pings
            .front()
            .is_some_and(|p| p.sent + horizon <= now)
        {
            self.detector.pings.pop_front();
        }
    }

    fn suspect(&mut self, node: NodeRef, now: Instant, rng: &mut Rng) {
        let nonce = rng.next_u64();
        if let Some(h) = self
            .detector
            .peers
            .iter_mut()
            .find(|h| h.node.id == node.id)
        {
            h.suspicion = Some(Suspicion { since: now, nonce });
        }
        self.events
            .push_back(GroupEvent::PeerSuspected { peer: node.id });
        self.ping_with_nonce(node, PingPurpose::Suspect, now, nonce);
        let helpers: Vec<NodeRef> = self
            .detector
            .peers
            .iter()
            .filter(|h| h.node.id != node.id && h.suspicion.is_none())
            .map(|h| h.node)
            .collect();
        for helper in crate::membership::sample(&helpers, self.config.probe_fanout, rng) {
            self.send(
                GroupId::NODE,
                helper,
                &GroupFrame::ProbeRequest {
                    target: node,
                    nonce,
                },
            );
        }
    }

    /// Declares `peer` failed: out of every view, remembered for retries.
    pub(crate) fn peer_failed(&mut self, peer: NodeId, now: Instant, rng: &mut Rng) {
        let node = self.locate(peer);
        if self.detector.is_watched(peer) {
            self.stats.failures_declared += 1;
            self.events.push_back(GroupEvent::PeerFailed { peer });
        }
        self.detector.peers.retain(|h| h.node.id != peer);
        for gi in 0..self.groups.len() {
            if self.groups[gi].is_active(peer) {
                self.neighbor_failed(gi, node, now, rng);
            }
        }
        // Neighbour removal may have re-watched nothing; make sure the peer is gone.
        if !self.is_neighbor(peer) {
            self.detector.peers.retain(|h| h.node.id != peer);
        }
    }

    pub(crate) fn ping(
        &mut self,
        target: NodeRef,
        purpose: PingPurpose,
        now: Instant,
        rng: &mut Rng,
    ) {
        let nonce = rng.next_u64();
        self.ping_with_nonce(target, purpose, now, nonce);
    }

    fn ping_with_nonce(&mut self, target: NodeRef, purpose: PingPurpose, now: Instant, nonce: u64) {
        if self.detector.pings.len() >= MAX_PINGS {
            self.detector.pings.pop_front();
        }
        self.detector.pings.push_back(PendingPing {
            nonce,
            target,
            sent: now,
            purpose,
        });
        self.send(
            GroupId::NODE,
            target,
            &GroupFrame::Ping {
                nonce,
                on_behalf_of: None,
            },
        );
    }

    /// Frames under [`GroupId::NODE`]: heartbeats and probes.
    pub(crate) fn on_node_frame(&mut self, now: Instant, from: NodeRef, frame: GroupFrame<'_>) {
        match frame {
            GroupFrame::Heartbeat { .. } => {}
            GroupFrame::Ping {
                nonce,
                on_behalf_of,
            } => self.send(
                GroupId::NODE,
                from,
                &GroupFrame::Pong {
                    nonce,
                    on_behalf_of,
                },
            ),
            GroupFrame::Pong {
                nonce,
                on_behalf_of: Some(asker),
            } => {
                // An indirect probe we ran for `asker` succeeded.
                let to = self.locate(asker);
                self.send(
                    GroupId::NODE,
                    to,
                    &GroupFrame::ProbeAck {
                        target: from.id,
                        nonce,
                    },
                );
            }
            GroupFrame::Pong {
                nonce,
                on_behalf_of: None,
            } => self.on_pong(from, nonce, now),
            GroupFrame::ProbeRequest { target, nonce } => {
                if target.id != self.me.id && target.id != from.id {
                    self.send(
                        GroupId::NODE,
                        target,
                        &GroupFrame::Ping {
                            nonce,
                            on_behalf_of: Some(from.id),
                        },
                    );
                }
            }
            GroupFrame::ProbeAck { target, nonce } => {
                let refutes =
                    self.detector.peers.iter().any(|h| {
                        h.node.id == target && h.suspicion.is_some_and(|s| s.nonce == nonce)
                    });
                if refutes {
                    self.detector_heard(target, now, false);
                }
            }
            _ => self.stats.invalid_frames += 1,
        }
    }

    fn on_pong(&mut self, from: NodeRef, nonce: u64, now: Instant) {
        let Some(i) = self
            .detector
            .pings
            .iter()
            .position(|p| p.nonce == nonce && p.target.id == from.id)
        else {
            return;
        };
        let Some(p) = self.detector.pings.remove(i) else {
            return;
        };
        let rtt = now
            .saturating_duration_since(p.sent)
            .max(Duration::from_micros(1));
        match p.purpose {
            PingPurpose::Rtt => {
                for g in &mut self.groups {
                    if let Some(a) = g.active.iter_mut().find(|a| a.node.id == from.id) {
                        a.rtt = crate::membership::min_rtt(a.rtt, Some(rtt));
                    }
                }
            }
            PingPurpose::Optimize(group) => self.optimize_answer(group, from, rtt, now),
            PingPurpose::Suspect => {}
        }
    }
}

/// Most pings awaiting an answer; the oldest is forgotten past this.
const MAX_PINGS: usize = 256;

/// Phi for a peer `y` standard deviations late, by the logistic approximation of the normal
/// tail used by Akka's detector.
fn phi(y: f64) -> f64 {
    let e = (-y * (1.5976 + 0.070_566 * y * y)).exp();
    -(e / (1.0 + e)).log10()
}

/// The `y` at which [`phi`] reaches `target`, by bisection (phi increases with y).
fn z_for_phi(target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 64.0_f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if phi(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_thresholds_invert() {
        for target in [1.0, 5.0, 8.0, 10.0, 16.0] {
            let z = z_for_phi(target);
            assert!((phi(z) - target).abs() < 1e-6, "{target}: {}", phi(z));
        }
        assert!(z_for_phi(10.0) > z_for_phi(5.0));
    }
}
