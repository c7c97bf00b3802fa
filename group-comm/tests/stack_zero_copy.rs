//! Zero copy on the group data path, full stack: 1 KiB payloads published into a group of real
//! sessions on the in-memory network are never copied by Phyla on the way out, neither by the
//! stack (head and payload stay apart) nor by the sessions (every payload is a gathered part of
//! its datagram), at the source or at any forwarding node, under loss too (where repairs and new
//! messages share datagrams); and every node still delivers every message exactly once, in
//! per-source order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use group_comm::stack::fullstack::node_ref;
use group_comm::stack::{GroupStack, StackConfig};
use group_comm::{GroupConfig, GroupEvent, GroupId};
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::testing::{Cluster, LinkConfig, Loss, NodeIdx};
use substrate::time::Duration;

const NODES: usize = 12;
const PAYLOAD_BYTES: usize = 1_024;
/// Starts every payload, so that a datagram carrying one can be recognised on the wire.
const MARKER: &[u8; 12] = b"PHYLA-1KiB:#";

fn group() -> GroupId {
    GroupId::from_name("zero-copy")
}

/// Payload `n` of source `source`: the marker, then bytes that depend on both.
fn payload(source: u64, n: u64) -> Bytes {
    let mut v = MARKER.to_vec();
    v.extend_from_slice(&source.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    let tag = (source * 31 + n) as u8;
    v.extend((v.len()..PAYLOAD_BYTES).map(|i| (i as u8) ^ tag));
    Bytes::from(v)
}

/// What the wire showed: payloads carried, and those that were not a gathered part (copied).
#[derive(Default)]
struct Wire {
    payloads: u64,
    copied: Vec<String>,
}

/// Runs the scenario.
fn run(link: LinkConfig, seed: u64) {
    let mut stack = StackConfig::default();
    stack.session.gather_min_bytes = PAYLOAD_BYTES;
    let mut c = Cluster::new(seed, link);
    let mut rng = Rng::with_seed(seed);
    for i in 0..NODES {
        let s = GroupStack::new(
            node_ref(i),
            GroupConfig::for_group_size(NODES),
            stack.clone(),
            &mut rng.fork(i as u64),
        )
        .expect("valid configuration");
        c.add_node(s);
    }
    for i in 0..NODES as u32 {
        let contact = (i > 0).then(|| node_ref(i as usize / 2));
        c.with_node(NodeIdx(i), |s, now, r| s.join(now, group(), contact, r))
            .expect("join accepted");
        c.run_for(Duration::from_millis(50))
            .expect("no harness fault");
    }
    c.run_for(Duration::from_secs(5)).expect("no harness fault");

    let wire: Rc<RefCell<Wire>> = Rc::default();
    let sink = wire.clone();
    c.set_on_transmit(move |t| {
        let mut w = sink.borrow_mut();
        for (at, _) in t
            .bytes
            .windows(MARKER.len())
            .enumerate()
            .filter(|(_, m)| m == MARKER)
        {
            w.payloads += 1;
            if !t.gathered.contains(&(at..at + PAYLOAD_BYTES)) {
                w.copied.push(format!(
                    "node {:?}: payload at {at} of {} bytes, gathered {:?}",
                    t.node,
                    t.bytes.len(),
                    t.gathered
                ));
            }
        }
    });

    // Two sources, interleaved; each message goes to every other node through the tree.
    let sources = [0u64, 7];
    let per_source = 30u64;
    for n in 0..per_source {
        for &source in &sources {
            c.with_node(NodeIdx(source as u32), |s, now, r| {
                s.publish(now, group(), payload(source, n), r)
            })
            .expect("member may publish");
        }
        c.run_for(Duration::from_millis(5))
            .expect("no harness fault");
    }
    c.run_for(Duration::from_secs(5)).expect("no harness fault");
    c.clear_on_transmit();

    // Exactly once, in order, byte for byte, at every node.
    for i in 0..NODES as u32 {
        let mut got: BTreeMap<NodeId, Vec<Bytes>> = BTreeMap::new();
        for e in c.events(NodeIdx(i)) {
            if let GroupEvent::Delivered { id, payload, .. } = e {
                got.entry(id.source).or_default().push(payload.clone());
            }
        }
        for &source in &sources {
            let expected: Vec<Bytes> = (0..per_source).map(|n| payload(source, n)).collect();
            let from = got.remove(&NodeId::from_u64(source)).unwrap_or_default();
            assert!(
                from == expected,
                "node {i}: {} of {per_source} messages from {source} in order",
                from.len()
            );
        }
        assert!(got.is_empty(), "node {i} delivered from unknown sources");
    }

    // Nobody copied a payload: not the stacks, not the sessions, not at a forwarding node.
    let wire = wire.borrow();
    assert!(
        wire.copied.is_empty(),
        "{} payloads went copied, the first: {:?}",
        wire.copied.len(),
        &wire.copied[..wire.copied.len().min(5)]
    );
    let receivers = (NODES - 1) as u64;
    assert!(
        wire.payloads >= receivers * per_source * sources.len() as u64,
        "every receiver got every payload in some datagram: {}",
        wire.payloads
    );
    let (mut gathered, mut forwarded_by) = (0, 0);
    for i in 0..NODES as u32 {
        let s = c.node(NodeIdx(i));
        assert_eq!(
            s.stats().payload_bytes_copied,
            0,
            "node {i}: {:?}",
            s.stats()
        );
        assert_eq!(s.stats().frames_dropped, 0, "node {i}: {:?}", s.stats());
        let e = s.endpoint().stats();
        gathered += e.payload_bytes_gathered;
        if !sources.contains(&u64::from(i)) && e.payload_bytes_gathered > 0 {
            forwarded_by += 1;
        }
    }
    // Only payloads are gathered (control frames and heads are small and copied), so the
    // sessions' count is the wire's, exactly.
    assert_eq!(gathered, wire.payloads * PAYLOAD_BYTES as u64);
    assert!(forwarded_by > 0, "some node forwarded payloads it received");
}

#[test]
fn forwarding_one_kib_payloads_through_the_tree_copies_none() {
    run(LinkConfig::default().latency(Duration::from_millis(2)), 3);
}

#[test]
fn forwarding_through_loss_copies_none_and_delivers_exactly_once_in_order() {
    let link = LinkConfig::default()
        .latency(Duration::from_millis(2))
        .loss(Loss::Uniform(0.02));
    run(link, 4);
}
