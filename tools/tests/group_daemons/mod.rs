//! `phyla-node` daemons for the multi-process group tests: configuration files in a temporary
//! directory, processes (optionally inside a testbed host's network namespace) whose JSON log
//! lines go to files, and the checks on what they report.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(
    unreachable_pub,
    clippy::disallowed_methods,
    reason = "test support: processes, ports and wall-clock bounds on waits"
)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous bound on any wait: a test fails rather than hangs (never a timed assertion).
pub const PATIENCE: Duration = Duration::from_secs(300);

/// What one node of a test runs.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub bind: String,
    pub contacts: Vec<String>,
    pub driver: String,
    /// `Some(messages)`: publish that many checkable messages.
    pub publish: Option<u64>,
    pub message_bytes: usize,
    /// Publishing rate; `None`: as fast as backpressure allows.
    pub rate: Option<u64>,
    pub start_delay_ms: u64,
    /// Network namespace to run in (testbed host), if any.
    pub netns: Option<String>,
}

/// A running `phyla-node`. Dropping it kills the process if it still runs.
pub struct Daemon {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("phyla-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("scratch directory");
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `n` UDP ports free on 127.0.0.1 right now.
pub fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<_> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect()
}

/// Writes the node's configuration file into `dir`.
pub fn write_config(dir: &Path, spec: &NodeSpec) -> PathBuf {
    let mut t = String::new();
    let contacts: Vec<String> = spec.contacts.iter().map(|c| format!("{c:?}")).collect();
    let _ = writeln!(t, "name = {:?}", spec.name);
    let _ = writeln!(t, "identity = {:?}", format!("{}.id", spec.name));
    let _ = writeln!(t, "bind = {:?}", spec.bind);
    let _ = writeln!(t, "driver = {:?}", spec.driver);
    let _ = writeln!(t, "idle = \"park\"");
    let _ = writeln!(t, "threading = \"invoker\"");
    let _ = writeln!(t, "run_dir = {:?}", dir.display().to_string());
    let _ = writeln!(t, "stats_interval_ms = 200");
    let _ = writeln!(t, "[[group]]");
    let _ = writeln!(t, "name = \"test\"");
    let _ = writeln!(t, "contacts = [{}]", contacts.join(", "));
    let _ = writeln!(t, "expected_members = 8");
    if let Some(n) = spec.publish {
        let _ = writeln!(t, "[group.publish]");
        let _ = writeln!(t, "messages = {n}");
        let _ = writeln!(t, "message_bytes = {}", spec.message_bytes);
        let _ = writeln!(t, "start_delay_ms = {}", spec.start_delay_ms);
        if let Some(r) = spec.rate {
            let _ = writeln!(t, "messages_per_sec = {r}");
        }
    }
    let path = dir.join(format!("{}.toml", spec.name));
    fs::write(&path, t).expect("config");
    path
}

impl Daemon {
    /// Starts `phyla-node --config CONFIG`, its log lines into `DIR/NAME.log`.
    pub fn start(dir: &Path, spec: &NodeSpec) -> Self {
        let config = write_config(dir, spec);
        let log = dir.join(format!("{}.log", spec.name));
        let out = fs::File::create(&log).expect("log file");
        let bin = env!("CARGO_BIN_EXE_phyla-node");
        let mut command = match &spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting phyla-node {}: {e}", spec.name));
        Self {
            name: spec.name.clone(),
            child,
            log,
        }
    }

    /// The log lines so far (a partial last line is left for later).
    pub fn lines(&self) -> Vec<Value> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Lines of one event kind.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["event"] == kind)
            .collect()
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.exited() {
                return s.success();
            }
            if start.elapsed() > PATIENCE {
                self.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// This node's id (64 hex digits) from its stats file.
    pub fn node_id(&self, dir: &Path) -> Option<String> {
        let text = fs::read_to_string(dir.join(format!("{}.stats.json", self.name))).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["node_id"].as_str().map(str::to_owned)
    }

    /// The group's tree links this node last wrote to its stats file: (source, eager peers).
    pub fn tree_links(&self, dir: &Path) -> Vec<(String, Vec<String>)> {
        tree_links(&dir.join(format!("{}.stats.json", self.name)))
    }
}

/// The tree links in a node's stats file, every group's: (source, eager peers) per source.
/// Empty if the file is missing or not (yet) whole.
pub fn tree_links(stats: &Path) -> Vec<(String, Vec<String>)> {
    let Some(v) = fs::read_to_string(stats)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in v["groups"].as_array().into_iter().flatten() {
        for s in g["tree"].as_array().into_iter().flatten() {
            let source = s["source"].as_str().unwrap_or_default().to_owned();
            let eager = s["eager"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect();
            out.push((source, eager));
        }
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `done` holds, failing (with every node's last lines) after [`PATIENCE`] or if
/// a node that should run has exited.
pub fn wait_until(nodes: &mut [Daemon], what: &str, mut done: impl FnMut(&mut [Daemon]) -> bool) {
    let start = Instant::now();
    loop {
        if done(nodes) {
            return;
        }
        let exited: Vec<String> = nodes
            .iter_mut()
            .filter_map(|d| d.exited().map(|s| format!("{}: {s}", d.name)))
            .collect();
        if start.elapsed() > PATIENCE || !exited.is_empty() {
            for d in nodes.iter() {
                let lines = d.lines();
                let tail: Vec<String> = lines
                    .iter()
                    .rev()
                    .take(12)
                    .rev()
                    .map(Value::to_string)
                    .collect();
                eprintln!("--- {} ---\n{}", d.name, tail.join("\n"));
            }
            panic!("gave up waiting for {what} (exited: {exited:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sources a node reported complete (`source_complete` lines).
pub fn completed_sources(d: &Daemon) -> usize {
    d.events("source_complete").len()
}

/// Checks a node's final `delivery_report` lines: `sources` sources, each with every one of
/// `messages` delivered once, in order, none lost.
pub fn check_reports(d: &Daemon, sources: usize, messages: u64) {
    let reports = d.events("delivery_report");
    assert_eq!(
        reports.len(),
        sources,
        "{}: one report per source: {reports:?}",
        d.name
    );
    for r in &reports {
        assert_eq!(r["delivered"], messages, "{}: {r}", d.name);
        assert_eq!(r["first_sequence"], 0, "{}: {r}", d.name);
        assert_eq!(r["gaps"], 0, "{}: {r}", d.name);
        assert_eq!(r["lost"], 0, "{}: {r}", d.name);
        assert_eq!(r["out_of_order"], 0, "{}: {r}", d.name);
        assert_eq!(r["corrupt"], 0, "{}: {r}", d.name);
        assert_eq!(r["complete"], true, "{}: {r}", d.name);
    }
}
