//! Eight `phyla-node` daemons, one per testbed host (`tools/testbed/testbed.sh up 8 --nodes`),
//! form one group; hosts 3 and 6 publish checkable messages at a steady rate. Mid-stream an
//! interior node of a dissemination tree (not a publisher) is killed with SIGKILL. Every
//! surviving member must still deliver every message of both publishers exactly once, in order,
//! and a survivor must have noticed the failure (`peer_failed`) or repaired its tree
//! (`tree_repaired`). The test prints how long after the kill the first repair and the first
//! delivery progress after it came.
//!
//! Root only (network namespaces); without root or iproute2 it prints why and passes. The
//! testbed has its own name and is torn down by a guard, even when the test panics.

#![allow(
    clippy::disallowed_methods,
    reason = "a test: its waits are bounded so that a failure does not hang"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod group_daemons;

use group_daemons::tree_links;

const HOSTS: usize = 8;
/// The publishing hosts.
const PUBLISHERS: [usize; 2] = [3, 6];
/// Messages from each publisher (`PHYLA_TESTBED_MESSAGES` overrides).
const MESSAGES: u64 = 200_000;
/// Messages per second from each publisher (`PHYLA_TESTBED_RATE` overrides).
const RATE: u64 = 10_000;
/// Generous bound on any wait: the test fails rather than hangs (never a timed assertion).
const PATIENCE: Duration = Duration::from_secs(300);

/// Every host's configuration; `{{...}}` are replaced by `testbed.sh`.
const TEMPLATE: &str = r#"name = "{{NAME}}"
bind = "{{ADDR}}:{{PORT}}"
run_dir = "{{DIR}}"
driver = "poll"
idle = "park"
threading = "invoker"
stats_interval_ms = 200
progress_interval_ms = 100

[[group]]
name = "test"
contacts = {{CONTACTS}}
expected_members = 8
"#;

#[test]
fn a_killed_interior_node_loses_no_message_at_the_survivors() {
    let messages = env_or("PHYLA_TESTBED_MESSAGES", MESSAGES);
    let rate = env_or("PHYLA_TESTBED_RATE", RATE);
    let name = format!("pg{}", std::process::id() % 1_000_000);
    let dir = std::env::temp_dir().join(format!("phyla-group-testbed-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch directory");
    let base = dir.join("host.template");
    fs::write(&base, TEMPLATE).expect("template");
    let publisher = dir.join("publisher.template");
    fs::write(
        &publisher,
        format!(
            "{TEMPLATE}[group.publish]\nmessages = {messages}\nmessage_bytes = 64\n\
             messages_per_sec = {rate}\nstart_delay_ms = 5000\n"
        ),
    )
    .expect("template");
    let publishers = PUBLISHERS.map(|p| p.to_string()).join(",");
    let out = script(&[
        "up",
        &HOSTS.to_string(),
        "--name",
        &name,
        "--dir",
        &dir.display().to_string(),
        "--nodes",
        &base.display().to_string(),
        "--node",
        &format!("{publishers}={}", publisher.display()),
        "--node-bin",
        env!("CARGO_BIN_EXE_phyla-node"),
    ]);
    if skipped(&out) {
        return;
    }
    let bed = Testbed {
        name: name.clone(),
        dir: dir.clone(),
    };
    assert!(
        out.status.success(),
        "testbed up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("testbed {name}: logs in {}", dir.display());
    let host = |i: usize| format!("{name}-{i}");
    let log = |i: usize| dir.join(format!("{}.log", host(i)));

    // Mid-stream: every member has delivered a quarter of both streams.
    wait_for("a quarter of both streams at every member", &bed, || {
        (1..=HOSTS).all(|i| {
            delivered_per_source(&log(i))
                .values()
                .filter(|&&d| d >= messages / 4)
                .count()
                >= 2
        })
    });
    let (victim, why) = interior_node(&dir, &name);
    println!("killing host {victim} ({why})");
    let out = script(&[
        "kill",
        &victim.to_string(),
        "--name",
        &name,
        "--dir",
        &dir.display().to_string(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "testbed kill: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let killed_at: u64 = said
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("testbed kill said {said:?}"));
    println!("killed host {victim} at {killed_at} (ms since the epoch)");
    let survivors: Vec<usize> = (1..=HOSTS).filter(|&i| i != victim).collect();

    // Every survivor completes both sources; once both publishers have finished, a stream that
    // stalls for a minute will not complete (then the checks below say what is missing).
    let mut finished_at: Option<Instant> = None;
    wait_for("every survivor to complete both sources", &bed, || {
        if survivors
            .iter()
            .all(|&i| events(&log(i), "source_complete").len() >= 2)
        {
            return true;
        }
        if finished_at.is_none()
            && PUBLISHERS
                .iter()
                .all(|&p| !events(&log(p), "publish_finished").is_empty())
        {
            finished_at = Some(Instant::now());
        }
        finished_at.is_some_and(|t| t.elapsed() > Duration::from_secs(60))
    });

    // SIGTERM: the survivors write their reports and exit; then the hosts go.
    let out = script(&[
        "down",
        "--name",
        &name,
        "--dir",
        &dir.display().to_string(),
        "--grace",
        "60",
    ]);
    assert!(
        out.status.success(),
        "testbed down: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What happened, whatever the verdict.
    let mut first_repair: Option<(u64, usize)> = None;
    let mut first_failed: Option<(u64, usize)> = None;
    for &i in &survivors {
        let lines = lines(&log(i));
        // Events (with `repeated` counted) before the kill | after it.
        let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for l in &lines {
            let kind = l["event"].as_str().unwrap_or_default();
            if kind == "progress" || kind == "delivery_report" {
                continue;
            }
            let n = l["repeated"].as_u64().unwrap_or(1);
            let c = counts.entry(kind.to_owned()).or_default();
            if l["ts_ms"].as_u64().unwrap_or_default() < killed_at {
                c.0 += n;
            } else {
                c.1 += n;
            }
        }
        let counts: Vec<String> = counts
            .iter()
            .map(|(k, (b, a))| format!("{k} {b}|{a}"))
            .collect();
        // Messages reported lost (`messages_lost`), before | after the kill.
        let mut lost = (0, 0);
        for l in lines.iter().filter(|l| l["event"] == "messages_lost") {
            let n = l["count"].as_u64().unwrap_or_default();
            if l["ts_ms"].as_u64().unwrap_or_default() < killed_at {
                lost.0 += n;
            } else {
                lost.1 += n;
            }
        }
        for l in &lines {
            let ts = l["ts_ms"].as_u64().unwrap_or_default();
            if ts < killed_at {
                continue;
            }
            let slot = match l["event"].as_str() {
                Some("tree_repaired") => &mut first_repair,
                Some("peer_failed") => &mut first_failed,
                _ => continue,
            };
            if slot.is_none_or(|(t, _)| ts < t) {
                *slot = Some((ts, i));
            }
        }
        let reports: Vec<String> = lines
            .iter()
            .filter(|l| l["event"] == "delivery_report")
            .map(|r| {
                format!(
                    "{}: delivered {} lost {} gaps {} out_of_order {}",
                    r["source"], r["delivered"], r["lost"], r["gaps"], r["out_of_order"]
                )
            })
            .collect();
        println!(
            "host {i}: {reports:?}\n  events before|after the kill: {}\n  messages reported lost before|after the kill: {}|{}",
            counts.join(", "),
            lost.0,
            lost.1
        );
    }
    let since = |t: Option<(u64, usize)>| {
        t.map_or("none".to_owned(), |(ts, i)| {
            format!("{} ms (host {i})", ts - killed_at)
        })
    };
    println!(
        "after the kill: first peer_failed {}, first tree_repaired {}",
        since(first_failed),
        since(first_repair)
    );
    if let Some((repaired, _)) = first_repair {
        let progress = survivors
            .iter()
            .flat_map(|&i| {
                events(&log(i), "progress")
                    .into_iter()
                    .filter_map(move |l| l["ts_ms"].as_u64().map(|t| (t, i)))
            })
            .filter(|&(t, _)| t >= repaired)
            .min();
        println!(
            "first delivery progress after the first repair: {}",
            since(progress)
        );
    }

    assert!(
        first_repair.is_some() || first_failed.is_some(),
        "no survivor saw the failure or repaired a tree"
    );
    for &i in &survivors {
        check_reports(&host(i), &lines(&log(i)), PUBLISHERS.len(), messages);
    }
    drop(bed);
    let _ = fs::remove_dir_all(&dir);
}

/// A non-publishing host that forwards in some source's tree: its stats file shows eager links
/// to a parent and at least one child. Prefers a host that is interior in more trees, then one
/// other than host 1 (everyone's contact).
fn interior_node(dir: &Path, name: &str) -> (usize, String) {
    let start = Instant::now();
    loop {
        let mut best: Option<(usize, usize, String)> = None;
        for i in (1..=HOSTS).filter(|i| !PUBLISHERS.contains(i)) {
            let links = tree_links(&dir.join(format!("{name}-{i}.stats.json")));
            let interior: Vec<String> = links
                .iter()
                .filter(|(_, eager)| eager.len() >= 2)
                .map(|(source, eager)| {
                    format!(
                        "source {}: {} eager",
                        &source[..16.min(source.len())],
                        eager.len()
                    )
                })
                .collect();
            let score = interior.len() * 2 + usize::from(i != 1);
            if !interior.is_empty() && best.as_ref().is_none_or(|b| score > b.1) {
                best = Some((i, score, interior.join(", ")));
            }
        }
        if let Some((i, _, why)) = best {
            return (i, why);
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no interior non-publishing node in the stats files of {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A log's whole lines (a partial last line is left for later).
fn lines(log: &Path) -> Vec<Value> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events(log: &Path, kind: &str) -> Vec<Value> {
    lines(log)
        .into_iter()
        .filter(|l| l["event"] == kind)
        .collect()
}

/// Messages delivered so far per source, from the latest `progress` and `source_complete` lines.
fn delivered_per_source(log: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in lines(log) {
        if l["event"] == "progress" || l["event"] == "source_complete" {
            let source = l["source"].as_str().unwrap_or_default().to_owned();
            let delivered = l["delivered"].as_u64().unwrap_or_default();
            let d = out.entry(source).or_default();
            *d = delivered.max(*d);
        }
    }
    out
}

/// Checks a node's final `delivery_report` lines: `sources` sources, each with every one of
/// `messages` delivered once, in order, none lost.
fn check_reports(node: &str, lines: &[Value], sources: usize, messages: u64) {
    let reports: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "delivery_report")
        .collect();
    assert_eq!(
        reports.len(),
        sources,
        "{node}: one report per source: {reports:?}"
    );
    for r in reports {
        assert_eq!(r["delivered"], messages, "{node}: {r}");
        assert_eq!(r["first_sequence"], 0, "{node}: {r}");
        assert_eq!(r["gaps"], 0, "{node}: {r}");
        assert_eq!(r["lost"], 0, "{node}: {r}");
        assert_eq!(r["out_of_order"], 0, "{node}: {r}");
        assert_eq!(r["corrupt"], 0, "{node}: {r}");
        assert_eq!(r["complete"], true, "{node}: {r}");
    }
}

/// Waits until `done` holds; after [`PATIENCE`] prints every host's last log lines and fails.
fn wait_for(what: &str, bed: &Testbed, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if done() {
            return;
        }
        if start.elapsed() > PATIENCE {
            for i in 1..=HOSTS {
                let host = format!("{}-{i}", bed.name);
                let lines = lines(&bed.dir.join(format!("{host}.log")));
                let tail: Vec<String> = lines
                    .iter()
                    .rev()
                    .take(12)
                    .rev()
                    .map(Value::to_string)
                    .collect();
                eprintln!("--- {host} ---\n{}", tail.join("\n"));
            }
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The testbed; torn down (daemons stopped, hosts removed) on drop, even on panic.
struct Testbed {
    name: String,
    dir: PathBuf,
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = script(&[
            "down",
            "--name",
            &self.name,
            "--dir",
            &self.dir.display().to_string(),
        ]);
    }
}

fn script(args: &[&str]) -> Output {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "testbed", "testbed.sh"]
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
