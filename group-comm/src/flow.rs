//! Tree flow control: a source publishes at most a window ahead of the slowest member.
//!
//! Every member reports to its parent in each source's tree how far its whole subtree has
//! delivered: the least of its own position and its children's reports (a `SubtreeAck`, at
//! most every `flow_interval`). The reports aggregate up the tree, so the source learns the
//! position of its slowest member from its own children alone, and its window
//! ([`GroupNode::publish_window`]) closes when it is `flow_window` ahead. A slow member thus
//! slows the source, through the application's backpressure, instead of filling queues along
//! the tree until messages fall out of caches and are lost. Only control information flows up
//! the tree: no node ever stops reading, so links shared by several trees cannot deadlock.
//!
//! A child that has not reported yet counts from the first message pushed to it; a child that
//! leaves the tree (pruned, grafted elsewhere, failed, or silent for a second) stops counting.
//! The links are reliable (`flow_window` needs `reliable_links`), so a report is sent when it
//! changes; every report is also sent again every 100 ms, which corrects a parent that lost
//! track of a child (it left the active view and came back) and guessed its position.

use substrate::id::NodeId;
use substrate::time::Instant;

use crate::GroupId;
use crate::node::GroupNode;
use crate::wire::{GroupFrame, MAX_WATERMARKS, Watermark};

impl GroupNode {
    /// Whether `group` may take one more message of `len` payload bytes from this node now:
    /// `false` while its tree's slowest member is a whole flow window behind (or the node is
    /// not a member). Always `true` without flow control.
    pub fn publish_window(&self, group: GroupId, len: usize) -> bool {
        let Some(gi) = self.group_index(group) else {
            return false;
        };
        let Some(w) = self.config.flow_window else {
            return true;
        };
        let g = &self.groups[gi];
        let floor = own_floor(g, self.me.id);
        let bytes = g.inflight_bytes;
        g.next_seq.saturating_sub(floor) < w.messages
            && (bytes == 0 || bytes.saturating_add(len as u64) <= w.bytes)
    }

    /// Records one of this node's own messages, for the byte window.
    pub(crate) fn flow_published(&mut self, gi: usize, seq: u64, len: usize) {
        if self.config.flow_window.is_none() {
            return;
        }
        let g = &mut self.groups[gi];
        g.inflight.push_back((seq, len as u64));
        g.inflight_bytes += len as u64;
    }

    /// Drops the byte accounting of messages every member has.
    pub(crate) fn settle_own(&mut self, gi: usize) {
        if self.config.flow_window.is_none() {
            return;
        }
        let g = &mut self.groups[gi];
        let floor = own_floor(g, self.me.id);
        while let Some(&(seq, len)) = g.inflight.front() {
            if seq >= floor {
                break;
            }
            g.inflight.pop_front();
            g.inflight_bytes -= len;
        }
    }

    /// `seq` of `source` was pushed eagerly to `to`: a child of this node in that tree.
    pub(crate) fn flow_pushed(
        &mut self,
        gi: usize,
        source: NodeId,
        to: NodeId,
        seq: u64,
        now: Instant,
    ) {
        if self.config.flow_window.is_none() {
            return;
        }
        let g = &mut self.groups[gi];
        let Some(s) = g.sources.iter_mut().find(|s| s.id == source) else {
            return;
        };
        if s.parent != Some(to) && !s.children.iter().any(|(c, _, _)| *c == to) {
            s.children.push((to, seq, now));
        }
    }

    /// `peer` is no longer below this node in `source`'s tree (`None`: in any tree).
    pub(crate) fn flow_unlink(&mut self, gi: usize, source: Option<NodeId>, peer: NodeId) {
        if !self.config.reliable_links {
            return;
        }
        let g = &mut self.groups[gi];
        let mut orphaned = Vec::new();
        for (si, s) in g.sources.iter_mut().enumerate() {
            if source.is_none_or(|x| x == s.id) {
                s.drop_child(peer);
                if source.is_none() && s.parent == Some(peer) {
                    s.parent = None;
                    orphaned.push(si);
                }
            }
        }
        for si in orphaned {
            self.regraft(gi, si);
        }
        if self.config.flow_window.is_none() {
            return;
        }
        self.settle_own(gi);
        // Report as soon as possible: the departed child may have been what held it back.
        self.groups[gi].flow_due = Some(Instant::ZERO);
    }

    /// `peer` left the active view alive: the trees it fed this node re-graft; as a child it
    /// still counts until it reports elsewhere, detaches or goes silent.
    pub(crate) fn flow_parent_gone(&mut self, gi: usize, peer: NodeId) {
        let g = &mut self.groups[gi];
        let mut orphaned = Vec::new();
        for (si, s) in g.sources.iter_mut().enumerate() {
            if s.parent == Some(peer) {
                s.parent = None;
                // It is left, and hears so: nothing more comes from it.
                if s.detach_from.is_none() {
                    s.detach_from = Some(peer);
                }
                orphaned.push(si);
            }
        }
        for si in orphaned {
            self.regraft(gi, si);
        }
    }

    /// The parent in a source's tree left the active view: graft another neighbour at once,
    /// from the first message this node lacks, rather than wait for announcements to go
    /// unanswered. Meanwhile this node would hang in nobody's subtree, and the source's window
    /// would run ahead of it.
    fn regraft(&mut self, gi: usize, si: usize) {
        let g = &self.groups[gi];
        let s = &g.sources[si];
        let pick = g
            .active
            .iter()
            .map(|a| a.node)
            .find(|a| !s.lazy.contains(&a.id))
            .or_else(|| g.active.first().map(|a| a.node));
        let Some(to) = pick else {
            return;
        };
        self.graft_from_position(gi, si, to);
    }

    /// Grafts `to` into this node's tree of the source at `si`, asking for the stream from the
    /// first message this node lacks, and takes it as the parent at once.
    fn graft_from_position(&mut self, gi: usize, si: usize, to: crate::wire::NodeRef) {
        let g = &mut self.groups[gi];
        let s = &mut g.sources[si];
        s.lazy.retain(|p| *p != to.id);
        let id = crate::wire::MessageId {
            source: s.id,
            epoch: s.epoch,
            seq: s.next,
        };
        let group = g.id;
        self.stats.grafts_sent += 1;
        self.send(group, to, &GroupFrame::Graft { id, want: true });
        // The grafted neighbour counts this node as a child from now: report to it.
        self.flow_parent(gi, si, to.id);
    }

    /// Reliable links: a source known to be ahead of this node whose stream has not come down
    /// the tree for a graft timeout has no working parent here (it left, pruned this node, or
    /// was never there): graft a neighbour, a different one each time, until one pushes.
    pub(crate) fn adopt_orphans(&mut self, gi: usize, now: Instant) {
        let me = self.me.id;
        let timeout = self.config.graft_timeout;
        let g = &mut self.groups[gi];
        let n = g.active.len();
        if n == 0 {
            return;
        }
        let mut orphans = Vec::new();
        for (si, s) in g.sources.iter_mut().enumerate() {
            if s.id != me && s.behind() && now >= s.last_pushed.max(s.regrafted) + timeout {
                s.parent = None;
                s.regrafted = now;
                orphans.push(si);
            }
        }
        for si in orphans {
            let g = &mut self.groups[gi];
            g.orphan_turn = g.orphan_turn.wrapping_add(1);
            let to = g.active[g.orphan_turn % n].node;
            self.graft_from_position(gi, si, to);
        }
    }

    /// `source`'s messages now come from `parent`.
    pub(crate) fn flow_parent(&mut self, gi: usize, si: usize, parent: NodeId) {
        if !self.config.reliable_links {
            return;
        }
        let g = &mut self.groups[gi];
        let group = g.id;
        let s = &mut g.sources[si];
        if s.parent == Some(parent) {
            return;
        }
        let old = s.parent.replace(parent);
        s.drop_child(parent);
        let (source, epoch) = (s.id, s.epoch);
        let flow = self.config.flow_window.is_some();
        if let Some(old) = old.filter(|_| flow) {
            // The old parent must stop waiting for this subtree, but not before the new one
            // counts it (it has pushed to this node): in between, nobody would hold the
            // source's window for it, and the source could run out of every cache ahead of it.
            let s = &mut self.groups[gi].sources[si];
            if let Some(earlier) = s.detach_from.replace(old).filter(|&e| e != parent) {
                // Two switches before the first push: the first old parent is let go now.
                self.send_detach(group, earlier, source, epoch);
            }
        }
    }

    /// The parent pushed to this node: it counts this node's subtree now, so the parent left
    /// before it may stop.
    pub(crate) fn flow_parent_pushed(&mut self, gi: usize, si: usize) {
        let g = &mut self.groups[gi];
        let group = g.id;
        let s = &mut g.sources[si];
        let Some(old) = s.detach_from.take() else {
            return;
        };
        if s.parent == Some(old) {
            return;
        }
        let (source, epoch) = (s.id, s.epoch);
        self.send_detach(group, old, source, epoch);
    }

    /// Tells `to` this node is no longer below it in `source`'s tree.
    fn send_detach(&mut self, group: GroupId, to: NodeId, source: NodeId, epoch: u32) {
        let to = self.locate(to);
        let detach = Watermark {
            source,
            epoch,
            next_seq: DETACHED,
        };
        self.send(
            group,
            to,
            &GroupFrame::SubtreeAck {
                positions: vec![detach],
            },
        );
    }

    /// Something a report depends on moved: report within `flow_interval`.
    pub(crate) fn flow_changed(&mut self, gi: usize, now: Instant) {
        if self.config.flow_window.is_none() {
            return;
        }
        let g = &mut self.groups[gi];
        let soon = now + self.config.flow_interval;
        if g.flow_due.is_none_or(|t| t > soon) {
            g.flow_due = Some(soon);
        }
    }

    pub(crate) fn on_subtree_ack(
        &mut self,
        gi: usize,
        from: NodeId,
        positions: &[Watermark],
        now: Instant,
    ) {
        if self.config.flow_window.is_none() {
            return;
        }
        let g = &mut self.groups[gi];
        // A child displaced from the active view still reports (and detaches) here.
        let active = g.is_active(from);
        for w in positions {
            let Some(s) = g.sources.iter_mut().find(|s| s.id == w.source) else {
                continue;
            };
            if s.epoch != w.epoch || s.parent == Some(from) {
                continue;
            }
            let entry = s.children.iter().position(|(c, _, _)| *c == from);
            match (entry, w.next_seq) {
                (Some(_), DETACHED) => s.drop_child(from),
                // Assigned, not raised: a first report corrects the guess made at the first
                // push, and a subtree that took in a member further behind moves back.
                (Some(i), p) => {
                    s.children[i].1 = p;
                    s.children[i].2 = now;
                }
                (None, DETACHED) => {}
                (None, _) if !active => {}
                // It counts this node as its parent, so this node counts it as a child, even
                // if its own view of the link differs for now.
                (None, p) => s.children.push((from, p, now)),
            }
        }
        self.settle_own(gi);
        self.flow_changed(gi, now);
    }

    /// Sends each parent the positions of this node's subtrees that moved.
    pub(crate) fn flow_timeout(&mut self, gi: usize, now: Instant) {
        let g = &mut self.groups[gi];
        if g.flow_due.is_none_or(|t| t > now) {
            return;
        }
        g.flow_due = None;
        // Now and then every report goes again: a parent that forgot this node (it left the
        // active view and came back, say) and guessed its position from a push is corrected.
        let refresh = now >= g.flow_refresh_at;
        if refresh {
            g.flow_refresh_at = now + self.config.flow_interval * FLOW_REFRESH;
        }
        let mut reports: Vec<(NodeId, Vec<Watermark>)> = Vec::new();
        let mut attached = false;
        let mut dropped = false;
        let stale = self.config.flow_interval * FLOW_REFRESH * 10;
        for s in &mut g.sources {
            // A child that has not reported for ten refresh periods reports to someone else
            // (its parent changed and the news was lost in a race) or is gone: it no longer
            // holds the window. A slow child that is still attached reports, if only the same
            // position.
            let before = s.children.len();
            s.children.retain(|&(_, _, at)| now < at + stale);
            dropped |= s.children.len() != before;
            attached |= !s.children.is_empty();
            let Some(parent) = s.parent else {
                continue;
            };
            attached = true;
            let pos = s.subtree_floor().map_or(s.next, |f| f.min(s.next));
            if !refresh && s.reported == Some((parent, pos)) {
                continue;
            }
            s.reported = Some((parent, pos));
            let w = Watermark {
                source: s.id,
                epoch: s.epoch,
                next_seq: pos,
            };
            match reports.iter_mut().find(|(p, _)| *p == parent) {
                Some((_, ws)) => ws.push(w),
                None => reports.push((parent, vec![w])),
            }
        }
        if attached {
            g.flow_due = Some(g.flow_refresh_at);
        }
        let group = g.id;
        if dropped {
            // A silent child may have been what held this node's own window.
            self.settle_own(gi);
        }
        for (parent, ws) in reports {
            let to = self.locate(parent);
            for chunk in ws.chunks(MAX_WATERMARKS) {
                self.send(
                    group,
                    to,
                    &GroupFrame::SubtreeAck {
                        positions: chunk.to_vec(),
                    },
                );
            }
        }
    }
}

/// Reports go again, changed or not, every this many `flow_interval`s.
const FLOW_REFRESH: u32 = 20;

/// The position a member reports to the parent it just left: it is no longer below it.
const DETACHED: u64 = u64::MAX;

/// How far every member below this node has delivered its own stream.
fn own_floor(g: &crate::membership::Group, me: NodeId) -> u64 {
    // No child: nobody below is known to lag (each push makes its receiver a child until it
    // reports elsewhere or goes silent), so nothing holds the source back.
    g.source(me)
        .and_then(crate::delivery::Source::subtree_floor)
        .unwrap_or(g.next_seq)
}
