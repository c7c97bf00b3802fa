//! The two processes of a measurement: how the parent starts them, and what they print.
//!
//! The parent re-executes its own binary (`std::env::current_exe()`) with `--role ROLE` and a
//! [`ChildSpec`]. A child pins itself to its core, runs its side of the contender and talks to the
//! parent through its standard output, one line per message:
//! - `READY <endpoint>`: the receiving side has bound and can be sent to (first child only);
//! - `RESULT <json>`: its report, as `{"core": .., "pinned": .., "report": {..}}`.
//!
//! Anything else on standard output is ignored; errors go to standard error and a non-zero exit,
//! and the parent quotes the end of standard error in its own error. The parent kills a child that
//! outlives its timeout (and any child left behind when it returns early).

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::cli::{Args, CoreChoice};

/// Which side of a measurement a child process runs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Role {
    /// Throughput receiver: binds, counts.
    Receiver,
    /// Throughput sender: sends as fast as it can.
    Sender,
    /// Ping-pong server: binds, echoes.
    Server,
    /// Ping-pong client: times round trips.
    Client,
}

impl Role {
    /// The word on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "rx",
            Self::Sender => "tx",
            Self::Server => "server",
            Self::Client => "client",
        }
    }

    /// Whether this side binds first and reports `READY`.
    pub const fn binds(self) -> bool {
        matches!(self, Self::Receiver | Self::Server)
    }
}

impl std::str::FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        Ok(match text {
            "rx" => Self::Receiver,
            "tx" => Self::Sender,
            "server" => Self::Server,
            "client" => Self::Client,
            _ => bail!("unknown role {text:?}"),
        })
    }
}

/// Everything a child process needs, passed on its command line (hidden `--role` mode).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildSpec {
    /// Which side to run.
    pub role: Role,
    /// The contender's `name()`.
    pub contender: String,
    /// Payload size in bytes (already clamped by the contender).
    pub payload_bytes: usize,
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Where the other side listens (for the sender or client).
    pub endpoint: Option<String>,
    /// Throughput: time from the first message to the start of the measured window.
    /// Ping-pong: unused.
    pub warmup: Duration,
    /// Throughput: length of the measured window. Ping-pong: cap on the measured phase.
    pub duration: Duration,
    /// Ping-pong: measured round trips.
    pub rounds: u64,
    /// Ping-pong: round trips before measuring.
    pub warmup_rounds: u64,
    /// Both processes are pinned to the same core: a busy-polling side should yield the core
    /// when it finds nothing, or it starves its peer for a whole scheduler slice.
    pub shared_core: bool,
}

impl ChildSpec {
    /// A spec with the given role, contender and size, and everything else zero.
    pub fn new(role: Role, contender: &str, payload_bytes: usize) -> Self {
        Self {
            role,
            contender: contender.to_owned(),
            payload_bytes,
            core: None,
            endpoint: None,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            rounds: 0,
            warmup_rounds: 0,
            shared_core: false,
        }
    }

    /// The command-line arguments that [`ChildSpec::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--role".to_owned(),
            self.role.as_str().to_owned(),
            "--contender".to_owned(),
            self.contender.clone(),
            "--payload-bytes".to_owned(),
            self.payload_bytes.to_string(),
            "--warmup-ns".to_owned(),
            self.warmup.as_nanos().to_string(),
            "--duration-ns".to_owned(),
            self.duration.as_nanos().to_string(),
            "--rounds".to_owned(),
            self.rounds.to_string(),
            "--warmup-rounds".to_owned(),
            self.warmup_rounds.to_string(),
        ];
        if let Some(core) = self.core {
            args.extend(["--core".to_owned(), core.to_string()]);
        }
        if let Some(endpoint) = &self.endpoint {
            args.extend(["--endpoint".to_owned(), endpoint.clone()]);
        }
        if self.shared_core {
            args.push("--shared-core".to_owned());
        }
        args
    }

    /// Reads a spec from arguments that start with `--role`.
    ///
    /// # Errors
    /// When an argument is unknown, missing or malformed.
    pub fn parse(args: &mut Args) -> Result<Self> {
        let mut spec = Self::new(Role::Receiver, "", 0);
        let mut have_role = false;
        while let Some(flag) = args.next_flag() {
            match flag.as_str() {
                "--role" => {
                    spec.role = args.value(&flag)?;
                    have_role = true;
                }
                "--contender" => spec.contender = args.raw_value(&flag)?,
                "--payload-bytes" => spec.payload_bytes = args.value(&flag)?,
                "--core" => spec.core = Some(args.value(&flag)?),
                "--endpoint" => spec.endpoint = Some(args.raw_value(&flag)?),
                "--warmup-ns" => spec.warmup = Duration::from_nanos(args.value(&flag)?),
                "--duration-ns" => spec.duration = Duration::from_nanos(args.value(&flag)?),
                "--rounds" => spec.rounds = args.value(&flag)?,
                "--warmup-rounds" => spec.warmup_rounds = args.value(&flag)?,
                "--shared-core" => spec.shared_core = true,
                _ => bail!("unknown child argument {flag:?}"),
            }
        }
        if !have_role || spec.contender.is_empty() || spec.payload_bytes == 0 {
            bail!("a child needs --role, --contender and --payload-bytes");
        }
        Ok(spec)
    }

    /// The endpoint, which the sending side needs.
    ///
    /// # Errors
    /// When the parent did not pass one.
    pub fn endpoint(&self) -> Result<&str> {
        self.endpoint
            .as_deref()
            .context("this role needs --endpoint")
    }
}

/// The cores the two processes of every measurement are pinned to.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct CorePlan {
    /// Core of the sender or client.
    pub sender: Option<usize>,
    /// Core of the receiver or server.
    pub receiver: Option<usize>,
}

impl CorePlan {
    /// Resolves the user's choice against the cores this process may run on.
    pub fn resolve(choice: CoreChoice) -> Self {
        match choice {
            CoreChoice::Unpinned => Self {
                sender: None,
                receiver: None,
            },
            CoreChoice::Fixed { sender, receiver } => Self {
                sender: Some(sender),
                receiver: Some(receiver),
            },
            CoreChoice::Auto => {
                let ids: Vec<usize> = core_affinity::get_core_ids()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|core| core.id)
                    .collect();
                match ids[..] {
                    [] => Self {
                        sender: None,
                        receiver: None,
                    },
                    [only] => Self {
                        sender: Some(only),
                        receiver: Some(only),
                    },
                    [first, second, ..] => Self {
                        sender: Some(first),
                        receiver: Some(second),
                    },
                }
            }
        }
    }

    /// Whether both processes share one core (then busy-polling costs a scheduler slice).
    pub fn shared(&self) -> bool {
        self.sender.is_some() && self.sender == self.receiver
    }

    /// The plan as JSON for the report.
    pub fn to_json(&self) -> Value {
        json!({ "sender": self.sender, "receiver": self.receiver, "shared": self.shared() })
    }
}

/// Child side: pins the process to `spec.core` if given; returns whether that worked.
pub fn pin_self(spec: &ChildSpec) -> bool {
    let Some(id) = spec.core else { return false };
    let pinned = core_affinity::set_for_current(core_affinity::CoreId { id });
    if !pinned {
        eprintln!(
            "warning: could not pin {} to core {id}; running unpinned",
            spec.role.as_str()
        );
    }
    pinned
}

/// Child side: tells the parent where to connect.
pub fn announce_ready(endpoint: &str) {
    println!("READY {endpoint}");
}

/// Child side: prints the result line.
pub fn announce_result(spec: &ChildSpec, pinned: bool, report: Value) {
    let envelope = json!({ "core": spec.core, "pinned": pinned, "report": report });
    println!("RESULT {envelope}");
}

/// What the parent collected from one measurement.
#[derive(Debug)]
pub struct PairOutcome {
    /// The binding side's report (receiver or server), if it sent one.
    pub binder: Option<Value>,
    /// The connecting side's report (sender or client), if it sent one.
    pub connector: Option<Value>,
}

/// Parent side: runs one measurement as two child processes of this same binary.
///
/// Starts `binder` (receiver or server), waits for its `READY` line, starts `connector` (sender or
/// client) with that endpoint, and collects the `RESULT` lines until both have exited. Kills both
/// if that takes longer than `timeout` from the start.
///
/// # Errors
/// When a child cannot be started, exits unsuccessfully, or the timeout passes.
pub fn run_pair(
    binder: &ChildSpec,
    connector: &ChildSpec,
    timeout: Duration,
) -> Result<PairOutcome> {
    let exe = std::env::current_exe().context("finding this program to start its children")?;
    let deadline = Instant::now() + timeout;
    let (events, inbox) = mpsc::channel();

    let mut first = spawn_side(&exe, binder, Side::Binder, events.clone())?;
    let endpoint = loop {
        match recv_until(&inbox, deadline)? {
            Event::Line(Side::Binder, line) => {
                if let Some(endpoint) = line.strip_prefix("READY ") {
                    break endpoint.trim().to_owned();
                }
            }
            Event::Closed(Side::Binder) => {
                let status = describe(first.wait_briefly(OUTLIVED));
                let role = binder.role.as_str();
                bail!(
                    "{role} exited before it was ready ({status}){}",
                    first.stderr_tail()
                );
            }
            Event::Line(..) | Event::Closed(..) => {}
        }
    };

    let mut connector = connector.clone();
    connector.endpoint = Some(endpoint);
    let mut second = spawn_side(&exe, &connector, Side::Connector, events)?;

    let mut outcome = PairOutcome {
        binder: None,
        connector: None,
    };
    let (mut binder_open, mut connector_open) = (true, true);
    while binder_open || connector_open {
        let event = match recv_until(&inbox, deadline) {
            Ok(event) => event,
            Err(error) => {
                let detail = format!("{}{}", first.stderr_tail(), second.stderr_tail());
                return Err(error.context(format!("measurement did not finish{detail}")));
            }
        };
        match event {
            Event::Line(side, line) => {
                if let Some(json) = line.strip_prefix("RESULT ") {
                    let value: Value = serde_json::from_str(json)
                        .with_context(|| format!("malformed result line {json:?}"))?;
                    match side {
                        Side::Binder => outcome.binder = Some(value),
                        Side::Connector => outcome.connector = Some(value),
                    }
                }
            }
            Event::Closed(Side::Binder) => binder_open = false,
            Event::Closed(Side::Connector) => connector_open = false,
        }
    }
    for (running, spec) in [(&mut first, binder), (&mut second, &connector)] {
        let status = running.wait_briefly(OUTLIVED);
        if !matches!(status, Ok(status) if status.success()) {
            let status = describe(status);
            bail!(
                "{} failed ({status}){}",
                spec.role.as_str(),
                running.stderr_tail()
            );
        }
    }
    for (spec, result) in [(binder, &outcome.binder), (&connector, &outcome.connector)] {
        let unpinned = result
            .as_ref()
            .is_some_and(|result| result["pinned"] == false);
        if let (Some(core), true) = (spec.core, unpinned) {
            eprintln!(
                "warning: the {} could not be pinned to core {core}",
                spec.role.as_str()
            );
        }
    }
    Ok(outcome)
}

/// Which child a line came from.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Side {
    Binder,
    Connector,
}

#[derive(Debug)]
enum Event {
    Line(Side, String),
    Closed(Side),
}

/// A started child process of a measurement: its standard output is forwarded line by line as
/// events, its standard error is kept for error messages, and it is killed and reaped on drop if
/// still running. Shared by [`run_pair`] and the fan-out's fleet.
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Child,
    stderr: Option<thread::JoinHandle<String>>,
    stderr_text: Option<String>,
}

impl Supervised {
    /// Starts `command` with piped standard output and error (its standard input is the
    /// caller's choice); each line of standard output goes to `events` as `line(text)`, and
    /// `closed` follows at its end. `what` names the child in the error.
    pub(crate) fn spawn<E: Send + 'static>(
        command: &mut Command,
        what: &str,
        events: mpsc::Sender<E>,
        line: impl Fn(String) -> E + Send + 'static,
        closed: E,
    ) -> Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut stderr = child.stderr.take().context("child stderr")?;
        thread::spawn(move || {
            for text in BufReader::new(stdout).lines() {
                let Ok(text) = text else { break };
                if events.send(line(text)).is_err() {
                    return;
                }
            }
            // The parent may have stopped listening; nothing to do about it then.
            let _ = events.send(closed);
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            // Read errors only shorten the quoted text.
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Self {
            child,
            stderr: Some(stderr),
            stderr_text: None,
        })
    }

    /// The child's standard input, if it was piped and not taken yet.
    pub(crate) fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits up to two seconds for the exit, then kills the child (`why` says what it outlived).
    pub(crate) fn wait_briefly(&mut self, why: &str) -> Result<ExitStatus, String> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    self.kill();
                    return Err(format!("killed: {why}"));
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

    /// The last lines of the child's standard error, for an error message ("" if empty). Kills
    /// a running child first, since its standard error is complete only once it has exited.
    pub(crate) fn stderr_tail(&mut self) -> String {
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

impl Drop for Supervised {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// An exit status, or why there is none, for an error message.
pub(crate) fn describe(status: Result<ExitStatus, String>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(text) => text,
    }
}

/// Starts the child of `spec` on `side`.
fn spawn_side(
    exe: &std::path::Path,
    spec: &ChildSpec,
    side: Side,
    events: mpsc::Sender<Event>,
) -> Result<Supervised> {
    let what = format!("{} for {}", spec.role.as_str(), spec.contender);
    Supervised::spawn(
        Command::new(exe).args(spec.to_args()).stdin(Stdio::null()),
        &what,
        events,
        move |line| Event::Line(side, line),
        Event::Closed(side),
    )
}

/// Why [`run_pair`] kills a child that has not exited two seconds after the measurement.
const OUTLIVED: &str = "it outlived its peer by 2 s";

fn recv_until(inbox: &mpsc::Receiver<Event>, deadline: Instant) -> Result<Event> {
    let left = deadline.saturating_duration_since(Instant::now());
    inbox.recv_timeout(left).map_err(|error| match error {
        mpsc::RecvTimeoutError::Timeout => anyhow!("timed out"),
        mpsc::RecvTimeoutError::Disconnected => anyhow!("lost both children's output"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_spec_round_trips_through_arguments() {
        let mut spec = ChildSpec::new(Role::Client, "zmq", 1024);
        spec.core = Some(1);
        spec.endpoint = Some("tcp://127.0.0.1:5555".to_owned());
        spec.warmup = Duration::from_millis(250);
        spec.duration = Duration::from_secs(2);
        spec.rounds = 20_000;
        spec.warmup_rounds = 2_000;
        spec.shared_core = true;
        let parsed = ChildSpec::parse(&mut Args::new(spec.to_args())).unwrap();
        assert_eq!(parsed, spec);
    }

    #[test]
    fn child_spec_rejects_missing_role_and_unknown_flags() {
        assert!(
            ChildSpec::parse(&mut Args::new(["--contender", "x", "--payload-bytes", "1"])).is_err()
        );
        let mut args = Args::new([
            "--role",
            "rx",
            "--contender",
            "x",
            "--payload-bytes",
            "1",
            "--x",
        ]);
        assert!(ChildSpec::parse(&mut args).is_err());
        assert!(ChildSpec::parse(&mut Args::new(["--role", "sideways"])).is_err());
    }
}
