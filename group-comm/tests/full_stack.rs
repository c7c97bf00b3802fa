//! Full-stack mode: the group protocols over real sessions, on the substrate's in-memory network.
//!
//! The small tests check [`GroupStack`] itself (frames reach the right peer, frames queued during
//! the handshake go out after it, an unreachable peer is reported, simultaneous opens work); the
//! large ones run 1,000 nodes, each link a real session, and check that every broadcast reaches
//! every node exactly once in per-source order, with and without datagram loss.

use bytes::Bytes;
use group_comm::stack::fullstack::{self, FullStackPlan, FullStackReport, node_ref};
use group_comm::stack::{GroupStack, StackConfig, StackError};
use group_comm::{GroupConfig, GroupEvent, GroupId, NodeRef};
use substrate::id::NodeId;
use substrate::rand::Rng;
use substrate::testing::{Cluster, LinkConfig, Loss, NodeIdx, test_locator};
use substrate::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn group() -> GroupId {
    GroupId::from_name("stack-test")
}

/// A cluster of `n` stacks; node `i` is `node_ref(i)`.
fn cluster(n: usize, link: LinkConfig, stack: &StackConfig) -> Cluster<GroupStack> {
    let mut c = Cluster::new(11, link);
    let mut rng = Rng::with_seed(5);
    for i in 0..n {
        let s = GroupStack::new(
            node_ref(i),
            GroupConfig::for_group_size(8),
            stack.clone(),
            &mut rng.fork(i as u64),
        )
        .expect("valid configuration");
        c.add_node(s);
    }
    c
}

fn join(c: &mut Cluster<GroupStack>, i: u32, contact: Option<NodeRef>) {
    c.with_node(NodeIdx(i), |s, now, r| s.join(now, group(), contact, r))
        .expect("join accepted");
}

fn publish(c: &mut Cluster<GroupStack>, i: u32, text: &'static str) {
    c.with_node(NodeIdx(i), |s, now, r| {
        s.publish(now, group(), Bytes::from_static(text.as_bytes()), r)
    })
    .expect("member may publish");
}

fn delivered(c: &Cluster<GroupStack>, i: u32) -> Vec<Bytes> {
    c.events(NodeIdx(i))
        .iter()
        .filter_map(|e| match e {
            GroupEvent::Delivered { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn id(i: u64) -> NodeId {
    NodeId::from_u64(i)
}

#[test]
fn stack_settings_are_validated() {
    let mut rng = Rng::with_seed(1);
    let bad = StackConfig {
        max_peers: 0,
        ..StackConfig::default()
    };
    let e = GroupStack::new(node_ref(0), GroupConfig::default(), bad, &mut rng);
    assert!(matches!(e, Err(StackError::Invalid(_))), "{e:?}");
}

#[test]
fn frames_reach_the_right_peer_over_one_session_each() {
    let link = LinkConfig::default().latency(ms(2));
    let mut c = cluster(3, link, &StackConfig::default());
    join(&mut c, 0, None);
    join(&mut c, 1, Some(node_ref(0)));
    join(&mut c, 2, Some(node_ref(0)));
    c.run_for(Duration::from_secs(2)).expect("no harness fault");
    for i in 0..3 {
        assert!(
            c.events(NodeIdx(i))
                .iter()
                .any(|e| matches!(e, GroupEvent::Joined { .. })),
            "node {i} joined: {:?}",
            c.events(NodeIdx(i))
        );
    }
    // Node 0 talked to both others, each over its own session to the right NodeId.
    let s0 = c.node(NodeIdx(0));
    for peer in [1, 2] {
        let h = s0.session_to(id(peer)).expect("a session to each joiner");
        let info = s0.endpoint().session_info(h).expect("live session");
        assert_eq!(info.peer, Some(id(peer)));
        assert_eq!(info.path, test_locator(peer as u32));
    }
    publish(&mut c, 1, "from one");
    c.run_for(ms(500)).expect("no harness fault");
    for i in 0..3 {
        assert_eq!(
            delivered(&c, i),
            vec![Bytes::from_static(b"from one")],
            "node {i}"
        );
    }
    for i in 0..3 {
        let st = c.node(NodeIdx(i)).stats();
        assert!(
            st.frames_received > 0 && st.frames_sent > 0,
            "node {i}: {st:?}"
        );
        assert_eq!(st.frames_dropped, 0, "node {i}: {st:?}");
        assert_eq!(st.unreachable_reported, 0, "node {i}: {st:?}");
    }
}

#[test]
fn frames_queued_during_the_handshake_go_out_after_it() {
    let link = LinkConfig::default().latency(ms(20));
    let mut c = cluster(2, link, &StackConfig::default());
    join(&mut c, 0, None);
    join(&mut c, 1, Some(node_ref(0)));
    // The Join frame waits for the session's handshake (one round trip away).
    let s1 = c.node(NodeIdx(1));
    assert!(s1.queued_frames(id(0)) >= 1, "{:?}", s1.stats());
    assert_eq!(s1.session_to(id(0)), None);
    assert_eq!(s1.stats().frames_sent, 0);
    c.run_for(ms(500)).expect("no harness fault");
    let s1 = c.node(NodeIdx(1));
    assert_eq!(s1.queued_frames(id(0)), 0);
    assert!(s1.session_to(id(0)).is_some());
    assert!(s1.stats().frames_sent >= 1);
    assert!(c.node(NodeIdx(0)).stats().frames_received >= 1);
    assert!(
        c.events(NodeIdx(1))
            .iter()
            .any(|e| matches!(e, GroupEvent::Joined { .. }))
    );
}

#[test]
fn a_peer_without_locator_is_reported_at_once() {
    let mut c = cluster(1, LinkConfig::default(), &StackConfig::default());
    join(&mut c, 0, None);
    let ghost = NodeRef {
        id: id(9),
        locator: None,
    };
    c.with_node(NodeIdx(0), |s, now, r| {
        // Joining through a contact nobody can locate: the first frame to it fails.
        s.join(now, GroupId::from_name("other"), Some(ghost), r)
    })
    .expect("join accepted");
    let st = c.node(NodeIdx(0)).stats();
    assert_eq!(st.unreachable_reported, 1, "{st:?}");
    assert_eq!(st.sessions_opened, 0, "{st:?}");
    assert_eq!(c.node(NodeIdx(0)).peer_count(), 0);
}

#[test]
fn a_silent_peer_is_reported_after_the_handshake_times_out() {
    let mut stack = StackConfig::default();
    stack.session.idle_timeout = Duration::from_secs(2);
    stack.session.heartbeat_interval = ms(500);
    let mut c = cluster(1, LinkConfig::default().latency(ms(5)), &stack);
    // Nobody listens at test_locator(5).
    let ghost = node_ref(5);
    join(&mut c, 0, Some(ghost));
    assert_eq!(c.node(NodeIdx(0)).stats().sessions_opened, 1);
    c.run_for(Duration::from_secs(1)).expect("no harness fault");
    assert_eq!(c.node(NodeIdx(0)).stats().unreachable_reported, 0);
    // The handshake gives up at the session's idle timeout (2 s); the group may retry later.
    c.run_for(ms(1_050)).expect("no harness fault");
    let st = c.node(NodeIdx(0)).stats();
    assert_eq!(st.unreachable_reported, 1, "{st:?}");
    assert_eq!(st.sessions_closed, 1, "{st:?}");
    assert!(st.frames_dropped >= 1, "the Join never left: {st:?}");
}

#[test]
fn another_node_at_the_locator_is_not_taken_for_the_intended_one() {
    let mut c = cluster(
        2,
        LinkConfig::default().latency(ms(2)),
        &StackConfig::default(),
    );
    join(&mut c, 0, None);
    // Node 1 believes node 9 is at node 0's locator.
    let wrong = NodeRef {
        id: id(9),
        locator: Some(test_locator(0)),
    };
    join(&mut c, 1, Some(wrong));
    c.run_for(ms(200)).expect("no harness fault");
    let st = c.node(NodeIdx(1)).stats();
    assert_eq!(st.identity_mismatches, 1, "{st:?}");
    assert_eq!(st.unreachable_reported, 1, "{st:?}");
    // Node 0 never got a frame meant for node 9.
    assert_eq!(c.node(NodeIdx(0)).stats().frames_received, 0);
}

#[test]
fn simultaneous_opens_leave_two_sessions_and_lose_nothing() {
    let link = LinkConfig::default().latency(ms(10));
    let mut c = cluster(2, link, &StackConfig::default());
    join(&mut c, 0, None);
    join(&mut c, 1, None);
    c.run_for(ms(1)).expect("no harness fault");
    // Each retries its (empty-view) join through the other, at the same instant.
    join(&mut c, 0, Some(node_ref(1)));
    join(&mut c, 1, Some(node_ref(0)));
    c.run_for(Duration::from_secs(1)).expect("no harness fault");
    for i in 0..2 {
        let s = c.node(NodeIdx(i));
        assert_eq!(
            s.endpoint().sessions().count(),
            2,
            "node {i}: {:?}",
            s.stats()
        );
        assert_eq!(s.stats().sessions_opened, 1);
        assert_eq!(s.stats().sessions_accepted, 1);
    }
    publish(&mut c, 0, "a");
    publish(&mut c, 1, "b");
    publish(&mut c, 0, "c");
    c.run_for(ms(500)).expect("no harness fault");
    for i in 0..2 {
        let mut got = delivered(&c, i);
        got.sort();
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"a"),
                Bytes::from_static(b"b"),
                Bytes::from_static(b"c")
            ],
            "node {i}"
        );
        assert_eq!(c.node(NodeIdx(i)).stats().unreachable_reported, 0);
    }
}

#[test]
fn a_full_stack_run_replays_from_its_seed() {
    let plan = FullStackPlan {
        broadcasts: 6,
        sources: 2,
        ..FullStackPlan::new(40, 3)
    };
    let a = fullstack::run(&plan).expect("run completes");
    let b = fullstack::run(&plan).expect("run completes");
    assert_eq!(a.trace_hash, b.trace_hash);
    a.check().unwrap_or_else(|e| panic!("{e}\n{}", summary(&a)));
}

/// Counters worth seeing when a large run fails (or to read its cost).
fn summary(r: &FullStackReport) -> String {
    let virt = r.end.saturating_duration_since(Instant::ZERO);
    let delay = r
        .all_delivered_at
        .map(|t| t.saturating_duration_since(r.first_publish));
    format!(
        "steps {} over {virt:?} virtual; all delivered {delay:?} after the first publish; \
         sessions open {}\nnet {:?}\nstack {:?}\ngroup {:?}",
        r.steps, r.sessions_open, r.net, r.stack, r.group_stats
    )
}

/// Runs a plan, prints its cost (never asserted) and checks its deliveries.
#[allow(
    clippy::disallowed_methods,
    reason = "wall time is printed, never asserted"
)]
fn run_and_check(plan: &FullStackPlan) -> FullStackReport {
    let t = std::time::Instant::now();
    let r = fullstack::run(plan).expect("run completes");
    eprintln!(
        "{} nodes: {:?} wall; {}",
        plan.nodes,
        t.elapsed(),
        summary(&r)
    );
    r.check().unwrap_or_else(|e| panic!("{e}\n{}", summary(&r)));
    assert_eq!(r.reliability(), 1.0);
    assert_eq!(r.stack.frames_dropped, 0, "{}", summary(&r));
    r
}

#[test]
fn thousand_nodes_over_real_sessions_deliver_everything_once_in_order() {
    let plan = FullStackPlan::new(1_000, 1);
    let r = run_and_check(&plan);
    assert_eq!(r.published.len(), 20);
}

#[test]
fn thousand_nodes_with_five_percent_loss_deliver_everything_once_in_order() {
    let plan = FullStackPlan {
        link: LinkConfig::default()
            .latency(ms(5))
            .jitter(ms(2))
            .loss(Loss::Uniform(0.05)),
        ..FullStackPlan::new(1_000, 2)
    };
    let r = run_and_check(&plan);
    assert!(r.net.dropped_loss > 0, "the loss model was in force");
}
