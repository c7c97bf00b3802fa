//! `phyla`: command-line access to Phyla groups, for tests and people.
//!
//! - `phyla publish`: join a group and publish N checkable messages (or the lines of standard
//!   input), wait until the engine has sent them, report the counts as JSON.
//! - `phyla subscribe`: join a group and print its deliveries (or count them), exiting after N.
//! - `phyla tree`: print a group's trees as Graphviz DOT, from the stats files of the nodes in a
//!   run directory.
//!
//! See `docs/daemon.md`.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: it reads the clock for its timeouts and reads stdin on a thread"
)]

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use group_comm::GroupEvent;
use group_comm::engine::{Group, GroupEngine, JoinOptions, PublishError};
use phyla_tools::args::{self, Arg, Args, Failure, UsageError};
use phyla_tools::check::{self, DeliveryChecker, Payload};
use phyla_tools::host::{self, EngineSettings};
use phyla_tools::log::{Coalesced, EventLog};
use phyla_tools::publisher::{Publisher, Pumped};
use phyla_tools::stats::short_id;
use phyla_tools::{dot, identity, rundir, signal, stats};
use serde_json::{Value, json};
use substrate::runtime::Threading;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;

const HELP: &str = "\
phyla: publish to and subscribe to Phyla groups; draw their trees

usage:
  phyla publish --group NAME --contact IP:PORT [options]
      --count N         messages to publish (default 1000), checkable by receivers
      --size B          bytes per message (default 64, at least 20)
      --rate MSG/S      at most this many per second (default: as fast as backpressure allows)
      --stdin           publish the lines of standard input instead (one message per line)
      --linger SECS     stay this long after the last message was sent, to answer repairs
                        (default 1)
  phyla subscribe --group NAME --contact IP:PORT [options]
      --count N         exit after N messages (default: run until interrupted or --timeout)
      --timeout SECS    give up after SECS (exit 1 if --count was not reached)
      --print           print every message (source, sequence, payload as text or hex)
  phyla tree --group NAME [--run-dir DIR]
      print the group's trees as Graphviz DOT (dot -Tsvg), assembled from the stats files
      of the nodes in DIR (default as phyla-stat)

common options of publish and subscribe:
      --contact IP:PORT   a member to join through (repeatable; at least one)
      --bind IP:PORT      where to listen (default: the address that routes to the first
                          contact, any port)
      --driver D          uring | poll | auto (default auto)
      --join-timeout SECS give up if no neighbour after SECS (default 10)
      --identity FILE     the node id file (default: a new random id each run)
      --name NAME         the name in output lines (default publish / subscribe)

Output: JSON objects, one per line (events, messages with --print, a final summary).
Exit codes: 0 ok, 1 failure (timeout, no neighbour, ...), 2 usage.";

fn main() -> ExitCode {
    args::finish("phyla", run())
}

fn run() -> Result<(), Failure> {
    let mut a = Args::from_env()?;
    let command = match a.next_arg()? {
        None => {
            return Err(
                UsageError("a command is required: publish, subscribe or tree".into()).into(),
            );
        }
        Some(Arg::Flag(f)) if f == "--help" || f == "-h" => {
            println!("{HELP}");
            return Ok(());
        }
        Some(Arg::Flag(f)) => return Err(args::unknown(&f).into()),
        Some(Arg::Positional(c)) => c,
    };
    match command.as_str() {
        "publish" => {
            let Some(o) = PublishOptions::parse(&mut a)? else {
                return Ok(());
            };
            Ok(publish(&o)?)
        }
        "subscribe" => {
            let Some(o) = SubscribeOptions::parse(&mut a)? else {
                return Ok(());
            };
            Ok(subscribe(&o)?)
        }
        "tree" => {
            let Some((group, run_dir)) = parse_tree(&mut a)? else {
                return Ok(());
            };
            Ok(tree(&group, run_dir)?)
        }
        "help" => {
            println!("{HELP}");
            Ok(())
        }
        other => Err(UsageError(format!(
            "unknown command {other:?} (publish, subscribe or tree)"
        ))
        .into()),
    }
}

/// Options shared by publish and subscribe.
#[derive(Clone)]
struct Common {
    group: Option<String>,
    contacts: Vec<SocketAddr>,
    bind: Option<SocketAddr>,
    driver: Option<DriverKind>,
    join_timeout: Duration,
    identity: Option<PathBuf>,
    name: Option<String>,
}

impl Common {
    fn new() -> Self {
        Self {
            group: None,
            contacts: Vec::new(),
            bind: None,
            driver: None,
            join_timeout: Duration::from_secs(10),
            identity: None,
            name: None,
        }
    }

    /// Reads `flag` if it is a common option; false if it is not one.
    fn flag(&mut self, a: &mut Args, f: &str) -> Result<bool, UsageError> {
        match f {
            "--group" | "-g" => self.group = Some(a.value(f)?),
            "--contact" => self.contacts.push(a.value(f)?),
            "--bind" => self.bind = Some(a.value(f)?),
            "--driver" => {
                let d: String = a.value(f)?;
                self.driver = match d.as_str() {
                    "auto" => None,
                    other => Some(DriverKind::parse(other).ok_or_else(|| {
                        UsageError(format!("--driver {other:?}: expected uring, poll or auto"))
                    })?),
                };
            }
            "--join-timeout" => self.join_timeout = seconds(a, f)?,
            "--identity" => self.identity = Some(a.value(f)?),
            "--name" => self.name = Some(a.value(f)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn check(&self) -> Result<String, UsageError> {
        let group = self
            .group
            .clone()
            .ok_or_else(|| UsageError("--group NAME is required".into()))?;
        if group.is_empty() {
            return Err(UsageError("--group: empty name".into()));
        }
        if self.contacts.is_empty() {
            return Err(UsageError("--contact IP:PORT is required".into()));
        }
        if let Some(c) = self
            .contacts
            .iter()
            .find(|c| c.port() == 0 || c.ip().is_unspecified())
        {
            return Err(UsageError(format!(
                "--contact {c}: not a reachable locator"
            )));
        }
        Ok(group)
    }
}

fn seconds(a: &mut Args, f: &str) -> Result<Duration, UsageError> {
    let s: f64 = a.value(f)?;
    if !(s.is_finite() && s >= 0.0) {
        return Err(UsageError(format!("{f} {s}: expected seconds >= 0")));
    }
    Ok(Duration::from_secs_f64(s))
}

fn help_requested(f: &str) -> bool {
    f == "--help" || f == "-h"
}

struct PublishOptions {
    common: Common,
    group: String,
    count: u64,
    size: usize,
    rate: Option<f64>,
    stdin: bool,
    linger: Duration,
}

impl PublishOptions {
    fn parse(a: &mut Args) -> Result<Option<Self>, UsageError> {
        let mut common = Common::new();
        let (mut count, mut size, mut rate, mut stdin) = (1000u64, 64usize, None, false);
        let mut linger = Duration::from_secs(1);
        while let Some(arg) = a.next_arg()? {
            let f = match arg {
                Arg::Flag(f) => f,
                Arg::Positional(p) => {
                    return Err(UsageError(format!("unexpected argument {p:?}")));
                }
            };
            if help_requested(&f) {
                println!("{HELP}");
                return Ok(None);
            }
            if common.flag(a, &f)? {
                continue;
            }
            match f.as_str() {
                "--count" | "-n" => count = a.value(&f)?,
                "--size" => size = a.value(&f)?,
                "--rate" => {
                    let r: f64 = a.value(&f)?;
                    if !(r.is_finite() && r > 0.0) {
                        return Err(UsageError(format!("--rate {r}: expected > 0")));
                    }
                    rate = Some(r);
                }
                "--stdin" => {
                    a.switch(&f)?;
                    stdin = true;
                }
                "--linger" => linger = seconds(a, &f)?,
                _ => return Err(args::unknown(&f)),
            }
        }
        let group = common.check()?;
        if !stdin && size < check::HEADER_BYTES {
            return Err(UsageError(format!(
                "--size {size}: at least {} (the checkable header)",
                check::HEADER_BYTES
            )));
        }
        Ok(Some(Self {
            common,
            group,
            count,
            size,
            rate,
            stdin,
            linger,
        }))
    }
}

struct SubscribeOptions {
    common: Common,
    group: String,
    count: Option<u64>,
    timeout: Option<Duration>,
    print: bool,
}

impl SubscribeOptions {
    fn parse(a: &mut Args) -> Result<Option<Self>, UsageError> {
        let mut common = Common::new();
        let (mut count, mut timeout, mut print) = (None, None, false);
        while let Some(arg) = a.next_arg()? {
            let f = match arg {
                Arg::Flag(f) => f,
                Arg::Positional(p) => {
                    return Err(UsageError(format!("unexpected argument {p:?}")));
                }
            };
            if help_requested(&f) {
                println!("{HELP}");
                return Ok(None);
            }
            if common.flag(a, &f)? {
                continue;
            }
            match f.as_str() {
                "--count" | "-n" => count = Some(a.value(&f)?),
                "--timeout" => timeout = Some(seconds(a, &f)?),
                "--print" => {
                    a.switch(&f)?;
                    print = true;
                }
                _ => return Err(args::unknown(&f)),
            }
        }
        let group = common.check()?;
        Ok(Some(Self {
            common,
            group,
            count,
            timeout,
            print,
        }))
    }
}

fn parse_tree(a: &mut Args) -> Result<Option<(String, Option<PathBuf>)>, UsageError> {
    let (mut group, mut run_dir) = (None, None);
    while let Some(arg) = a.next_arg()? {
        match arg {
            Arg::Flag(f) if help_requested(&f) => {
                println!("{HELP}");
                return Ok(None);
            }
            Arg::Flag(f) if f == "--group" || f == "-g" => group = Some(a.value(&f)?),
            Arg::Flag(f) if f == "--run-dir" => run_dir = Some(a.value(&f)?),
            Arg::Flag(f) => return Err(args::unknown(&f)),
            Arg::Positional(p) => return Err(UsageError(format!("unexpected argument {p:?}"))),
        }
    }
    let group = group.ok_or_else(|| UsageError("--group NAME is required".into()))?;
    Ok(Some((group, run_dir)))
}

/// A node in invoker mode on this thread, joined to the group, with its event log.
struct Member {
    engine: GroupEngine,
    group: Group,
    log: EventLog<io::Stdout>,
    group_name: String,
}

impl Member {
    /// Starts the engine, joins, and waits for the first neighbour.
    fn join(common: &Common, group: &str, default_name: &str) -> Result<Self> {
        let id = match &common.identity {
            Some(path) => identity::load_or_create(path)?.0,
            None => identity::random_id()?,
        };
        let bind = match common.bind {
            Some(b) => b,
            None => {
                let contact = common.contacts[0];
                let ip = host::local_ip_towards(contact)
                    .with_context(|| format!("no route to the contact {contact}"))?;
                SocketAddr::new(ip, 0)
            }
        };
        let settings = EngineSettings {
            id,
            bind,
            advertise: None,
            shards: 1,
            driver: common.driver,
            idle: IdleStrategy::park(),
            threading: Threading::Invoker,
            pin: false,
            seed: None,
            publication_bytes: None,
            datagram_bytes: None,
            group_config: None,
        };
        let mut engine =
            host::start(&settings).with_context(|| format!("starting the engine on {bind}"))?;
        let name = common
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_owned());
        let mut log = EventLog::new(&name, io::stdout());
        let g = engine
            .join(
                group,
                JoinOptions::contacts(common.contacts.iter().copied()),
            )
            .with_context(|| format!("joining group {group}"))?;
        log.emit(
            "group_joining",
            json!({
                "group": group, "member": host::short(&g.member()),
                "locators": engine.locators().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "driver": engine.driver().name(),
                "contacts": common.contacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        );
        let mut m = Self {
            engine,
            group: g,
            log,
            group_name: group.to_owned(),
        };
        let deadline = Instant::now() + common.join_timeout;
        loop {
            if signal::received().is_some() {
                bail!("interrupted while joining {group}");
            }
            if m.events(|e| matches!(e, GroupEvent::Joined { .. })) {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no neighbour in group {group} after {:.1} s (are the contacts members?)",
                    common.join_timeout.as_secs_f64()
                );
            }
            m.engine.invoke_idle();
        }
    }

    /// Logs pending events; true if one matched `want`.
    fn events(&mut self, want: impl Fn(&GroupEvent) -> bool) -> bool {
        let mut hit = false;
        let mut batch = Coalesced::new();
        while let Some(e) = self.group.poll_event() {
            hit |= want(&e);
            if let Some((kind, fields)) = host::group_event(&e, &self.group_name) {
                batch.push(kind, fields);
            }
        }
        while let Some(e) = self.engine.poll_event() {
            let (kind, fields) = host::engine_event(&e);
            batch.push(kind, fields);
        }
        batch.emit(&mut self.log);
        hit
    }
}

fn publish(o: &PublishOptions) -> Result<()> {
    signal::install()?;
    let mut m = Member::join(&o.common, &o.group, "publish")?;
    let source = host::short(&m.group.member());
    let started = Instant::now();
    let (sent, bytes, backpressured) = if o.stdin {
        publish_stdin(&mut m)?
    } else {
        let mut p = Publisher::new(o.count, o.size, o.rate);
        loop {
            if signal::received().is_some() {
                break;
            }
            let now = Instant::now();
            let pumped = p
                .pump(&mut m.group, now)
                .with_context(|| format!("publishing to {}", o.group))?;
            m.events(|_| false);
            match pumped {
                Pumped::Done => break,
                Pumped::BackPressured => {
                    m.engine.invoke_idle();
                }
                Pumped::Offered(_) => {
                    if p.next_due().is_some_and(|t| t > now) {
                        m.engine.invoke_idle();
                    } else {
                        m.engine.invoke();
                    }
                }
            }
        }
        (p.sent, p.bytes, p.backpressured)
    };
    let offered_ms = started.elapsed().as_millis() as u64;
    // Wait until the shard has taken every offer and no link has frames queued: sent.
    let sent_by = Instant::now() + Duration::from_secs(60);
    let mut drained = false;
    while signal::received().is_none() && Instant::now() < sent_by {
        m.engine.invoke_idle();
        m.events(|_| false);
        if m.group.pending_bytes() == 0 && host::drained(&m.engine.stats()) {
            drained = true;
            break;
        }
    }
    let linger_until = Instant::now() + o.linger;
    while signal::received().is_none() && Instant::now() < linger_until {
        m.engine.invoke_idle();
        m.events(|_| false);
    }
    let elapsed = started.elapsed();
    let counters = m.group.counters();
    let summary = json!({
        "group": o.group, "source": source, "published": sent, "bytes": bytes,
        "backpressured": backpressured, "offered_ms": offered_ms,
        "elapsed_ms": elapsed.as_millis() as u64, "sent": drained,
        "messages_per_sec": (sent * 1000).checked_div(offered_ms).unwrap_or(sent),
        "engine_published": counters.published, "interrupted": signal::received().is_some(),
    });
    m.log.emit("published", summary);
    m.group.leave();
    flush(&mut m.engine);
    if !drained {
        bail!("the engine had not sent every message after 60 s");
    }
    Ok(())
}

/// Publishes the lines of standard input; returns (messages, bytes, backpressured).
fn publish_stdin(m: &mut Member) -> Result<(u64, u64, u64)> {
    let lines = spawn_stdin_reader();
    let (mut sent, mut bytes, mut backpressured) = (0u64, 0u64, 0u64);
    let mut pending: Option<Bytes> = None;
    loop {
        if signal::received().is_some() {
            break;
        }
        if pending.is_none() {
            pending = match lines.try_recv() {
                Ok(Ok(line)) => Some(Bytes::from(line)),
                Ok(Err(e)) => return Err(e).context("reading standard input"),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => break,
            };
        }
        if let Some(b) = pending.take() {
            let len = b.len() as u64;
            match m.group.offer_bytes(b.clone()) {
                Ok(_) => {
                    sent += 1;
                    bytes += len;
                    m.engine.invoke();
                    continue;
                }
                Err(PublishError::BackPressured) => {
                    backpressured += 1;
                    pending = Some(b);
                }
                Err(e) => return Err(e).context("publishing a line"),
            }
        }
        m.events(|_| false);
        m.engine.invoke_idle();
    }
    Ok((sent, bytes, backpressured))
}

/// Reads standard input on its own thread (the main thread must keep running the engine).
fn spawn_stdin_reader() -> Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

fn subscribe(o: &SubscribeOptions) -> Result<()> {
    signal::install()?;
    let started = Instant::now();
    let deadline = o.timeout.map(|t| started + t);
    let mut common = o.common.clone();
    if let Some(t) = o.timeout {
        common.join_timeout = common.join_timeout.min(t);
    }
    let mut m = Member::join(&common, &o.group, "subscribe")?;
    let mut checker = DeliveryChecker::new();
    let mut delivered = 0u64;
    let reached = |n: u64| o.count.is_some_and(|c| n >= c);
    let mut timed_out = false;
    while !reached(delivered) {
        if signal::received().is_some() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            break;
        }
        let limit = o.count.map_or(4096, |c| {
            usize::try_from(c - delivered).unwrap_or(4096).min(4096)
        });
        let mut printed: Vec<Value> = Vec::new();
        let group = &o.group;
        let n = m.group.poll(
            |msg| {
                let source = identity::to_hex(&msg.source);
                checker.deliver(group, &source, msg.epoch, msg.sequence, &msg.payload);
                if o.print {
                    printed.push(message_fields(
                        &source,
                        msg.epoch,
                        msg.sequence,
                        msg.hops,
                        &msg.payload,
                    ));
                }
            },
            limit,
        );
        delivered += n as u64;
        for p in printed {
            m.log.emit("message", p);
        }
        let lost = collect_losses(&mut m, &mut checker, group);
        if n == 0 && !lost {
            m.engine.invoke_idle();
        } else {
            m.engine.invoke();
        }
    }
    let interrupted = signal::received().is_some();
    let sources: Vec<Value> = checker
        .reports(&o.group)
        .map(|r| {
            let mut v = json!(r);
            v["source"] = json!(short_id(&r.source));
            v
        })
        .collect();
    let totals = checker.totals();
    m.log.emit(
        "summary",
        json!({
            "group": o.group, "delivered": delivered, "bytes": totals.bytes, "gaps": totals.gaps,
            "lost": totals.lost, "out_of_order": totals.out_of_order, "corrupt": totals.corrupt,
            "sources": sources, "count_reached": reached(delivered), "timed_out": timed_out,
            "interrupted": interrupted, "elapsed_ms": started.elapsed().as_millis() as u64,
        }),
    );
    m.group.leave();
    flush(&mut m.engine);
    if timed_out && o.count.is_some() {
        bail!(
            "timed out after {delivered} of {} messages",
            o.count.unwrap_or_default()
        );
    }
    Ok(())
}

/// Logs the group's events, recording losses in the checker; true if there were any events.
fn collect_losses(m: &mut Member, checker: &mut DeliveryChecker, group: &str) -> bool {
    let mut any = false;
    let mut batch = Coalesced::new();
    while let Some(e) = m.group.poll_event() {
        any = true;
        if let GroupEvent::MessagesLost {
            source,
            epoch,
            first,
            last,
            ..
        } = &e
        {
            checker.lost(group, &identity::to_hex(source), *epoch, *first, *last);
        }
        if let Some((kind, fields)) = host::group_event(&e, group) {
            batch.push(kind, fields);
        }
    }
    while let Some(e) = m.engine.poll_event() {
        any = true;
        let (kind, fields) = host::engine_event(&e);
        batch.push(kind, fields);
    }
    batch.emit(&mut m.log);
    any
}

/// A printed message: source, sequence, and the payload as text if it is printable UTF-8, as
/// a checkable message's index otherwise, or as hex.
fn message_fields(source: &str, epoch: u32, sequence: u64, hops: u16, payload: &[u8]) -> Value {
    let mut v = json!({
        "source": short_id(source), "epoch": epoch, "sequence": sequence, "hops": hops,
        "bytes": payload.len(),
    });
    match check::inspect(payload) {
        Payload::Checked { index, total } => {
            v["index"] = json!(index);
            v["total"] = json!(total);
        }
        Payload::Corrupt => v["corrupt"] = json!(true),
        Payload::Unchecked => match std::str::from_utf8(payload) {
            Ok(t) if !t.chars().any(|c| c.is_control() && c != '\t') => v["text"] = json!(t),
            _ => {
                let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
                v["hex"] = json!(hex);
            }
        },
    }
    v
}

/// Lets the shard send the goodbyes after a leave (bounded).
fn flush(engine: &mut GroupEngine) {
    let until = Instant::now() + Duration::from_millis(500);
    let mut quiet = 0;
    while Instant::now() < until && quiet < 20 {
        if engine.invoke() == 0 {
            quiet += 1;
            std::thread::sleep(Duration::from_millis(1));
        } else {
            quiet = 0;
        }
    }
}

fn tree(group: &str, run_dir: Option<PathBuf>) -> Result<()> {
    let dir = rundir::for_reading(run_dir);
    let mut snapshots = Vec::new();
    for (name, result) in stats::read_all(&dir, &[])? {
        match result {
            Ok(s) => snapshots.push(s),
            Err(e) => eprintln!("phyla: node {name} skipped: {e}"),
        }
    }
    if !snapshots
        .iter()
        .any(|s| s.groups.iter().any(|g| g.name == group || g.id == group))
    {
        bail!(
            "no node with a stats file in {} is in group {group}",
            dir.display()
        );
    }
    print!("{}", dot::render(group, &snapshots));
    Ok(())
}
