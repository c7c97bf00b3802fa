//! Eight `phyla-node` processes on loopback form one group; two of them publish 200,000
//! checkable messages each. Every member must deliver every message of both sources exactly
//! once, in per-source order, on each driver. The publishers go as fast as the group's flow
//! control lets them.

mod group_daemons;

use group_daemons::{
    Daemon, NodeSpec, Scratch, check_reports, completed_sources, free_ports, wait_until,
};

const NODES: usize = 8;
const MESSAGES: u64 = 200_000;

/// One test for both drivers, one after the other: sixteen daemons at once would share two
/// cores.
#[test]
fn eight_processes_two_publishers_on_each_driver() {
    eight_processes("poll");
    eight_processes("uring");
}

fn eight_processes(driver: &str) {
    let scratch = Scratch::new(&format!("loopback-{driver}"));
    let ports = free_ports(NODES);
    let contact = format!("127.0.0.1:{}", ports[0]);
    let mut nodes: Vec<Daemon> = (0..NODES)
        .map(|i| {
            let spec = NodeSpec {
                name: format!("n{i}"),
                bind: format!("127.0.0.1:{}", ports[i]),
                contacts: if i == 0 {
                    Vec::new()
                } else {
                    vec![contact.clone()]
                },
                driver: driver.to_owned(),
                // Nodes 3 and 6 publish: neither is the contact everyone joins through.
                publish: (i == 3 || i == 6).then_some(MESSAGES),
                message_bytes: 64,
                // Unpaced: the tree's flow control holds each publisher to its slowest member.
                rate: None,
                // Long enough for all eight to have joined before the first message.
                start_delay_ms: 3000,
                netns: None,
            };
            // Members start a moment apart, as servers do: eight joins through one contact in
            // the same millisecond can leave the overlay in two islands whose members are all
            // full or all refused (HyParView's low-priority requests; docs/architecture.md).
            std::thread::sleep(std::time::Duration::from_millis(300));
            Daemon::start(&scratch.0, &spec)
        })
        .collect();
    wait_until(&mut nodes, "every member to complete both sources", |ns| {
        ns.iter().all(|d| completed_sources(d) >= 2)
    });
    for d in &mut nodes {
        assert!(d.terminate(), "{} exits 0 on SIGTERM", d.name);
    }
    for d in &nodes {
        check_reports(d, 2, MESSAGES);
        assert!(
            !scratch.0.join(format!("{}.stats.json", d.name)).exists(),
            "{}: stats file removed on exit",
            d.name
        );
    }
}
