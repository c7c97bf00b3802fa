//! The parent's side of a fan-out measurement: one publisher and N receiver processes, each a
//! child of this same binary, steered through their standard input.
//!
//! [`crate::child::run_pair`] starts exactly two processes that run on their own once started; a
//! fan-out needs N + 1, and needs to tell them when to start and when to stop (an interior node of
//! a group's tree must keep forwarding after its own measurement is over, until every receiver is
//! done). So each child here also gets a pipe on its standard input, and the conversation is:
//!
//! - child → parent: `READY <endpoint>` once it can be connected to (or has joined), then
//!   `RESULT <json>` once its measurement is over; other lines are ignored;
//! - parent → child: `GO` (start measuring), then `STOP` (exit) once every child has reported.
//!
//! A child whose parent disappears reads end-of-file on its standard input and stops too.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use crate::child::{Supervised, describe};

/// A set of running children with a common deadline; every child still running when the fleet
/// is dropped is killed.
#[derive(Debug)]
pub(crate) struct Fleet {
    exe: PathBuf,
    deadline: Instant,
    children: Vec<Proc>,
    events: mpsc::Sender<Event>,
    inbox: mpsc::Receiver<Event>,
}

impl Fleet {
    /// An empty fleet whose children must all have finished within `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start its children")?;
        let (events, inbox) = mpsc::channel();
        Ok(Self {
            exe,
            deadline: Instant::now() + timeout,
            children: Vec::new(),
            events,
            inbox,
        })
    }

    /// Starts a child with `args`; `name` is how errors refer to it. Returns its index.
    pub(crate) fn spawn(&mut self, name: String, args: &[String]) -> Result<usize> {
        let index = self.children.len();
        let mut child = Supervised::spawn(
            Command::new(&self.exe).args(args).stdin(Stdio::piped()),
            &format!("the {name}"),
            self.events.clone(),
            move |line| Event::Line(index, line),
            Event::Closed(index),
        )?;
        let stdin = child.take_stdin().context("child stdin")?;
        self.children.push(Proc {
            name,
            child,
            stdin: Some(stdin),
            ready: None,
            result: None,
            open: true,
        });
        Ok(index)
    }

    /// Waits until child `index` has said `READY`; returns its endpoint.
    pub(crate) fn wait_ready(&mut self, index: usize) -> Result<String> {
        loop {
            if let Some(endpoint) = self.child(index)?.ready.clone() {
                return Ok(endpoint);
            }
            self.next_event(&format!("waiting for the {} to be ready", self.name(index)))?;
        }
    }

    /// Sends one line to every child still running.
    pub(crate) fn send_all(&mut self, line: &str) {
        for proc in &mut self.children {
            proc.send(line);
        }
    }

    /// Waits until every child has sent its `RESULT`.
    pub(crate) fn wait_results(&mut self) -> Result<()> {
        while let Some(index) = self.children.iter().position(|proc| proc.result.is_none()) {
            self.next_event(&format!("waiting for the {}'s result", self.name(index)))?;
        }
        Ok(())
    }

    /// Tells every child to stop, waits for them to exit (killing any that take more than two
    /// seconds), and returns their results in spawn order.
    ///
    /// # Errors
    /// When a child exits unsuccessfully or sent no result.
    pub(crate) fn finish(mut self) -> Result<Vec<Value>> {
        self.send_all("STOP");
        let mut results = Vec::with_capacity(self.children.len());
        for proc in &mut self.children {
            let status = proc.child.wait_briefly(AFTER_STOP);
            if !matches!(status, Ok(status) if status.success()) {
                let status = describe(status);
                let tail = proc.child.stderr_tail();
                bail!("the {} failed ({status}){tail}", proc.name);
            }
            let result = proc
                .result
                .take()
                .with_context(|| format!("the {} reported nothing", proc.name))?;
            results.push(result);
        }
        Ok(results)
    }

    fn child(&self, index: usize) -> Result<&Proc> {
        self.children
            .get(index)
            .with_context(|| format!("no child {index}"))
    }

    fn name(&self, index: usize) -> String {
        self.children
            .get(index)
            .map_or_else(|| format!("child {index}"), |proc| proc.name.clone())
    }

    /// Handles the next line or exit of any child.
    fn next_event(&mut self, doing: &str) -> Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let event = match self.inbox.recv_timeout(left) {
            Ok(event) => event,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let tails: String = self
                    .children
                    .iter_mut()
                    .map(|proc| {
                        let tail = proc.child.stderr_tail();
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!("\n  {}:{tail}", proc.name)
                        }
                    })
                    .collect();
                bail!("timed out {doing}{tails}");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("lost the children's output"),
        };
        match event {
            Event::Line(index, line) => {
                let Some(proc) = self.children.get_mut(index) else {
                    return Ok(());
                };
                if let Some(endpoint) = line.strip_prefix("READY ") {
                    proc.ready = Some(endpoint.trim().to_owned());
                } else if let Some(json) = line.strip_prefix("RESULT ") {
                    let value: Value = serde_json::from_str(json)
                        .with_context(|| format!("malformed result line from the {}", proc.name))?;
                    proc.result = Some(value);
                }
            }
            Event::Closed(index) => {
                let Some(proc) = self.children.get_mut(index) else {
                    return Ok(());
                };
                proc.open = false;
                if proc.result.is_none() {
                    let status = describe(proc.child.wait_briefly(AFTER_STOP));
                    let tail = proc.child.stderr_tail();
                    bail!("the {} exited without a result ({status}){tail}", proc.name);
                }
            }
        }
        Ok(())
    }
}

/// What the reader threads report.
#[derive(Debug)]
enum Event {
    Line(usize, String),
    Closed(usize),
}

/// One started child.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Supervised,
    stdin: Option<ChildStdin>,
    ready: Option<String>,
    result: Option<Value>,
    open: bool,
}

impl Proc {
    fn send(&mut self, line: &str) {
        if !self.open {
            return;
        }
        if let Some(stdin) = &mut self.stdin {
            // A child that already exited cannot be told anything; its exit status tells.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing standard input tells a well-behaved child to stop; `Supervised` then kills
        // it if it is still running.
        self.stdin = None;
    }
}

/// Why the fleet kills a child that has not exited two seconds after `STOP`.
const AFTER_STOP: &str = "still running 2 s after STOP";

/// Child side: the parent's commands, read from standard input by a thread of their own.
#[derive(Debug)]
pub(crate) struct Control {
    inbox: mpsc::Receiver<String>,
    go: bool,
    stop: bool,
}

impl Control {
    /// Starts reading standard input.
    pub(crate) fn start() -> Self {
        let (lines, inbox) = mpsc::channel();
        thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines.send(line.trim().to_owned()).is_err() {
                    return;
                }
            }
            // End of input: the parent is gone or done with us.
            let _ = lines.send("STOP".to_owned());
        });
        Self {
            inbox,
            go: false,
            stop: false,
        }
    }

    /// Whether the parent said `GO` (checks without waiting).
    pub(crate) fn go(&mut self) -> bool {
        self.drain();
        self.go
    }

    /// Whether the parent said `STOP` (or went away); checks without waiting.
    pub(crate) fn stop(&mut self) -> bool {
        self.drain();
        self.stop
    }

    /// Waits up to `timeout` for `GO`, servicing `cycle` meanwhile (a node must keep running its
    /// duty cycle while it waits: its peers are joining).
    ///
    /// # Errors
    /// When `timeout` passes, the parent says `STOP` first, or `cycle` fails.
    pub(crate) fn wait_go(
        &mut self,
        timeout: Duration,
        mut cycle: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let until = Instant::now() + timeout;
        while !self.go() {
            if self.stop {
                bail!("stopped before GO");
            }
            if Instant::now() > until {
                return Err(anyhow!("no GO within {timeout:?}"));
            }
            cycle()?;
        }
        Ok(())
    }

    fn drain(&mut self) {
        while let Ok(line) = self.inbox.try_recv() {
            match line.as_str() {
                "GO" => self.go = true,
                "STOP" => self.stop = true,
                _ => {}
            }
        }
    }
}
