//! Testbed tests: Phyla nodes on hosts made of network namespaces on a bridge
//! (`tools/testbed/testbed.sh`), addressed from 198.18.0.0/15. They need root; without it they
//! print why and pass. Each test's testbed has its own name and is torn down by a guard, even
//! when the test panics.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::Peer;

/// Messages in each stream.
const COUNT: u64 = 100_000;

#[test]
fn a_stream_crosses_the_bridge_through_a_rate_limit_on_poll() {
    stream_between_hosts("poll", "p");
}

#[test]
fn a_stream_crosses_the_bridge_through_a_rate_limit_on_uring() {
    stream_between_hosts("uring", "u");
}

/// `run` tears the testbed down when its command fails, and `down` leaves nothing behind.
#[test]
fn a_failed_run_leaves_no_namespace_or_bridge() {
    let name = unique("f");
    let out = script(&["run", "2", "--name", &name, "--", "false"]);
    if skipped(&out) {
        return;
    }
    assert!(!out.status.success(), "the command's failure is the run's");
    assert_gone(&name);
    // And after a good run too.
    let out = script(&["run", "3", "--name", &name, "--", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_gone(&name);
}

/// 100,000 messages from host 1 to host 2; each host's sending is limited to 20 Mbit/s by tbf,
/// so the sender meets a real bottleneck and its drops. Everything arrives once, in order.
fn stream_between_hosts(driver: &str, tag: &str) {
    let Some(bed) = Testbed::up(&unique(tag), 2, Some("20mbit")) else {
        return;
    };
    let common = |seed: u64, host: usize| {
        vec![
            "--driver".to_owned(),
            driver.to_owned(),
            "--bind-ip".to_owned(),
            Testbed::addr(host),
            "--seed".to_owned(),
            seed.to_string(),
            "--count".to_owned(),
            COUNT.to_string(),
            "--deadline-secs".to_owned(),
            "120".to_owned(),
            "--exit-on-stdin-eof".to_owned(),
        ]
    };
    let mut receiver = Peer::spawn_in(Some(&bed.netns(2)), "recv", common(1, 2));
    let first = receiver.line();
    if let Some(why) = first.get("unsupported") {
        println!("skipping: driver {driver} is unsupported here: {why}");
        return;
    }
    let at = first["listening"]
        .as_str()
        .unwrap_or_else(|| panic!("receiver's first line: {first}"))
        .to_owned();
    assert!(at.starts_with(&Testbed::addr(2)), "listening on {at}");
    let mut args = common(2, 1);
    args.extend(["--to".to_owned(), at]);
    let mut sender = Peer::spawn_in(Some(&bed.netns(1)), "send", args);
    let (sent, sender_ok) = sender.last();
    if !sender_ok {
        receiver.stdin = None;
    }
    let (received, receiver_ok) = receiver.last();
    let both = format!("sender {sent}\nreceiver {received}");
    assert!(sender_ok && receiver_ok, "a peer failed: {both}");
    assert_eq!(received["received"].as_u64(), Some(COUNT), "{both}");
    assert_eq!(received["errors"].as_u64(), Some(0), "{both}");
    assert_eq!(
        received["events"]["messages_lost"].as_u64(),
        Some(0),
        "{both}"
    );
    assert_eq!(sent["sent"].as_u64(), Some(COUNT), "{both}");
    assert_eq!(
        sent["counters"]["offers_dropped"].as_u64(),
        Some(0),
        "{both}"
    );
    println!(
        "{driver}: {COUNT} messages host 1 -> host 2 through tbf 20mbit in {} ms, {} fragments retransmitted",
        sent["elapsed_ms"], sent["session"]["fragments_retransmitted"]
    );
}

/// A testbed for one test; torn down on drop.
struct Testbed {
    name: String,
}

impl Testbed {
    /// `hosts` hosts, each sending at most `rate`; `None` (with the reason printed) where the
    /// machine cannot make one.
    fn up(name: &str, hosts: usize, rate: Option<&str>) -> Option<Self> {
        let hosts = hosts.to_string();
        let mut args = vec!["up", hosts.as_str(), "--name", name];
        if let Some(rate) = rate {
            args.extend(["--rate", rate]);
        }
        let out = script(&args);
        if skipped(&out) {
            return None;
        }
        let bed = Self {
            name: name.to_owned(),
        };
        assert!(
            out.status.success(),
            "testbed up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(bed)
    }

    fn netns(&self, host: usize) -> String {
        format!("{}-{host}", self.name)
    }

    /// Host `host`'s address (hosts below 256).
    fn addr(host: usize) -> String {
        format!("198.18.0.{host}")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = script(&["down", "--name", &self.name]);
    }
}

fn script(args: &[&str]) -> Output {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tools",
        "testbed",
        "testbed.sh",
    ]
    .iter()
    .collect();
    Command::new("bash")
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running testbed.sh: {e}"))
}

/// Whether the script refused for want of root or tools; says so.
fn skipped(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    let refused = out.status.code() == Some(2) && err.contains("needs ");
    if refused {
        println!("skipping: {}", err.trim());
    }
    refused
}

fn assert_gone(name: &str) {
    let list = Command::new("ip").args(["netns", "list"]).output();
    let list = list.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let prefix = format!("{name}-");
    assert!(
        !list
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&prefix)),
        "namespaces of {name} left behind"
    );
    let bridge = Command::new("ip")
        .args(["link", "show", &format!("{name}-br")])
        .output()
        .map(|o| o.status.success());
    assert_eq!(bridge.ok(), Some(false), "bridge {name}-br left behind");
}

/// A testbed name no other test (or concurrent run) uses.
fn unique(tag: &str) -> String {
    format!("t{tag}{}", std::process::id() % 100_000)
}
