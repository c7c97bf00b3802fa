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

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

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
        let mut child = Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut stderr = child.stderr.take().context("child stderr")?;
        let events = self.events.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if events.send(Event::Line(index, line)).is_err() {
                    return;
                }
            }
            // The parent may have stopped listening; nothing to do about it then.
            let _ = events.send(Event::Closed(index));
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            // Read errors only shorten the quoted text.
            let _ = stderr.read_to_string(&mut text);
            text
        });
        self.children.push(Proc {
            name,
            child,
            stdin: Some(stdin),
            stderr: Some(stderr),
            stderr_text: None,
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
            let status = proc.wait_briefly();
            if !matches!(status, Ok(status) if status.success()) {
                let status = describe(status);
                let tail = proc.stderr_tail();
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
                        let tail = proc.stderr_tail();
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
                    let status = describe(proc.wait_briefly());
                    let tail = proc.stderr_tail();
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
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<thread::JoinHandle<String>>,
    stderr_text: Option<String>,
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

    /// Waits up to two seconds for the exit, then kills the child.
    fn wait_briefly(&mut self) -> Result<ExitStatus, String> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    self.kill();
                    return Err("killed: still running 2 s after STOP".to_owned());
                }
                Err(error) => return Err(format!("wait failed: {error}")),
            }
        }
    }

    fn kill(&mut self) {
        // The child may have exited in between; either way it is gone afterwards.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the child's standard error ("" if empty). Kills a running child first,
    /// since its standard error is complete only once it has exited.
    fn stderr_tail(&mut self) -> String {
        if self.stderr_text.is_none() {
            if matches!(self.child.try_wait(), Ok(None)) {
                self.kill();
            }
            let text = self
                .stderr
                .take()
                .and_then(|handle| handle.join().ok())
                .unwrap_or_default();
            self.stderr_text = Some(text);
        }
        let text = self.stderr_text.as_deref().unwrap_or_default().trim();
        if text.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(6)..].join("\n    ");
        format!("\n    {tail}")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing standard input tells a well-behaved child to stop; kill it in any case.
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

fn describe(status: Result<ExitStatus, String>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(text) => text,
    }
}

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
