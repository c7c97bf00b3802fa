//! The shard's side of the glue: a [`GroupStack`] as a [`Service`] of the engine's host, with
//! the rings each joined group shares with its application handle.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use substrate::id::{Locator, NodeId};
use substrate::proto::session::EndpointStats;
use substrate::proto::{Protocol, Transmit};
use substrate::rand::Rng;
use substrate::runtime::PublicationSource;
use substrate::runtime::host::Service;
use substrate::sync::spsc::Producer;
use substrate::time::{Duration, Instant};

use super::{EngineEvent, GroupCounters, GroupMessage, PeerCounters, TreeEdges};
use crate::GroupId;
use crate::event::GroupEvent;
use crate::node::{GroupError, GroupStats};
use crate::stack::{GroupStack, StackStats};
use crate::wire::Watermark;

/// Delivered messages held for an application whose ring is full; past this, the oldest held
/// are dropped and reported as [`GroupEvent::SlowConsumer`].
const MAX_HELD_MESSAGES: usize = 65_536;
/// Group events held for a full ring; past this they are dropped (counted in the snapshot).
const MAX_HELD_EVENTS: usize = 4096;
/// Most offers moved into the stack per group per cycle.
const OFFERS_PER_CYCLE: usize = 1024;
/// How often the counters snapshot is rebuilt.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(50);

/// What the application asks of a shard.
#[derive(Debug)]
pub(crate) enum Command {
    /// Join `group` and attach the handle's rings.
    Join {
        group: GroupId,
        contacts: Vec<Locator>,
        ends: Ends,
    },
}

/// The shard's ends of one group handle's rings.
#[derive(Debug)]
pub(crate) struct Ends {
    pub(crate) offers: PublicationSource,
    pub(crate) messages: Producer<GroupMessage>,
    pub(crate) events: Producer<GroupEvent>,
    /// The handle holds the other reference: when it is the last, the application left.
    pub(crate) alive: Arc<()>,
}

/// A group joined on this shard, with its handle's rings.
#[derive(Debug)]
struct Attached {
    id: GroupId,
    ends: Ends,
    held_offer: Option<Bytes>,
    taken: u64,
    held_messages: VecDeque<GroupMessage>,
    held_events: VecDeque<GroupEvent>,
    /// Offers are refused until the links catch up.
    backpressured: bool,
    /// The held offer found no neighbour: nothing to try until one comes up (so that a parked
    /// shard is not kept spinning by an offer it cannot take).
    awaiting_neighbour: bool,
    /// Messages dropped for a slow consumer since the last report.
    slow_dropped: u64,
    counters: GroupCounters,
}

/// What a shard publishes for the application and the tools.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) link: StackStats,
    pub(crate) group: GroupStats,
    pub(crate) endpoint: EndpointStats,
    pub(crate) groups: Vec<GroupCounters>,
    pub(crate) peers: Vec<PeerCounters>,
    pub(crate) trees: Vec<TreeEdges>,
    pub(crate) events_dropped: u64,
}

/// The shard side: the stack and the groups attached to it.
#[derive(Debug)]
pub(crate) struct GroupService {
    stack: GroupStack,
    groups: Vec<Attached>,
    node_events: VecDeque<EngineEvent>,
    /// Delivery positions of groups left, to resume from if they are joined again.
    left: Vec<(GroupId, Vec<Watermark>)>,
    snapshot: Arc<Mutex<Snapshot>>,
    snapshot_at: Option<Instant>,
    /// Offers stop while a peer's queue holds more frames than this...
    high_water: usize,
    /// ...and resume once every queue is below this.
    low_water: usize,
    events_dropped: u64,
}

impl GroupService {
    pub(crate) fn new(
        stack: GroupStack,
        snapshot: Arc<Mutex<Snapshot>>,
        high_water: usize,
    ) -> Self {
        Self {
            stack,
            groups: Vec::new(),
            node_events: VecDeque::new(),
            left: Vec::new(),
            snapshot,
            snapshot_at: None,
            high_water: high_water.max(2),
            low_water: (high_water / 2).max(1),
            events_dropped: 0,
        }
    }

    /// Moves the stack's events to where they belong: a group's to its handle, the node's to
    /// the engine.
    fn route(&mut self) {
        while let Some(e) = self.stack.poll_event() {
            let group = match &e {
                GroupEvent::Delivered { group, .. }
                | GroupEvent::Joined { group }
                | GroupEvent::MessagesLost { group, .. }
                | GroupEvent::NeighborUp { group, .. }
                | GroupEvent::NeighborDown { group, .. }
                | GroupEvent::TreeRepaired { group, .. }
                | GroupEvent::Isolated { group }
                | GroupEvent::Backpressured { group }
                | GroupEvent::Writable { group }
                | GroupEvent::SlowConsumer { group, .. } => *group,
                GroupEvent::PeerSuspected { peer } => {
                    self.node_events
                        .push_back(EngineEvent::PeerSuspected { peer: *peer });
                    continue;
                }
                GroupEvent::PeerFailed { peer } => {
                    self.node_events
                        .push_back(EngineEvent::PeerFailed { peer: *peer });
                    continue;
                }
                GroupEvent::PeerRecovered { peer } => {
                    self.node_events
                        .push_back(EngineEvent::PeerRecovered { peer: *peer });
                    continue;
                }
            };
            let Some(a) = self.groups.iter_mut().find(|a| a.id == group) else {
                continue;
            };
            match e {
                GroupEvent::Delivered {
                    id, hops, payload, ..
                } => {
                    a.counters.delivered += 1;
                    a.counters.delivered_bytes += payload.len() as u64;
                    let m = GroupMessage {
                        source: id.source,
                        epoch: id.epoch,
                        sequence: id.seq,
                        hops,
                        payload,
                    };
                    a.push_message(m);
                }
                other => {
                    match &other {
                        GroupEvent::MessagesLost { first, last, .. } => {
                            a.counters.lost += last.saturating_sub(*first) + 1;
                        }
                        GroupEvent::TreeRepaired { .. } => a.counters.repairs += 1,
                        GroupEvent::NeighborUp { .. } => {
                            a.counters.neighbours += 1;
                            a.awaiting_neighbour = false;
                        }
                        GroupEvent::NeighborDown { .. } => {
                            a.counters.neighbours = a.counters.neighbours.saturating_sub(1);
                        }
                        _ => {}
                    }
                    if !a.push_event(other) {
                        self.events_dropped += 1;
                    }
                }
            }
        }
    }

    /// Leaves the groups whose handles were dropped.
    fn reap(&mut self, now: Instant, rng: &mut Rng) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.groups.len() {
            if Arc::strong_count(&self.groups[i].ends.alive) > 1 {
                i += 1;
                continue;
            }
            let a = self.groups.swap_remove(i);
            a.ends.offers.close();
            let positions = self.stack.group().positions(a.id);
            self.left.retain(|(g, _)| *g != a.id);
            self.left.push((a.id, positions));
            self.stack.leave(now, a.id, rng);
            n += 1;
        }
        n
    }

    /// Moves offers into the stack while its links keep up; says when they stop and restart.
    fn take_offers(&mut self, now: Instant, rng: &mut Rng) -> usize {
        let mut moved = 0;
        for i in 0..self.groups.len() {
            let backlog = self.stack.backlog();
            let a = &mut self.groups[i];
            if a.backpressured
                && backlog < self.low_water
                && self.stack.group().publish_window(a.id, 0)
            {
                a.backpressured = false;
                let id = a.id;
                a.push_event(GroupEvent::Writable { group: id });
            }
            let mut n = 0;
            while n < OFFERS_PER_CYCLE {
                let a = &mut self.groups[i];
                if a.held_offer.is_none() && a.ends.offers.is_empty() {
                    break;
                }
                // The backlog scans every peer's queue: look again every 64 offers, not each.
                if n % 64 == 0 && self.stack.backlog() >= self.high_water {
                    if !a.backpressured {
                        a.backpressured = true;
                        a.counters.backpressured += 1;
                        let id = a.id;
                        a.push_event(GroupEvent::Backpressured { group: id });
                    }
                    break;
                }
                let Some(m) = a.held_offer.take().or_else(|| a.ends.offers.try_pop()) else {
                    break;
                };
                let len = m.len() as u64;
                let id = a.id;
                if !self.stack.group().publish_window(id, m.len()) {
                    // The tree's slowest member is a window behind: wait for it.
                    a.held_offer = Some(m);
                    if !a.backpressured {
                        a.backpressured = true;
                        a.counters.backpressured += 1;
                        a.push_event(GroupEvent::Backpressured { group: id });
                    }
                    break;
                }
                match self.stack.publish(now, id, m.clone(), rng) {
                    Ok(_) => {
                        let a = &mut self.groups[i];
                        a.awaiting_neighbour = false;
                        a.taken += len;
                        a.counters.published += 1;
                        a.counters.published_bytes += len;
                        n += 1;
                    }
                    Err(GroupError::NotConnected(_)) => {
                        // No neighbour yet: the offer waits (and the ring fills: backpressure).
                        self.groups[i].held_offer = Some(m);
                        self.groups[i].awaiting_neighbour = true;
                        break;
                    }
                    Err(_) => {
                        let a = &mut self.groups[i];
                        a.taken += len;
                        a.counters.offers_dropped += 1;
                        a.ends.offers.close();
                        break;
                    }
                }
            }
            if n > 0 {
                let a = &mut self.groups[i];
                a.ends.offers.set_taken(a.taken);
            }
            moved += n;
        }
        moved
    }

    fn flush_held(&mut self) -> usize {
        let mut n = 0;
        for a in &mut self.groups {
            n += a.flush();
        }
        n
    }

    fn publish_snapshot(&mut self, now: Instant) {
        if self.snapshot_at.is_some_and(|t| now < t) {
            return;
        }
        self.snapshot_at = Some(now + SNAPSHOT_EVERY);
        let Ok(mut s) = self.snapshot.try_lock() else {
            return;
        };
        s.link = self.stack.stats().clone();
        s.group = self.stack.group().stats().clone();
        s.endpoint = *self.stack.endpoint().stats();
        s.events_dropped = self.events_dropped;
        s.groups.clear();
        s.groups
            .extend(self.groups.iter().map(|a| a.counters.clone()));
        s.peers.clear();
        let endpoint = self.stack.endpoint();
        for (peer, session) in self.stack.peers() {
            let info = session.and_then(|h| endpoint.session_info(h));
            s.peers.push(PeerCounters {
                peer,
                locator: info.as_ref().map(|i| i.path),
                established: info.as_ref().is_some_and(|i| i.established),
                rtt_us: info.as_ref().map_or(0, |i| i.rtt.as_micros() as u64),
                queued_frames: self.stack.queued_frames(peer) as u64,
                session: info.map(|i| i.stats).unwrap_or_default(),
            });
        }
        s.trees.clear();
        for a in &self.groups {
            s.trees.push(TreeEdges {
                group: a.id,
                node: self.stack.group().id().id,
                neighbours: self
                    .stack
                    .group()
                    .view(a.id)
                    .map(|v| v.active)
                    .unwrap_or_default(),
                sources: self.stack.group().tree(a.id),
                flow: self.stack.group().flow(a.id),
            });
        }
    }
}

impl Attached {
    fn push_message(&mut self, m: GroupMessage) {
        if self.held_messages.is_empty() {
            if let Err(full) = self.ends.messages.try_push(m) {
                self.held_messages.push_back(full.0);
            }
            return;
        }
        if self.held_messages.len() >= MAX_HELD_MESSAGES {
            self.held_messages.pop_front();
            self.slow_dropped += 1;
            self.counters.slow_dropped += 1;
        }
        self.held_messages.push_back(m);
    }

    /// Queues an event for the handle; `false` if it had to be dropped.
    fn push_event(&mut self, e: GroupEvent) -> bool {
        if self.held_events.is_empty() {
            if let Err(full) = self.ends.events.try_push(e) {
                self.held_events.push_back(full.0);
            }
            return true;
        }
        if self.held_events.len() >= MAX_HELD_EVENTS {
            return false;
        }
        self.held_events.push_back(e);
        true
    }

    fn flush(&mut self) -> usize {
        let mut n = 0;
        if self.slow_dropped > 0 {
            let e = GroupEvent::SlowConsumer {
                group: self.id,
                dropped: self.slow_dropped,
            };
            if self.push_event(e) {
                self.slow_dropped = 0;
            }
        }
        while let Some(m) = self.held_messages.pop_front() {
            if let Err(full) = self.ends.messages.try_push(m) {
                self.held_messages.push_front(full.0);
                break;
            }
            n += 1;
        }
        while let Some(e) = self.held_events.pop_front() {
            if let Err(full) = self.ends.events.try_push(e) {
                self.held_events.push_front(full.0);
                break;
            }
            n += 1;
        }
        n
    }
}

impl Protocol for GroupService {
    type Event = EngineEvent;

    fn handle_datagram(&mut self, now: Instant, from: Locator, datagram: &Bytes, rng: &mut Rng) {
        self.stack.handle_datagram(now, from, datagram, rng);
    }

    fn handle_timeout(&mut self, now: Instant, rng: &mut Rng) {
        self.stack.handle_timeout(now, rng);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.stack.poll_transmit(now, buf)
    }

    fn poll_event(&mut self) -> Option<EngineEvent> {
        self.route();
        self.node_events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let t = self.stack.poll_timeout();
        match self.snapshot_at {
            Some(s) => Some(t.map_or(s, |t| t.min(s))),
            None => t,
        }
    }
}

impl Service for GroupService {
    type Command = Command;

    fn command(&mut self, now: Instant, command: Command, rng: &mut Rng) {
        match command {
            Command::Join {
                group,
                contacts,
                ends,
            } => {
                // A handle for this group dropped just before: leave first, keep its positions.
                self.reap(now, rng);
                let mut a = Attached {
                    id: group,
                    ends,
                    held_offer: None,
                    taken: 0,
                    held_messages: VecDeque::new(),
                    held_events: VecDeque::new(),
                    backpressured: false,
                    awaiting_neighbour: false,
                    slow_dropped: 0,
                    counters: GroupCounters::new(group),
                };
                if self.groups.iter().any(|g| g.id == group) {
                    // One handle per group and node: the second is refused.
                    a.ends.offers.close();
                    a.push_event(GroupEvent::Isolated { group });
                    return;
                }
                match self.stack.join_via(now, group, &contacts, rng) {
                    Ok(()) => {
                        if let Some(i) = self.left.iter().position(|(g, _)| *g == group) {
                            let (_, positions) = self.left.swap_remove(i);
                            self.stack.group_mut().resume(now, group, &positions);
                        }
                        self.groups.push(a);
                    }
                    Err(_) => {
                        a.ends.offers.close();
                    }
                }
            }
        }
    }

    fn service(&mut self, now: Instant, rng: &mut Rng) -> usize {
        let mut work = self.reap(now, rng);
        work += self.take_offers(now, rng);
        self.route();
        work += self.flush_held();
        work
    }

    fn has_pending(&mut self) -> bool {
        let backlog = self.stack.backlog();
        let high = self.high_water;
        let node = self.stack.group();
        self.groups.iter_mut().any(|a| {
            // An offer waiting for the tree's window waits for a SubtreeAck: I/O wakes the shard.
            (backlog < high
                && !a.awaiting_neighbour
                && (a.held_offer.is_some() || !a.ends.offers.is_empty())
                && node.publish_window(a.id, 0))
                || (!a.held_messages.is_empty() && a.ends.messages.has_room())
                || (!a.held_events.is_empty() && a.ends.events.has_room())
                || Arc::strong_count(&a.ends.alive) == 1
        })
    }

    fn publish(&mut self, now: Instant) {
        self.publish_snapshot(now);
    }
}

/// The member identity of shard `shard`: the node's own for shard 0; for others, one derived
/// from it, so that each shard is a member of its groups in its own right and no session or
/// group state ever crosses shards.
pub(crate) fn member_id(node: NodeId, shard: usize) -> NodeId {
    if shard == 0 {
        return node;
    }
    let mut id = node;
    let s = (shard as u64).to_be_bytes();
    for (b, x) in id.0[24..].iter_mut().zip(s) {
        *b ^= x ^ 0xa5;
    }
    id
}
