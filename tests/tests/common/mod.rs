//! A `phyla-peer` child process, shared by the multi-process tests.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// A `phyla-peer` process. Dropping it kills the process if it still runs.
pub(crate) struct Peer {
    role: &'static str,
    child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `phyla-peer ROLE ARGS...` in this network namespace.
    pub(crate) fn spawn(role: &'static str, args: Vec<String>) -> Self {
        Self::spawn_in(None, role, args)
    }

    /// Starts `phyla-peer ROLE ARGS...` inside network namespace `netns` (with `ip netns exec`),
    /// or in this one.
    pub(crate) fn spawn_in(netns: Option<&str>, role: &'static str, args: Vec<String>) -> Self {
        let bin = env!("CARGO_BIN_EXE_phyla-peer");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg(role)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning phyla-peer {role}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            role,
            child,
            stdin,
            stdout,
        }
    }

    /// The next JSON line; panics with the exit status if there is none.
    pub(crate) fn line(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading from phyla-peer {}: {e}", self.role));
        if n == 0 {
            let status = self.child.wait();
            panic!(
                "phyla-peer {} ended without a report: {status:?}",
                self.role
            );
        }
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("phyla-peer {} printed {line:?}: {e}", self.role))
    }

    /// The final report, and whether the peer succeeded (exit status is in the report then).
    pub(crate) fn last(&mut self) -> (Value, bool) {
        let mut report = self.line();
        self.stdin = None;
        let status = self.child.wait().expect("waiting for phyla-peer");
        let ok = status.success() && report.get("error").is_none();
        if !ok {
            report["exit"] = Value::String(status.to_string());
        }
        (report, ok)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
