//! Delivery: per-source sequence numbers give FIFO order, exactly once, and gap detection. A gap
//! is first left to the tree (an eager push or a graft may still fill it); after
//! `repair_timeout` it is asked of neighbours, one after another, out of their bounded caches;
//! what none of them holds becomes a `MessagesLost` event with the exact range. Nothing is
//! skipped silently.

use std::collections::BTreeMap;

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::Instant;

use crate::event::GroupEvent;
use crate::membership::Group;
use crate::node::GroupNode;
use crate::wire::{DataFlags, GroupFrame, MAX_WATERMARKS, MessageId, Watermark};

/// Recently received messages, kept for grafts and repair: the newest `capacity` of each
/// source (a busy source does not push a quiet one's messages out), and at most four sources'
/// worth in all. Indexed per source by (epoch, sequence number), so that a repair or a graft
/// replay of thousands of messages costs a range walk, not a scan per message, and that keeping
/// one message compares integers, not whole message ids.
#[derive(Debug)]
pub(crate) struct Cache {
    capacity: usize,
    /// Per source (a handful): its cached messages.
    sources: Vec<(NodeId, SourceCache)>,
    /// Entries in all.
    len: usize,
}

/// One source's cached messages, by (epoch, sequence number).
type SourceCache = BTreeMap<(u32, u64), Cached>;

#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub(crate) id: MessageId,
    /// Hops from the source to this node.
    pub(crate) hop: u16,
    pub(crate) payload: Bytes,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            sources: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, entry: Cached) {
        let source = entry.id.source;
        let i = match self.sources.iter().position(|(s, _)| *s == source) {
            Some(i) => i,
            None => {
                self.sources.push((source, BTreeMap::new()));
                self.sources.len() - 1
            }
        };
        let key = (entry.id.epoch, entry.id.seq);
        if self.sources[i].1.insert(key, entry).is_some() {
            return;
        }
        self.len += 1;
        if self.sources[i].1.len() > self.capacity {
            self.evict(i);
        }
        while self.len > self.capacity.saturating_mul(4) {
            // Over the total bound: the source with the most gives up its oldest.
            let Some(i) = (0..self.sources.len()).max_by_key(|&i| self.sources[i].1.len()) else {
                break;
            };
            self.evict(i);
        }
    }

    /// Drops the oldest (lowest) entry of the source at `sources[i]`.
    fn evict(&mut self, i: usize) {
        if self.sources[i].1.pop_first().is_some() {
            self.len -= 1;
        }
        if self.sources[i].1.is_empty() {
            self.sources.swap_remove(i);
        }
    }

    fn of(&self, source: NodeId) -> Option<&SourceCache> {
        self.sources
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, m)| m)
    }

    pub(crate) fn get(&self, id: &MessageId) -> Option<&Cached> {
        self.of(id.source)?.get(&(id.epoch, id.seq))
    }

    /// Cached messages of `from`'s source and epoch from `from.seq` on, in sequence order.
    pub(crate) fn from(&self, from: MessageId) -> impl Iterator<Item = &Cached> {
        self.of(from.source)
            .into_iter()
            .flat_map(move |m| m.range((from.epoch, from.seq)..=(from.epoch, u64::MAX)))
            .map(|(_, c)| c)
    }
}

/// One source's delivery and tree state at one node.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) id: NodeId,
    pub(crate) epoch: u32,
    /// Incarnations this node has moved past: their frames are stale.
    old_epochs: Vec<u32>,
    /// The next sequence number to deliver: everything below is delivered or reported lost.
    pub(crate) next: u64,
    /// Received ahead of a gap, delivered once the gap is filled or declared lost.
    held: BTreeMap<u64, Held>,
    /// One past the highest sequence number known to exist (from a neighbour's watermark or an
    /// announcement), even if nothing after it has arrived: the end of a gap nothing else shows.
    known_end: u64,
    repair: Option<Repair>,
    /// Active neighbours on which this source's messages are announced, not pushed (Plumtree's
    /// lazy push set; the rest of the active view is the eager set).
    pub(crate) lazy: Vec<NodeId>,
    pub(crate) last_heard: Instant,
    /// When a new message last came down the tree (an eager push or a graft's replay, not a
    /// repair): whether this node still hangs in the source's tree.
    pub(crate) last_pushed: Instant,
    /// When the parent (flow control's) last pushed a new message: whether it still feeds
    /// this node.
    pub(crate) parent_pushed: Instant,
    /// When this node last grafted itself back into the tree (see `adopt_orphans`).
    pub(crate) regrafted: Instant,
    /// Flow control: the neighbour this source's messages come from (its last eager push).
    pub(crate) parent: Option<NodeId>,
    /// Flow control: eager neighbours below this node, and how far each one's subtree has
    /// delivered (from its `SubtreeAck`s; at first, the first message pushed to it).
    /// When each last reported (or was first pushed to): one silent for long is no child.
    pub(crate) children: Vec<(NodeId, u64, Instant)>,
    /// Flow control: the last position reported, and to whom.
    pub(crate) reported: Option<(NodeId, u64)>,
    /// Flow control: the parent before the current one, told it is left (a detaching
    /// `SubtreeAck`) once the current one has pushed to this node.
    pub(crate) detach_from: Option<NodeId>,
}

#[derive(Debug)]
struct Held {
    payload: Bytes,
    hop: u16,
}

#[derive(Debug)]
struct Repair {
    /// When the gap opened.
    since: Instant,
    deadline: Instant,
    /// Who to ask first: the neighbour that sent the message after the gap.
    hint: Option<NodeId>,
    asked: Vec<NodeId>,
    /// The last sequence number the outstanding request asked for: once delivery passes it,
    /// the next batch is asked for at once.
    asked_through: Option<u64>,
}

impl Source {
    pub(crate) fn new(id: NodeId, epoch: u32, next: u64, now: Instant) -> Self {
        Self {
            id,
            epoch,
            old_epochs: Vec::new(),
            next,
            held: BTreeMap::new(),
            known_end: next,
            repair: None,
            lazy: Vec::new(),
            last_heard: now,
            last_pushed: now,
            parent_pushed: now,
            regrafted: now,
            parent: None,
            children: Vec::new(),
            reported: None,
            detach_from: None,
        }
    }

    /// Whether `seq` was delivered, reported lost or is held.
    pub(crate) fn has(&self, seq: u64) -> bool {
        seq < self.next || self.held.contains_key(&seq)
    }

    /// Removes `peer` from the children.
    pub(crate) fn drop_child(&mut self, peer: NodeId) {
        self.children.retain(|(c, _, _)| *c != peer);
    }

    /// The least position of the subtree below this node.
    pub(crate) fn subtree_floor(&self) -> Option<u64> {
        self.children.iter().map(|&(_, p, _)| p).min()
    }

    /// Whether messages of this source beyond what was delivered are known to exist.
    pub(crate) fn behind(&self) -> bool {
        self.known_end > self.next || !self.held.is_empty()
    }

    pub(crate) fn repair_deadline(&self) -> Option<Instant> {
        self.repair.as_ref().map(|r| r.deadline)
    }

    /// The first gap: `next ..= (first held - 1)`, or up to the known end if nothing is held.
    fn gap(&self) -> Option<(u64, u64)> {
        let end = match self.held.first_key_value() {
            Some((&first_held, _)) => first_held,
            None => self.known_end,
        };
        (end > self.next).then(|| (self.next, end - 1))
    }
}

/// How a frame's epoch relates to what this node knows of its source.
pub(crate) enum EpochCheck {
    Current,
    Stale,
}

impl Group {
    pub(crate) fn source(&self, id: NodeId) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    pub(crate) fn source_index(&self, id: NodeId) -> Option<usize> {
        self.sources.iter().position(|s| s.id == id)
    }

    /// The source's state, created (next = `next`) if unknown, reset if `epoch` is a new
    /// incarnation. `None` for a stale epoch.
    pub(crate) fn source_for(
        &mut self,
        id: NodeId,
        epoch: u32,
        next: u64,
        now: Instant,
        max_sources: usize,
    ) -> Option<usize> {
        if let Some(i) = self.source_index(id) {
            let s = &mut self.sources[i];
            match s.check_epoch(epoch) {
                EpochCheck::Current => {}
                EpochCheck::Stale => return None,
            }
            return Some(i);
        }
        if self.sources.len() >= max_sources {
            // Forget the source heard from least recently.
            if let Some((i, _)) = self
                .sources
                .iter()
                .enumerate()
                .min_by_key(|(i, s)| (s.last_heard, *i))
            {
                self.sources.swap_remove(i);
            }
        }
        self.sources.push(Source::new(id, epoch, next, now));
        Some(self.sources.len() - 1)
    }
}

impl Source {
    /// Sequence numbers below `end` exist: if that opens a gap, repair it (first from `from`)
    /// unless the tree fills it by `deadline`.
    pub(crate) fn note_exists(&mut self, end: u64, from: NodeId, deadline: Instant) {
        if end <= self.known_end {
            return;
        }
        self.known_end = end;
        if end > self.next && self.repair.is_none() {
            self.repair = Some(Repair {
                since: deadline,
                deadline,
                hint: Some(from),
                asked: Vec::new(),
                asked_through: None,
            });
        }
    }

    fn check_epoch(&mut self, epoch: u32) -> EpochCheck {
        if epoch == self.epoch {
            return EpochCheck::Current;
        }
        if self.old_epochs.contains(&epoch) {
            return EpochCheck::Stale;
        }
        // A new incarnation of the source: its sequence starts again.
        if self.old_epochs.len() >= 4 {
            self.old_epochs.remove(0);
        }
        self.old_epochs.push(self.epoch);
        self.epoch = epoch;
        self.next = 0;
        self.known_end = 0;
        self.held.clear();
        self.repair = None;
        EpochCheck::Current
    }
}

impl GroupNode {
    /// Delivers `id` (already known to be new) in FIFO order, or holds it behind a gap.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver(
        &mut self,
        gi: usize,
        si: usize,
        id: MessageId,
        hop: u16,
        payload: Bytes,
        from: Option<NodeId>,
        now: Instant,
    ) {
        let group = self.groups[gi].id;
        let reorder = self.config.reorder_capacity;
        self.flow_changed(gi, now);
        let s = &mut self.groups[gi].sources[si];
        s.last_heard = now;
        if id.seq == s.next {
            s.next += 1;
            self.stats.delivered += 1;
            self.events.push_back(GroupEvent::Delivered {
                group,
                id,
                hops: hop,
                payload,
            });
            self.drain_held(gi, si, now);
            let pipeline = self.config.reliable_links;
            let s = &mut self.groups[gi].sources[si];
            let next = s.next;
            if let Some(r) = s.repair.as_mut().filter(|_| pipeline) {
                if r.asked_through.is_some_and(|l| next > l) {
                    // The batch asked for is in: ask for the next one now, of the same peer.
                    r.asked_through = None;
                    r.asked.clear();
                    r.hint = from.or(r.hint);
                    r.deadline = now;
                }
            }
        } else {
            s.held.insert(id.seq, Held { payload, hop });
            if s.repair.is_none() {
                s.repair = Some(Repair {
                    since: now,
                    deadline: now + self.config.repair_timeout,
                    hint: from,
                    asked: Vec::new(),
                    asked_through: None,
                });
            }
            if s.held.len() > reorder {
                // Out of room to wait: the oldest gap is lost.
                if let Some((first, last)) = s.gap() {
                    self.declare_lost(gi, si, first, last, now);
                }
            }
        }
    }

    /// Delivers held messages that are now in order; settles the repair state.
    fn drain_held(&mut self, gi: usize, si: usize, now: Instant) {
        let group = self.groups[gi].id;
        loop {
            let s = &mut self.groups[gi].sources[si];
            let next = s.next;
            let Some(h) = s.held.remove(&next) else {
                break;
            };
            s.next += 1;
            let id = MessageId {
                source: s.id,
                epoch: s.epoch,
                seq: next,
            };
            self.stats.delivered += 1;
            self.events.push_back(GroupEvent::Delivered {
                group,
                id,
                hops: h.hop,
                payload: h.payload,
            });
        }
        let s = &mut self.groups[gi].sources[si];
        s.known_end = s.known_end.max(s.next);
        if s.gap().is_none() {
            s.repair = None;
        } else if let Some(r) = &mut s.repair {
            // A new gap: start asking afresh, and its loss timeout runs from now.
            r.asked.clear();
            r.since = now;
        }
    }

    /// Reports `first..=last` lost and moves past it.
    pub(crate) fn declare_lost(
        &mut self,
        gi: usize,
        si: usize,
        first: u64,
        last: u64,
        now: Instant,
    ) {
        let group = self.groups[gi].id;
        let s = &mut self.groups[gi].sources[si];
        if last < s.next {
            return;
        }
        let first = first.max(s.next);
        s.next = last + 1;
        if self.config.flow_window.is_some() {
            // Moved past a loss: the subtree's position moved too.
            self.groups[gi].flow_due = Some(Instant::ZERO);
        }
        let s = &mut self.groups[gi].sources[si];
        self.stats.lost += last - first + 1;
        self.events.push_back(GroupEvent::MessagesLost {
            group,
            source: s.id,
            epoch: s.epoch,
            first,
            last,
        });
        self.drain_held(gi, si, now);
    }

    pub(crate) fn delivery_timeout(&mut self, gi: usize, now: Instant, rng: &mut Rng) {
        if self.groups[gi].sync_due <= now {
            self.groups[gi].sync_due = now + self.config.anti_entropy_interval;
            self.anti_entropy(gi, rng);
        }
        let reliable = self.config.reliable_links;
        let graft_timeout = self.config.graft_timeout;
        let repair_timeout = self.config.repair_timeout;
        for si in 0..self.groups[gi].sources.len() {
            let s = &mut self.groups[gi].sources[si];
            let due = s.repair.as_ref().is_some_and(|r| r.deadline <= now);
            if !due {
                continue;
            }
            if reliable && s.held.is_empty() && now < s.last_pushed + graft_timeout {
                // Only announced, nothing after it received, and the stream still coming down
                // the tree in order: the messages are on their way. Asking for them would race
                // the tree link, and the tree's copies would arrive as duplicates.
                if let Some(r) = &mut s.repair {
                    r.deadline = now + repair_timeout;
                }
                continue;
            }
            self.ask_repair(gi, si, now, rng);
        }
    }

    /// Asks the next neighbour for the current gap, or declares it lost if all were asked.
    fn ask_repair(&mut self, gi: usize, si: usize, now: Instant, rng: &mut Rng) {
        let g = &self.groups[gi];
        let s = &g.sources[si];
        let Some((first, last)) = s.gap() else {
            self.groups[gi].sources[si].repair = None;
            return;
        };
        let Some(r) = &s.repair else {
            return;
        };
        let asked = r.asked.clone();
        let hint = r.hint.filter(|h| !asked.contains(h));
        let target = match hint {
            Some(h) => Some(self.locate(h)),
            None => self.random_active(gi, &asked, rng),
        };
        let Some(target) = target else {
            let loss_at = r.since + self.config.loss_timeout;
            if now >= loss_at {
                self.declare_lost(gi, si, first, last, now);
            } else if let Some(r) = &mut self.groups[gi].sources[si].repair {
                // Everyone lacks it for now; it may still be on its way. Ask again later.
                r.asked.clear();
                r.deadline = loss_at.min(now + self.config.repair_timeout * 4);
            }
            return;
        };
        let (source, epoch) = (s.id, s.epoch);
        let last = last.min(first + self.config.repair_batch - 1);
        let group = g.id;
        if let Some(r) = &mut self.groups[gi].sources[si].repair {
            r.asked.push(target.id);
            r.deadline = now + self.config.repair_timeout;
            r.asked_through = Some(last);
        }
        self.stats.repair_requests_sent += 1;
        self.send(
            group,
            target,
            &GroupFrame::RepairRequest {
                source,
                epoch,
                first,
                last,
            },
        );
    }

    pub(crate) fn on_repair_request(
        &mut self,
        gi: usize,
        from: crate::wire::NodeRef,
        source: NodeId,
        epoch: u32,
        first: u64,
        last: u64,
    ) {
        let group = self.groups[gi].id;
        if last < first {
            return;
        }
        let last = last.min(first.saturating_add(self.config.repair_batch - 1));
        let start = MessageId {
            source,
            epoch,
            seq: first,
        };
        let hits: Vec<(u64, u16, Bytes)> = self.groups[gi]
            .cache
            .from(start)
            .take_while(|c| c.id.seq <= last)
            .map(|c| (c.id.seq, c.hop, c.payload.clone()))
            .collect();
        // What the cache lacks between the hits is reported missing, range by range.
        let mut expect = first;
        for (seq, hop, payload) in hits {
            if seq > expect {
                self.send_missing(group, from, source, epoch, expect, seq - 1);
            }
            expect = seq + 1;
            self.stats.repairs_sent += 1;
            let id = MessageId { source, epoch, seq };
            self.send_data(
                group,
                from,
                &id,
                hop,
                DataFlags(DataFlags::REPAIR),
                &payload,
            );
        }
        if expect <= last {
            self.send_missing(group, from, source, epoch, expect, last);
        }
    }

    fn send_missing(
        &mut self,
        group: crate::GroupId,
        to: crate::wire::NodeRef,
        source: NodeId,
        epoch: u32,
        first: u64,
        last: u64,
    ) {
        self.send(
            group,
            to,
            &GroupFrame::RepairMissing {
                source,
                epoch,
                first,
                last,
            },
        );
    }

    /// A neighbour lacks part of what we asked for: ask the next one now.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_repair_missing(
        &mut self,
        gi: usize,
        from: crate::wire::NodeRef,
        source: NodeId,
        epoch: u32,
        now: Instant,
        rng: &mut Rng,
    ) {
        let Some(si) = self.groups[gi].source_index(source) else {
            return;
        };
        let s = &mut self.groups[gi].sources[si];
        if s.epoch != epoch {
            return;
        }
        let asked_it = s
            .repair
            .as_ref()
            .is_some_and(|r| r.asked.contains(&from.id));
        if asked_it {
            self.ask_repair(gi, si, now, rng);
        }
    }

    /// Tells one random neighbour where this node stands, so it notices anything it lacks (the
    /// last messages of a burst, say, whose every copy and announcement was lost).
    fn anti_entropy(&mut self, gi: usize, rng: &mut Rng) {
        let g = &self.groups[gi];
        if g.sources.is_empty() && g.next_seq == 0 {
            return;
        }
        let Some(to) = self.random_active(gi, &[], rng) else {
            return;
        };
        let watermarks = self.watermarks(gi);
        let group = self.groups[gi].id;
        self.send(group, to, &GroupFrame::Watermarks { watermarks });
    }

    /// Where this node's delivery of each source stands, for a new neighbour: its own stream
    /// first, then the sources heard from most recently.
    pub(crate) fn watermarks(&self, gi: usize) -> Vec<Watermark> {
        let g = &self.groups[gi];
        let mut out = Vec::new();
        if g.next_seq > 0 {
            out.push(Watermark {
                source: self.me.id,
                epoch: self.epoch,
                next_seq: g.next_seq,
            });
        }
        let mut order: Vec<&Source> = g.sources.iter().filter(|s| s.id != self.me.id).collect();
        order.sort_by_key(|s| core::cmp::Reverse(s.last_heard));
        for s in order.into_iter().take(MAX_WATERMARKS - 1) {
            out.push(Watermark {
                source: s.id,
                epoch: s.epoch,
                next_seq: s.next,
            });
        }
        out
    }

    /// A neighbour's positions. With `adopt` (the Accept that made this node a member), sources
    /// it has not heard of start where the neighbour stands, so that a new member does not wait
    /// for messages sent before it joined; otherwise they only mark gaps to repair.
    pub(crate) fn apply_watermarks(
        &mut self,
        gi: usize,
        from: NodeId,
        watermarks: &[Watermark],
        adopt: bool,
        now: Instant,
    ) {
        let max = self.config.max_sources;
        let repair_timeout = self.config.repair_timeout;
        let g = &mut self.groups[gi];
        // A new member starts each source where its first neighbour stands (`adopt`); a member
        // of longer standing has simply not heard of the source yet, so it starts at 0 and
        // repairs.
        for w in watermarks {
            if w.source == self.me.id || w.next_seq == 0 {
                // Position 0 is where an unknown source starts anyway.
                continue;
            }
            if let Some(si) = g.source_index(w.source) {
                // The neighbour has delivered past us: what lies between exists.
                let s = &mut g.sources[si];
                if s.epoch == w.epoch {
                    s.note_exists(w.next_seq, from, now + repair_timeout);
                }
                continue;
            }
            if g.sources.len() >= max {
                break;
            }
            let mut s = Source::new(w.source, w.epoch, if adopt { w.next_seq } else { 0 }, now);
            s.note_exists(w.next_seq, from, now + repair_timeout);
            g.sources.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(source: u64, epoch: u32, seq: u64) -> Cached {
        Cached {
            id: MessageId {
                source: NodeId::from_u64(source),
                epoch,
                seq,
            },
            hop: 1,
            payload: Bytes::from(seq.to_le_bytes().to_vec()),
        }
    }

    fn seqs<'a>(it: impl Iterator<Item = &'a Cached>) -> Vec<u64> {
        it.map(|c| c.id.seq).collect()
    }

    /// Each source keeps its newest `capacity`, a busy source does not push a quiet one out,
    /// and past four sources' worth the fullest gives up its oldest; lookups and range walks
    /// stay within one source and epoch.
    #[test]
    fn the_cache_keeps_each_sources_newest_within_its_bounds() {
        let mut c = Cache::new(4);
        for seq in 0..10 {
            c.insert(cached(1, 0, seq));
        }
        c.insert(cached(2, 0, 100));
        c.insert(cached(1, 0, 9)); // a duplicate changes nothing
        let from = |source, epoch, seq| MessageId {
            source: NodeId::from_u64(source),
            epoch,
            seq,
        };
        assert_eq!(seqs(c.from(from(1, 0, 0))), vec![6, 7, 8, 9]);
        assert_eq!(seqs(c.from(from(1, 0, 8))), vec![8, 9]);
        assert_eq!(seqs(c.from(from(2, 0, 0))), vec![100]);
        assert!(c.get(&from(1, 0, 5)).is_none() && c.get(&from(1, 0, 6)).is_some());
        // A new epoch of source 1 is walked apart from the old one.
        c.insert(cached(1, 1, 0));
        assert_eq!(seqs(c.from(from(1, 1, 0))), vec![0]);
        assert_eq!(seqs(c.from(from(1, 0, 0))), vec![7, 8, 9]);
        // Four sources' worth in all (16): more sources make the fullest give way.
        for source in 3..=6 {
            for seq in 0..4 {
                c.insert(cached(source, 0, seq));
            }
        }
        assert_eq!(c.len, 16);
        assert!(c.sources.iter().all(|(_, m)| m.len() <= 4));
        assert_eq!(
            seqs(c.from(from(2, 0, 0))),
            vec![100],
            "the quietest keeps its one"
        );
    }
}
