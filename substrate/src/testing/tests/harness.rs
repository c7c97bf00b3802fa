//! The harness: scheduling, timeouts, safety valves, observers and determinism.

use super::*;

#[test]
fn scheduler_orders_by_time_then_insertion() {
    let mut s = Scheduler::new();
    s.push(at_ms(5), "late");
    s.push(at_ms(1), "first");
    s.push(at_ms(1), "second");
    s.push(at_ms(1), "third");
    assert_eq!(s.pop_due(Instant::ZERO), None);
    let order: Vec<_> = core::iter::from_fn(|| s.pop()).map(|(_, x)| x).collect();
    assert_eq!(order, ["first", "second", "third", "late"]);
}

#[test]
fn timeouts_fire_at_their_deadline_and_stale_ones_are_ignored() {
    let mut c = Cluster::new(14, LinkConfig::default());
    let n = c.add_node(Probe::default());
    c.with_node(n, |p, _, _| p.timer = Some(at_ms(7)));
    c.run_for(ms(20)).unwrap();
    assert_eq!(c.take_events(n), [Ev::Fired(at_ms(7))]);

    // Pushed later: the 30 ms entry is stale and must not fire.
    c.with_node(n, |p, _, _| p.timer = Some(at_ms(30)));
    c.with_node(n, |p, _, _| p.timer = Some(at_ms(40)));
    // Pulled earlier: fires at 25 ms, then the (now stale) 40 ms entry is ignored.
    c.with_node(n, |p, _, _| p.timer = Some(at_ms(25)));
    assert_eq!(c.deadline(n), Some(at_ms(25)));
    let steps = c.steps();
    c.run_for(ms(100)).unwrap();
    assert_eq!(c.take_events(n), [Ev::Fired(at_ms(25))]);
    assert_eq!(c.steps() - steps, 1);

    // A deadline already in the past fires at once.
    c.with_node(n, |p, _, _| p.timer = Some(at_ms(1)));
    assert!(c.step());
    assert_eq!(c.take_events(n), [Ev::Fired(at_ms(120))]);
    assert!(!c.step());
    assert!(c.run_until_quiet(at_ms(1000)).unwrap());
    assert_eq!(c.now(), at_ms(120));
}

#[test]
fn a_spinning_protocol_is_reported_not_hung() {
    let mut c = Cluster::new(15, LinkConfig::default());
    c.set_limits(Limits {
        max_steps_per_instant: 10_000,
        ..Limits::default()
    });
    c.add_node(Probe {
        spin: true,
        ..Probe::default()
    });
    let err = c.run_for(ms(10)).unwrap_err();
    assert!(
        matches!(
            err,
            HarnessError::Stalled {
                at: Instant::ZERO,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(c.fault(), Some(&err));
    assert!(!c.step());
    assert_eq!(c.run_for(ms(1)), Err(err));
}

#[test]
fn step_budget_bounds_a_run() {
    let mut p = TestPair::new(
        16,
        LinkConfig::default().latency(ms(1)),
        Probe::echo(),
        Probe::echo(),
    );
    p.set_limits(Limits {
        max_steps_per_run: 100,
        ..Limits::default()
    });
    blast(&mut p, 1, 8);
    // Two echoes ping-pong forever: 1 ms per step, so 10 s would take 10,000 steps.
    let err = p.run_for(Duration::from_secs(10)).unwrap_err();
    assert_eq!(
        err,
        HarnessError::StepBudget {
            steps: 100,
            at: at_ms(100)
        }
    );
}

#[test]
fn run_while_stops_when_the_predicate_turns() {
    let mut p = pair(17, LinkConfig::default().latency(ms(3)));
    blast(&mut p, 10, 8);
    let b = p.b;
    let met = p.run_while(at_ms(100), |c| c.events(b).is_empty()).unwrap();
    assert!(met);
    assert_eq!(p.now(), at_ms(3));
    assert!(!p.run_while(at_ms(100), |c| c.events(b).len() < 11).unwrap());
    assert_eq!(p.now(), at_ms(100));
}

#[test]
fn the_observer_sees_every_transmit() {
    let mut p = pair(18, LinkConfig::default().latency(ms(1)));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    p.set_on_transmit(move |t| {
        log.borrow_mut()
            .push((t.at, t.node, t.from, t.to, t.bytes.len()))
    });
    blast(&mut p, 2, 20);
    p.run_for(ms(5)).unwrap();
    let (a, la, lb) = (p.a, p.locator(p.a), p.locator(p.b));
    assert_eq!(
        *seen.borrow(),
        [
            (Instant::ZERO, a, la, lb, 20),
            (Instant::ZERO, a, la, lb, 20)
        ]
    );
}

/// A small lossy, jittery, duplicating, reordering four-node world; returns its trace hash.
fn chaotic_run(seed: u64) -> (u64, NetStats) {
    let link = LinkConfig::default()
        .latency(ms(5))
        .jitter(ms(3))
        .bandwidth(2_000_000)
        .loss(Loss::Uniform(0.05))
        .duplicate(0.02)
        .reorder(0.05, ms(4));
    let mut c = Cluster::new(seed, link);
    let nodes: Vec<_> = (0..4)
        .map(|i| {
            c.add_node(Probe {
                echo: i < 2,
                ..Probe::default()
            })
        })
        .collect();
    for &n in &nodes {
        c.with_node(n, |p, now, rng| {
            p.timer = Some(now + ms(rng.below(50)));
            for seq in 0..200 {
                let to = test_locator(rng.below(4) as u32);
                p.send(to, seq, 8 + rng.below(500) as usize);
            }
        });
    }
    c.run_for(Duration::from_secs(2)).unwrap();
    let s = *c.stats();
    assert!(s.delivered > 500 && s.dropped_loss > 0 && s.duplicated > 0 && s.reordered > 0);
    let ended = s.delivered + s.dropped_loss + s.dropped_partition + s.dropped_mtu;
    let ended = ended + s.dropped_queue + s.unroutable + c.net().in_flight() as u64;
    assert_eq!(s.sent + s.duplicated, ended, "{s:?}");
    (c.trace_hash(), *c.stats())
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let (h1, s1) = chaotic_run(42);
    let (h2, s2) = chaotic_run(42);
    assert_eq!((h1, s1), (h2, s2));
    let (h3, _) = chaotic_run(43);
    assert_ne!(h1, h3);
}
