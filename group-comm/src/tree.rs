//! Trees: Plumtree-style epidemic broadcast trees (Leitão, Pereira, Rodrigues, 2007), one per
//! source, over the group's active view.
//!
//! A message goes eagerly (the payload) to a source's eager peers and lazily (an `IHave`, batched
//! every `lazy_interval`) to its lazy peers. §3.3: a duplicate on an eager link makes that link
//! lazy and sends a `Prune`; an announced message still missing after `graft_timeout` is asked
//! for with a `Graft`, which makes the announcer's link eager again: that is how a tree repairs
//! itself after a failure. §3.8: an announcement that arrives `optimization_delay` before the
//! eager copy swaps the two links (by time, not hop count: on links of unequal latency the
//! fewest hops is not the fastest path). New neighbours start eager, so the first message of
//! a source floods and its duplicates carve the tree. With `Dissemination::Flood` there is no
//! tree: each node pushes to `fanout` random neighbours.

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::Instant;

use crate::config::Dissemination;
use crate::delivery::Cached;
use crate::event::GroupEvent;
use crate::node::GroupNode;
use crate::wire::{Announcement, DataFlags, GroupFrame, MAX_ANNOUNCEMENTS, MessageId, NodeRef};

/// Most announced-but-missing messages tracked per group.
const MAX_MISSING: usize = 4096;
/// Most announcers remembered per missing message.
const MAX_ANNOUNCERS: usize = 8;
/// Queued announcements that force an early flush.
const MAX_LAZY_QUEUE: usize = 8192;

/// A message announced to this node and not yet received: graft it if it stays missing.
#[derive(Debug)]
pub(crate) struct Missing {
    pub(crate) id: MessageId,
    pub(crate) deadline: Instant,
    /// When, and from whom, the first announcement came.
    first_seen: Instant,
    first_announcer: NodeId,
    announcers: Vec<(NodeId, u16)>,
    grafted: Option<NodeId>,
}

impl GroupNode {
    /// A message new to this node: cache it, pass it on, deliver it. `hop` counts hops from the
    /// source to this node; `from` is `None` for this node's own messages.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_new(
        &mut self,
        gi: usize,
        id: MessageId,
        hop: u16,
        payload: Bytes,
        from: Option<NodeRef>,
        now: Instant,
        rng: &mut Rng,
    ) {
        let max = self.config.max_sources;
        let Some(si) = self.groups[gi].source_for(id.source, id.epoch, id.seq, now, max) else {
            return;
        };
        self.groups[gi].cache.insert(Cached {
            id,
            hop,
            payload: payload.clone(),
        });
        self.forward(gi, &id, hop, &payload, from.map(|f| f.id), now, rng);
        self.deliver(gi, si, id, hop, payload, from.map(|f| f.id), now);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_data(
        &mut self,
        gi: usize,
        from: NodeRef,
        id: MessageId,
        hop: u16,
        flags: DataFlags,
        payload: Bytes,
        now: Instant,
        rng: &mut Rng,
    ) {
        let hop = hop.saturating_add(1);
        let tree = self.config.dissemination == Dissemination::Tree;
        let answered = flags.0 & (DataFlags::REPAIR | DataFlags::GRAFT) != 0;
        if id.source == self.me.id {
            self.stats.duplicates_received += 1;
            if tree && !answered {
                self.prune(gi, from, id.source);
            }
            return;
        }
        let max = self.config.max_sources;
        // A source never heard of starts at 0, unless a neighbour's watermark said otherwise.
        let Some(si) = self.groups[gi].source_for(id.source, id.epoch, 0, now, max) else {
            self.stats.duplicates_received += 1;
            return;
        };
        if self.groups[gi].sources[si].has(id.seq) {
            self.stats.duplicates_received += 1;
            // On reliable links the parent's copy of a message already repaired is late, not
            // redundant: the parent stays.
            let parent =
                self.config.reliable_links && self.groups[gi].sources[si].parent == Some(from.id);
            if tree && !answered && !parent {
                self.prune(gi, from, id.source);
            }
            return;
        }
        let g = &mut self.groups[gi];
        let mut swap_to = None;
        if let Some(m) = g.missing.remove(&(id.source, id.epoch, id.seq)) {
            if m.grafted.is_some() {
                let group = g.id;
                self.events.push_back(GroupEvent::TreeRepaired {
                    group,
                    source: id.source,
                    via: from.id,
                });
            } else if tree
                && flags.0 == 0
                && m.first_announcer != from.id
                && now >= m.first_seen + self.config.optimization_delay
                && g.is_active(m.first_announcer)
            {
                // §3.8: the lazy link announced it much earlier than the tree delivered it.
                swap_to = Some(m.first_announcer);
            }
        }
        if let Some(faster) = swap_to {
            let g = &mut self.groups[gi];
            g.sources[si].lazy.retain(|p| *p != faster);
            let group = g.id;
            let to = self.locate(faster);
            self.stats.grafts_sent += 1;
            let graft = if self.config.reliable_links {
                // The faster peer is ahead of this link: it replays what follows this message,
                // so that the switch leaves no gap.
                GroupFrame::Graft {
                    id: MessageId {
                        seq: id.seq + 1,
                        ..id
                    },
                    want: true,
                }
            } else {
                GroupFrame::Graft { id, want: false }
            };
            self.send(group, to, &graft);
            self.prune(gi, from, id.source);
        }
        let g = &mut self.groups[gi];
        if tree && !flags.is_repair() && g.is_active(from.id) {
            let s = &g.sources[si];
            let grafted = flags.0 & DataFlags::GRAFT != 0;
            // Reliable links: the parent is sticky while it feeds this node. A new message
            // that a non-parent pushed first only says its path was quicker this time: on a
            // loaded machine that is scheduling noise, and following it (Plumtree's rule, the
            // first copy's link becomes the tree link) flips parents back and forth, each
            // flip racing the old parent's pushes and prunes. The pusher is pruned instead.
            let sticky = self.config.reliable_links
                && !grafted
                && swap_to.is_none()
                && s.parent.is_some_and(|p| p != from.id && g.is_active(p))
                && now < s.parent_pushed + self.config.graft_timeout;
            if sticky {
                g.sources[si].last_pushed = now;
                self.prune(gi, from, id.source);
            } else {
                // Plumtree: the link a message arrived on is (again) a tree link.
                let s = &mut g.sources[si];
                let was_lazy = s.lazy.contains(&from.id);
                s.lazy.retain(|p| *p != from.id);
                s.last_pushed = now;
                s.parent_pushed = now;
                let epoch = s.epoch;
                if self.config.reliable_links
                    && was_lazy
                    && !grafted
                    && s.parent != Some(from.id)
                    && now >= s.regrafted + self.config.graft_timeout
                {
                    // This node pruned the link (or was pruned on it), and the push crossed
                    // that prune: once the prune lands, the new parent pushes no more. A
                    // graft from past this message keeps it pushing.
                    s.regrafted = now;
                    let group = g.id;
                    self.stats.grafts_sent += 1;
                    let graft = GroupFrame::Graft {
                        id: MessageId {
                            source: id.source,
                            epoch,
                            seq: id.seq + 1,
                        },
                        want: true,
                    };
                    self.send(group, from, &graft);
                }
                self.flow_parent(gi, si, from.id);
                // It pushed: it counts this node now, so the old parent may let go.
                self.flow_parent_pushed(gi, si);
            }
        }
        let g = &mut self.groups[gi];
        g.cache.insert(Cached {
            id,
            hop,
            payload: payload.clone(),
        });
        if !flags.is_repair() {
            self.forward(gi, &id, hop, &payload, Some(from.id), now, rng);
        }
        self.deliver(gi, si, id, hop, payload, Some(from.id), now);
    }

    /// Pushes a new message on: payload to eager peers, announcement to lazy ones.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        gi: usize,
        id: &MessageId,
        hop: u16,
        payload: &Bytes,
        except: Option<NodeId>,
        now: Instant,
        rng: &mut Rng,
    ) {
        let group = self.groups[gi].id;
        match self.config.dissemination {
            Dissemination::Tree => {
                let g = &self.groups[gi];
                let s = g.source(id.source);
                let lazy: &[NodeId] = s.map(|s| s.lazy.as_slice()).unwrap_or(&[]);
                // Reliable links: nothing goes up to the parent. It is upstream and has the
                // message, or will; a push back up would be a duplicate there, and its prune
                // would cut the parent's own pushes to this node. Announcing it would only
                // cost both ends a lookup per message.
                let parent = s
                    .and_then(|s| s.parent)
                    .filter(|_| self.config.reliable_links);
                let mut eager = Vec::with_capacity(g.active.len());
                let mut announce = Vec::new();
                for a in &g.active {
                    if Some(a.node.id) == except || parent == Some(a.node.id) {
                        continue;
                    }
                    if lazy.contains(&a.node.id) {
                        announce.push(a.node.id);
                    } else {
                        eager.push(a.node);
                    }
                }
                for to in eager {
                    self.send_data(group, to, id, hop, DataFlags::default(), payload);
                    self.flow_pushed(gi, id.source, to.id, id.seq, now);
                }
                for to in announce {
                    self.queue_announcement(gi, to, Announcement { id: *id, hop }, now);
                }
            }
            Dissemination::Flood { fanout } => {
                let mut except_list = Vec::with_capacity(fanout + 1);
                except_list.extend(except);
                for _ in 0..fanout {
                    let Some(to) = self.random_active(gi, &except_list, rng) else {
                        break;
                    };
                    except_list.push(to.id);
                    self.send_data(group, to, id, hop, DataFlags::default(), payload);
                }
            }
        }
    }

    /// Plumtree §3.3: a duplicate on an eager link makes it lazy for this source.
    fn prune(&mut self, gi: usize, from: NodeRef, source: NodeId) {
        let g = &mut self.groups[gi];
        if !g.is_active(from.id) {
            return;
        }
        let Some(si) = g.source_index(source) else {
            return;
        };
        let s = &mut g.sources[si];
        if self.config.reliable_links && s.children.iter().any(|(c, _, _)| *c == from.id) {
            // A child of this node in the tree pushed back up a message it had first from
            // elsewhere, just before taking this node as its parent (or the source's own
            // message came back). Plumtree would make the link lazy both ways, leaving the
            // child fed by nobody until a graft timeout, and holding the source's window
            // meanwhile. Only the child's direction is pruned: it stops pushing here, and this
            // node keeps pushing down to it.
            let group = g.id;
            self.stats.prunes_sent += 1;
            self.send(group, from, &GroupFrame::Prune { source });
            return;
        }
        // Already lazy here, yet the peer pushed: it has not heard (or has forgotten, after a
        // push of ours made the link eager at its end) that this link is lazy. Say it again, or
        // it pushes duplicates for ever and, under flow control, counts this node as a child.
        if s.lazy.contains(&from.id) {
            if !self.config.reliable_links {
                return;
            }
        } else {
            s.lazy.push(from.id);
        }
        let group = g.id;
        self.stats.prunes_sent += 1;
        self.send(group, from, &GroupFrame::Prune { source });
        self.flow_unlink(gi, Some(source), from.id);
    }

    pub(crate) fn on_prune(&mut self, gi: usize, from: NodeRef, source: NodeId, now: Instant) {
        let g = &mut self.groups[gi];
        if !g.is_active(from.id) {
            return;
        }
        let mut regraft = None;
        if let Some(si) = g.source_index(source) {
            let s = &mut g.sources[si];
            if !s.lazy.contains(&from.id) {
                s.lazy.push(from.id);
            }
            if self.config.reliable_links
                && s.parent == Some(from.id)
                && now >= s.regrafted + self.config.graft_timeout
            {
                // The parent stops pushing to this node: a prune of ours crossed its pushes
                // and it took this node for one fed elsewhere. Graft it back at once (its
                // replay starts where this node stands) rather than hang in no tree until an
                // orphan check.
                s.regrafted = now;
                regraft = Some(MessageId {
                    source,
                    epoch: s.epoch,
                    seq: s.next,
                });
            }
        }
        self.flow_unlink(gi, Some(source), from.id);
        if let Some(id) = regraft {
            let group = self.groups[gi].id;
            self.stats.grafts_sent += 1;
            self.send(group, from, &GroupFrame::Graft { id, want: true });
        }
    }

    pub(crate) fn on_ihave(
        &mut self,
        gi: usize,
        from: NodeRef,
        announcements: &[Announcement],
        now: Instant,
    ) {
        let graft_timeout = self.config.graft_timeout;
        for ann in announcements {
            let id = ann.id;
            if id.source == self.me.id {
                continue;
            }
            let g = &mut self.groups[gi];
            let have = g
                .source(id.source)
                .is_some_and(|s| s.epoch == id.epoch && s.has(id.seq));
            if have {
                continue;
            }
            if let Some(si) = g.source_index(id.source) {
                let s = &mut g.sources[si];
                if s.epoch == id.epoch {
                    // Fills the gap of anything before it if the graft alone does not.
                    s.note_exists(id.seq, from.id, now + self.config.repair_timeout);
                }
            }
            match g.missing.get_mut(&(id.source, id.epoch, id.seq)) {
                Some(m) => {
                    if m.announcers.len() < MAX_ANNOUNCERS
                        && !m.announcers.iter().any(|(p, _)| *p == from.id)
                    {
                        m.announcers.push((from.id, ann.hop));
                    }
                }
                None => {
                    if g.missing.len() < MAX_MISSING {
                        let deadline = now + graft_timeout;
                        g.missing_due = Some(g.missing_due.map_or(deadline, |d| d.min(deadline)));
                        g.missing.insert(
                            (id.source, id.epoch, id.seq),
                            Missing {
                                id,
                                deadline,
                                first_seen: now,
                                first_announcer: from.id,
                                announcers: vec![(from.id, ann.hop)],
                                grafted: None,
                            },
                        );
                    }
                }
            }
        }
    }

    pub(crate) fn on_graft(
        &mut self,
        gi: usize,
        from: NodeRef,
        id: MessageId,
        want: bool,
        now: Instant,
    ) {
        let g = &mut self.groups[gi];
        if g.is_active(from.id) {
            if let Some(si) = g.source_index(id.source) {
                g.sources[si].lazy.retain(|p| *p != from.id);
            }
        }
        if !want {
            return;
        }
        let group = g.id;
        if self.config.reliable_links {
            // The grafting node is below this one in the tree from here on.
            self.flow_pushed(gi, id.source, from.id, id.seq, now);
            self.replay(gi, from, id);
            return;
        }
        match g.cache.get(&id).map(|c| (c.hop, c.payload.clone())) {
            Some((hop, payload)) => {
                self.stats.repairs_sent += 1;
                self.send_data(group, from, &id, hop, DataFlags(DataFlags::GRAFT), &payload);
            }
            None => self.send(
                group,
                from,
                &GroupFrame::RepairMissing {
                    source: id.source,
                    epoch: id.epoch,
                    first: id.seq,
                    last: id.seq,
                },
            ),
        }
    }

    /// A graft on reliable links: sends `from` the source's stream from `id.seq` on, in order,
    /// ahead of the eager pushes that follow on the same link: up to a repair batch of it, or
    /// to the newest cached message if sooner. What the cache no longer holds at the start is
    /// reported missing.
    fn replay(&mut self, gi: usize, to: NodeRef, id: MessageId) {
        let g = &self.groups[gi];
        let group = g.id;
        // At most a repair batch: a graft that raced the tree's own pushes (the node had the
        // rest already) then costs a batch of duplicates, not a cache's worth; a node that
        // really lacks more repairs the rest in pipelined batches, as for any gap.
        let batch = usize::try_from(self.config.repair_batch).unwrap_or(usize::MAX);
        let msgs: Vec<(MessageId, u16, Bytes)> = g
            .cache
            .from(id)
            .take(batch)
            .map(|c| (c.id, c.hop, c.payload.clone()))
            .collect();
        let Some(&(first, _, _)) = msgs.first() else {
            // Nothing from there on: the grafting node is level with this one, or this one's
            // cache has moved on. Either way the eager pushes take over from here.
            return;
        };
        if first.seq > id.seq {
            self.send(
                group,
                to,
                &GroupFrame::RepairMissing {
                    source: id.source,
                    epoch: id.epoch,
                    first: id.seq,
                    last: first.seq - 1,
                },
            );
        }
        for (mid, hop, payload) in msgs {
            self.stats.repairs_sent += 1;
            self.send_data(group, to, &mid, hop, DataFlags(DataFlags::GRAFT), &payload);
        }
    }

    pub(crate) fn queue_announcement(
        &mut self,
        gi: usize,
        to: NodeId,
        ann: Announcement,
        now: Instant,
    ) {
        let g = &mut self.groups[gi];
        g.lazy_queue.push((to, ann));
        if g.lazy_due.is_none() {
            g.lazy_due = Some(now + self.config.lazy_interval);
        }
        if g.lazy_queue.len() >= MAX_LAZY_QUEUE {
            self.flush_announcements(gi);
        }
    }

    fn flush_announcements(&mut self, gi: usize) {
        let g = &mut self.groups[gi];
        g.lazy_due = None;
        let mut queue = core::mem::take(&mut g.lazy_queue);
        let group = g.id;
        // Group by peer, keeping first-queued order among peers (deterministic).
        let mut peers: Vec<NodeId> = Vec::new();
        for (p, _) in &queue {
            if !peers.contains(p) {
                peers.push(*p);
            }
        }
        for p in peers {
            let anns: Vec<Announcement> = queue
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, a)| *a)
                .collect();
            let to = self.locate(p);
            for chunk in anns.chunks(MAX_ANNOUNCEMENTS) {
                self.stats.ihave_sent += 1;
                self.stats.announcements_sent += chunk.len() as u64;
                self.send(
                    group,
                    to,
                    &GroupFrame::IHave {
                        announcements: chunk.to_vec(),
                    },
                );
            }
        }
        queue.clear();
        let g = &mut self.groups[gi];
        if g.lazy_queue.is_empty() {
            g.lazy_queue = queue;
        }
    }

    pub(crate) fn tree_timeout(&mut self, gi: usize, now: Instant) {
        if self.groups[gi].lazy_due.is_some_and(|t| t <= now) {
            self.flush_announcements(gi);
        }
        if self.groups[gi].orphan_check_due <= now {
            if self.config.reliable_links {
                self.groups[gi].orphan_check_due = now + self.config.graft_timeout;
                self.adopt_orphans(gi, now);
            } else {
                self.groups[gi].orphan_check_due = Instant::MAX;
            }
        }
        let half = self.config.graft_timeout / 2;
        if self.groups[gi].missing_due.is_none_or(|t| t > now) {
            return;
        }
        let due: Vec<(NodeId, u32, u64)> = self.groups[gi]
            .missing
            .iter()
            .filter(|(_, m)| m.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let g = &mut self.groups[gi];
            let Some(m) = g.missing.get(&key) else {
                continue;
            };
            if m.deadline > now {
                // Pushed back by a graft of an earlier message of the same source.
                continue;
            }
            let id = m.id;
            let have = g
                .source(id.source)
                .is_some_and(|s| s.epoch == id.epoch && s.has(id.seq));
            // The source's stream is still coming down the tree (an eager push within the graft
            // timeout) and the message lies ahead of it: on a reliable, ordered tree link it
            // is late, not lost (announcements overtake a loaded eager path). Grafting now
            // would only add a duplicate; wait, and let gap repair handle a message the parent
            // never had. Repairs do not count: a node fed only by repairs has fallen out of
            // the tree and must graft back in.
            let progressing = self.config.reliable_links
                && g.source(id.source).is_some_and(|s| {
                    s.epoch == id.epoch
                        && id.seq >= s.next
                        && now < s.last_pushed + self.config.graft_timeout
                });
            // Reliable links: one graft replays the whole stream from the first message this
            // node lacks, so a source is grafted at most once a graft timeout, however many of
            // its messages are announced and missing. Under load the replay takes a while to
            // arrive; grafting again meanwhile only doubles it (a replay storm).
            let graft_again = g
                .source(id.source)
                .filter(|s| self.config.reliable_links && s.epoch == id.epoch)
                .map(|s| s.regrafted + self.config.graft_timeout)
                .filter(|&t| now < t);
            let Some(m) = g.missing.get_mut(&key) else {
                continue;
            };
            if have || m.announcers.is_empty() {
                g.missing.remove(&key);
                continue;
            }
            if progressing {
                m.deadline = now + half;
                continue;
            }
            if let Some(t) = graft_again {
                m.deadline = t;
                continue;
            }
            // Graft the first announcer; the next one gets its turn after half a timeout.
            let (peer, _) = m.announcers.remove(0);
            m.grafted = Some(peer);
            m.deadline = now + half;
            let mut want = id;
            if let Some(si) = g.source_index(id.source) {
                let s = &mut g.sources[si];
                s.lazy.retain(|p| *p != peer);
                if self.config.reliable_links && s.epoch == id.epoch {
                    // The stream from the first message this node lacks (the new parent
                    // replays it): one graft repairs the whole gap.
                    want.seq = want.seq.min(s.next);
                    s.regrafted = now;
                }
            }
            let group = g.id;
            let to = self.locate(peer);
            self.stats.grafts_sent += 1;
            self.send(
                group,
                to,
                &GroupFrame::Graft {
                    id: want,
                    want: true,
                },
            );
            if want.seq < id.seq {
                // The other missing messages of this source are on their way too.
                let g = &mut self.groups[gi];
                let later = g
                    .missing
                    .range_mut((id.source, id.epoch, 0)..=(id.source, id.epoch, u64::MAX));
                for (_, m) in later {
                    if m.id != id {
                        m.deadline = m.deadline.max(now + self.config.graft_timeout);
                    }
                }
            }
        }
        let g = &mut self.groups[gi];
        g.missing_due = g.missing.values().map(|m| m.deadline).min();
    }

    /// `peer` left the active view: forget it in every tree and pending graft.
    pub(crate) fn tree_peer_removed(&mut self, gi: usize, peer: NodeId, alive: bool) {
        let g = &mut self.groups[gi];
        for s in &mut g.sources {
            s.lazy.retain(|p| *p != peer);
        }
        for m in g.missing.values_mut() {
            m.announcers.retain(|(p, _)| *p != peer);
        }
        g.lazy_queue.retain(|(p, _)| *p != peer);
        if alive && self.config.reliable_links {
            self.flow_parent_gone(gi, peer);
        } else {
            self.flow_unlink(gi, None, peer);
        }
    }
}
