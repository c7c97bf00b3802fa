//! Helpers shared by the tools' integration tests: temporary directories, free ports, and
//! child processes whose output lines are read on a thread, so that a test waits for a line
//! with a generous bound (to fail rather than hang), never for a fixed time.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(
    clippy::disallowed_methods,
    reason = "tests: they bind probe sockets, spawn readers and bound their waits"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any wait may take before the test fails: only a guard against hanging. A member
/// that lost its tree path while members left catches up by repair, which has been seen to take
/// a minute on a busy two-core machine.
pub(crate) const PATIENCE: Duration = Duration::from_secs(300);

/// A temporary directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("phyla-tools-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a temporary directory");
        Self(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bound, then released), and `span - 1`
/// ports after it free too (for shards).
pub(crate) fn free_port(span: u16) -> u16 {
    for _ in 0..100 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("binding a probe socket");
        let port = s.local_addr().expect("probe socket address").port();
        if port > 65535 - span {
            continue;
        }
        let rest: Vec<_> = (1..span)
            .map(|i| UdpSocket::bind(("127.0.0.1", port + i)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no free port range of {span} on 127.0.0.1");
}

/// The address 127.0.0.1:`port`.
pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A child process whose standard output is read line by line on a thread.
pub(crate) struct Proc {
    pub(crate) label: String,
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub(crate) seen: Vec<String>,
    stderr: Option<std::process::ChildStderr>,
}

impl Proc {
    /// Starts `bin` with `args`.
    pub(crate) fn spawn(label: &str, bin: &str, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label} ({bin}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            label: label.to_owned(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The first line, among those already read and those to come, that is a JSON object
    /// with `event` = `kind` and for which `want` holds; panics after [`PATIENCE`] or if the
    /// process ends first.
    pub(crate) fn wait_event(&mut self, kind: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == kind && want(v))
        {
            return v;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        panic!("{}: not a JSON line: {line:?}", self.label);
                    };
                    if v["event"] == kind && want(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no {kind:?} line within {PATIENCE:?}; saw:\n{}",
                        self.label,
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let err = self.stderr_text();
                    panic!(
                        "{}: ended before a {kind:?} line; stderr: {err}; saw:\n{}",
                        self.label,
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process.
        let r = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(r, 0, "{}: kill(SIGTERM) failed", self.label);
    }

    /// Waits for the process to end (bounded); returns its status and the rest of its output.
    pub(crate) fn finish(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            match self.child.try_wait().expect("waiting for a child") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    panic!("{}: did not exit within {PATIENCE:?}", self.label);
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line.clone());
            rest.push(line);
        }
        (status, rest)
    }

    /// What the process wrote on standard error (after it ended).
    pub(crate) fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `bin args` to completion (bounded) and returns its status, stdout and stderr.
pub(crate) fn run(bin: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(bin, bin, args);
    let (status, lines) = p.finish();
    let err = p.stderr_text();
    (status, lines.join("\n"), err)
}
