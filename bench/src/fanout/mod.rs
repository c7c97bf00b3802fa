//! The fan-out program: one publisher, N receivers (separate processes), and what it costs the
//! publisher to reach them all, against the two ways of doing it without Phyla's groups.
//!
//! # What is compared
//! - **group**: Phyla groups (`group_comm::engine`). The publisher and the N receivers join one
//!   group; the publisher offers each message once and the group's tree carries it. With N <= 4
//!   every receiver is in the publisher's active view and the publisher pushes to each directly;
//!   from about N = 8 some receivers are interior nodes of the tree and forward to others.
//! - **unicast** (baseline A): the same payload offered on N Phyla publications, one session per
//!   receiver: what an application without groups writes.
//! - **zmq** (baseline B): ZeroMQ PUB/SUB over TCP, the publisher blocking (`ZMQ_XPUB_NODROP`)
//!   rather than dropping when a subscriber falls behind.
//!
//! # What is measured
//! - **Publisher's cost**: CPU time (user + system, every thread, from `getrusage`) of the
//!   publishing process per message published, over a window of `duration` after a `warmup`,
//!   in two settings: at a fixed offered rate that every system sustains (the same load for all:
//!   each millisecond the publisher offers what is due, runs its transport until it is idle and
//!   sleeps), and as fast as back-pressure from the slowest receiver lets it (`max`, where the
//!   rate itself is the figure). Idle processes wait in the kernel (`park`), so waiting costs no
//!   CPU. On loopback the kernel's work of delivering a datagram or segment is mostly charged to
//!   the sender, so the publisher's system time grows with what it sends. Beside the cost, the
//!   publisher's rate and the slowest receiver's delivered rate.
//! - **Latency**: the publisher sends probes at a fixed rate, each stamped with
//!   `CLOCK_MONOTONIC` (one clock for every process on the host); each receiver records when it
//!   was delivered. The row's percentiles are of the time to the *last* of the N receivers (per
//!   probe, the slowest receiver), against round trips of the unicast ping-pong floor (UDP) and
//!   of Phyla's own unicast ping-pong, measured in the same run.
//! - **Copies**: every receiver reports its payload-copy counters and what it forwarded, so the
//!   copies per forwarded byte at the tree's interior nodes are read, not assumed.
//!
//! # Processes and cores
//! Each run starts N + 1 processes of this binary (see `procs.rs`); by default the publisher is pinned
//! to the first core and every receiver to the second, so the publisher's core is its own and the
//! receivers time-share theirs. On a 2-core machine that makes the receivers' core the
//! bottleneck for every system alike: rates fall as N grows whatever the fan-out costs the
//! publisher, which is why the publisher's CPU per message, not its rate, is the headline.

mod group;
mod procs;
mod report;
pub mod side;
mod unicast;
mod zeromq;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use self::report::{FloorRow, LatencyRow, ThroughputRow};
use self::side::{FanoutSpec, Mode, PublisherReport, ReceiverReport, Side, System};
use crate::child::{self, ChildSpec, CorePlan, Role};
use crate::cli::{self, Args, CoreChoice};
use crate::floor::UdpPingPong;
use crate::machine::Machine;
use crate::phyla::PhylaPingPong;
use crate::pingpong::{self, LatencySummary, PingPongContender, REPLY_TIMEOUT};
use crate::throughput::SEND_TAIL;
use group_comm::engine::LOOPBACK_DATAGRAM_BYTES;

/// The fan-out program's options.
#[derive(Clone, Debug, PartialEq)]
pub struct FanoutOptions {
    /// Receiver counts of the throughput runs.
    pub receivers: Vec<usize>,
    /// Receiver counts of the latency runs.
    pub latency_receivers: Vec<usize>,
    /// Payload sizes in bytes.
    pub sizes: Vec<usize>,
    /// Run only these parts: `group`, `unicast`, `zmq`, `floor` (all when `None`).
    pub only: Option<Vec<String>>,
    /// Throughput: the publisher's offered rates, messages per second (0: as fast as it can).
    pub paces: Vec<u64>,
    /// Throughput: from `GO` (or the first message) to the window.
    pub warmup: Duration,
    /// Throughput: the measured window.
    pub duration: Duration,
    /// Latency: measured probes per run.
    pub count: u64,
    /// Latency: probes sent before the measured ones.
    pub warmup_count: u64,
    /// Latency: probes per second.
    pub rate: u64,
    /// Round trips of each ping-pong floor.
    pub floor_rounds: u64,
    /// Phyla's driver (`None`: the engine's choice).
    pub driver: Option<String>,
    /// Idle strategy of every process: `park`, `spin` or `yield`.
    pub idle: String,
    /// Group runs: time given to the overlay after the last receiver joined.
    pub settle: Duration,
    /// Core placement: publisher (or ping-pong client) and receivers (or server).
    pub cores: CoreChoice,
    /// Phyla sessions: `SessionConfig::gather_min_bytes` (`None`: the library's default).
    pub gather_min_bytes: Option<usize>,
    /// Phyla sessions, group and unicast: the largest datagram.
    pub datagram_bytes: usize,
    /// Print only the JSON line.
    pub json_only: bool,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            receivers: vec![1, 2, 4, 8],
            latency_receivers: vec![8],
            sizes: vec![1024],
            paces: vec![DEFAULT_PACE, 0],
            only: None,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(2),
            count: 5_000,
            warmup_count: 500,
            rate: 2_000,
            floor_rounds: 20_000,
            driver: None,
            idle: "park".to_owned(),
            settle: Duration::from_secs(2),
            cores: CoreChoice::Auto,
            gather_min_bytes: None,
            datagram_bytes: LOOPBACK_DATAGRAM_BYTES,
            json_only: false,
        }
    }
}

/// The default paced rate: one that every system sustains to 8 receivers sharing one core.
pub const DEFAULT_PACE: u64 = 20_000;

/// The parts `--only` may name.
pub const PARTS: [&str; 4] = ["group", "unicast", "zmq", "floor"];

impl FanoutOptions {
    /// Whether `--only` selected `part`.
    pub fn selects(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name == part))
    }

    fn check(&self) -> Result<()> {
        if self.duration.is_zero() || self.count == 0 || self.rate == 0 {
            bail!("--duration, --count and --rate must be positive");
        }
        if self
            .receivers
            .iter()
            .chain(&self.latency_receivers)
            .any(|&n| n == 0 || n > 64)
        {
            bail!("receiver counts must be between 1 and 64");
        }
        if let Some(driver) = &self.driver
            && !["uring", "poll"].contains(&driver.as_str())
        {
            bail!("--driver must be uring or poll");
        }
        if !["park", "spin", "yield"].contains(&self.idle.as_str()) {
            bail!("--idle must be park, spin or yield");
        }
        if let Some(unknown) = self
            .only
            .iter()
            .flatten()
            .find(|name| !PARTS.contains(&name.as_str()))
        {
            bail!(
                "--only: no part named {unknown:?} (known: {})",
                PARTS.join(", ")
            );
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum FanoutCommand {
    /// Run the benchmark.
    Run(FanoutOptions),
    /// Run one fan-out child (hidden; the parent starts these).
    Child(FanoutSpec),
    /// Run one side of a ping-pong floor (hidden).
    PingPong(ChildSpec),
    /// Print the help.
    Help,
}

/// Parses the fan-out program's command line.
///
/// # Errors
/// On an unknown option or a malformed value.
pub fn parse(mut args: Args) -> Result<FanoutCommand> {
    if args.peek_is(side::CHILD_FLAG) {
        return Ok(FanoutCommand::Child(FanoutSpec::parse(&mut args)?));
    }
    if args.peek_is("--role") {
        return Ok(FanoutCommand::PingPong(ChildSpec::parse(&mut args)?));
    }
    let mut options = FanoutOptions::default();
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--receivers" => options.receivers = parse_counts(&args.raw_value(&flag)?)?,
            "--latency-receivers" => {
                options.latency_receivers = parse_counts(&args.raw_value(&flag)?)?;
            }
            "--size" | "--sizes" => options.sizes = cli::parse_sizes(&args.raw_value(&flag)?)?,
            "--rates" => options.paces = parse_paces(&args.raw_value(&flag)?)?,
            "--only" => options.only = Some(cli::parse_names(&args.raw_value(&flag)?)?),
            "--warmup" => options.warmup = cli::parse_duration(&args.raw_value(&flag)?)?,
            "--duration" => options.duration = cli::parse_duration(&args.raw_value(&flag)?)?,
            "--count" => options.count = args.value(&flag)?,
            "--warmup-count" => options.warmup_count = args.value(&flag)?,
            "--rate" => options.rate = args.value(&flag)?,
            "--floor-rounds" => options.floor_rounds = args.value(&flag)?,
            "--driver" => options.driver = Some(args.raw_value(&flag)?),
            "--idle" => options.idle = args.raw_value(&flag)?,
            "--settle" => options.settle = cli::parse_duration(&args.raw_value(&flag)?)?,
            "--cores" => {
                let cores = cli::parse_list::<usize>(&args.raw_value(&flag)?).context("--cores")?;
                let [sender, receiver] = cores[..] else {
                    bail!("--cores takes two core numbers: PUBLISHER,RECEIVERS");
                };
                options.cores = CoreChoice::Fixed { sender, receiver };
            }
            "--no-pin" => options.cores = CoreChoice::Unpinned,
            "--gather-min" => {
                options.gather_min_bytes =
                    cli::parse_sizes(&args.raw_value(&flag)?)?.first().copied();
            }
            "--datagram" => {
                options.datagram_bytes = cli::parse_sizes(&args.raw_value(&flag)?)?
                    .first()
                    .copied()
                    .context("--datagram takes a size")?;
            }
            "--json-only" => options.json_only = true,
            "--help" | "-h" => return Ok(FanoutCommand::Help),
            _ => bail!("unknown option {flag:?} (try --help)"),
        }
    }
    options.check()?;
    Ok(FanoutCommand::Run(options))
}

/// Parses a list of receiver counts, or `none`.
///
/// # Errors
/// When an entry is not a number.
pub fn parse_counts(text: &str) -> Result<Vec<usize>> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    cli::parse_list(text)
}

/// Parses the publisher's rates: numbers of messages per second, or `max`.
///
/// # Errors
/// When an entry is neither, or is zero.
pub fn parse_paces(text: &str) -> Result<Vec<u64>> {
    let mut paces = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        if entry == "max" {
            paces.push(0);
            continue;
        }
        let pace: u64 = entry
            .parse()
            .with_context(|| format!("rate {entry:?} is neither a number nor max"))?;
        if pace == 0 {
            bail!("rate 0: use max for as fast as possible");
        }
        paces.push(pace);
    }
    Ok(paces)
}

/// The help text.
pub fn help() -> String {
    "fanout: one publisher process and N receiver processes on loopback. For each N, what it
costs the publisher to reach all N with Phyla groups, with N separate Phyla unicast sessions
(baseline A) and with ZeroMQ PUB/SUB over TCP (baseline B), measured in the same run; then the
latency from publish to the last of N receivers, against the unicast ping-pong floor (UDP) and
Phyla's own unicast ping-pong. Prints tables and, as its last line, one JSON object with every
figure, baseline and ratio.

The publisher's cost is the CPU time (user + system, all threads) of the publishing process
per message: at a fixed rate that every system sustains (the same load for all), and at the
most the slowest receiver lets it publish (with its sustained rate). Idle processes wait in the
kernel, so waiting costs nothing. By default the publisher has the first core to itself and
the receivers share the second.

usage: fanout [OPTIONS]
  --receivers LIST          receiver counts of the throughput runs, or none (default 1,2,4,8)
  --latency-receivers LIST  receiver counts of the latency runs, or none (default 8)
  --size LIST               payload sizes in bytes, k/KiB suffixes allowed (default 1024)
  --rates LIST              the publisher's rates in the throughput runs, messages/s or max
                            (as fast as the slowest receiver allows) (default 20000,max)
  --duration SECS           measured window of each throughput run (default 2s)
  --warmup SECS             before the window (default 500ms)
  --count N                 measured latency probes per run (default 5000)
  --warmup-count N          latency probes before the measured ones (default 500)
  --rate N                  latency probes per second (default 2000)
  --floor-rounds N          round trips of each ping-pong floor (default 20000)
  --driver uring|poll       Phyla's driver (default: the engine's choice, PHYLA_DRIVER or probe)
  --idle park|spin|yield    how idle processes wait (default park; spin needs a core each)
  --settle SECS             group runs: time for the overlay after the last join (default 2s)
  --gather-min BYTES        Phyla sessions send message bodies of at least this size without
                            copying them (SessionConfig::gather_min_bytes; default: the
                            library's, 1 KiB)
  --datagram BYTES          largest datagram of Phyla's sessions, group and unicast alike
                            (default 65507: what a group engine bound to loopback uses; 1472
                            for one Ethernet frame)
  --only PARTS              run only some of group,unicast,zmq,floor
  --cores PUB,RX            pin the publisher to core PUB and every receiver to core RX
                            (default: the first two cores this process may use)
  --no-pin                  do not pin the processes
  --json-only               print only the JSON line
  --help                    this text

Diagnosis: with PHYLA_BENCH_EVENTS=DIR set, each group member writes DIR/member-<i>.log (its
events, and every 100 ms its deliveries, driver and link counters and flow-control state:
parent and children per source), and each latency receiver DIR/latency-<i>.txt (every
measured probe's publish-to-delivery time, ns). Member 1 is the publisher.
"
    .to_owned()
}

/// The fan-out program's `main`.
pub fn main() -> ExitCode {
    cli::report_errors(run_main())
}

fn run_main() -> Result<()> {
    match parse(Args::from_env()?)? {
        FanoutCommand::Help => cli::print(&help()),
        FanoutCommand::Child(spec) => side::run(&spec),
        FanoutCommand::PingPong(spec) => run_ping_pong_side(&spec),
        FanoutCommand::Run(options) => run(&options),
    }
}

/// The ping-pong floors this program measures.
fn floor_contenders() -> Vec<Box<dyn PingPongContender>> {
    let mut contenders: Vec<Box<dyn PingPongContender>> = vec![
        Box::new(UdpPingPong::busy()),
        Box::new(UdpPingPong::blocking()),
    ];
    for contender in PhylaPingPong::all() {
        contenders.push(Box::new(contender));
    }
    contenders
}

/// A ping-pong floor's child process: the same sides as the ping-pong program's.
fn run_ping_pong_side(spec: &ChildSpec) -> Result<()> {
    let contenders = floor_contenders();
    let contender = contenders
        .iter()
        .find(|contender| contender.name() == spec.contender)
        .with_context(|| format!("no ping-pong contender named {:?}", spec.contender))?;
    let pinned = child::pin_self(spec);
    let report = match spec.role {
        Role::Server => {
            contender.run_server(spec, &mut child::announce_ready)?;
            json!({})
        }
        Role::Client => serde_json::to_value(pingpong::run_client(contender.as_ref(), spec)?)?,
        Role::Receiver | Role::Sender => bail!("no {:?} side in the ping-pong floor", spec.role),
    };
    child::announce_result(spec, pinned, report);
    Ok(())
}

/// Everything one invocation measured.
#[derive(Debug, Default)]
struct Results {
    throughput: Vec<ThroughputRow>,
    latency: Vec<LatencyRow>,
    floor: Vec<FloorRow>,
    skipped: Vec<Value>,
    errors: Vec<Value>,
    /// The Phyla driver the children reported using.
    driver: Option<String>,
}

fn run(options: &FanoutOptions) -> Result<()> {
    let machine = Machine::current();
    let cores = CorePlan::resolve(options.cores);
    let started = Instant::now();
    let mut results = Results::default();
    let systems: Vec<System> = System::ALL
        .into_iter()
        .filter(|system| options.selects(system.name()))
        .filter(|system| match available(*system) {
            Ok(()) => true,
            Err(reason) => {
                eprintln!("fanout: skipping {}: {reason}", system.name());
                results
                    .skipped
                    .push(json!({ "system": system.name(), "reason": reason }));
                false
            }
        })
        .collect();

    for &size in &options.sizes {
        for &pace in &options.paces {
            for &receivers in &options.receivers {
                for &system in &systems {
                    eprint!(
                        "fanout: {} to {receivers}, {}, {} ... ",
                        system.name(),
                        cli::size_label(size),
                        report::pace_label(pace)
                    );
                    match measure(
                        system,
                        Mode::Throughput,
                        receivers,
                        size,
                        pace,
                        options,
                        cores,
                    ) {
                        Ok((publisher, reports)) => {
                            note_driver(&mut results, &publisher.system);
                            let row = ThroughputRow::new(
                                system, receivers, size, pace, publisher, reports,
                            );
                            eprintln!(
                                "{:.2} us CPU/msg at the publisher, {} msgs/s",
                                row.publisher_cpu_ns_per_msg / 1e3,
                                crate::table::thousands(row.publisher_msgs_per_s.round() as u64)
                            );
                            results.throughput.push(row);
                        }
                        Err(error) => record_error(
                            &mut results,
                            system,
                            "throughput",
                            receivers,
                            size,
                            &error,
                        ),
                    }
                }
            }
        }
        for &receivers in &options.latency_receivers {
            for &system in &systems {
                eprint!(
                    "fanout: {} latency to {receivers}, {} ... ",
                    system.name(),
                    cli::size_label(size)
                );
                match measure(system, Mode::Latency, receivers, size, 0, options, cores) {
                    Ok((publisher, reports)) => {
                        note_driver(&mut results, &publisher.system);
                        let row =
                            LatencyRow::new(system, receivers, size, options.count, &reports)?;
                        eprintln!(
                            "p50 {} us, p99 {} us to the last receiver",
                            crate::table::micros(row.last.p50_ns),
                            crate::table::micros(row.last.p99_ns)
                        );
                        results.latency.push(row);
                    }
                    Err(error) => {
                        record_error(&mut results, system, "latency", receivers, size, &error)
                    }
                }
            }
        }
        if options.selects("floor") && !options.latency_receivers.is_empty() {
            measure_floors(&mut results, size, options, cores);
        }
    }
    report::compute_ratios(
        &mut results.throughput,
        &mut results.latency,
        &results.floor,
    );
    if !options.json_only {
        cli::print(&report::render(&results, options, &machine, cores))?;
    }
    report::print_json(results, options, &machine, cores, started)
}

fn note_driver(results: &mut Results, system: &Value) {
    if results.driver.is_none()
        && let Some(driver) = system.get("driver").and_then(Value::as_str)
    {
        results.driver = Some(driver.to_owned());
    }
}

fn record_error(
    results: &mut Results,
    system: System,
    what: &str,
    receivers: usize,
    size: usize,
    error: &anyhow::Error,
) {
    eprintln!("failed: {error:#}");
    results.errors.push(json!({
        "system": system.name(), "measure": what, "receivers": receivers, "size": size,
        "error": format!("{error:#}"),
    }));
}

/// Why a system cannot run here, if it cannot.
fn available(system: System) -> Result<(), String> {
    match system {
        System::Group => group::available(),
        System::Unicast => Ok(()),
        System::Zmq => zeromq::available(),
    }
}

/// One run: the publisher and `receivers` receivers of `system`, started in the order the
/// system needs (whoever binds first), told `GO` together, and stopped once all have reported.
#[allow(clippy::too_many_arguments, reason = "one run's whole description")]
fn measure(
    system: System,
    mode: Mode,
    receivers: usize,
    size: usize,
    pace: u64,
    options: &FanoutOptions,
    cores: CorePlan,
) -> Result<(PublisherReport, Vec<ReceiverReport>)> {
    let publisher = FanoutSpec {
        side: Side::Publisher,
        system,
        mode,
        index: 0,
        receivers,
        payload_bytes: if mode == Mode::Latency {
            size.max(side::PROBE_HEADER_BYTES)
        } else {
            size
        },
        warmup: options.warmup,
        duration: options.duration,
        count: options.count,
        warmup_count: options.warmup_count,
        rate: options.rate,
        pace,
        driver: options.driver.clone(),
        idle: options.idle.clone(),
        core: cores.sender,
        shared_core: cores.shared(),
        endpoints: Vec::new(),
        settle: options.settle,
        gather_min_bytes: options.gather_min_bytes,
        datagram_bytes: options.datagram_bytes,
    };
    let receiver = |index: usize, endpoints: Vec<String>| FanoutSpec {
        side: Side::Receiver,
        index,
        core: cores.receiver,
        shared_core: cores.shared() || receivers > 1,
        endpoints,
        ..publisher.clone()
    };
    let sending = match mode {
        Mode::Throughput => options.warmup + options.duration + SEND_TAIL,
        Mode::Latency => Duration::from_secs_f64(
            (options.count + options.warmup_count) as f64 / options.rate as f64,
        ),
    };
    let joining = Duration::from_secs(5) * u32::try_from(receivers).unwrap_or(u32::MAX);
    let timeout =
        joining + options.settle + sending + crate::meter::DRAIN_MAX + Duration::from_secs(30);
    let mut fleet = procs::Fleet::new(timeout)?;
    let publisher_index;
    match system {
        System::Unicast => {
            let mut endpoints = Vec::with_capacity(receivers);
            for index in 1..=receivers {
                let child = fleet.spawn(
                    format!("receiver {index}"),
                    &receiver(index, Vec::new()).to_args(),
                )?;
                endpoints.push(fleet.wait_ready(child)?);
            }
            let spec = FanoutSpec {
                endpoints,
                ..publisher.clone()
            };
            publisher_index = fleet.spawn("publisher".to_owned(), &spec.to_args())?;
            fleet.wait_ready(publisher_index)?;
        }
        System::Group | System::Zmq => {
            publisher_index = fleet.spawn("publisher".to_owned(), &publisher.to_args())?;
            let endpoint = fleet.wait_ready(publisher_index)?;
            for index in 1..=receivers {
                let child = fleet.spawn(
                    format!("receiver {index}"),
                    &receiver(index, vec![endpoint.clone()]).to_args(),
                )?;
                fleet.wait_ready(child)?;
            }
            if system == System::Group {
                // The children run their duty cycles while they wait: the overlay settles.
                std::thread::sleep(options.settle);
            }
        }
    }
    fleet.send_all("GO");
    fleet.wait_results()?;
    let mut results = fleet.finish()?;
    let report = |value: Value, who: &str| -> Result<Value> {
        value
            .get("report")
            .cloned()
            .with_context(|| format!("the {who}'s result has no report"))
    };
    let publisher_result = results.remove(publisher_index);
    let publisher: PublisherReport = serde_json::from_value(report(publisher_result, "publisher")?)
        .context("the publisher's report")?;
    let mut receivers_reports = Vec::with_capacity(results.len());
    for result in results {
        let parsed: ReceiverReport =
            serde_json::from_value(report(result, "receiver")?).context("a receiver's report")?;
        receivers_reports.push(parsed);
    }
    receivers_reports.sort_by_key(|report| report.index);
    Ok((publisher, receivers_reports))
}

/// The ping-pong floors at `size`: UDP busy-polling and blocking, and Phyla's own unicast
/// ping-pong (parked, on the driver the fan-out runs used).
fn measure_floors(results: &mut Results, size: usize, options: &FanoutOptions, cores: CorePlan) {
    let driver = results
        .driver
        .clone()
        .or_else(|| options.driver.clone())
        .unwrap_or_else(|| "uring".to_owned());
    let phyla_name = format!("phyla-{driver}-park");
    for contender in floor_contenders() {
        let name = contender.name();
        if name.starts_with("phyla") && name != phyla_name {
            continue;
        }
        eprint!(
            "fanout: ping-pong floor {name} {} ... ",
            cli::size_label(size)
        );
        match measure_floor(contender.as_ref(), size, options, cores) {
            Ok(summary) => {
                eprintln!("p50 {} us", crate::table::micros(summary.p50_ns));
                results
                    .floor
                    .push(FloorRow::new(contender.as_ref(), size, summary));
            }
            Err(error) => {
                eprintln!("failed: {error:#}");
                results.errors.push(json!({
                    "contender": name, "measure": "ping-pong floor", "size": size,
                    "error": format!("{error:#}"),
                }));
            }
        }
    }
}

fn measure_floor(
    contender: &dyn PingPongContender,
    size: usize,
    options: &FanoutOptions,
    cores: CorePlan,
) -> Result<LatencySummary> {
    let payload_bytes = contender.payload_bytes(size);
    let max_time = Duration::from_secs(3);
    let mut server = ChildSpec::new(Role::Server, contender.name(), payload_bytes);
    server.core = cores.receiver;
    server.shared_core = cores.shared();
    let mut client = ChildSpec::new(Role::Client, contender.name(), payload_bytes);
    client.core = cores.sender;
    client.shared_core = cores.shared();
    client.rounds = options.floor_rounds;
    client.warmup_rounds = (options.floor_rounds / 10).max(100);
    client.duration = max_time;
    let timeout = max_time + max_time / 4 + REPLY_TIMEOUT + Duration::from_secs(15);
    let outcome = child::run_pair(&server, &client, timeout)?;
    let report = outcome
        .connector
        .and_then(|value| value.get("report").cloned())
        .context("the client reported nothing")?;
    serde_json::from_value(report).context("the client's report")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_options() {
        let command = parse(Args::new([
            "--receivers",
            "1,3",
            "--size",
            "2k",
            "--count",
            "100",
            "--driver",
            "poll",
            "--only",
            "group,floor",
            "--latency-receivers",
            "none",
            "--rates",
            "5000,max",
        ]))
        .unwrap();
        let FanoutCommand::Run(options) = command else {
            panic!("{command:?}")
        };
        assert_eq!(options.receivers, vec![1, 3]);
        assert_eq!(options.sizes, vec![2048]);
        assert_eq!(options.count, 100);
        assert_eq!(options.driver.as_deref(), Some("poll"));
        assert!(options.selects("group") && !options.selects("zmq"));
        assert!(options.latency_receivers.is_empty());
        assert_eq!(options.paces, vec![5000, 0]);
        let FanoutCommand::Run(options) = parse(Args::new(["--receivers", "none"])).unwrap() else {
            panic!("not a run")
        };
        assert!(options.receivers.is_empty());
        assert_eq!(parse(Args::new(["--help"])).unwrap(), FanoutCommand::Help);
    }

    #[test]
    fn parse_rejects_bad_options() {
        for args in [
            vec!["--bogus"],
            vec!["--receivers", "0"],
            vec!["--driver", "carrier-pigeon"],
            vec!["--idle", "nap"],
            vec!["--only", "group,smoke-signals"],
            vec!["--duration", "0"],
            vec!["--count", "x"],
        ] {
            assert!(parse(Args::new(args.clone())).is_err(), "{args:?}");
        }
    }

    #[test]
    fn parse_recognises_the_hidden_child_modes() {
        let spec = ChildSpec::new(Role::Server, "udp-busy", 32);
        assert_eq!(
            parse(Args::new(spec.to_args())).unwrap(),
            FanoutCommand::PingPong(spec)
        );
        let mut args = vec![
            side::CHILD_FLAG.to_owned(),
            "sub".to_owned(),
            "--receivers".to_owned(),
            "2".to_owned(),
            "--payload-bytes".to_owned(),
            "64".to_owned(),
        ];
        args.extend(["--index".to_owned(), "2".to_owned()]);
        let FanoutCommand::Child(spec) = parse(Args::new(args)).unwrap() else {
            panic!("not a child")
        };
        assert_eq!(
            (spec.side, spec.index, spec.receivers),
            (Side::Receiver, 2, 2)
        );
    }
}
