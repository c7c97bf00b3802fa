//! `phyla-node`: runs a Phyla node from a TOML configuration file.
//!
//! It joins the configured groups, optionally publishes a checkable load to them, checks every
//! message it delivers, logs every event as one JSON object per line on standard output, and
//! keeps a stats snapshot file in its run directory for `phyla-stat` and `phyla tree`. SIGTERM
//! or SIGINT shuts it down cleanly: it reports what it delivered, leaves its groups, flushes,
//! writes a final counters line, removes its run files and exits 0. See `docs/daemon.md`.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: it reads the clock for its periodic work"
)]

use std::collections::BTreeMap;
use std::io::{self, Stdout};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use group_comm::engine::{Group, GroupEngine, JoinOptions};
use group_comm::{GroupEvent, GroupId};
use phyla_tools::args::{self, Arg, Args, Failure, UsageError};
use phyla_tools::check::{DeliveryChecker, SourceReport};
use phyla_tools::config::{self, NodeConfig, ThreadingChoice};
use phyla_tools::host::{self, EngineSettings, SnapshotContext};
use phyla_tools::identity::{self, Origin};
use phyla_tools::log::{Coalesced, EventLog, unix_ms};
use phyla_tools::publisher::{Publisher, Pumped};
use phyla_tools::rundir::{self, RunFiles};
use phyla_tools::signal;
use phyla_tools::stats::{self, short_id};
use serde_json::{Value, json};
use substrate::runtime::Threading;

const HELP: &str = "\
phyla-node: run a Phyla node from a configuration file

usage: phyla-node --config FILE [--check]

  --config FILE   the node's TOML configuration (see docs/daemon.md, tools/examples/node.toml)
  --check         validate the configuration and the identity file, print a summary, exit
  --help          this text

Logs one JSON object per line on standard output. Writes <run_dir>/<name>.stats.json (read it
with phyla-stat) and <run_dir>/<name>.pid. SIGTERM or SIGINT: clean shutdown, exit 0.
Exit codes: 0 ok, 1 failure (bad configuration, address in use, ...), 2 usage.";

/// Most messages taken from one group per loop turn, so that no group starves the others.
const POLL_BATCH: usize = 4096;
/// Longest time spent flushing after leaving the groups.
const FLUSH_MAX: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    args::finish("phyla-node", run())
}

struct Options {
    config: PathBuf,
    check: bool,
}

fn parse_args() -> Result<Option<Options>, UsageError> {
    let mut a = Args::from_env()?;
    let mut config = None;
    let mut check = false;
    while let Some(arg) = a.next_arg()? {
        match arg {
            Arg::Flag(f) if f == "--help" || f == "-h" => {
                println!("{HELP}");
                return Ok(None);
            }
            Arg::Flag(f) if f == "--config" || f == "-c" => config = Some(a.value(&f)?),
            Arg::Flag(f) if f == "--check" => {
                a.switch(&f)?;
                check = true;
            }
            Arg::Flag(f) => return Err(args::unknown(&f)),
            Arg::Positional(p) => return Err(UsageError(format!("unexpected argument {p:?}"))),
        }
    }
    let config = config.ok_or_else(|| UsageError("--config FILE is required".into()))?;
    Ok(Some(Options { config, check }))
}

fn run() -> Result<(), Failure> {
    let Some(options) = parse_args()? else {
        return Ok(());
    };
    Ok(daemon(&options)?)
}

fn daemon(options: &Options) -> Result<()> {
    let config = config::load(&options.config)?;
    if options.check {
        return check(&config);
    }
    signal::install().context("installing the signal handlers")?;
    let (id, origin) = identity::load_or_create(&config.identity)?;
    let run_dir = rundir::for_writing(config.run_dir.as_deref())?;
    let files = RunFiles::claim(&run_dir, &config.name)?;
    let result = serve(&config, id, origin, &run_dir, &files);
    // Whatever happened, the run files go: a stale stats file would mislead phyla-stat.
    let removed = files.remove();
    result?;
    removed.with_context(|| format!("removing the run files in {}", run_dir.display()))?;
    Ok(())
}

/// `--check`: the configuration parsed; look at the identity file and the run directory too.
fn check(config: &NodeConfig) -> Result<()> {
    let identity = if config.identity.exists() {
        let id = identity::load(&config.identity)?;
        json!({ "path": config.identity, "node_id": identity::to_hex(&id) })
    } else {
        json!({ "path": config.identity, "node_id": null, "note": "will be created" })
    };
    let run_dir = config
        .run_dir
        .clone()
        .map_or_else(|| json!("default"), |d| json!(d));
    let groups: Vec<Value> = config
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": g.name, "contacts": g.contacts.iter().map(ToString::to_string)
                    .collect::<Vec<_>>(),
                "expected_members": g.expected_members, "publish": g.publish.as_ref().map(|p| {
                    json!({ "messages": p.messages, "message_bytes": p.message_bytes,
                            "messages_per_sec": p.messages_per_sec })
                }),
            })
        })
        .collect();
    println!(
        "{}",
        json!({
            "config": "ok", "name": config.name, "bind": config.bind.to_string(),
            "shards": config.shards, "identity": identity, "run_dir": run_dir, "groups": groups,
        })
    );
    Ok(())
}

/// One joined group and what the daemon tracks for it.
struct Joined {
    name: String,
    group: Group,
    joined_at: Option<Instant>,
    publisher: Option<Publisher>,
    publish_logged: bool,
    publish_finished: bool,
}

/// The running daemon.
struct Daemon<'a> {
    config: &'a NodeConfig,
    engine: GroupEngine,
    threading: Threading,
    log: EventLog<Stdout>,
    groups: Vec<Joined>,
    checker: DeliveryChecker,
    started: Instant,
    started_ms: u64,
    driver_reason: String,
    /// Per (group, source, epoch): delivered count and time at the last progress line.
    progress_at: BTreeMap<(String, String, u32), (u64, Instant)>,
    /// Distinct runtime errors (first text kept, later ones counted).
    errors: BTreeMap<String, u64>,
}

fn serve(
    config: &NodeConfig,
    id: substrate::id::NodeId,
    origin: Origin,
    run_dir: &std::path::Path,
    files: &RunFiles,
) -> Result<()> {
    let threading = match config.threading {
        ThreadingChoice::Invoker => Threading::Invoker,
        ThreadingChoice::Dedicated => Threading::Dedicated,
    };
    let settings = EngineSettings {
        id,
        bind: config.bind,
        advertise: config.advertise,
        shards: config.shards,
        driver: config.driver.forced(),
        idle: config.idle.strategy(),
        threading,
        pin: config.pin,
        seed: config.seed,
        publication_bytes: config.publication_bytes,
        datagram_bytes: config.datagram_bytes,
        group_config: Some(config.group_config.clone()),
    };
    let engine = host::start(&settings)
        .with_context(|| format!("starting the engine on {}", config.bind))?;
    let driver_reason = match (config.driver.forced(), std::env::var("PHYLA_DRIVER")) {
        (Some(_), _) => "configuration",
        (None, Ok(_)) => "PHYLA_DRIVER",
        (None, Err(_)) => "probe",
    };
    let mut d = Daemon {
        config,
        engine,
        threading,
        log: EventLog::new(&config.name, io::stdout()),
        groups: Vec::new(),
        checker: DeliveryChecker::new(),
        started: Instant::now(),
        started_ms: unix_ms(),
        driver_reason: driver_reason.to_owned(),
        progress_at: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    let locators: Vec<String> = d
        .engine
        .locators()
        .iter()
        .map(ToString::to_string)
        .collect();
    d.log.emit(
        "started",
        json!({
            "node_id": identity::to_hex(&id), "pid": std::process::id(),
            "driver": d.engine.driver().name(), "driver_reason": driver_reason,
            "locators": locators, "shards": config.shards,
            "threading": match threading { Threading::Invoker => "invoker", _ => "dedicated" },
            "idle": config.idle.name(),
            "identity": if origin == Origin::Created { "created" } else { "loaded" },
            "run_dir": run_dir, "stats_file": files.stats,
        }),
    );
    d.join_all()?;
    d.write_stats(&files.stats);
    let signal = d.run(&files.stats);
    d.shutdown(signal);
    Ok(())
}

impl Daemon<'_> {
    fn join_all(&mut self) -> Result<()> {
        let own = self.engine.locators();
        for g in &self.config.groups {
            let contacts = host::other_contacts(&g.contacts, &own, self.config.advertise);
            let group = self
                .engine
                .join(&g.name, JoinOptions::contacts(contacts.iter().copied()))
                .with_context(|| format!("joining group {}", g.name))?;
            self.log.emit(
                "group_joining",
                json!({
                    "group": g.name, "id": group.id().to_string(),
                    "member": host::short(&group.member()),
                    "shard": self.engine.shard_of(group.id()),
                    "contacts": contacts.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            );
            let publisher = g
                .publish
                .as_ref()
                .map(|p| Publisher::new(p.messages, p.message_bytes, p.messages_per_sec));
            self.groups.push(Joined {
                name: g.name.clone(),
                group,
                joined_at: None,
                publisher,
                publish_logged: false,
                publish_finished: false,
            });
        }
        Ok(())
    }

    /// The main loop, until a termination signal; returns the signal.
    fn run(&mut self, stats_path: &std::path::Path) -> i32 {
        let mut next_stats = Instant::now() + self.config.stats_interval;
        let mut next_progress = Instant::now() + self.config.progress_interval;
        loop {
            if let Some(s) = signal::received() {
                return s;
            }
            let now = Instant::now();
            let mut busy = self.publish(now);
            busy |= self.deliver();
            self.events();
            if now >= next_progress {
                self.progress(now);
                next_progress = now + self.config.progress_interval;
            }
            if now >= next_stats {
                self.write_stats(stats_path);
                next_stats = now + self.config.stats_interval;
            }
            host::drive(&mut self.engine, self.threading, !busy);
        }
    }

    /// Offers what the publishers have due; true if more is due at once.
    fn publish(&mut self, now: Instant) -> bool {
        let mut busy = false;
        for (i, j) in self.groups.iter_mut().enumerate() {
            let Some(p) = j.publisher.as_mut() else {
                continue;
            };
            let Some(joined_at) = j.joined_at else {
                continue;
            };
            let delay = self.config.groups[i]
                .publish
                .as_ref()
                .map_or(Duration::ZERO, |s| s.start_delay);
            if now < joined_at + delay || j.publish_finished {
                continue;
            }
            if !j.publish_logged {
                j.publish_logged = true;
                let (messages, bytes, rate) = p.plan();
                self.log.emit(
                    "publish_started",
                    json!({ "group": j.name, "messages": messages, "message_bytes": bytes,
                            "messages_per_sec": rate }),
                );
            }
            match p.pump(&mut j.group, now) {
                Ok(Pumped::Offered(_)) => busy |= p.next_due().is_none_or(|t| t <= now),
                Ok(Pumped::BackPressured) => {}
                Ok(Pumped::Done) => {
                    j.publish_finished = true;
                    let elapsed = p.elapsed(now);
                    self.log.emit(
                        "publish_finished",
                        json!({
                            "group": j.name, "published": p.sent, "bytes": p.bytes,
                            "backpressured": p.backpressured,
                            "elapsed_ms": elapsed.as_millis() as u64,
                            "messages_per_sec": per_sec(p.sent, elapsed),
                        }),
                    );
                }
                Err(e) => {
                    j.publish_finished = true;
                    self.log.emit(
                        "publish_failed",
                        json!({ "group": j.name, "published": p.sent, "error": e.to_string() }),
                    );
                }
            }
        }
        busy
    }

    /// Takes delivered messages from every group into the checker; true if any group had a
    /// full batch (more waiting).
    fn deliver(&mut self) -> bool {
        let mut more = false;
        for j in &mut self.groups {
            let checker = &mut self.checker;
            let name = &j.name;
            let mut completed: Vec<String> = Vec::new();
            let mut anomalies: Vec<Value> = Vec::new();
            let n = j.group.poll(
                |m| {
                    let source = identity::to_hex(&m.source);
                    let noticed = checker.deliver(name, &source, m.epoch, m.sequence, &m.payload);
                    if noticed.completed {
                        completed.push(source.clone());
                    }
                    // The first few anomalies are logged one by one; the rest are counted.
                    if noticed.anomaly && anomalies.len() < 8 {
                        anomalies.push(json!({
                            "group": name, "source": short_id(&source), "epoch": m.epoch,
                            "sequence": m.sequence, "bytes": m.payload.len(),
                        }));
                    }
                },
                POLL_BATCH,
            );
            more |= n == POLL_BATCH;
            for a in anomalies {
                self.log.emit("delivery_anomaly", a);
            }
            for source in completed {
                if let Some(r) = self
                    .checker
                    .reports(&j.name)
                    .find(|r| r.source == source)
                    .cloned()
                {
                    self.log.emit("source_complete", report_fields(&j.name, &r));
                }
            }
        }
        more
    }

    fn events(&mut self) {
        let mut batch = Coalesced::new();
        for j in &mut self.groups {
            while let Some(e) = j.group.poll_event() {
                match &e {
                    GroupEvent::Joined { .. } => {
                        j.joined_at.get_or_insert_with(Instant::now);
                    }
                    GroupEvent::MessagesLost {
                        source,
                        epoch,
                        first,
                        last,
                        ..
                    } => {
                        let source = identity::to_hex(source);
                        self.checker.lost(&j.name, &source, *epoch, *first, *last);
                    }
                    _ => {}
                }
                if let Some((kind, fields)) = host::group_event(&e, &j.name) {
                    batch.push(kind, fields);
                }
            }
        }
        while let Some(e) = self.engine.poll_event() {
            let (kind, fields) = host::engine_event(&e);
            batch.push(kind, fields);
        }
        batch.emit(&mut self.log);
    }

    /// One progress line per source that delivered since the last.
    fn progress(&mut self, now: Instant) {
        for (group, r) in self.checker.progressed() {
            let key = (group.clone(), r.source.clone(), r.epoch);
            let (before, at) = self
                .progress_at
                .insert(key, (r.delivered, now))
                .unwrap_or((0, self.started));
            let mut fields = report_fields(&group, &r);
            fields["per_sec"] = json!(per_sec(
                r.delivered.saturating_sub(before),
                now.duration_since(at)
            ));
            self.log.emit("progress", fields);
        }
    }

    fn snapshot(&self) -> stats::Snapshot {
        let stats = self.engine.stats();
        let groups: Vec<(String, GroupId)> = self
            .groups
            .iter()
            .map(|j| (j.name.clone(), j.group.id()))
            .collect();
        let joined: Vec<bool> = self.groups.iter().map(|j| j.joined_at.is_some()).collect();
        let mut snapshot = host::snapshot(
            &self.engine,
            &stats,
            &SnapshotContext {
                name: &self.config.name,
                driver_reason: &self.driver_reason,
                started_ms: self.started_ms,
                started: self.started,
                groups: &groups,
                joined: &joined,
                checker: &self.checker,
            },
        );
        snapshot
            .totals
            .insert("log_lines_failed".into(), self.log.lines_failed);
        snapshot
            .totals
            .insert("errors".into(), self.errors.values().sum::<u64>());
        snapshot
    }

    fn write_stats(&mut self, path: &std::path::Path) {
        let snapshot = self.snapshot();
        if let Err(e) = stats::write(path, &snapshot) {
            self.error(e.to_string());
        }
    }

    /// Logs a runtime error the first time its text is seen; later ones are only counted.
    fn error(&mut self, text: String) {
        let n = self.errors.entry(text.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.log.emit("error", json!({ "error": text }));
        }
    }

    fn shutdown(mut self, signal: i32) {
        self.log.emit(
            "shutdown",
            json!({ "signal": signal::name(signal), "uptime_ms": self.uptime_ms() }),
        );
        // What was delivered up to now, with every source's final count.
        self.deliver();
        self.events();
        for j in &self.groups {
            for r in self.checker.reports(&j.name) {
                self.log.emit("delivery_report", report_fields(&j.name, r));
            }
            let counters = j.group.counters();
            self.log.emit(
                "group_report",
                json!({
                    "group": j.name, "published": counters.published,
                    "delivered": counters.delivered, "lost": counters.lost,
                    "repairs": counters.repairs, "sources": self.checker.reports(&j.name).count(),
                }),
            );
        }
        let last = self.snapshot();
        // Leave every group, then let the shards send the goodbyes.
        let left: Vec<String> = self.groups.drain(..).map(|j| j.name).collect();
        let flush_start = Instant::now();
        let mut quiet = 0;
        while flush_start.elapsed() < FLUSH_MAX && quiet < 20 {
            let work = host::drive(&mut self.engine, self.threading, false);
            if work == 0 {
                quiet += 1;
                std::thread::sleep(Duration::from_millis(1));
            } else {
                quiet = 0;
            }
        }
        while let Some(e) = self.engine.poll_event() {
            let (kind, fields) = host::engine_event(&e);
            self.log.emit(kind, fields);
        }
        self.log.emit("left", json!({ "groups": left }));
        let totals = self.checker.totals();
        let mut counters = serde_json::Map::new();
        counters.insert("delivered".into(), json!(totals.delivered));
        counters.insert("delivered_bytes".into(), json!(totals.bytes));
        counters.insert("gaps".into(), json!(totals.gaps));
        counters.insert("lost".into(), json!(totals.lost));
        counters.insert("out_of_order".into(), json!(totals.out_of_order));
        counters.insert("corrupt".into(), json!(totals.corrupt));
        counters.insert(
            "published".into(),
            json!(last.groups.iter().map(|g| g.published).sum::<u64>()),
        );
        for (k, v) in &last.totals {
            counters.insert(k.clone(), json!(v));
        }
        self.log.emit("counters", Value::Object(counters));
        let uptime_ms = self.uptime_ms();
        self.log
            .emit("stopped", json!({ "uptime_ms": uptime_ms, "exit": 0 }));
    }

    fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The fields of a per-source line: progress, completion, final report.
fn report_fields(group: &str, r: &SourceReport) -> Value {
    json!({
        "group": group, "source": short_id(&r.source), "epoch": r.epoch,
        "delivered": r.delivered, "bytes": r.bytes, "first_sequence": r.first_sequence,
        "highest_sequence": r.highest_sequence, "gaps": r.gaps, "lost": r.lost,
        "out_of_order": r.out_of_order, "corrupt": r.corrupt, "unchecked": r.unchecked,
        "expected": r.expected, "complete": r.complete,
    })
}

fn per_sec(n: u64, d: Duration) -> u64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        (n as f64 / s).round() as u64
    } else {
        0
    }
}
