//! A node whose later shard cannot start stops the shards it already started: their threads end
//! and their sockets close, instead of running on behind the error.

use std::net::{SocketAddr, UdpSocket};

use substrate::id::NodeId;
use substrate::runtime::driver::{DriverError, DriverKind};
use substrate::runtime::{Node, NodeError, Threading};

fn shards_started_before_a_failure_are_stopped(driver: DriverKind) {
    // Shard `i` binds port + i: hold port + 1 so that shard 1 fails after shard 0 started.
    for _ in 0..20 {
        let taken = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let port = taken.local_addr().expect("addr").port();
        let Some(first) = port.checked_sub(1).filter(|&p| p > 0) else {
            continue;
        };
        let first = SocketAddr::from(([127, 0, 0, 1], first));
        if UdpSocket::bind(first).is_err() {
            continue; // shard 0 would fail too: try other ports
        }
        let built = Node::builder(NodeId::from_u64(1))
            .bind(first)
            .shards(2)
            .driver(driver)
            .threading(Threading::Dedicated)
            .pin(false)
            .build();
        match built {
            Err(NodeError::Driver(DriverError::Io { op: "bind", .. })) => {}
            Err(NodeError::Driver(e @ DriverError::Unsupported { .. })) => {
                println!("skipping on {}: {e}", driver.name());
                return;
            }
            Err(e) => panic!("{driver:?}: unexpected error {e}"),
            Ok(_) => panic!("{driver:?}: shard 1 bound a port that is taken"),
        }
        // Shard 0 started and bound `first`; with the error returned, it must be gone.
        assert!(
            UdpSocket::bind(first).is_ok(),
            "{driver:?}: shard 0 still holds its socket after the build failed"
        );
        return;
    }
    panic!("no pair of free and taken neighbouring ports found");
}

crate::common::on_each_driver!(
    shards_started_before_a_failure_are_stopped,
    shards_started_before_a_failure_are_stopped_on_poll,
    shards_started_before_a_failure_are_stopped_on_uring
);
