//! Membership: HyParView-style partial views, one overlay per group.
//!
//! A small active view carries traffic and is watched by the failure detector; a larger passive
//! view is the reserve from which failed neighbours are replaced. Nobody knows the whole group.
//! Two additions to the paper: some active slots are biased towards low round-trip time (X-BOT's
//! idea, much simplified) so that trees follow short links, and recently failed peers are retried
//! for a while, so that the two halves of a healed partition find each other again.

use std::collections::VecDeque;

use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::{Duration, Instant};

use crate::GroupId;
use crate::config::GroupConfig;
use crate::delivery::{Cache, Source};
use crate::event::GroupEvent;
use crate::node::{GroupNode, earliest};
use crate::tree::Missing;
use crate::wire::{Announcement, GroupFrame, MAX_NODE_REFS, NeighborPriority, NodeRef};

/// One group's state at one node: views, and the tree and delivery state that live on them.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: GroupId,
    pub(crate) active: Vec<Active>,
    pub(crate) passive: Vec<NodeRef>,
    pub(crate) pending: Vec<Pending>,
    /// The contact given to `join`, used again if the node is cut off.
    pub(crate) contact: Option<NodeRef>,
    pub(crate) joined: bool,
    pub(crate) isolated: bool,
    pub(crate) shuffle_due: Instant,
    pub(crate) optimize_due: Instant,
    pub(crate) sync_due: Instant,
    pub(crate) rejoin_due: Option<Instant>,
    pub(crate) failed: Vec<Failed>,
    /// Candidates that refused a neighbour request recently, and until when they are skipped.
    pub(crate) refused: Vec<(NodeId, Instant)>,
    /// This node's next sequence number as a source.
    pub(crate) next_seq: u64,
    pub(crate) sources: Vec<Source>,
    pub(crate) cache: Cache,
    /// Announced, not received: by (source, epoch, sequence number), so that each announcement
    /// and each arrival is a lookup, not a scan (thousands are outstanding at engine rates).
    pub(crate) missing: std::collections::BTreeMap<(NodeId, u32, u64), Missing>,
    /// No entry of `missing` is due before this (it may be earlier than the earliest).
    pub(crate) missing_due: Option<Instant>,
    pub(crate) lazy_queue: Vec<(NodeId, Announcement)>,
    pub(crate) lazy_due: Option<Instant>,
    /// Flow control: this node's messages not yet delivered everywhere, (seq, payload bytes).
    pub(crate) inflight: VecDeque<(u64, u64)>,
    pub(crate) inflight_bytes: u64,
    /// Flow control: when subtree positions are next reported.
    pub(crate) flow_due: Option<Instant>,
    /// Reliable links: when sources are next checked for a missing parent.
    pub(crate) orphan_check_due: Instant,
    /// Flow control: when every report is next sent again, changed or not.
    pub(crate) flow_refresh_at: Instant,
    /// Rotates the neighbour an orphaned source grafts.
    pub(crate) orphan_turn: usize,
}

/// An active neighbour.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Active {
    pub(crate) node: NodeRef,
    /// Measured round trip, once a probe has answered.
    pub(crate) rtt: Option<Duration>,
    /// Holds a latency-biased slot.
    pub(crate) biased: bool,
}

/// A request this node sent and awaits an answer to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub(crate) node: NodeRef,
    pub(crate) deadline: Instant,
    pub(crate) kind: PendingKind,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum PendingKind {
    Join,
    Neighbor,
    /// A latency optimisation: on acceptance, `replace` leaves the active view.
    Optimize {
        replace: NodeId,
        rtt: Duration,
    },
    Reconnect,
}

/// A peer declared failed, retried with backoff until `until`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Failed {
    pub(crate) node: NodeRef,
    pub(crate) until: Instant,
    pub(crate) next_try: Instant,
    pub(crate) backoff: Duration,
}

impl Group {
    pub(crate) fn new(id: GroupId, now: Instant, config: &GroupConfig, rng: &mut Rng) -> Self {
        // Spread periodic work so that nodes started together do not act in lockstep.
        let shuffle_due = now + jitter(config.shuffle_interval, rng);
        let optimize_due = now + jitter(config.optimize_interval, rng);
        Self {
            id,
            active: Vec::with_capacity(config.active_size),
            passive: Vec::new(),
            pending: Vec::new(),
            contact: None,
            joined: false,
            isolated: false,
            shuffle_due,
            optimize_due,
            sync_due: now + jitter(config.anti_entropy_interval, rng),
            rejoin_due: None,
            failed: Vec::new(),
            refused: Vec::new(),
            next_seq: 0,
            sources: Vec::new(),
            cache: Cache::new(config.cache_capacity),
            missing: std::collections::BTreeMap::new(),
            missing_due: None,
            lazy_queue: Vec::new(),
            lazy_due: None,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            flow_due: None,
            orphan_check_due: now,
            orphan_turn: 0,
            flow_refresh_at: now,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut t = Some(self.shuffle_due.min(self.optimize_due).min(self.sync_due));
        t = earliest(t, self.rejoin_due);
        t = earliest(t, self.lazy_due);
        t = earliest(t, self.flow_due);
        if !self.sources.is_empty() {
            t = earliest(t, Some(self.orphan_check_due));
        }
        for p in &self.pending {
            t = earliest(t, Some(p.deadline));
        }
        for f in &self.failed {
            t = earliest(t, Some(f.next_try));
        }
        t = earliest(t, self.missing_due);
        for s in &self.sources {
            t = earliest(t, s.repair_deadline());
        }
        t
    }

    pub(crate) fn is_active(&self, peer: NodeId) -> bool {
        self.active.iter().any(|a| a.node.id == peer)
    }

    fn pending_index(&self, peer: NodeId) -> Option<usize> {
        self.pending.iter().position(|p| p.node.id == peer)
    }

    /// The active entry a latency-biased newcomer with round trip `rtt` would displace: the
    /// slowest biased neighbour, or, while biased slots are free, the slowest random one; only if
    /// it is clearly slower (50 % and 2 ms: one round-trip sample is noisy).
    pub(crate) fn replaceable(&self, rtt: Duration, latency_slots: usize) -> Option<usize> {
        let biased = self.active.iter().filter(|a| a.biased).count();
        let want_biased = biased >= latency_slots;
        let (i, worst) = self
            .active
            .iter()
            .enumerate()
            .filter(|(_, a)| a.biased == want_biased)
            .filter_map(|(i, a)| a.rtt.map(|r| (i, r)))
            .max_by_key(|&(i, r)| (r, core::cmp::Reverse(i)))?;
        (worst > rtt + rtt / 2 + Duration::from_millis(2)).then_some(i)
    }
}

impl GroupNode {
    pub(crate) fn send_join(&mut self, gi: usize, contact: NodeRef, now: Instant) {
        let g = &mut self.groups[gi];
        if g.pending_index(contact.id).is_some() {
            return;
        }
        g.pending.push(Pending {
            node: contact,
            deadline: now + self.config.request_timeout,
            kind: PendingKind::Join,
        });
        let id = g.id;
        self.send(id, contact, &GroupFrame::Join);
    }

    /// HyParView §4.2: the contact takes the joiner into its active view and starts a random
    /// walk from each of its other neighbours.
    pub(crate) fn on_join(&mut self, gi: usize, from: NodeRef, now: Instant, rng: &mut Rng) {
        let group = self.groups[gi].id;
        let g = &self.groups[gi];
        let mutual = g
            .pending_index(from.id)
            .is_some_and(|i| g.pending[i].kind == PendingKind::Join);
        if g.active.is_empty() && !mutual {
            if let Some(contact) = g.contact.filter(|c| c.id != from.id) {
                // Still joining (or cut off) itself: taking the joiner now would make an island
                // of two that no walk leaves. Pass the join on towards the overlay instead.
                let ttl = self.config.join_walk + RELAY_HOPS;
                self.send(
                    group,
                    contact,
                    &GroupFrame::ForwardJoin { joiner: from, ttl },
                );
                return;
            }
        }
        self.add_active(gi, from, false, None, now, rng);
        self.send_accept(gi, from);
        let ttl = self.config.join_walk;
        let others: Vec<NodeRef> = self.groups[gi]
            .active
            .iter()
            .map(|a| a.node)
            .filter(|n| n.id != from.id)
            .collect();
        for n in others {
            self.send(group, n, &GroupFrame::ForwardJoin { joiner: from, ttl });
        }
    }

    pub(crate) fn on_forward_join(
        &mut self,
        gi: usize,
        from: NodeRef,
        joiner: NodeRef,
        ttl: u8,
        now: Instant,
        rng: &mut Rng,
    ) {
        if joiner.id == self.me.id || self.groups[gi].is_active(joiner.id) {
            return;
        }
        let g = &self.groups[gi];
        if !g.active.is_empty() && ttl > self.config.join_walk {
            // A join relayed by a node that was not in the overlay yet (marked by a ttl no walk
            // carries): treat it as a join here, so the joiner gets a walk from every
            // neighbour, not just one.
            self.on_join(gi, joiner, now, rng);
            return;
        }
        if g.active.is_empty() {
            if let Some(contact) = g.contact.filter(|c| c.id != joiner.id && c.id != from.id) {
                // Not in the overlay yet: relay towards it rather than form an island. A relay
                // spends one of its hops; a chain of nodes all still joining drops it, and the
                // joiner retries.
                if ttl > self.config.join_walk + 1 {
                    let group = g.id;
                    let ttl = ttl - 1;
                    self.send(group, contact, &GroupFrame::ForwardJoin { joiner, ttl });
                }
                return;
            }
        }
        if ttl == 0 || g.active.len() <= 1 {
            self.add_active(gi, joiner, false, None, now, rng);
            self.send_accept(gi, joiner);
            return;
        }
        if ttl == self.config.passive_walk {
            self.add_passive(gi, joiner, rng);
        }
        let next = self.random_active(gi, &[from.id, joiner.id], rng);
        let group = self.groups[gi].id;
        match next {
            Some(n) => self.send(
                group,
                n,
                &GroupFrame::ForwardJoin {
                    joiner,
                    ttl: ttl - 1,
                },
            ),
            None => {
                self.add_active(gi, joiner, false, None, now, rng);
                self.send_accept(gi, joiner);
            }
        }
    }

    /// HyParView §4.3: a high-priority request (the sender has no neighbour left) is always
    /// accepted; a low one only with a free slot.
    pub(crate) fn on_neighbor(
        &mut self,
        gi: usize,
        from: NodeRef,
        priority: NeighborPriority,
        rtt_us: u32,
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &self.groups[gi];
        if g.is_active(from.id) {
            self.send_accept(gi, from);
            return;
        }
        let full = g.active.len() >= self.config.active_size;
        let rtt = (rtt_us > 0).then(|| Duration::from_micros(u64::from(rtt_us)));
        let accept = match priority {
            NeighborPriority::High | NeighborPriority::Reconnect => Some(false),
            NeighborPriority::Low => (!full).then_some(false),
            NeighborPriority::Optimize => {
                if !full {
                    Some(true)
                } else if let Some(i) =
                    rtt.and_then(|r| g.replaceable(r, self.config.latency_slots))
                {
                    let victim = g.active[i].node.id;
                    self.remove_active(gi, victim, true, true, now, rng);
                    Some(true)
                } else {
                    None
                }
            }
        };
        match accept {
            Some(biased) => {
                self.add_active(gi, from, biased, rtt, now, rng);
                self.send_accept(gi, from);
            }
            None => {
                let group = self.groups[gi].id;
                self.send(group, from, &GroupFrame::Reject);
            }
        }
    }

    pub(crate) fn on_accept(
        &mut self,
        gi: usize,
        from: NodeRef,
        watermarks: &[crate::wire::Watermark],
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &mut self.groups[gi];
        let kind = g
            .pending_index(from.id)
            .map(|i| g.pending.swap_remove(i).kind);
        let (biased, rtt) = match kind {
            Some(PendingKind::Optimize { replace, rtt }) => {
                let full = g.active.len() >= self.config.active_size;
                if full && g.is_active(replace) && !g.is_active(from.id) {
                    self.remove_active(gi, replace, true, true, now, rng);
                }
                (true, Some(rtt))
            }
            _ => (false, None),
        };
        let adopt = !self.groups[gi].joined;
        if self.add_active(gi, from, biased, rtt, now, rng) {
            // A new link: the other side learns where this node stands too, so each can
            // repair what the other delivered before the link existed.
            self.send_accept(gi, from);
        }
        self.apply_watermarks(gi, from.id, watermarks, adopt, now);
    }

    pub(crate) fn on_reject(&mut self, gi: usize, from: NodeRef, now: Instant, rng: &mut Rng) {
        let g = &mut self.groups[gi];
        let kind = g
            .pending_index(from.id)
            .map(|i| g.pending.swap_remove(i).kind);
        if kind.is_none() {
            return;
        }
        // Ask someone else; this candidate rests for a shuffle period.
        g.refused.retain(|(p, _)| *p != from.id);
        if g.refused.len() >= REFUSED_MEMORY {
            g.refused.remove(0);
        }
        g.refused
            .push((from.id, now + self.config.shuffle_interval));
        if kind == Some(PendingKind::Join) {
            // The contact is not (or no longer) a member, or is still joining itself.
            g.rejoin_due = Some(now + self.config.request_timeout);
        }
        self.fill(gi, now, rng);
    }

    pub(crate) fn on_disconnect(
        &mut self,
        gi: usize,
        from: NodeRef,
        leaving: bool,
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &mut self.groups[gi];
        if let Some(i) = g.pending_index(from.id) {
            g.pending.swap_remove(i);
        }
        if leaving {
            g.passive.retain(|p| p.id != from.id);
            g.failed.retain(|f| f.node.id != from.id);
        }
        if g.is_active(from.id) {
            self.remove_active(gi, from.id, !leaving, false, now, rng);
        }
        self.fill(gi, now, rng);
    }

    /// HyParView §4.4: a shuffle walks `ttl` hops; its last node answers the origin directly,
    /// and both merge the other's sample into their passive views.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_shuffle(
        &mut self,
        gi: usize,
        from: NodeRef,
        origin: NodeRef,
        ttl: u8,
        nodes: &[NodeRef],
        rng: &mut Rng,
    ) {
        if origin.id == self.me.id {
            return;
        }
        let group = self.groups[gi].id;
        if ttl > 0 && self.groups[gi].active.len() > 1 {
            if let Some(next) = self.random_active(gi, &[from.id, origin.id], rng) {
                let frame = GroupFrame::Shuffle {
                    origin,
                    ttl: ttl - 1,
                    nodes: nodes.to_vec(),
                };
                self.send(group, next, &frame);
                return;
            }
        }
        let want = nodes.len().min(MAX_NODE_REFS);
        let g = &self.groups[gi];
        let sample = if g.passive.len() >= want {
            sample(&g.passive, want, rng)
        } else {
            // A young node's passive view is thin: its neighbours are candidates too.
            let mut pool = g.passive.clone();
            pool.extend(
                g.active
                    .iter()
                    .map(|a| a.node)
                    .filter(|n| n.id != origin.id),
            );
            sample(&pool, want, rng)
        };
        self.send(group, origin, &GroupFrame::ShuffleReply { nodes: sample });
        for n in nodes {
            self.add_passive(gi, *n, rng);
        }
    }

    pub(crate) fn on_shuffle_reply(&mut self, gi: usize, nodes: &[NodeRef], rng: &mut Rng) {
        for n in nodes {
            self.add_passive(gi, *n, rng);
        }
    }

    pub(crate) fn membership_timeout(&mut self, gi: usize, now: Instant, rng: &mut Rng) {
        // Requests nobody answered: the candidate is presumed gone.
        let mut expired = Vec::new();
        self.groups[gi].pending.retain(|p| {
            let keep = p.deadline > now;
            if !keep {
                expired.push(*p);
            }
            keep
        });
        for p in &expired {
            let g = &mut self.groups[gi];
            g.passive.retain(|n| n.id != p.node.id);
            if p.kind == PendingKind::Join && g.active.is_empty() {
                g.rejoin_due = Some(now);
            }
        }
        if !expired.is_empty() {
            self.fill(gi, now, rng);
        }
        if self.groups[gi].shuffle_due <= now {
            // A thin passive view is all a node has to repair with: refill it sooner.
            let thin = self.groups[gi].passive.len() < 2 * self.config.active_size;
            let period = if thin {
                self.config.shuffle_interval / 5
            } else {
                self.config.shuffle_interval
            };
            self.groups[gi].shuffle_due = now + period;
            self.shuffle(gi, rng);
        }
        let g = &mut self.groups[gi];
        g.refused.retain(|(_, until)| *until > now);
        if g.optimize_due <= now && g.active.len() < self.config.active_size {
            // Short of neighbours: refused candidates may have rested by now.
            self.fill(gi, now, rng);
        }
        if self.groups[gi].optimize_due <= now {
            self.groups[gi].optimize_due = now + self.config.optimize_interval;
            self.optimize_probe(gi, now, rng);
        }
        self.retry_failed(gi, now);
        let g = &mut self.groups[gi];
        if g.rejoin_due.is_some_and(|t| t <= now) {
            g.rejoin_due = None;
            if g.active.is_empty() {
                match g.contact {
                    Some(c) if g.pending.is_empty() => self.send_join(gi, c, now),
                    _ => self.fill(gi, now, rng),
                }
            }
        }
    }

    /// Adds `node` to the active view, displacing a random neighbour if full. Returns whether it
    /// was new.
    pub(crate) fn add_active(
        &mut self,
        gi: usize,
        node: NodeRef,
        biased: bool,
        rtt: Option<Duration>,
        now: Instant,
        rng: &mut Rng,
    ) -> bool {
        if node.id == self.me.id {
            return false;
        }
        let g = &mut self.groups[gi];
        if let Some(a) = g.active.iter_mut().find(|a| a.node.id == node.id) {
            if node.locator.is_some() {
                a.node.locator = node.locator;
            }
            a.rtt = min_rtt(a.rtt, rtt);
            return false;
        }
        if g.active.len() >= self.config.active_size {
            // Displace a random neighbour, never a biased one if a random one exists.
            let randoms: Vec<usize> = (0..g.active.len())
                .filter(|&i| !g.active[i].biased)
                .collect();
            let i = if randoms.is_empty() {
                rng.below(g.active.len() as u64) as usize
            } else {
                randoms[rng.below(randoms.len() as u64) as usize]
            };
            let victim = g.active[i].node.id;
            self.remove_active(gi, victim, true, true, now, rng);
        }
        let g = &mut self.groups[gi];
        g.passive.retain(|p| p.id != node.id);
        if let Some(i) = g.pending_index(node.id) {
            g.pending.swap_remove(i);
        }
        g.active.push(Active { node, rtt, biased });
        g.isolated = false;
        g.rejoin_due = None;
        let group = g.id;
        let was_failed = g.failed.iter().any(|f| f.node.id == node.id);
        g.failed.retain(|f| f.node.id != node.id);
        if !g.joined {
            g.joined = true;
            self.events.push_back(GroupEvent::Joined { group });
        }
        self.events.push_back(GroupEvent::NeighborUp {
            group,
            peer: node.id,
        });
        if was_failed {
            self.events
                .push_back(GroupEvent::PeerRecovered { peer: node.id });
        }
        self.watch(node, now, rtt.is_none());
        true
    }

    /// Removes `peer` from the active view; `to_passive` keeps it as a candidate, `tell` sends it
    /// a `Disconnect`. The view is refilled from the passive view.
    pub(crate) fn remove_active(
        &mut self,
        gi: usize,
        peer: NodeId,
        to_passive: bool,
        tell: bool,
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &mut self.groups[gi];
        let Some(i) = g.active.iter().position(|a| a.node.id == peer) else {
            return;
        };
        let a = g.active.swap_remove(i);
        let group = g.id;
        // A neighbour displaced into the passive view is alive: as a flow-control child it
        // still counts until it reports elsewhere (or goes silent); a failed one does not.
        self.tree_peer_removed(gi, peer, to_passive);
        if tell {
            self.send(group, a.node, &GroupFrame::Disconnect { leaving: false });
            // Hand the dropped neighbour other candidates than this node. Left with none but
            // this node, it would ask this node again, with high priority, and displace
            // another neighbour, which would do the same: in a small group where everyone
            // joined through one contact, that loop never ends.
            let g = &self.groups[gi];
            let pool: Vec<NodeRef> = g
                .active
                .iter()
                .map(|x| x.node)
                .chain(g.passive.iter().copied())
                .filter(|n| n.id != peer)
                .collect();
            let nodes = sample(&pool, DISPLACED_HINTS, rng);
            if !nodes.is_empty() {
                self.send(group, a.node, &GroupFrame::ShuffleReply { nodes });
            }
        }
        if to_passive {
            self.add_passive(gi, a.node, rng);
        }
        self.events
            .push_back(GroupEvent::NeighborDown { group, peer });
        self.unwatch_if_unused(peer);
        self.fill(gi, now, rng);
    }

    /// Asks passive candidates to fill the active view (HyParView §4.3).
    pub(crate) fn fill(&mut self, gi: usize, now: Instant, rng: &mut Rng) {
        let size = self.config.active_size;
        loop {
            let g = &self.groups[gi];
            let asked = g
                .pending
                .iter()
                .filter(|p| p.kind == PendingKind::Neighbor)
                .count();
            // With one neighbour or none, a node is one failure from being cut off: it asks
            // several candidates at once, with high priority (always accepted), and refusals
            // do not hold it back.
            let urgent = g.active.len() <= 1;
            if g.active.len() + asked >= size || (!urgent && asked > 0) {
                break;
            }
            let candidates: Vec<NodeRef> = g
                .passive
                .iter()
                .filter(|p| g.pending_index(p.id).is_none())
                .filter(|p| {
                    urgent
                        || !g
                            .refused
                            .iter()
                            .any(|(r, until)| *r == p.id && *until > now)
                })
                .copied()
                .collect();
            if candidates.is_empty() {
                break;
            }
            let node = candidates[rng.below(candidates.len() as u64) as usize];
            let priority = if urgent {
                NeighborPriority::High
            } else {
                NeighborPriority::Low
            };
            let group = g.id;
            self.groups[gi].pending.push(Pending {
                node,
                deadline: now + self.config.request_timeout,
                kind: PendingKind::Neighbor,
            });
            self.send(
                group,
                node,
                &GroupFrame::Neighbor {
                    priority,
                    rtt_us: 0,
                },
            );
        }
        let g = &mut self.groups[gi];
        if g.active.is_empty() && g.pending.is_empty() && g.joined {
            if g.contact.is_some() && g.rejoin_due.is_none() {
                g.rejoin_due = Some(now + self.config.request_timeout);
            }
            if g.passive.is_empty() && !g.isolated {
                // Nobody left to ask but the contact (which may be gone too): the application
                // must know, and may give a fresh contact with `join`.
                g.isolated = true;
                let group = g.id;
                self.events.push_back(GroupEvent::Isolated { group });
            }
        }
    }

    /// `peer` is gone from the group's candidates (unreachable, not a neighbour).
    pub(crate) fn forget_candidate(
        &mut self,
        gi: usize,
        peer: NodeId,
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &mut self.groups[gi];
        g.passive.retain(|p| p.id != peer);
        if let Some(i) = g.pending_index(peer) {
            g.pending.swap_remove(i);
            self.fill(gi, now, rng);
        }
    }

    /// A neighbour was declared failed: out of the active view, remembered for retries.
    pub(crate) fn neighbor_failed(
        &mut self,
        gi: usize,
        peer: NodeRef,
        now: Instant,
        rng: &mut Rng,
    ) {
        let g = &mut self.groups[gi];
        g.passive.retain(|p| p.id != peer.id);
        g.failed.retain(|f| f.node.id != peer.id);
        if g.failed.len() >= self.config.failed_memory {
            g.failed.remove(0);
        }
        let backoff = self.config.request_timeout;
        g.failed.push(Failed {
            node: peer,
            until: now + self.config.failed_retry_for,
            next_try: now + backoff,
            backoff,
        });
        self.remove_active(gi, peer.id, false, false, now, rng);
        self.forget_candidate(gi, peer.id, now, rng);
    }

    fn retry_failed(&mut self, gi: usize, now: Instant) {
        let g = &mut self.groups[gi];
        g.failed.retain(|f| f.until > now);
        let group = g.id;
        let mut asks = Vec::new();
        for f in &mut g.failed {
            if f.next_try <= now {
                f.backoff = (f.backoff * 2).min(Duration::from_secs(30));
                f.next_try = now + f.backoff;
                asks.push(f.node);
            }
        }
        for node in asks {
            let g = &mut self.groups[gi];
            if g.is_active(node.id) || g.pending_index(node.id).is_some() {
                continue;
            }
            g.pending.push(Pending {
                node,
                deadline: now + self.config.request_timeout,
                kind: PendingKind::Reconnect,
            });
            self.send(
                group,
                node,
                &GroupFrame::Neighbor {
                    priority: NeighborPriority::Reconnect,
                    rtt_us: 0,
                },
            );
        }
    }

    fn shuffle(&mut self, gi: usize, rng: &mut Rng) {
        let g = &self.groups[gi];
        if g.active.is_empty() {
            return;
        }
        let actives: Vec<NodeRef> = g.active.iter().map(|a| a.node).collect();
        let mut nodes = vec![self.me];
        nodes.extend(sample(&actives, self.config.shuffle_active, rng));
        nodes.extend(sample(&g.passive, self.config.shuffle_passive, rng));
        let Some(to) = self.random_active(gi, &[], rng) else {
            return;
        };
        let frame = GroupFrame::Shuffle {
            origin: self.me,
            ttl: self.config.shuffle_walk,
            nodes,
        };
        let group = self.groups[gi].id;
        self.send(group, to, &frame);
    }

    /// Measures the round trip to one passive candidate; the answer may earn it a biased slot.
    fn optimize_probe(&mut self, gi: usize, now: Instant, rng: &mut Rng) {
        let g = &self.groups[gi];
        if self.config.latency_slots == 0 || g.active.is_empty() {
            return;
        }
        // Refresh one neighbour's round trip too: the first sample may include a handshake.
        let a = g.active[rng.below(g.active.len() as u64) as usize].node;
        self.ping(a, crate::detect::PingPurpose::Rtt, now, rng);
        let g = &self.groups[gi];
        if g.passive.is_empty() {
            return;
        }
        let candidate = g.passive[rng.below(g.passive.len() as u64) as usize];
        let group = g.id;
        self.ping(
            candidate,
            crate::detect::PingPurpose::Optimize(group),
            now,
            rng,
        );
    }

    /// A candidate's round trip is known: ask it for a biased slot if it beats a neighbour.
    pub(crate) fn optimize_answer(
        &mut self,
        group: GroupId,
        peer: NodeRef,
        rtt: Duration,
        now: Instant,
    ) {
        let Some(gi) = self.group_index(group) else {
            return;
        };
        let g = &self.groups[gi];
        if g.is_active(peer.id) || g.pending_index(peer.id).is_some() || g.active.is_empty() {
            return;
        }
        let Some(i) = g.replaceable(rtt, self.config.latency_slots) else {
            return;
        };
        let replace = g.active[i].node.id;
        self.groups[gi].pending.push(Pending {
            node: peer,
            deadline: now + self.config.request_timeout,
            kind: PendingKind::Optimize { replace, rtt },
        });
        let rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX).max(1);
        self.send(
            group,
            peer,
            &GroupFrame::Neighbor {
                priority: NeighborPriority::Optimize,
                rtt_us,
            },
        );
    }

    pub(crate) fn add_passive(&mut self, gi: usize, node: NodeRef, rng: &mut Rng) {
        if node.id == self.me.id {
            return;
        }
        let g = &mut self.groups[gi];
        if g.is_active(node.id) {
            return;
        }
        if let Some(p) = g.passive.iter_mut().find(|p| p.id == node.id) {
            if node.locator.is_some() {
                p.locator = node.locator;
            }
            return;
        }
        if g.passive.len() >= self.config.passive_size {
            let i = rng.below(g.passive.len() as u64) as usize;
            g.passive.swap_remove(i);
        }
        g.passive.push(node);
    }

    fn send_accept(&mut self, gi: usize, to: NodeRef) {
        let watermarks = self.watermarks(gi);
        let group = self.groups[gi].id;
        self.send(group, to, &GroupFrame::Accept { watermarks });
    }

    pub(crate) fn random_active(
        &self,
        gi: usize,
        except: &[NodeId],
        rng: &mut Rng,
    ) -> Option<NodeRef> {
        let g = &self.groups[gi];
        let n = g
            .active
            .iter()
            .filter(|a| !except.contains(&a.node.id))
            .count();
        if n == 0 {
            return None;
        }
        let k = rng.below(n as u64) as usize;
        g.active
            .iter()
            .filter(|a| !except.contains(&a.node.id))
            .nth(k)
            .map(|a| a.node)
    }

    /// Whether `peer` is in any group's active view.
    pub(crate) fn is_neighbor(&self, peer: NodeId) -> bool {
        self.groups.iter().any(|g| g.is_active(peer))
    }
}

/// The smaller of two optional round trips.
pub(crate) fn min_rtt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Relays a join may take through nodes that are still joining themselves. Relayed joins carry
/// a walk ttl above `join_walk` (which no walk carries), so a member knows to treat them as joins.
const RELAY_HOPS: u8 = 4;

/// Candidates handed to a neighbour this node drops from its active view.
const DISPLACED_HINTS: usize = 4;

/// Most refusing candidates remembered per group.
const REFUSED_MEMORY: usize = 16;

/// Up to `k` distinct random entries of `from`.
pub(crate) fn sample<T: Copy>(from: &[T], k: usize, rng: &mut Rng) -> Vec<T> {
    let mut idx: Vec<usize> = (0..from.len()).collect();
    let k = k.min(idx.len());
    for i in 0..k {
        let j = i + rng.below((idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx[..k].iter().map(|&i| from[i]).collect()
}

/// A random point in `[d/2, d)`.
pub(crate) fn jitter(d: Duration, rng: &mut Rng) -> Duration {
    let ns = d.as_nanos() as u64;
    Duration::from_nanos(ns / 2 + rng.below((ns / 2).max(1)))
}
