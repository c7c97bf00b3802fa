//! The daemon and the tools as separate processes on loopback: `phyla-node` daemons started
//! from generated configurations, `phyla publish` and `phyla subscribe` joining through them,
//! the daemons' own publishing load, `phyla-stat` and `phyla tree` reading the run directory,
//! and a clean SIGTERM shutdown that removes the run files. Every wait is for an event line,
//! bounded only so that a failure does not hang.

#![allow(
    clippy::disallowed_methods,
    reason = "a test: it prints how long each phase took"
)]

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{Proc, TempDir, free_port, run};
use phyla_tools::stats;
use serde_json::Value;

const NODE: &str = env!("CARGO_BIN_EXE_phyla-node");
const PHYLA: &str = env!("CARGO_BIN_EXE_phyla");
const STAT: &str = env!("CARGO_BIN_EXE_phyla-stat");

/// The tests here run one at a time: each runs several processes, and the machine may have
/// only two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Prints how far a test got (shown when it fails, or with `--nocapture`).
fn phase(start: std::time::Instant, what: &str) {
    eprintln!("[{:>7.2} s] {what}", start.elapsed().as_secs_f64());
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every test group has its parameters overridden the same way, so that overrides are
/// carried through to the engine (a loss timeout no test run comes near).
const OVERRIDES: &str = "overrides = { loss_timeout_ms = 10000 }\n";

/// Writes `<dir>/<name>.toml` and returns its path.
fn config(dir: &TempDir, name: &str, port: u16, driver: &str, group: &str) -> String {
    let text = format!(
        "name = \"{name}\"\nidentity = \"{name}.id\"\nbind = \"127.0.0.1:{port}\"\n\
         driver = \"{driver}\"\nrun_dir = \"run\"\nstats_interval_ms = 50\n\
         progress_interval_ms = 200\n{group}"
    );
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing a configuration");
    path.to_str().unwrap_or_default().to_owned()
}

fn start(name: &str, config: &str) -> Proc {
    let mut p = Proc::spawn(name, NODE, &["--config", config]);
    p.wait_event("started", |_| true);
    p
}

/// SIGTERM, then the clean-exit checks: exit 0, a final report, the run files gone.
fn stop(mut p: Proc, run_dir: &Path) -> Vec<Value> {
    p.terminate();
    let (status, _) = p.finish();
    let err = p.stderr_text();
    assert!(status.success(), "{}: {status} {err}", p.label);
    let lines: Vec<Value> = p
        .seen
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    for kind in ["shutdown", "left", "counters", "stopped"] {
        assert!(
            lines.iter().any(|v| v["event"] == kind),
            "{}: no {kind} line",
            p.label
        );
    }
    assert!(
        !stats::path_of(run_dir, &p.label).exists(),
        "{}: stats file left",
        p.label
    );
    assert!(
        !run_dir.join(format!("{}.pid", p.label)).exists(),
        "{}: pid file left",
        p.label
    );
    lines
}

fn report_for<'a>(lines: &'a [Value], source: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|v| v["event"] == "delivery_report" && v["source"] == source)
}

#[test]
fn tools_publish_and_subscribe_through_daemons_then_daemons_stop_cleanly() {
    let _serial = serial();
    let t0 = std::time::Instant::now();
    const N: u64 = 10_000;
    let dir = TempDir::new("loopback");
    let run_dir = dir.join("run");
    let (pa, pb) = (free_port(1), free_port(1));
    let a = config(
        &dir,
        "a",
        pa,
        "poll",
        &format!("[[group]]\nname = \"g\"\n{OVERRIDES}"),
    );
    let b = config(
        &dir,
        "b",
        pb,
        "auto",
        &format!("[[group]]\nname = \"g\"\ncontacts = [\"127.0.0.1:{pa}\"]\n{OVERRIDES}"),
    );
    let mut node_a = start("a", &a);
    let mut node_b = start("b", &b);
    node_a.wait_event("joined", |_| true);
    node_b.wait_event("joined", |_| true);
    phase(t0, "daemons joined");

    let count = N.to_string();
    let contact_b = format!("127.0.0.1:{pb}");
    let mut sub = Proc::spawn(
        "subscribe",
        PHYLA,
        &[
            "subscribe",
            "--group",
            "g",
            "--contact",
            &contact_b,
            "--count",
            &count,
            "--timeout",
            "120",
        ],
    );
    sub.wait_event("joined", |_| true);
    phase(t0, "subscriber joined");

    let contact_a = format!("127.0.0.1:{pa}");
    let (status, out, err) = run(
        PHYLA,
        &[
            "publish",
            "--group",
            "g",
            "--contact",
            &contact_a,
            "--count",
            &count,
            "--size",
            "100",
            // Paced: forwarders have no end-to-end flow control yet, and an unpaced burst on a
            // busy two-core machine can take tens of seconds to repair.
            "--rate",
            "10000",
            "--driver",
            "poll",
        ],
    );
    phase(t0, "publisher done");
    assert!(status.success(), "publish: {status} {err}");
    let published: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "published")
        .expect("a published line");
    assert_eq!(published["published"], N);
    assert_eq!(published["sent"], true);
    let source = published["source"].as_str().unwrap_or_default().to_owned();

    let summary = sub.wait_event("summary", |_| true);
    phase(t0, "subscriber done");
    let (status, _) = sub.finish();
    assert!(status.success(), "subscribe: {status}");
    assert_eq!(summary["delivered"], N, "{summary}");
    for field in ["lost", "gaps", "out_of_order", "corrupt"] {
        assert_eq!(summary[field], 0, "{field}: {summary}");
    }
    assert_eq!(summary["sources"][0]["source"], source.as_str());
    assert_eq!(summary["sources"][0]["complete"], true);

    // Both daemons delivered the whole run too, and show it in their stats files.
    for node in [&mut node_a, &mut node_b] {
        let done = node.wait_event("source_complete", |v| v["source"] == source.as_str());
        assert_eq!(
            (done["delivered"].as_u64(), done["lost"].as_u64()),
            (Some(N), Some(0))
        );
    }
    phase(t0, "daemons complete");
    let stats_a = stats::read(&stats::path_of(&run_dir, "a")).expect("a's stats file");
    let g = stats_a
        .groups
        .iter()
        .find(|g| g.name == "g")
        .expect("group g in a's stats");
    assert!(
        g.sources.iter().any(|s| s.delivered == N && s.complete),
        "{g:?}"
    );
    assert_eq!(stats_a.driver, "poll");

    let rd = run_dir.to_str().unwrap_or_default();
    let (status, out, err) = run(STAT, &["--run-dir", rd, "--json"]);
    assert!(status.success(), "phyla-stat: {err}");
    let v: Value = serde_json::from_str(out.trim()).expect("phyla-stat --json");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(2), "{v}");
    let (status, out, _) = run(STAT, &["--run-dir", rd]);
    assert!(status.success());
    assert!(
        out.contains("node a (") && out.contains("node b ("),
        "{out}"
    );
    let (status, out, err) = run(PHYLA, &["tree", "--group", "g", "--run-dir", rd]);
    assert!(status.success(), "phyla tree: {err}");
    assert!(
        out.starts_with("digraph") && out.contains("label=\"a\\n"),
        "{out}"
    );

    phase(t0, "tools read the run directory");
    for node in [node_a, node_b] {
        let lines = stop(node, &run_dir);
        let r = report_for(&lines, &source).expect("a delivery report for the publisher");
        assert_eq!(
            (r["delivered"].as_u64(), r["complete"].as_bool()),
            (Some(N), Some(true))
        );
    }
}

#[test]
fn daemons_publish_their_configured_loads_and_report_every_source() {
    let _serial = serial();
    let t0 = std::time::Instant::now();
    const M: u64 = 5_000;
    let dir = TempDir::new("daemon-load");
    let run_dir = dir.join("run");
    let ports = [free_port(1), free_port(1), free_port(1)];
    let publish =
        format!("[group.publish]\nmessages = {M}\nmessage_bytes = 48\nstart_delay_ms = 200\n");
    let mut nodes = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let contacts = if i == 0 {
            String::new()
        } else {
            format!("127.0.0.1:{}", ports[0])
        };
        let quoted = if contacts.is_empty() {
            String::new()
        } else {
            format!("\"{contacts}\"")
        };
        let group = format!(
            "[[group]]\nname = \"load\"\ncontacts = [{quoted}]\nexpected_members = 3\n{OVERRIDES}{}",
            if name == "b" { "" } else { &publish }
        );
        let cfg = config(&dir, name, ports[i], "auto", &group);
        nodes.push(start(name, &cfg));
    }
    // The publishers' member ids, from their group_joining lines.
    let mut sources = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        let joining = n.wait_event("group_joining", |_| true);
        if i != 1 {
            sources.push(joining["member"].as_str().unwrap_or_default().to_owned());
        }
    }
    phase(t0, "daemons started");
    for n in &mut nodes {
        for s in &sources {
            let done = n.wait_event("source_complete", |v| v["source"] == s.as_str());
            assert_eq!(done["delivered"], M, "{}: {done}", n.label);
            assert_eq!(
                (done["gaps"].as_u64(), done["lost"].as_u64()),
                (Some(0), Some(0))
            );
        }
    }
    phase(t0, "every source complete everywhere");
    for n in nodes {
        let label = n.label.clone();
        let lines = stop(n, &run_dir);
        for s in &sources {
            let r = report_for(&lines, s).unwrap_or_else(|| panic!("{label}: no report of {s}"));
            assert_eq!(r["delivered"], M, "{label}: {r}");
            assert_eq!(r["corrupt"], 0);
        }
        if label != "b" {
            assert!(
                lines
                    .iter()
                    .any(|v| v["event"] == "publish_finished" && v["published"] == M)
            );
        }
    }
}

#[test]
fn node_refuses_a_second_instance_of_the_same_name() {
    let _serial = serial();
    let dir = TempDir::new("twice");
    let run_dir = dir.join("run");
    let first = config(&dir, "same", free_port(1), "auto", "");
    let node = start("same", &first);
    let second = dir.join("second.toml");
    let text = std::fs::read_to_string(&first)
        .expect("read")
        .replace("bind = \"127.0.0.1:", "bind = \"127.0.0.2:");
    std::fs::write(&second, text).expect("write");
    let (status, _, err) = run(NODE, &["--config", second.to_str().unwrap_or_default()]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("already running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    stop(node, &run_dir);
}
