//! Multi-process tests on loopback: a receiving and a sending `phyla-peer` process per test, each
//! a node with one shard in invoker mode, on each driver. The peers check the stream themselves
//! and report what they saw as JSON lines; the assertions are on those reports (counts, events),
//! never on timings. Deadlines are give-up bounds: the peers exit on their own after
//! [`PEER_DEADLINE_SECS`], and when this process ends their standard input closes and they stop.

mod common;

use std::sync::Mutex;

use common::Peer;
use serde_json::Value;

/// The tests run one at a time: each pair of peers busy-polls, one process per core.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a peer may run before it gives up (a bound, not a measurement).
const PEER_DEADLINE_SECS: u64 = 120;

/// Injected loss, on each side, on receive and on send.
const LOSS: f64 = 0.02;

#[test]
fn million_messages_at_2pct_loss_arrive_once_in_order_on_poll() {
    lossy_stream("poll");
}

#[test]
fn million_messages_at_2pct_loss_arrive_once_in_order_on_uring() {
    lossy_stream("uring");
}

#[test]
fn sender_moves_to_a_new_port_mid_stream_without_loss_on_poll() {
    rebind_mid_stream("poll");
}

#[test]
fn sender_moves_to_a_new_port_mid_stream_without_loss_on_uring() {
    rebind_mid_stream("uring");
}

/// 1,000,000 messages at 2 % loss each way arrive exactly once and in order; the retransmit
/// window is unbounded by default, so nothing is ever reported lost.
fn lossy_stream(driver: &str) {
    const COUNT: u64 = 1_000_000;
    let Some(run) = Run::new(driver, COUNT, 11, None) else {
        return;
    };
    run.assert_complete(COUNT);
    let lost = run.sender["events"]["messages_lost"].as_u64();
    assert_eq!(lost, Some(0), "{run}");
}

/// The sender's socket moves to a new port half-way through 1,000,000 messages at 2 % loss: the
/// receiver validates the new path and says so (`PathMigrated`), and the stream goes on with
/// nothing lost.
fn rebind_mid_stream(driver: &str) {
    const COUNT: u64 = 1_000_000;
    let Some(run) = Run::new(driver, COUNT, 21, Some(COUNT / 2)) else {
        return;
    };
    run.assert_complete(COUNT);
    let moved = &run.sender["events"]["locator_changed"];
    assert_eq!(
        moved.as_array().map(Vec::len),
        Some(1),
        "the sender's LocatorChanged: {run}"
    );
    let migrated = run.receiver["events"]["path_migrated"]
        .as_array()
        .expect("path_migrated is a list");
    assert!(
        !migrated.is_empty(),
        "no PathMigrated at the receiver: {run}"
    );
    let new_port = moved[0].as_str().expect("an address");
    let last = migrated.last().and_then(Value::as_str).unwrap_or_default();
    assert!(
        last.ends_with(&format!("{new_port})")),
        "the receiver's last migration is to {last}, not to {new_port}: {run}"
    );
}

/// One receiver and one sender, run to the end.
struct Run {
    driver: String,
    receiver: Value,
    sender: Value,
}

impl Run {
    /// Runs a stream of `count` messages; `None` if the kernel cannot run `driver` (the reason
    /// is printed).
    fn new(driver: &str, count: u64, seed: u64, rebind_at: Option<u64>) -> Option<Self> {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let common = |seed: u64| {
            vec![
                "--driver".to_owned(),
                driver.to_owned(),
                "--loss".to_owned(),
                LOSS.to_string(),
                "--seed".to_owned(),
                seed.to_string(),
                "--count".to_owned(),
                count.to_string(),
                "--deadline-secs".to_owned(),
                PEER_DEADLINE_SECS.to_string(),
                "--exit-on-stdin-eof".to_owned(),
            ]
        };
        let mut receiver = Peer::spawn("recv", common(seed));
        let first = receiver.line();
        if let Some(why) = first.get("unsupported") {
            println!("skipping: driver {driver} is unsupported here: {why}");
            return None;
        }
        let at = first["listening"]
            .as_str()
            .unwrap_or_else(|| panic!("receiver's first line: {first}"))
            .to_owned();
        let mut args = common(seed + 1);
        args.extend(["--to".to_owned(), at]);
        if let Some(n) = rebind_at {
            args.extend(["--rebind-at".to_owned(), n.to_string()]);
        }
        let mut sender = Peer::spawn("send", args);
        // The sender ends last in a good run (it drains its closed session), but first if it
        // fails: then the receiver is told to give up at once, and both reports are shown.
        let (sender_report, sender_ok) = sender.last();
        if !sender_ok {
            receiver.stdin = None;
        }
        let (receiver_report, receiver_ok) = receiver.last();
        let run = Self {
            driver: driver.to_owned(),
            receiver: receiver_report,
            sender: sender_report,
        };
        assert!(sender_ok && receiver_ok, "a peer failed: {run}");
        Some(run)
    }

    /// Every message arrived once, in order, intact; nobody reported a loss; both ends closed.
    fn assert_complete(&self, count: u64) {
        let r = &self.receiver;
        let s = &self.sender;
        assert_eq!(r["received"].as_u64(), Some(count), "{self}");
        assert_eq!(
            r["errors"].as_u64(),
            Some(0),
            "first: {}; {self}",
            r["first_error"]
        );
        assert_eq!(r["ok"], Value::Bool(true), "{self}");
        assert_eq!(r["events"]["messages_lost"].as_u64(), Some(0), "{self}");
        assert_eq!(
            r["counters"]["messages_delivered"].as_u64(),
            Some(count),
            "{self}"
        );
        assert_eq!(r["events"]["connected"].as_u64(), Some(1), "{self}");
        assert_eq!(s["sent"].as_u64(), Some(count), "{self}");
        assert_eq!(
            s["counters"]["messages_offered"].as_u64(),
            Some(count),
            "{self}"
        );
        assert_eq!(s["counters"]["offers_dropped"].as_u64(), Some(0), "{self}");
        assert_eq!(
            s["events"]["closed"][0].as_str(),
            Some("Local(Normal)"),
            "{self}"
        );
        // The loss was real, and was repaired.
        let retransmitted = s["session"]["fragments_retransmitted"].as_u64();
        assert!(retransmitted > Some(0), "no loss was repaired? {self}");
        assert_eq!(s["session"]["gaps_sent"].as_u64(), Some(0), "{self}");
        assert_eq!(
            s["session"]["fragments_evicted"].as_u64(),
            Some(0),
            "{self}"
        );
        assert_eq!(self.driver, r["driver"].as_str().unwrap_or_default());
        println!(
            "{}: receiver {} ms, sender {} ms",
            self.driver, r["elapsed_ms"], s["elapsed_ms"]
        );
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "driver {}\nreceiver: {}\nsender: {}",
            self.driver, self.receiver, self.sender
        )
    }
}
