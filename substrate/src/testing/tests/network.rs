//! The network model, observed through the harness.

use super::*;

#[test]
fn test_locators_are_distinct_and_in_the_benchmark_block() {
    let mut seen = crate::collections::HashSet::default();
    for i in (0..140_000).chain([u32::MAX - 1, u32::MAX]) {
        let Locator::Udp(addr) = test_locator(i);
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            panic!("v6")
        };
        assert_eq!(
            u32::from(ip) >> 17,
            u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) >> 17
        );
        assert!(seen.insert(addr), "{i}");
    }
}

#[test]
fn latency_is_applied_exactly() {
    let mut p = TestPair::new(
        1,
        LinkConfig::default().latency(ms(10)),
        Probe::default(),
        Probe::echo(),
    );
    blast(&mut p, 1, 100);
    p.run_for(ms(100)).unwrap();
    let (a, b) = (p.a, p.b);
    let from_a = p.locator(a);
    assert_eq!(
        p.events(b),
        [Ev::Got {
            at: at_ms(10),
            from: from_a,
            seq: 0,
            len: 100
        }]
    );
    let from_b = p.locator(b);
    assert_eq!(
        p.events(a),
        [Ev::Got {
            at: at_ms(20),
            from: from_b,
            seq: 0,
            len: 100
        }]
    );
    assert_eq!(p.now(), at_ms(100));
    let s = *p.stats();
    assert_eq!(
        (s.sent, s.delivered, s.bytes_sent, s.bytes_delivered),
        (2, 2, 200, 200)
    );
}

#[test]
fn jitter_stays_within_bounds() {
    let mut p = pair(2, LinkConfig::default().latency(ms(10)).jitter(ms(4)));
    blast(&mut p, 2000, 16);
    p.run_for(ms(100)).unwrap();
    let times: Vec<_> = arrivals(&mut p).into_iter().map(|(t, _)| t).collect();
    assert_eq!(times.len(), 2000);
    assert!(times.iter().all(|&t| (at_ms(10)..=at_ms(14)).contains(&t)));
    assert!(times[0] < at_ms(10) + Duration::from_micros(100));
    assert!(at_ms(14) - *times.last().unwrap() < Duration::from_micros(100));
}

#[test]
fn per_link_overrides_apply_per_direction() {
    let mut p = TestPair::new(
        3,
        LinkConfig::default().latency(ms(10)),
        Probe::default(),
        Probe::echo(),
    );
    let (a, b) = (p.a, p.b);
    p.net_mut()
        .set_link(a, b, LinkConfig::default().latency(ms(30)));
    blast(&mut p, 1, 8);
    p.run_for(ms(100)).unwrap();
    assert!(matches!(p.events(b), [Ev::Got { at, .. }] if *at == at_ms(30)));
    assert!(matches!(p.events(a), [Ev::Got { at, .. }] if *at == at_ms(40)));
}

#[test]
fn bandwidth_serializes_per_directed_link() {
    // 1000 bytes at 1 MB/s take 1 ms each.
    let mut p = pair(4, LinkConfig::default().latency(ms(2)).bandwidth(1_000_000));
    blast(&mut p, 50, 1000);
    p.run_for(ms(100)).unwrap();
    let got = arrivals(&mut p);
    assert_eq!(got.len(), 50);
    for (i, &(at, seq)) in got.iter().enumerate() {
        assert_eq!((seq, at), (i as u64, at_ms(i as u64 + 1 + 2)));
    }
    // Another directed link is not queued behind a -> b: b -> a is free at once.
    let to = p.locator(p.a);
    p.with_b(|b, _, _| b.send(to, 0, 1000));
    p.run_for(ms(10)).unwrap();
    let a = p.a;
    assert!(matches!(p.events(a), [Ev::Got { at, .. }] if *at == at_ms(103)));
}

#[test]
fn bandwidth_queue_limit_drops_the_excess() {
    let link = LinkConfig::default()
        .bandwidth(1_000_000)
        .max_queue_delay(ms(10));
    let mut p = pair(5, link);
    blast(&mut p, 50, 1000);
    p.run_for(ms(100)).unwrap();
    // Datagram i would start after i ms of queueing: 0..=10 fit.
    assert_eq!(arrivals(&mut p).len(), 11);
    assert_eq!(p.stats().dropped_queue, 39);
}

#[test]
fn uniform_loss_drops_about_p() {
    let mut p = pair(
        6,
        LinkConfig::default()
            .latency(ms(1))
            .loss(Loss::Uniform(0.1)),
    );
    blast(&mut p, 20_000, 8);
    p.run_for(ms(10)).unwrap();
    let s = *p.stats();
    assert!((1_600..2_400).contains(&s.dropped_loss), "{s:?}");
    assert_eq!(s.delivered + s.dropped_loss, 20_000);
    assert_eq!(arrivals(&mut p).len() as u64, s.delivered);
}

/// Mean length of the runs of missing sequence numbers in `0..n`, and the number of runs.
fn loss_bursts(got: &[(Instant, u64)], n: u64) -> (f64, usize) {
    let mut expected = 0;
    let (mut runs, mut lost) = (0usize, 0u64);
    for seq in got.iter().map(|&(_, s)| s).chain([n]) {
        assert!(seq >= expected, "reordered");
        if seq > expected {
            runs += 1;
            lost += seq - expected;
        }
        expected = seq + 1;
    }
    (lost as f64 / runs.max(1) as f64, runs)
}

#[test]
fn gilbert_elliott_loss_comes_in_bursts() {
    let ge = GilbertElliott::bursts(0.01, 0.25);
    let mut p = pair(
        7,
        LinkConfig::default().latency(ms(1)).loss(Loss::Burst(ge)),
    );
    blast(&mut p, 20_000, 8);
    p.run_for(ms(10)).unwrap();
    let (mean, runs) = loss_bursts(&arrivals(&mut p), 20_000);
    assert!(
        (3.2..4.8).contains(&mean),
        "mean burst {mean} over {runs} runs"
    );
    let rate = p.stats().dropped_loss as f64 / 20_000.0;
    assert!(
        (rate - ge.mean_loss()).abs() < 0.015,
        "{rate} vs {}",
        ge.mean_loss()
    );

    // Uniform loss at the same rate gives runs of about one.
    let mut q = pair(7, LinkConfig::default().loss(Loss::Uniform(ge.mean_loss())));
    blast(&mut q, 20_000, 8);
    q.run_for(ms(10)).unwrap();
    let (mean, _) = loss_bursts(&arrivals(&mut q), 20_000);
    assert!(mean < 1.2, "{mean}");
}

#[test]
fn duplication_happens_at_its_rate() {
    let mut p = pair(
        8,
        LinkConfig::default()
            .latency(ms(5))
            .jitter(ms(2))
            .duplicate(0.05),
    );
    blast(&mut p, 20_000, 8);
    p.run_for(ms(20)).unwrap();
    let s = *p.stats();
    assert!((800..1_200).contains(&s.duplicated), "{s:?}");
    assert_eq!(s.delivered, 20_000 + s.duplicated);
    let mut count = vec![0u32; 20_000];
    arrivals(&mut p)
        .iter()
        .for_each(|&(_, seq)| count[seq as usize] += 1);
    assert!(count.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(
        count.iter().filter(|&&c| c == 2).count() as u64,
        s.duplicated
    );
}

#[test]
fn reordering_happens_at_its_rate() {
    let mut p = pair(9, LinkConfig::default().latency(ms(10)).reorder(0.1, ms(5)));
    blast(&mut p, 20_000, 8);
    p.run_for(ms(50)).unwrap();
    let got = arrivals(&mut p);
    assert_eq!(got.len(), 20_000);
    let mut max_seen = 0;
    let mut overtaken = 0;
    for &(at, seq) in &got {
        if seq < max_seen {
            overtaken += 1;
            assert_eq!(at, at_ms(15));
        }
        max_seen = max_seen.max(seq);
    }
    assert!((1_800..2_200).contains(&overtaken), "{overtaken}");
    assert!(p.stats().reordered - overtaken < 5, "{:?}", p.stats());
}

#[test]
fn oversized_datagrams_are_dropped() {
    let mut p = pair(10, LinkConfig::default().mtu(1000));
    let to = p.locator(p.b);
    p.with_a(|a, _, _| {
        a.send(to, 0, 1000);
        a.send(to, 1, 1001);
    });
    p.run_for(ms(1)).unwrap();
    assert_eq!(
        arrivals(&mut p).iter().map(|&(_, s)| s).collect::<Vec<_>>(),
        [0]
    );
    assert_eq!(p.stats().dropped_mtu, 1);
}

#[test]
fn unknown_destinations_are_unroutable() {
    let mut p = pair(11, LinkConfig::default());
    p.with_a(|a, _, _| a.send(test_locator(99), 0, 8));
    p.run_for(ms(1)).unwrap();
    assert_eq!((p.stats().unroutable, p.stats().delivered), (1, 0));
}

#[test]
fn partitions_block_until_healed() {
    let mut c = Cluster::new(12, LinkConfig::default().latency(ms(1)));
    let [a, b, d] = [(); 3].map(|()| c.add_node(Probe::default()));
    c.net_mut().partition(&[a], &[b, d]);
    send_at(&mut c, a, b, 1);
    send_at(&mut c, b, a, 2);
    send_at(&mut c, b, d, 3);
    c.run_for(ms(5)).unwrap();
    assert_eq!((got_seqs(&mut c, a), got_seqs(&mut c, b)), (vec![], vec![]));
    assert_eq!(got_seqs(&mut c, d), [3]);
    assert_eq!(c.stats().dropped_partition, 2);

    // Heal a <-> b only: a <-> d stays cut.
    c.net_mut().heal_between(&[a], &[b]);
    send_at(&mut c, a, b, 4);
    send_at(&mut c, a, d, 5);
    c.run_for(ms(5)).unwrap();
    assert_eq!(
        (got_seqs(&mut c, b), got_seqs(&mut c, d)),
        (vec![4], vec![])
    );

    // A datagram in flight when the cut happens is lost; heal() restores everything.
    c.net_mut().heal();
    send_at(&mut c, a, b, 6);
    c.net_mut().partition(&[a], &[b]);
    c.run_for(ms(5)).unwrap();
    c.net_mut().heal();
    send_at(&mut c, a, d, 7);
    send_at(&mut c, d, a, 8);
    c.run_for(ms(5)).unwrap();
    assert_eq!(
        (got_seqs(&mut c, b), got_seqs(&mut c, d)),
        (vec![], vec![7])
    );
    assert_eq!(got_seqs(&mut c, a), [8]);

    // One-way blocks.
    c.net_mut().block_one_way(&[a], &[b]);
    assert!(c.net().is_blocked(a, b) && !c.net().is_blocked(b, a));
    send_at(&mut c, a, b, 9);
    send_at(&mut c, b, a, 10);
    c.run_for(ms(5)).unwrap();
    assert_eq!(
        (got_seqs(&mut c, a), got_seqs(&mut c, b)),
        (vec![10], vec![])
    );
}

#[test]
fn rebind_moves_a_node_and_strands_datagrams_to_the_old_locator() {
    let mut p = TestPair::new(
        13,
        LinkConfig::default().latency(ms(10)),
        Probe::default(),
        Probe::echo(),
    );
    let (a, b) = (p.a, p.b);
    let old = p.locator(b);
    blast(&mut p, 1, 8);
    p.run_for(ms(5)).unwrap();
    let new = test_locator(1000);
    p.net_mut().rebind(b, new);
    assert_eq!(
        (p.net().node_at(&new), p.net().node_at(&old)),
        (Some(b), None)
    );
    p.run_for(ms(20)).unwrap();
    assert!(p.events(b).is_empty());
    assert_eq!(p.stats().unroutable, 1);

    // Sent to the new locator, it arrives; b's echo comes from the new locator.
    p.with_a(|a, _, _| {
        a.send(new, 1, 8);
        a.send(old, 2, 8);
    });
    p.run_for(ms(30)).unwrap();
    assert!(matches!(p.events(b), [Ev::Got { seq: 1, .. }]));
    assert!(matches!(p.events(a), [Ev::Got { seq: 1, from, .. }] if *from == new));
    assert_eq!(p.stats().unroutable, 2);
}

#[test]
fn the_network_scales_to_a_hundred_thousand_nodes() {
    const N: u32 = 100_000;
    let mut net = Network::new(19, LinkConfig::default().latency(ms(1)).jitter(ms(1)));
    for i in 0..N {
        assert_eq!(net.add_node(test_locator(i)), NodeIdx(i));
    }
    for i in 0..N {
        net.send(
            Instant::ZERO,
            NodeIdx(i),
            test_locator((i + 1) % N),
            &i.to_le_bytes(),
        );
    }
    let mut delivered = 0;
    while let Some(a) = net.pop_arrival(at_ms(10)) {
        assert_eq!(a.payload, ((a.node.0 + N - 1) % N).to_le_bytes());
        net.recycle(a.payload);
        delivered += 1;
    }
    assert_eq!((delivered, net.in_flight()), (N, 0));
}
