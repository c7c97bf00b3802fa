//! Small-scale behaviour of `GroupNode` on a minimal in-crate network (fixed latency, reliable
//! links). The simulator covers scale; these pin single behaviours.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::time::{Duration, Instant};

use crate::{GroupConfig, GroupEvent, GroupId, GroupNode, NodeRef};

/// In flight: (arrival, insertion sequence, from, to, head, payload).
type Flight = Reverse<(Instant, u64, usize, usize, Bytes, Bytes)>;

struct Net {
    nodes: Vec<GroupNode>,
    rngs: Vec<Rng>,
    alive: Vec<bool>,
    events: Vec<Vec<GroupEvent>>,
    queue: BinaryHeap<Flight>,
    timers: Vec<Option<Instant>>,
    seq: u64,
    now: Instant,
    latency: Duration,
}

fn node_ref(i: usize) -> NodeRef {
    NodeRef {
        id: NodeId::from_u64(i as u64),
        locator: None,
    }
}

fn index(id: NodeId) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b) as usize
}

impl Net {
    fn new(n: usize, config: &GroupConfig, seed: u64) -> Self {
        let mut rngs: Vec<Rng> = (0..n)
            .map(|i| Rng::with_seed(seed).fork(i as u64))
            .collect();
        let nodes = (0..n)
            .map(|i| GroupNode::new(node_ref(i), config.clone(), &mut rngs[i]).expect("config"))
            .collect();
        Self {
            nodes,
            rngs,
            alive: vec![true; n],
            events: vec![Vec::new(); n],
            queue: BinaryHeap::new(),
            timers: vec![None; n],
            seq: 0,
            now: Instant::ZERO,
            latency: Duration::from_millis(5),
        }
    }

    fn pump(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            let to = index(t.to);
            self.seq += 1;
            self.queue.push(Reverse((
                self.now + self.latency,
                self.seq,
                i,
                to,
                t.frame,
                t.payload,
            )));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events[i].push(e);
        }
        self.timers[i] = self.nodes[i].poll_timeout();
    }

    fn with(&mut self, i: usize, f: impl FnOnce(&mut GroupNode, Instant, &mut Rng)) {
        f(&mut self.nodes[i], self.now, &mut self.rngs[i]);
        self.pump(i);
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let next_timer = (0..self.nodes.len())
                .filter(|&i| self.alive[i])
                .filter_map(|i| self.timers[i].map(|t| (t, i)))
                .min();
            let next_msg = self.queue.peek().map(|Reverse(m)| m.0);
            let t_timer = next_timer.map(|(t, _)| t);
            let t = match (t_timer, next_msg) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            if next_msg == Some(t) {
                let Some(Reverse((_, _, from, to, head, payload))) = self.queue.pop() else {
                    break;
                };
                if self.alive[to] && self.alive[from] {
                    let now = self.now;
                    self.nodes[to].handle_parts(
                        now,
                        node_ref(from),
                        &head,
                        &payload,
                        &mut self.rngs[to],
                    );
                    self.pump(to);
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                self.nodes[i].handle_timeout(now, &mut self.rngs[i]);
                self.pump(i);
            }
        }
        self.now = end;
    }

    fn delivered(&self, i: usize) -> Vec<(u64, u64)> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                GroupEvent::Delivered { id, .. } => Some((index(id.source) as u64, id.seq)),
                _ => None,
            })
            .collect()
    }
}

fn joined(n: usize, seed: u64) -> (Net, GroupId) {
    joined_with(n, &GroupConfig::for_group_size(n), seed)
}

/// `n` nodes joined one after another through earlier ones, then 30 s to settle.
fn joined_with(n: usize, config: &GroupConfig, seed: u64) -> (Net, GroupId) {
    let mut net = Net::new(n, config, seed);
    let g = GroupId::from_name("test");
    net.with(0, |node, now, rng| {
        node.join(now, g, None, rng).expect("join")
    });
    for i in 1..n {
        let contact = node_ref((i * 7919) % i);
        net.with(i, |node, now, rng| {
            node.join(now, g, Some(contact), rng).expect("join")
        });
        let t = net.now + Duration::from_millis(20);
        net.run_until(t);
    }
    let t = net.now + Duration::from_secs(30);
    net.run_until(t);
    (net, g)
}

#[test]
fn every_member_delivers_every_message_once_in_order() {
    let (mut net, g) = joined(60, 1);
    for k in 0..20u64 {
        let src = [3usize, 17, 42][(k % 3) as usize];
        net.with(src, |node, now, rng| {
            node.publish(now, g, Bytes::from(vec![k as u8; 32]), rng)
                .expect("member");
        });
        let t = net.now + Duration::from_millis(30);
        net.run_until(t);
    }
    let t = net.now + Duration::from_secs(5);
    net.run_until(t);
    for i in 0..60 {
        let d = net.delivered(i);
        assert_eq!(d.len(), 20, "node {i}: {d:?}");
        for src in [3u64, 17, 42] {
            let seqs: Vec<u64> = d
                .iter()
                .filter(|(s, _)| *s == src)
                .map(|(_, q)| *q)
                .collect();
            let expect: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(seqs, expect, "node {i} source {src}");
        }
    }
}

#[test]
fn active_views_are_bounded_and_symmetric_enough() {
    let (net, g) = joined(60, 2);
    let size = GroupConfig::for_group_size(60).active_size;
    for i in 0..60 {
        let v = net.nodes[i].view(g).expect("member");
        assert!(
            !v.active.is_empty() && v.active.len() <= size,
            "node {i}: {v:?}"
        );
    }
}

#[test]
fn a_crashed_neighbour_is_suspected_then_failed_and_replaced() {
    let (mut net, g) = joined(40, 3);
    let victim = 5;
    net.alive[victim] = false;
    let t = net.now + Duration::from_secs(10);
    net.run_until(t);
    let vid = NodeId::from_u64(victim as u64);
    let mut saw_failed = 0;
    for i in (0..40).filter(|&i| i != victim) {
        let v = net.nodes[i].view(g).expect("member");
        assert!(!v.active.contains(&vid), "node {i} still has the victim");
        if net.events[i]
            .iter()
            .any(|e| matches!(e, GroupEvent::PeerFailed { peer } if *peer == vid))
        {
            saw_failed += 1;
            assert!(
                net.events[i]
                    .iter()
                    .any(|e| matches!(e, GroupEvent::PeerSuspected { peer } if *peer == vid))
            );
        }
    }
    assert!(saw_failed > 0);
    // Broadcasts still reach every live node.
    net.with(0, |node, now, rng| {
        node.publish(now, g, Bytes::from_static(b"after"), rng)
            .expect("member");
    });
    let t = net.now + Duration::from_secs(3);
    net.run_until(t);
    for i in (0..40).filter(|&i| i != victim) {
        assert!(net.delivered(i).contains(&(0, 0)), "node {i}");
    }
}

/// Plumtree §3: on equal links the first copy of a source's first message arrives along a
/// shortest path, and the duplicates prune every other link, so each node's hop count is its
/// breadth-first depth in the overlay, for every later message too.
#[test]
fn on_equal_links_the_tree_is_a_breadth_first_tree() {
    let n = 300;
    let mut config = GroupConfig::for_group_size(n);
    config.latency_slots = 0;
    let (mut net, g) = joined_with(n, &config, 5);
    let src = 7;
    for k in 0..5u64 {
        net.with(src, |node, now, rng| {
            node.publish(now, g, Bytes::from(vec![k as u8; 8]), rng)
                .expect("member");
        });
        let t = net.now + Duration::from_millis(200);
        net.run_until(t);
    }
    let mut depth = vec![u16::MAX; n];
    depth[src] = 0;
    let mut queue = std::collections::VecDeque::from([src]);
    while let Some(x) = queue.pop_front() {
        for p in net.nodes[x].view(g).expect("member").active {
            let y = index(p);
            if depth[y] == u16::MAX {
                depth[y] = depth[x] + 1;
                queue.push_back(y);
            }
        }
    }
    for (i, d) in depth.iter().enumerate() {
        let hops: Vec<u16> = net.events[i]
            .iter()
            .filter_map(|e| match e {
                GroupEvent::Delivered { id, hops, .. } if index(id.source) == src => Some(*hops),
                _ => None,
            })
            .collect();
        assert_eq!(hops, vec![*d; 5], "node {i}");
    }
    let grafts: u64 = net.nodes.iter().map(|x| x.stats().grafts_sent).sum();
    assert_eq!(grafts, 0, "a stable tree needs no graft");
}

/// Item 6: several groups at once with overlapping members; each has its own overlay, every
/// member of a group gets all of that group's messages, and no payload frame of a group ever
/// reaches a node outside it.
#[test]
fn groups_are_separate_overlays_and_payload_stays_among_members() {
    let n = 90;
    let config = GroupConfig::for_group_size(n);
    let mut net = Net::new(n, &config, 9);
    let groups = [
        GroupId::from_name("a"),
        GroupId::from_name("b"),
        GroupId::from_name("c"),
    ];
    // Node i is in group k if (i + k) % 3 != 0: every node in two of the three groups.
    let member = |i: usize, k: usize| (i + k) % 3 != 0;
    for (k, g) in groups.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| member(i, k)).collect();
        let first = members[0];
        net.with(first, |node, now, rng| {
            node.join(now, *g, None, rng).expect("join")
        });
        for (j, &i) in members.iter().enumerate().skip(1) {
            let contact = node_ref(members[(j * 7919) % j]);
            net.with(i, |node, now, rng| {
                node.join(now, *g, Some(contact), rng).expect("join")
            });
            let t = net.now + Duration::from_millis(20);
            net.run_until(t);
        }
    }
    let t = net.now + Duration::from_secs(20);
    net.run_until(t);
    // Watch every payload frame from here on.
    let mut carried = vec![Vec::<GroupId>::new(); n];
    for (k, g) in groups.iter().enumerate() {
        let src = (0..n).find(|&i| member(i, k)).expect("members");
        for j in 0..5u8 {
            net.with(src, |node, now, rng| {
                node.publish(now, *g, Bytes::from(vec![j; 16]), rng)
                    .expect("member");
            });
        }
    }
    let end = net.now + Duration::from_secs(3);
    while net.now < end {
        // Step in small slices, inspecting what is in flight.
        for Reverse((_, _, _, to, head, payload)) in net.queue.iter() {
            if !payload.is_empty() {
                let (g, _) = crate::wire::decode_header(head).expect("our own frame");
                carried[*to].push(g);
            }
        }
        let t = net.now + Duration::from_millis(1);
        net.run_until(t);
    }
    for (i, carried) in carried.iter().enumerate() {
        for (k, g) in groups.iter().enumerate() {
            let got = net.events[i]
                .iter()
                .filter(|e| matches!(e, GroupEvent::Delivered { group, .. } if group == g))
                .count();
            if member(i, k) {
                assert_eq!(got, 5, "node {i} group {k}");
            } else {
                assert_eq!(got, 0, "node {i} is not in group {k}");
                assert!(
                    !carried.contains(g),
                    "node {i} carried payload of group {k}"
                );
            }
        }
        assert_eq!(net.nodes[i].stats().foreign_frames, 0, "node {i}");
    }
}

fn flow_config(n: usize, messages: u64, bytes: u64) -> GroupConfig {
    let mut c = GroupConfig::for_group_size(n);
    c.reliable_links = true;
    c.flow_window = Some(crate::FlowWindow { messages, bytes });
    c.cache_capacity = 1024;
    c.reorder_capacity = 1024;
    c
}

/// Publishes from `src` while the window is open, without letting time pass; returns how many.
fn publish_while_open(net: &mut Net, src: usize, g: GroupId, len: usize) -> u64 {
    let mut n = 0;
    while net.nodes[src].publish_window(g, len) {
        net.with(src, |node, now, rng| {
            node.publish(now, g, Bytes::from(vec![7u8; len]), rng)
                .expect("member");
        });
        n += 1;
        assert!(n <= 10_000, "the window never closed");
    }
    n
}

#[test]
fn flow_window_closes_a_window_ahead_of_the_tree_and_opens_as_it_reports() {
    let n = 12;
    let (mut net, g) = joined_with(n, &flow_config(n, 40, 1 << 30), 5);
    // Nobody has reported anything yet: exactly one window goes out.
    assert_eq!(publish_while_open(&mut net, 3, g, 16), 40);
    assert!(!net.nodes[3].publish_window(g, 16));
    // The tree delivers and reports; the window opens again, and again, until all is out.
    let mut sent = 40;
    for _ in 0..50 {
        let t = net.now + Duration::from_millis(200);
        net.run_until(t);
        sent += publish_while_open(&mut net, 3, g, 16);
        if sent >= 400 {
            break;
        }
    }
    assert!(sent >= 400, "the window stayed shut after {sent}");
    let t = net.now + Duration::from_secs(5);
    net.run_until(t);
    for i in 0..n {
        let d = net.delivered(i);
        let seqs: Vec<u64> = d.iter().filter(|(s, _)| *s == 3).map(|(_, q)| *q).collect();
        assert_eq!(seqs, (0..sent).collect::<Vec<_>>(), "node {i}");
    }
}

#[test]
fn flow_window_bounds_bytes_in_flight_too() {
    let n = 6;
    let (mut net, g) = joined_with(n, &flow_config(n, 1000, 10 * 100), 6);
    // Ten messages of 100 bytes fill 1,000 bytes of window.
    assert_eq!(publish_while_open(&mut net, 1, g, 100), 10);
    let t = net.now + Duration::from_secs(1);
    net.run_until(t);
    assert!(
        net.nodes[1].publish_window(g, 100),
        "delivered everywhere: open again"
    );
}

#[test]
fn flow_window_needs_reliable_links() {
    let mut c = flow_config(8, 10, 10);
    c.reliable_links = false;
    assert!(c.validate().is_err());
    let mut c = flow_config(8, 10, 10);
    c.flow_window = Some(crate::FlowWindow {
        messages: 2048,
        bytes: 10,
    });
    assert!(c.validate().is_err(), "a window larger than the cache");
}

/// Six members joined; node 2 publishes 30 messages of 8 bytes, each filled with its sequence
/// number, and they have 2 s to spread.
fn thirty_from_node_2(config: &GroupConfig, seed: u64) -> (Net, GroupId) {
    let (mut net, g) = joined_with(6, config, seed);
    for k in 0..30u8 {
        net.with(2, |node, now, rng| {
            node.publish(now, g, Bytes::from(vec![k; 8]), rng)
                .expect("member");
        });
    }
    let t = net.now + Duration::from_secs(2);
    net.run_until(t);
    (net, g)
}

/// Six members on reliable links, node 2 publishes 30 messages of 8 bytes (each filled with its
/// sequence number); then node 4 is sent a `Graft` asking for source 2's stream from `from`.
/// Returns the sequence numbers node 4 replays, after checking each is a graft answer with its
/// cached payload.
fn replay_of_graft(config: &GroupConfig, seed: u64, from: u64) -> Vec<u64> {
    let (mut net, g) = thirty_from_node_2(config, seed);
    let epoch = net.events[4]
        .iter()
        .find_map(|e| match e {
            GroupEvent::Delivered { id, .. } if index(id.source) == 2 => Some(id.epoch),
            _ => None,
        })
        .expect("node 4 delivered source 2");
    let asker = index(net.nodes[4].view(g).expect("member").active[0]);
    let id = crate::wire::MessageId {
        source: node_ref(2).id,
        epoch,
        seq: from,
    };
    let mut frame = Vec::new();
    crate::wire::encode(
        g,
        &crate::wire::GroupFrame::Graft { id, want: true },
        &mut frame,
    )
    .expect("encodes");
    let now = net.now;
    net.nodes[4].handle_frame(now, node_ref(asker), &Bytes::from(frame), &mut net.rngs[4]);
    let mut replayed = Vec::new();
    while let Some(t) = net.nodes[4].poll_transmit() {
        if index(t.to) != asker {
            continue;
        }
        if let Ok((_, crate::wire::GroupFrame::Data { id, flags, .. })) =
            crate::wire::decode(&t.frame)
        {
            assert_eq!(flags.0, crate::wire::DataFlags::GRAFT, "a graft answer");
            replayed.push(id.seq);
            assert_eq!(t.payload[..], [id.seq as u8; 8][..], "the cached payload");
        }
    }
    replayed
}

#[test]
fn a_graft_on_reliable_links_replays_the_stream_from_the_asked_position() {
    // The asker lacks source 2 from sequence number 10 on.
    let replayed = replay_of_graft(&flow_config(6, 1000, 1 << 30), 7, 10);
    assert_eq!(
        replayed,
        (10..30).collect::<Vec<u64>>(),
        "in order, from 10 on"
    );
}

/// Encodes a `Data` frame as a neighbour would push it.
fn data_frame(g: GroupId, id: crate::wire::MessageId, flags: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::new();
    crate::wire::encode(
        g,
        &crate::wire::GroupFrame::Data {
            id,
            hop: 1,
            flags: crate::wire::DataFlags(flags),
            payload,
        },
        &mut frame,
    )
    .expect("encodes");
    Bytes::from(frame)
}

/// A six-member group on reliable links with flow control, where node 2 published 30
/// messages: returns a member other than the source, its parent in the source's tree, and
/// the source's epoch.
fn settled_tree(seed: u64) -> (Net, GroupId, usize, usize, u32) {
    let n = 6;
    let (net, g) = thirty_from_node_2(&flow_config(n, 1000, 1 << 30), seed);
    let source = node_ref(2).id;
    let (child, parent) = (0..n)
        .filter(|&i| i != 2)
        .find_map(|i| {
            let f = net.nodes[i]
                .flow(g)
                .into_iter()
                .find(|f| f.source == source)?;
            Some((i, index(f.parent?)))
        })
        .expect("a member with a parent");
    let epoch = net.events[child]
        .iter()
        .find_map(|e| match e {
            GroupEvent::Delivered { id, .. } if id.source == source => Some(id.epoch),
            _ => None,
        })
        .expect("delivered");
    (net, g, child, parent, epoch)
}

/// A neighbour of `node` in `g` other than those in `not`.
fn other_neighbour(net: &Net, g: GroupId, node: usize, not: &[usize]) -> usize {
    net.nodes[node]
        .view(g)
        .expect("member")
        .active
        .into_iter()
        .map(index)
        .find(|p| !not.contains(p))
        .expect("another neighbour")
}

/// A child that pushes a message back up to its parent (it had it first from elsewhere, or it
/// is the source's own) is told to stop, but its parent keeps pushing down to it: Plumtree's
/// two-way prune would leave the child fed by nobody until a graft timeout, and holding the
/// source's window meanwhile.
#[test]
fn a_child_pushing_back_up_is_pruned_one_way() {
    let (mut net, g, child, parent, epoch) = settled_tree(11);
    let source = node_ref(2).id;
    let children: Vec<usize> = net.nodes[parent]
        .flow(g)
        .into_iter()
        .find(|f| f.source == source)
        .map(|f| f.children.iter().map(|&(c, _)| index(c)).collect())
        .unwrap_or_default();
    assert!(children.contains(&child), "the parent counts its child");
    // The child pushes message 5, which the parent has, back up.
    let id = crate::wire::MessageId {
        source,
        epoch,
        seq: 5,
    };
    let frame = data_frame(g, id, 0, &[5; 8]);
    let now = net.now;
    net.nodes[parent].handle_frame(now, node_ref(child), &frame, &mut net.rngs[parent]);
    let mut pruned = false;
    while let Some(t) = net.nodes[parent].poll_transmit() {
        if index(t.to) == child {
            pruned |= matches!(
                crate::wire::decode(&t.frame),
                Ok((_, crate::wire::GroupFrame::Prune { .. }))
            );
        }
    }
    assert!(pruned, "the child is told to stop pushing up");
    assert!(
        net.nodes[parent]
            .eager_peers(g, source)
            .contains(&node_ref(child).id),
        "the parent still pushes to its child"
    );
    // More messages reach the child through the same parent, with no graft.
    net.pump(parent);
    for k in 30..40u8 {
        net.with(2, |node, now, rng| {
            node.publish(now, g, Bytes::from(vec![k; 8]), rng)
                .expect("member");
        });
    }
    let t = net.now + Duration::from_secs(2);
    net.run_until(t);
    let seqs: Vec<u64> = net
        .delivered(child)
        .iter()
        .filter(|(s, _)| *s == 2)
        .map(|(_, q)| *q)
        .collect();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
    let f = net.nodes[child].flow(g);
    let now_parent = f.iter().find(|f| f.source == source).and_then(|f| f.parent);
    assert_eq!(now_parent, Some(node_ref(parent).id), "the same parent");
}

/// On reliable links a parent that feeds a node stays its parent when another neighbour
/// happens to push a new message first (scheduling noise on a loaded host): the other pusher
/// is pruned, not made the parent.
#[test]
fn a_feeding_parent_is_sticky() {
    let (mut net, g, child, parent, epoch) = settled_tree(12);
    let source = node_ref(2).id;
    let other = other_neighbour(&net, g, child, &[parent]);
    // The parent pushes message 30; the other neighbour pushes 31 before the parent does.
    let now = net.now;
    for (from, seq) in [(parent, 30u64), (other, 31)] {
        let id = crate::wire::MessageId { source, epoch, seq };
        let frame = data_frame(g, id, 0, &[seq as u8; 8]);
        net.nodes[child].handle_frame(now, node_ref(from), &frame, &mut net.rngs[child]);
    }
    let mut pruned = Vec::new();
    let mut pushed_up = 0;
    while let Some(t) = net.nodes[child].poll_transmit() {
        match crate::wire::decode(&t.frame) {
            Ok((_, crate::wire::GroupFrame::Prune { .. })) => pruned.push(index(t.to)),
            Ok((_, crate::wire::GroupFrame::Data { .. })) if index(t.to) == parent => {
                pushed_up += 1;
            }
            _ => {}
        }
    }
    assert_eq!(pruned, vec![other], "the quicker pusher is pruned");
    assert_eq!(pushed_up, 0, "nothing is pushed back up to the parent");
    net.pump(child);
    let f = net.nodes[child].flow(g);
    let now_parent = f.iter().find(|f| f.source == source).and_then(|f| f.parent);
    assert_eq!(now_parent, Some(node_ref(parent).id), "the parent stays");
    assert_eq!(
        net.delivered(child).iter().filter(|(s, _)| *s == 2).count(),
        32,
        "both messages delivered"
    );
}

/// A parent that prunes its child anyway (the prune crossed a push) is grafted back at once,
/// from where the child stands, instead of leaving it in no tree until an orphan check.
#[test]
fn a_child_pruned_by_its_parent_grafts_it_back() {
    let (mut net, g, child, parent, epoch) = settled_tree(13);
    let source = node_ref(2).id;
    // Past the graft rate limit of any graft made while the tree formed.
    let t = net.now + Duration::from_secs(1);
    net.run_until(t);
    let mut frame = Vec::new();
    crate::wire::encode(g, &crate::wire::GroupFrame::Prune { source }, &mut frame)
        .expect("encodes");
    let now = net.now;
    net.nodes[child].handle_frame(
        now,
        node_ref(parent),
        &Bytes::from(frame),
        &mut net.rngs[child],
    );
    let mut grafts = Vec::new();
    while let Some(t) = net.nodes[child].poll_transmit() {
        if let Ok((_, crate::wire::GroupFrame::Graft { id, want })) = crate::wire::decode(&t.frame)
        {
            grafts.push((index(t.to), id, want));
        }
    }
    let id = crate::wire::MessageId {
        source,
        epoch,
        seq: 30,
    };
    assert_eq!(grafts, vec![(parent, id, true)]);
}

/// A graft's replay is at most a repair batch: a graft that raced the tree's pushes costs a
/// batch of duplicates, not a cache's worth; the rest of a real gap is repaired in batches.
#[test]
fn a_graft_replays_at_most_a_repair_batch() {
    let mut config = flow_config(6, 1000, 1 << 30);
    config.repair_batch = 8;
    assert_eq!(
        replay_of_graft(&config, 14, 3),
        (3..11).collect::<Vec<u64>>()
    );
}

/// A child displaced from its parent's active view (alive, only reshuffled) still holds the
/// source's window there until it reports elsewhere: dropping it at once left it counted by
/// nobody while it re-grafted, and the source could run out of every cache ahead of it.
#[test]
fn a_displaced_child_still_counts_for_flow_control() {
    let (mut net, g, child, parent, epoch) = settled_tree(15);
    let source = node_ref(2).id;
    let children = |net: &Net| -> Vec<(usize, u64)> {
        net.nodes[parent]
            .flow(g)
            .into_iter()
            .find(|f| f.source == source)
            .map(|f| f.children.iter().map(|&(c, p)| (index(c), p)).collect())
            .unwrap_or_default()
    };
    assert!(children(&net).iter().any(|&(c, _)| c == child));
    net.with(parent, |node, now, rng| {
        let gi = node.group_index(g).expect("member");
        node.remove_active(gi, node_ref(child).id, true, false, now, rng);
    });
    assert!(
        children(&net).iter().any(|&(c, _)| c == child),
        "still a child after leaving the active view"
    );
    // Its reports still count, and its detaching report lets go.
    for (next_seq, counted) in [(17, true), (u64::MAX, false)] {
        let mut frame = Vec::new();
        let positions = vec![crate::wire::Watermark {
            source,
            epoch,
            next_seq,
        }];
        crate::wire::encode(
            g,
            &crate::wire::GroupFrame::SubtreeAck { positions },
            &mut frame,
        )
        .expect("encodes");
        let now = net.now;
        net.nodes[parent].handle_frame(
            now,
            node_ref(child),
            &Bytes::from(frame),
            &mut net.rngs[parent],
        );
        assert_eq!(
            children(&net).contains(&(child, 17)),
            counted,
            "after reporting {next_seq}"
        );
    }
}

/// A node that changes parent tells the old one it left (a detaching `SubtreeAck`) only once the
/// new one has pushed to it, so that some parent always holds the source's window for it.
#[test]
fn the_old_parent_is_let_go_once_the_new_one_pushes() {
    let (mut net, g, child, parent, epoch) = settled_tree(16);
    let source = node_ref(2).id;
    let other = other_neighbour(&net, g, child, &[parent, 2]);
    let detached_to = |net: &mut Net| -> Vec<usize> {
        let mut to = Vec::new();
        while let Some(t) = net.nodes[child].poll_transmit() {
            if let Ok((_, crate::wire::GroupFrame::SubtreeAck { positions })) =
                crate::wire::decode(&t.frame)
            {
                if positions.iter().any(|w| w.next_seq == u64::MAX) {
                    to.push(index(t.to));
                }
            }
        }
        to
    };
    // A re-graft takes the other neighbour as parent before it has pushed anything.
    {
        let node = &mut net.nodes[child];
        let gi = node.group_index(g).expect("member");
        let si = node.groups[gi].source_index(source).expect("source");
        node.flow_parent(gi, si, node_ref(other).id);
    }
    assert!(
        detached_to(&mut net).is_empty(),
        "not before the new parent pushes"
    );
    // The new parent's first push (a graft's replay) lets the old one go.
    let id = crate::wire::MessageId {
        source,
        epoch,
        seq: 30,
    };
    let frame = data_frame(g, id, crate::wire::DataFlags::GRAFT, &[30; 8]);
    let now = net.now;
    net.nodes[child].handle_frame(now, node_ref(other), &frame, &mut net.rngs[child]);
    assert_eq!(detached_to(&mut net), vec![parent]);
}

#[test]
fn a_displaced_neighbour_is_handed_other_candidates() {
    let mut config = GroupConfig::for_group_size(8);
    config.active_size = 2;
    config.latency_slots = 0;
    let (mut net, g) = joined_with(4, &config, 9);
    let full = net.nodes[0].view(g).expect("member").active;
    assert_eq!(full.len(), 2, "node 0's active view is full");
    // A fifth node joins through node 0, which must displace a neighbour to take it.
    let mut frame = Vec::new();
    crate::wire::encode(g, &crate::wire::GroupFrame::Join, &mut frame).expect("encodes");
    let now = net.now;
    let joiner = NodeRef {
        id: NodeId::from_u64(77),
        locator: None,
    };
    net.nodes[0].handle_frame(now, joiner, &Bytes::from(frame), &mut net.rngs[0]);
    let mut dropped = None;
    let mut hints = Vec::new();
    while let Some(t) = net.nodes[0].poll_transmit() {
        match crate::wire::decode(&t.frame) {
            Ok((_, crate::wire::GroupFrame::Disconnect { leaving: false })) => dropped = Some(t.to),
            Ok((_, crate::wire::GroupFrame::ShuffleReply { nodes })) => {
                hints.push((t.to, nodes.iter().map(|n| n.id).collect::<Vec<_>>()));
            }
            _ => {}
        }
    }
    let dropped = dropped.expect("a neighbour was displaced");
    assert!(full.contains(&dropped));
    let (to, nodes) = hints
        .first()
        .expect("the displaced neighbour got candidates");
    assert_eq!(*to, dropped);
    assert!(!nodes.is_empty() && !nodes.contains(&dropped), "{nodes:?}");
}

/// Flow control at sixty members with a small window (32 messages): two sources publish as fast
/// as their windows allow while an interior member crashes. Neither source stalls for good, and
/// every live member delivers every message once, in order.
#[test]
fn flow_control_never_stalls_through_a_crash_at_sixty_members() {
    for seed in 11..14 {
        flow_through_a_crash(seed);
    }
}

fn flow_through_a_crash(seed: u64) {
    let n = 60;
    let (mut net, g) = joined_with(n, &flow_config(n, 32, 1 << 30), seed);
    let sources = [5usize, 40];
    let victim = 17usize;
    let total = 600u64;
    let mut sent = [0u64; 2];
    let mut rounds = 0;
    for _ in 0..5_000 {
        rounds += 1;
        for (k, &src) in sources.iter().enumerate() {
            while sent[k] < total && net.nodes[src].publish_window(g, 16) {
                net.with(src, |node, now, rng| {
                    node.publish(now, g, Bytes::from(vec![k as u8; 16]), rng)
                        .expect("member");
                });
                sent[k] += 1;
            }
        }
        if sent[0] >= total / 3 {
            net.alive[victim] = false;
        }
        if sent.iter().all(|&s| s == total) {
            break;
        }
        let t = net.now + Duration::from_millis(20);
        net.run_until(t);
    }
    assert_eq!(
        sent, [total; 2],
        "seed {seed}: a source's window stayed shut"
    );
    assert!(rounds > total / 32, "seed {seed}: the window never closed");
    let t = net.now + Duration::from_secs(10);
    net.run_until(t);
    for i in (0..n).filter(|&i| i != victim) {
        let d = net.delivered(i);
        for &src in &sources {
            let seqs: Vec<u64> = d
                .iter()
                .filter(|(s, _)| *s == src as u64)
                .map(|(_, q)| *q)
                .collect();
            assert_eq!(
                seqs,
                (0..total).collect::<Vec<_>>(),
                "seed {seed} node {i} source {src}"
            );
        }
    }
}
