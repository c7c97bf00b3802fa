//! Shared by the adversarial tests: building a node (or two) or skipping the driver with a printed
//! reason, quiescing a node so that its counters are a consistent snapshot, and the lock that keeps
//! the heavy tests of this binary from running at once (on 2 cores, two at once starve each other,
//! and the memory test reads the whole process's RSS).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use substrate::proto::session::SessionStats;
use substrate::runtime::driver::{DriverError, DriverKind};
use substrate::runtime::{Counters, Node, NodeBuilder, NodeError, SessionId};

use crate::common::PATIENCE;

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises the heavy tests (a panic in one does not poison the others).
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds the node, or returns `None` after printing why the kernel cannot run `driver`.
pub(crate) fn build_or_skip(builder: NodeBuilder, driver: DriverKind) -> Option<Node> {
    match builder.build() {
        Ok(n) => Some(n),
        Err(NodeError::Driver(e @ DriverError::Unsupported { .. })) => {
            println!("skipping on {}: {e}", driver.name());
            None
        }
        Err(e) => panic!("building a {} node: {e}", driver.name()),
    }
}

/// Builds node `a`, then node `b`, or returns `None` after printing why the kernel cannot run
/// `driver`.
pub(crate) fn build_pair_or_skip(
    a: NodeBuilder,
    b: NodeBuilder,
    driver: DriverKind,
) -> Option<(Node, Node)> {
    let a = build_or_skip(a, driver)?;
    let b = build_or_skip(b, driver)?;
    Some((a, b))
}

/// How long a node must have received nothing to count as quiet.
const QUIET: Duration = Duration::from_millis(50);

/// Runs `node` alone (its peer is not run, so it sends nothing new) until it has received
/// nothing for [`QUIET`], long enough for its shard to publish the session counters too (every
/// 10 ms); returns the node's and the session's counters, which then agree with each other.
pub(crate) fn quiesce(node: &mut Node, session: SessionId) -> (Counters, SessionStats) {
    let start = Instant::now();
    let mut last = node.counters().datagrams_received;
    let mut since = Instant::now();
    while since.elapsed() < QUIET {
        node.invoke();
        let now = node.counters().datagrams_received;
        if now != last {
            last = now;
            since = Instant::now();
        }
        assert!(start.elapsed() < PATIENCE, "the node never went quiet");
    }
    let stats = node.session_counters(session).expect("the session is live");
    (node.counters(), stats)
}
