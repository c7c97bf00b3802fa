//! A Phyla node in its own process, for the multi-process loopback tests (`tests/loopback.rs`).
//!
//! ```text
//! phyla-peer recv --driver poll --port 0 --loss 0.02 --seed 7 --count 1000000
//! phyla-peer send --driver poll --to 127.0.0.1:PORT --loss 0.02 --seed 8 --count 1000000 \
//!                 [--rebind-at 500000]
//! ```
//!
//! `--rx-slots N` sizes the driver's receive pool (default: the driver's default).
//! `--bind-ip IP` binds to that address instead of 127.0.0.1 (a testbed host's address, say).
//!
//! Both run one shard in invoker mode on the main thread. The receiver prints
//! `{"listening":"ADDR"}` first; each role prints one final JSON line with what it saw and exits
//! 0, or prints `{"unsupported":...}` and exits 3 if the kernel cannot run the driver, or prints
//! `{"error":...}` and exits 1 (bad use, engine error) or 2 (it gave up after
//! `--deadline-secs`, default 120, so that a test never hangs on a peer). With
//! `--exit-on-stdin-eof` it also gives up (exit 2) as soon as its standard input ends: a test
//! that spawns peers with piped stdin takes them down with it if it dies.
//!
//! Message `n` of stream 1 is [`MESSAGE_BYTES`] long: `n` as 8 bytes little-endian, then `n as
//! u8` repeated. The receiver checks every message itself: numbers 0, 1, 2, … exactly once and
//! in order, payloads as described.

#![allow(
    clippy::disallowed_methods,
    reason = "a peer process owns its clock (deadlines) and a thread that watches stdin"
)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use substrate::id::{NodeId, StreamId};
use substrate::proto::session::SessionStats;
use substrate::runtime::driver::fault::FaultConfig;
use substrate::runtime::driver::{DriverConfig, DriverError, DriverKind};
use substrate::runtime::{
    Counters, Delivery, Node, NodeError, NodeEvent, OfferError, SessionId, Subscription, Threading,
};

/// Bytes of each message.
const MESSAGE_BYTES: usize = 32;
/// The stream the peers use.
const STREAM: StreamId = StreamId(1);
/// Invoke cycles between two looks at the clock.
const CLOCK_EVERY: u32 = 256;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            emit(&json!({ "error": format!("usage: {e:#}") }));
            return ExitCode::from(1);
        }
    };
    if opts.watch_stdin {
        watch_stdin();
    }
    let result = match opts.role {
        Role::Recv => receive(&opts),
        Role::Send => send(&opts),
    };
    match result {
        Ok(v) => {
            emit(&v);
            ExitCode::SUCCESS
        }
        Err(Failure::GaveUp(state)) => {
            emit(&json!({ "error": "deadline", "state": state }));
            ExitCode::from(2)
        }
        Err(Failure::Unsupported(why)) => {
            emit(&json!({ "unsupported": why }));
            ExitCode::from(3)
        }
        Err(Failure::Error(e)) => {
            emit(&json!({ "error": format!("{e:#}") }));
            ExitCode::from(1)
        }
    }
}

/// Which end of the stream this process is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Role {
    Recv,
    Send,
}

/// Command-line options.
#[derive(Debug)]
struct Options {
    role: Role,
    driver: DriverKind,
    bind_ip: IpAddr,
    port: u16,
    to: Option<SocketAddr>,
    loss: f64,
    seed: u64,
    count: u64,
    rebind_at: Option<u64>,
    deadline: Duration,
    watch_stdin: bool,
    rx_slots: Option<usize>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let role = match args.first().map(String::as_str) {
            Some("recv") => Role::Recv,
            Some("send") => Role::Send,
            other => bail!("first argument must be recv or send, not {other:?}"),
        };
        let mut o = Self {
            role,
            driver: DriverKind::Poll,
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            to: None,
            loss: 0.0,
            seed: 1,
            count: 1000,
            rebind_at: None,
            deadline: Duration::from_secs(120),
            watch_stdin: false,
            rx_slots: None,
        };
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            if flag == "--exit-on-stdin-eof" {
                o.watch_stdin = true;
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let bad = || format!("bad value {value:?} for {flag}");
            match flag.as_str() {
                "--driver" => {
                    o.driver = DriverKind::parse(value).with_context(bad)?;
                }
                "--port" => o.port = value.parse().with_context(bad)?,
                "--bind-ip" => o.bind_ip = value.parse().with_context(bad)?,
                "--to" => o.to = Some(value.parse().with_context(bad)?),
                "--loss" => o.loss = value.parse().with_context(bad)?,
                "--seed" => o.seed = value.parse().with_context(bad)?,
                "--count" => o.count = value.parse().with_context(bad)?,
                "--rebind-at" => o.rebind_at = Some(value.parse().with_context(bad)?),
                "--rx-slots" => o.rx_slots = Some(value.parse().with_context(bad)?),
                "--deadline-secs" => {
                    o.deadline = Duration::from_secs(value.parse().with_context(bad)?);
                }
                _ => bail!("unknown flag {flag}"),
            }
        }
        if role == Role::Send && o.to.is_none() {
            bail!("send needs --to");
        }
        if !(0.0..1.0).contains(&o.loss) {
            bail!("--loss must be in [0, 1)");
        }
        Ok(o)
    }

    fn node(&self, id: u64, port: u16) -> Result<Node, Failure> {
        let mut b = Node::builder(NodeId::from_u64(id))
            .bind(SocketAddr::new(self.bind_ip, port))
            .shards(1)
            .driver(self.driver)
            .threading(Threading::Invoker)
            .seed(self.seed);
        if self.loss > 0.0 {
            b = b.faults(FaultConfig::loss(self.seed, self.loss));
        }
        if let Some(rx_slots) = self.rx_slots {
            b = b.driver_config(DriverConfig {
                rx_slots,
                ..DriverConfig::default()
            });
        }
        match b.build() {
            Ok(node) => Ok(node),
            // The kernel cannot run this driver: a reason to skip, not a failure.
            Err(NodeError::Driver(e @ DriverError::Unsupported { .. })) => {
                Err(Failure::Unsupported(e.to_string()))
            }
            Err(e) => Err(Failure::Error(
                anyhow::Error::new(e).context(format!("building a {} node", self.driver.name())),
            )),
        }
    }
}

/// Why a role did not finish.
#[derive(Debug)]
enum Failure {
    /// The deadline passed; what the role had seen so far.
    GaveUp(Value),
    /// The kernel lacks what the driver needs.
    Unsupported(String),
    /// Something failed outright.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Error(e)
    }
}

/// Events a role saw, by kind.
#[derive(Debug, Default)]
struct Seen {
    connected: u64,
    first_session: Option<SessionId>,
    path_migrated: Vec<String>,
    messages_lost: u64,
    lost_ranges: Vec<String>,
    backpressured: u64,
    writable: u64,
    peer_timed_out: u64,
    closed: Vec<String>,
    offer_rejected: Vec<String>,
    locator_changed: Vec<String>,
    driver_failed: Vec<String>,
    connect_failed: Vec<String>,
    other: u64,
}

impl Seen {
    /// Takes every pending event; returns the closed sessions among them.
    fn drain(&mut self, node: &mut Node) -> Vec<SessionId> {
        let mut closed = Vec::new();
        while let Some(e) = node.poll_event() {
            match e {
                NodeEvent::Connected { session, .. } => {
                    self.connected += 1;
                    self.first_session.get_or_insert(session);
                }
                NodeEvent::PathMigrated { from, to, .. } => {
                    self.path_migrated.push(format!("{from:?} -> {to:?}"));
                }
                NodeEvent::MessagesLost { range, .. } => {
                    self.messages_lost += range.end - range.start;
                    if self.lost_ranges.len() < 16 {
                        self.lost_ranges.push(format!("{range:?}"));
                    }
                }
                NodeEvent::Backpressured { .. } => self.backpressured += 1,
                NodeEvent::Writable { .. } => self.writable += 1,
                NodeEvent::PeerTimedOut { .. } => self.peer_timed_out += 1,
                NodeEvent::Closed { session, cause } => {
                    closed.push(session);
                    self.closed.push(cause);
                }
                NodeEvent::OfferRejected { reason, .. } => self.offer_rejected.push(reason),
                NodeEvent::LocatorChanged { locator, .. } => {
                    self.locator_changed.push(locator.to_string());
                }
                NodeEvent::DriverFailed { error, .. } => self.driver_failed.push(error),
                NodeEvent::ConnectFailed { error, .. } => self.connect_failed.push(error),
                _ => self.other += 1,
            }
        }
        closed
    }

    fn json(&self) -> Value {
        json!({
            "connected": self.connected,
            "path_migrated": self.path_migrated,
            "messages_lost": self.messages_lost,
            "lost_ranges": self.lost_ranges,
            "backpressured": self.backpressured,
            "writable": self.writable,
            "peer_timed_out": self.peer_timed_out,
            "closed": self.closed,
            "offer_rejected": self.offer_rejected,
            "locator_changed": self.locator_changed,
            "driver_failed": self.driver_failed,
            "connect_failed": self.connect_failed,
            "other": self.other,
        })
    }

    /// Whether the session can no longer make progress.
    fn hopeless(&self) -> bool {
        !self.connect_failed.is_empty() || self.peer_timed_out > 0
    }
}

/// The deadline, checked every [`CLOCK_EVERY`] calls.
#[derive(Debug)]
struct Deadline {
    start: Instant,
    limit: Duration,
    calls: u32,
}

impl Deadline {
    fn new(limit: Duration) -> Self {
        Self {
            start: Instant::now(),
            limit,
            calls: 0,
        }
    }

    fn passed(&mut self) -> bool {
        self.calls += 1;
        self.calls % CLOCK_EVERY == 0 && self.start.elapsed() > self.limit
    }

    fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// What the receiver checks of each message.
#[derive(Debug, Default)]
struct Check {
    received: u64,
    first_error: Option<Value>,
    errors: u64,
}

impl Check {
    fn on(&mut self, d: &Delivery) {
        let expected = self.received;
        self.received += 1;
        let mut problem = None;
        if d.number != expected {
            problem = Some("number");
        } else if d.payload.len() != MESSAGE_BYTES {
            problem = Some("length");
        } else if d.payload[..8] != expected.to_le_bytes()
            || d.payload[8..].iter().any(|&b| b != expected as u8)
        {
            problem = Some("payload");
        }
        if let Some(what) = problem {
            self.errors += 1;
            if self.first_error.is_none() {
                let head = d.payload.len().min(8);
                self.first_error = Some(json!({
                    "what": what,
                    "expected": expected,
                    "number": d.number,
                    "len": d.payload.len(),
                    "head": format!("{:02x?}", &d.payload[..head]),
                }));
            }
        }
    }
}

fn receive(o: &Options) -> Result<Value, Failure> {
    let mut node = o.node(2, o.port)?;
    let at = node.locators()[0];
    emit(&json!({ "listening": at.to_string() }));
    let mut sub: Subscription = node
        .subscribe(STREAM)
        .context("subscribing")
        .map_err(Failure::Error)?;
    let mut seen = Seen::default();
    let mut check = Check::default();
    let mut deadline = Deadline::new(o.deadline);
    let mut stats = None;
    let mut closed = false;
    let state = |check: &Check, seen: &Seen, node: &Node| {
        json!({
            "received": check.received,
            "errors": check.errors,
            "first_error": check.first_error,
            "events": seen.json(),
            "counters": counters(&node.counters()),
        })
    };
    // Run until every message arrived and the sender closed the session in order (it closes once
    // everything is acknowledged, so nothing is left for it to retransmit to a gone receiver).
    while !(closed && check.received >= o.count) {
        node.invoke();
        sub.poll(|d| check.on(&d), usize::MAX);
        let ended = seen.drain(&mut node);
        let session = seen.first_session;
        closed |= session.is_some_and(|s| ended.contains(&s));
        if let Some(s) = session {
            if let Some(st) = node.session_counters(s) {
                stats = Some(st);
            }
        }
        // Every message arrived, so a timeout means only that the sender's Close was lost.
        let timed_out = seen.peer_timed_out > 0 && check.received >= o.count;
        if timed_out {
            break;
        }
        if deadline.passed() || seen.hopeless() || parent_gone() {
            return Err(Failure::GaveUp(state(&check, &seen, &node)));
        }
    }
    let mut out = state(&check, &seen, &node);
    out["ok"] = json!(check.errors == 0 && check.received == o.count);
    out["elapsed_ms"] = json!(deadline.elapsed_ms());
    out["driver"] = json!(node.driver().0.name());
    out["session"] = stats.as_ref().map_or(Value::Null, session_json);
    Ok(out)
}

fn send(o: &Options) -> Result<Value, Failure> {
    let to = o.to.ok_or_else(|| anyhow!("send needs --to"))?;
    let mut node = o.node(1, 0)?;
    let session = node
        .connect(to)
        .context("connecting")
        .map_err(Failure::Error)?;
    let mut publication = node
        .publication(session, STREAM)
        .context("publication")
        .map_err(Failure::Error)?;
    let mut seen = Seen::default();
    let mut deadline = Deadline::new(o.deadline);
    let mut sent = 0u64;
    let mut refused = 0u64;
    let mut rebound = None;
    let mut closing = false;
    let mut closed = false;
    let mut msg = [0u8; MESSAGE_BYTES];
    let mut stats = None;
    let state = |sent: u64, seen: &Seen, node: &Node| {
        json!({
            "sent": sent,
            "events": seen.json(),
            "counters": counters(&node.counters()),
        })
    };
    while !closed {
        while sent < o.count {
            if o.rebind_at == Some(sent) && rebound.is_none() {
                node.rebind(0, SocketAddr::new(o.bind_ip, 0))
                    .context("rebind")
                    .map_err(Failure::Error)?;
                rebound = Some(node.locators()[0]);
            }
            msg[..8].copy_from_slice(&sent.to_le_bytes());
            msg[8..].fill(sent as u8);
            match publication.offer(&msg) {
                Ok(n) => {
                    debug_assert_eq!(n, sent);
                    sent += 1;
                }
                Err(OfferError::BackPressured) => {
                    refused += 1;
                    break;
                }
                Err(e) => return Err(anyhow!("offer {sent}: {e}").into()),
            }
        }
        if sent == o.count && !closing && publication.pending_bytes() == 0 {
            // Every message is in the session: close in order (Closed follows the last ack).
            node.close(session)
                .context("close")
                .map_err(Failure::Error)?;
            closing = true;
        }
        node.invoke();
        closed = seen.drain(&mut node).contains(&session);
        if let Some(st) = node.session_counters(session) {
            stats = Some(st);
        }
        if deadline.passed() || seen.hopeless() || parent_gone() {
            return Err(Failure::GaveUp(state(sent, &seen, &node)));
        }
    }
    // `Closed` comes as the Close frame is written, which may not have left yet; the session then
    // drains for about a heartbeat interval, repeating the Close to a peer that did not hear it.
    // Exiting now could leave the receiver waiting for its idle timeout. The session's counters
    // disappear once it is gone.
    while node.session_counters(session).is_some() {
        node.invoke();
        seen.drain(&mut node);
        if deadline.passed() || parent_gone() {
            return Err(Failure::GaveUp(state(sent, &seen, &node)));
        }
    }
    let mut out = state(sent, &seen, &node);
    out["refused_offers"] = json!(refused);
    out["rebound_from"] = json!(rebound.map(|a| a.to_string()));
    out["elapsed_ms"] = json!(deadline.elapsed_ms());
    out["driver"] = json!(node.driver().0.name());
    out["session"] = stats.as_ref().map_or(Value::Null, session_json);
    Ok(out)
}

fn counters(c: &Counters) -> Value {
    json!({
        "datagrams_sent": c.datagrams_sent,
        "datagrams_received": c.datagrams_received,
        "bytes_sent": c.bytes_sent,
        "bytes_received": c.bytes_received,
        "send_errors": c.send_errors,
        "recv_errors": c.recv_errors,
        "truncated": c.truncated,
        "rx_pool_exhausted": c.rx_pool_exhausted,
        "datagrams_invalid": c.datagrams_invalid,
        "unknown_connection": c.unknown_connection,
        "sessions_accepted": c.sessions_accepted,
        "messages_offered": c.messages_offered,
        "messages_delivered": c.messages_delivered,
        "offers_dropped": c.offers_dropped,
        "events_overflowed": c.events_overflowed,
        "tx_slots_exhausted": c.tx_slots_exhausted,
        "cycles": c.cycles,
    })
}

/// Set once standard input reached its end (with `--exit-on-stdin-eof`).
static PARENT_GONE: AtomicBool = AtomicBool::new(false);

/// Whether the parent closed our standard input (or died): give up then.
fn parent_gone() -> bool {
    PARENT_GONE.load(Ordering::Relaxed)
}

/// Watches standard input on a thread of its own: when the parent closes it or dies, the pipe
/// ends and this process gives up instead of running on unwatched.
fn watch_stdin() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        PARENT_GONE.store(true, Ordering::Relaxed);
    });
}

fn session_json(s: &SessionStats) -> Value {
    json!({
        "datagrams_sent": s.datagrams_sent,
        "datagrams_received": s.datagrams_received,
        "messages_offered": s.messages_offered,
        "messages_delivered": s.messages_delivered,
        "messages_lost": s.messages_lost,
        "fragments_sent": s.fragments_sent,
        "fragments_retransmitted": s.fragments_retransmitted,
        "fragments_duplicate": s.fragments_duplicate,
        "naks_sent": s.naks_sent,
        "naks_received": s.naks_received,
        "gaps_sent": s.gaps_sent,
        "fragments_evicted": s.fragments_evicted,
        "path_challenges_sent": s.path_challenges_sent,
        "path_validations_failed": s.path_validations_failed,
        "frames_invalid": s.frames_invalid,
    })
}

/// Prints one JSON line and flushes it (the test reads lines as they come).
fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
