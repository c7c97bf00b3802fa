//! The ping-pong program: round-trip latency of one message echoed by a server process.
//!
//! For each contender and size the server binds and echoes; the client makes `warmup_rounds`
//! round trips, then times `rounds` more (or as many as fit in the time cap) into an HDR
//! histogram in nanoseconds. The table shows p50, p99, p99.9 and max in microseconds, and every
//! row's ratios to the kernel floor at the same size; an SVG plot shows the percentiles.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::child::{self, ChildSpec, CorePlan, Role};
use crate::cli::{self, Args, CommonOptions};
use crate::contender::{self, Command, Contender, Program, ProgramOptions, RowLabel};
use crate::machine::Machine;
use crate::svg::{self, Panel, Series};
use crate::table::{self, Align, Table, micros, ratio, thousands};

/// How long a client or server waits for a reply before calling the round trip lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// One system under test in the ping-pong program: an echo server and a client, on top of what
/// every [`Contender`] is (name, columns, payload size, availability).
///
/// Both sides run in their own process (see [`child`]).
pub trait PingPongContender: Contender {
    /// Which baseline this contender is, if any; other rows get ratios against the baselines.
    fn baseline(&self) -> Option<LatencyBaseline> {
        None
    }

    /// Server process: bind, call `ready` with the endpoint for the client, then echo every
    /// message back unchanged until an empty message arrives, and return.
    ///
    /// # Errors
    /// When setting up, receiving or sending fails.
    fn run_server(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<()>;

    /// Client process: connect to `spec.endpoint()`. The framework then drives the returned
    /// [`RoundTrip`] through warm-up and measurement and finally calls [`RoundTrip::stop`].
    ///
    /// # Errors
    /// When connecting fails.
    fn connect(&self, spec: &ChildSpec) -> Result<Box<dyn RoundTrip>>;
}

/// The client's half of one contender: one round trip at a time.
pub trait RoundTrip {
    /// Sends `request` and returns when its echo is back; a reply that fails
    /// [`echo_matches`] (a late one) is skipped. Gives up after [`REPLY_TIMEOUT`].
    ///
    /// # Errors
    /// When sending or receiving fails, or no reply arrives in time.
    fn round_trip(&mut self, request: &[u8]) -> Result<()>;

    /// Tells the server to stop (an empty message), without waiting for an answer.
    ///
    /// # Errors
    /// When sending fails.
    fn stop(&mut self) -> Result<()>;
}

/// Whether `reply` is the echo of `request`: same length and the same sequence number (the
/// first 8 bytes, which the framework stamps into each request).
pub fn echo_matches(request: &[u8], reply: &[u8]) -> bool {
    let stamp = request.len().min(8);
    reply.len() == request.len() && reply[..stamp] == request[..stamp]
}

/// The baselines that other rows are compared with.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LatencyBaseline {
    /// UDP with both sides spinning on a non-blocking `recv`.
    FloorBusy,
    /// UDP with blocking sockets.
    FloorBlocking,
    /// ZeroMQ REQ/REP over TCP.
    ZeroMq,
}

impl LatencyBaseline {
    /// Key in the JSON `baselines` object.
    pub const fn key(self) -> &'static str {
        match self {
            Self::FloorBusy => "floor_busy",
            Self::FloorBlocking => "floor_blocking",
            Self::ZeroMq => "zeromq",
        }
    }
}

/// Percentiles of the measured round trips, in nanoseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Round trips measured.
    pub rounds: u64,
    /// Whether all requested rounds ran (false: the time cap stopped them).
    pub complete: bool,
    /// Wall time of the measured phase.
    pub measured_ns: u64,
    /// Fastest round trip.
    pub min_ns: u64,
    /// Mean round trip.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Slowest round trip.
    pub max_ns: u64,
}

impl LatencySummary {
    /// Summarises a histogram of round trips in nanoseconds.
    pub fn from_histogram(histogram: &Histogram<u64>, measured: Duration, complete: bool) -> Self {
        Self {
            rounds: histogram.len(),
            complete,
            measured_ns: u64::try_from(measured.as_nanos()).unwrap_or(u64::MAX),
            min_ns: histogram.min(),
            mean_ns: histogram.mean(),
            p50_ns: histogram.value_at_quantile(0.5),
            p90_ns: histogram.value_at_quantile(0.9),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            p9999_ns: histogram.value_at_quantile(0.9999),
            max_ns: histogram.max(),
        }
    }

    /// The points of the plot: (label, position on the "nines" axis, nanoseconds).
    pub fn plot_points(&self) -> [(&'static str, f64, u64); 6] {
        let values = [
            self.p50_ns,
            self.p90_ns,
            self.p99_ns,
            self.p999_ns,
            self.p9999_ns,
            self.max_ns,
        ];
        let ticks = plot_ticks();
        std::array::from_fn(|index| (ticks[index].0, ticks[index].1, values[index]))
    }
}

/// The plot's x axis: each percentile's label and position on the "nines" axis (max at 5).
pub fn plot_ticks() -> [(&'static str, f64); 6] {
    [
        ("50", nines(0.5)),
        ("90", nines(0.9)),
        ("99", nines(0.99)),
        ("99.9", nines(0.999)),
        ("99.99", nines(0.9999)),
        ("max", 5.0),
    ]
}

/// Position of a quantile on the "nines" axis: `-log10(1 - q)` (0.9 → 1, 0.99 → 2, ...).
pub fn nines(quantile: f64) -> f64 {
    -(1.0 - quantile).log10()
}

/// One line of the result: a contender at one size.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    /// Which contender at which size; its baseline key is `floor_busy`, `floor_blocking` or
    /// `zeromq`, if any.
    #[serde(flatten)]
    pub label: RowLabel,
    /// The percentiles.
    #[serde(flatten)]
    pub summary: LatencySummary,
    /// p50 over the busy-polling floor's p50 at the same size.
    pub p50_vs_floor_busy: Option<f64>,
    /// p50 over the blocking floor's p50 at the same size.
    pub p50_vs_floor_blocking: Option<f64>,
    /// p99.9 over the busy-polling floor's p99.9 at the same size.
    pub p999_vs_floor_busy: Option<f64>,
    /// p50 over ZeroMQ's p50 at the same size.
    pub p50_vs_zmq: Option<f64>,
}

impl LatencyRow {
    /// A row from the client's summary.
    pub fn new(
        contender: &dyn PingPongContender,
        size: usize,
        payload_bytes: usize,
        summary: LatencySummary,
    ) -> Self {
        Self {
            label: RowLabel::new(
                contender,
                contender.baseline().map(LatencyBaseline::key),
                size,
                payload_bytes,
            ),
            summary,
            p50_vs_floor_busy: None,
            p50_vs_floor_blocking: None,
            p999_vs_floor_busy: None,
            p50_vs_zmq: None,
        }
    }
}

/// Fills in every row's ratios against the baselines measured at the same size.
pub fn compute_ratios(rows: &mut [LatencyRow]) {
    let find = |rows: &[LatencyRow], baseline: LatencyBaseline, size: usize| {
        rows.iter()
            .find(|row| row.label.baseline == Some(baseline.key()) && row.label.size == size)
            .map(|row| row.summary.clone())
    };
    let over = |value: u64, base: Option<u64>| {
        base.filter(|base| *base > 0)
            .map(|base| value as f64 / base as f64)
    };
    for index in 0..rows.len() {
        let size = rows[index].label.size;
        let busy = find(rows, LatencyBaseline::FloorBusy, size);
        let blocking = find(rows, LatencyBaseline::FloorBlocking, size);
        let zmq = find(rows, LatencyBaseline::ZeroMq, size);
        let row = &mut rows[index];
        row.p50_vs_floor_busy = over(row.summary.p50_ns, busy.as_ref().map(|base| base.p50_ns));
        row.p50_vs_floor_blocking = over(row.summary.p50_ns, blocking.map(|base| base.p50_ns));
        row.p999_vs_floor_busy = over(row.summary.p999_ns, busy.map(|base| base.p999_ns));
        row.p50_vs_zmq = over(row.summary.p50_ns, zmq.map(|base| base.p50_ns));
    }
}

/// The ping-pong program's options.
#[derive(Clone, Debug, PartialEq)]
pub struct PingPongOptions {
    /// Options both programs take.
    pub common: CommonOptions,
    /// Measured round trips per contender and size.
    pub rounds: u64,
    /// Round trips before measuring.
    pub warmup_rounds: u64,
    /// Cap on the measured phase of one contender and size.
    pub max_time: Duration,
    /// Where to write the SVG plot (`None`: do not write one).
    pub svg: Option<PathBuf>,
}

impl Default for PingPongOptions {
    fn default() -> Self {
        Self {
            common: CommonOptions::default(),
            rounds: 30_000,
            warmup_rounds: 2_000,
            max_time: Duration::from_secs(3),
            svg: Some(PathBuf::from(DEFAULT_SVG)),
        }
    }
}

impl ProgramOptions for PingPongOptions {
    fn common(&mut self) -> &mut CommonOptions {
        &mut self.common
    }

    fn parse_flag(&mut self, flag: &str, args: &mut Args) -> Result<bool> {
        match flag {
            "--rounds" => self.rounds = args.value(flag)?,
            "--warmup-rounds" => self.warmup_rounds = args.value(flag)?,
            "--max-time" => self.max_time = cli::parse_duration(&args.raw_value(flag)?)?,
            "--svg" => self.svg = Some(PathBuf::from(args.raw_value(flag)?)),
            "--no-svg" => self.svg = None,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn check(&self) -> Result<()> {
        if self.rounds == 0 || self.max_time.is_zero() {
            bail!("--rounds and --max-time must be positive");
        }
        Ok(())
    }
}

/// Where the plot goes by default (relative to the working directory).
pub const DEFAULT_SVG: &str = "target/bench/pingpong.svg";

/// What the command line asks for.
pub type PingPongCommand = Command<PingPongOptions>;

/// Parses the ping-pong program's command line.
///
/// # Errors
/// On an unknown option or a malformed value.
pub fn parse(args: Args) -> Result<PingPongCommand> {
    contender::parse(args)
}

/// The help text.
pub fn help() -> String {
    format!(
        "pingpong: round-trip latency of one message between a client process and an echo server
process on loopback, each pinned to its own core, against the kernel floor (UDP, blocking and
busy-polling) and ZeroMQ (REQ/REP over TCP) measured in the same run. Prints p50, p99, p99.9
and max in microseconds, writes an SVG plot of the percentiles, and prints as its last line
one JSON object with every figure (nanoseconds).

usage: pingpong [OPTIONS]
  --rounds N          measured round trips per contender and size (default 30000)
  --warmup-rounds N   round trips before measuring (default 2000)
  --max-time SECS     cap on the measured phase per contender and size (default 3s)
  --svg PATH          where to write the plot (default {DEFAULT_SVG})
  --no-svg            do not write the plot
{}
",
        cli::COMMON_HELP
    )
}

/// The ping-pong program: `main` of `src/bin/pingpong.rs`, given the registry of contenders.
pub fn main(contenders: &[Box<dyn PingPongContender>]) -> ExitCode {
    contender::main::<PingPong>(contenders)
}

/// The ping-pong program, for [`contender::main`].
struct PingPong;

impl Program for PingPong {
    type Contender = dyn PingPongContender;
    type Options = PingPongOptions;

    const LIST_WIDTH: usize = 14;

    fn help() -> String {
        help()
    }

    fn run_side(contender: &dyn PingPongContender, spec: &ChildSpec) -> Result<Value> {
        Ok(match spec.role {
            Role::Server => {
                contender.run_server(spec, &mut child::announce_ready)?;
                json!({})
            }
            Role::Client => serde_json::to_value(run_client(contender, spec)?)?,
            Role::Receiver | Role::Sender => {
                bail!("the ping-pong program has no {:?} role", spec.role)
            }
        })
    }

    fn run(contenders: &[Box<dyn PingPongContender>], options: &PingPongOptions) -> Result<()> {
        run(contenders, options)
    }
}

/// Client process: warm-up, then timed round trips into a histogram, then stop the server.
///
/// # Errors
/// When connecting or a round trip fails.
pub fn run_client(contender: &dyn PingPongContender, spec: &ChildSpec) -> Result<LatencySummary> {
    let mut client = contender.connect(spec)?;
    let mut request = vec![0xa5; spec.payload_bytes];
    let mut sequence = 0_u64;
    let warmup_start = Instant::now();
    for _ in 0..spec.warmup_rounds {
        sequence += 1;
        stamp(&mut request, sequence);
        client.round_trip(&request).context("warm-up round trip")?;
        if warmup_start.elapsed() > spec.duration / 4 {
            break;
        }
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).context("histogram bounds")?;
    let start = Instant::now();
    let mut complete = true;
    for round in 0..spec.rounds {
        sequence += 1;
        stamp(&mut request, sequence);
        let sent = Instant::now();
        client
            .round_trip(&request)
            .with_context(|| format!("round trip {round}"))?;
        let elapsed = sent.elapsed();
        histogram.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        if round % 128 == 127 && start.elapsed() > spec.duration {
            complete = round + 1 == spec.rounds;
            break;
        }
    }
    let measured = start.elapsed();
    client.stop()?;
    Ok(LatencySummary::from_histogram(
        &histogram, measured, complete,
    ))
}

fn stamp(request: &mut [u8], sequence: u64) {
    let bytes = sequence.to_le_bytes();
    let length = request.len().min(bytes.len());
    request[..length].copy_from_slice(&bytes[..length]);
}

fn run(contenders: &[Box<dyn PingPongContender>], options: &PingPongOptions) -> Result<()> {
    contender::check_only(contenders, &options.common)?;
    let machine = Machine::current();
    let cores = CorePlan::resolve(options.common.cores);
    if cores.shared() {
        eprintln!("pingpong: only one core: client and server share it, busy-polling will suffer");
    }
    let started = Instant::now();
    let mut sweep = contender::sweep(
        "pingpong",
        contenders,
        &options.common,
        |contender, size, payload_bytes| {
            let summary = measure(contender, payload_bytes, options, cores)?;
            Ok(LatencyRow::new(contender, size, payload_bytes, summary))
        },
        |row| format!("p50 {} us", micros(row.summary.p50_ns)),
    );
    compute_ratios(&mut sweep.rows);
    let svg_path = match &options.svg {
        Some(path) => {
            match write_plot(path, &sweep.rows, &machine) {
                Ok(()) => Some(path.display().to_string()),
                Err(error) => {
                    eprintln!("pingpong: could not write the plot: {error:#}");
                    sweep.errors.push(json!({ "plot": path.display().to_string(), "error": format!("{error:#}") }));
                    None
                }
            }
        }
        None => None,
    };
    if !options.common.json_only {
        cli::print(&render_table(&sweep.rows, &machine, cores))?;
        if let Some(path) = &svg_path {
            cli::print(&format!("plot: {path}\n"))?;
        }
    }
    let fields = json!({
        "program": "pingpong",
        "units": { "latency": "round trip, nanoseconds", "size": "payload bytes" },
        "config": {
            "sizes": options.common.sizes,
            "rounds": options.rounds,
            "warmup_rounds": options.warmup_rounds,
            "max_time_s": options.max_time.as_secs_f64(),
            "cores": cores.to_json(),
        },
        "baselines": baselines(&sweep.rows),
        "svg": svg_path,
    });
    sweep.print_report(fields, &machine, started)
}

fn measure(
    contender: &dyn PingPongContender,
    payload_bytes: usize,
    options: &PingPongOptions,
    cores: CorePlan,
) -> Result<LatencySummary> {
    let mut server = ChildSpec::new(Role::Server, contender.name(), payload_bytes);
    server.core = cores.receiver;
    let mut client = ChildSpec::new(Role::Client, contender.name(), payload_bytes);
    client.core = cores.sender;
    client.rounds = options.rounds;
    client.warmup_rounds = options.warmup_rounds;
    client.duration = options.max_time;
    server.shared_core = cores.shared();
    client.shared_core = cores.shared();
    let timeout = options.max_time + options.max_time / 4 + REPLY_TIMEOUT + Duration::from_secs(15);
    let outcome = child::run_pair(&server, &client, timeout)?;
    let report = outcome
        .connector
        .and_then(|value| value.get("report").cloned())
        .context("the client reported nothing")?;
    serde_json::from_value(report).context("the client's report")
}

fn baselines(rows: &[LatencyRow]) -> Value {
    let mut baselines = Map::new();
    for baseline in [
        LatencyBaseline::FloorBusy,
        LatencyBaseline::FloorBlocking,
        LatencyBaseline::ZeroMq,
    ] {
        let mut sizes = Map::new();
        for row in rows
            .iter()
            .filter(|row| row.label.baseline == Some(baseline.key()))
        {
            sizes.insert(
                row.label.size.to_string(),
                json!({ "contender": row.label.contender, "p50_ns": row.summary.p50_ns,
                        "p99_ns": row.summary.p99_ns, "p999_ns": row.summary.p999_ns,
                        "max_ns": row.summary.max_ns }),
            );
        }
        baselines.insert(baseline.key().to_owned(), Value::Object(sizes));
    }
    Value::Object(baselines)
}

/// The readable table, with a title line and notes.
pub fn render_table(rows: &[LatencyRow], machine: &Machine, cores: CorePlan) -> String {
    let mut table = Table::new(&[
        ("system", Align::Left),
        ("mode", Align::Left),
        ("size", Align::Right),
        ("p50", Align::Right),
        ("p99", Align::Right),
        ("p99.9", Align::Right),
        ("max", Align::Right),
        ("p50 vs busy floor", Align::Right),
        ("p50 vs blocking floor", Align::Right),
        ("rounds", Align::Right),
        ("note", Align::Left),
    ]);
    for row in rows {
        let mut notes = row.label.notes();
        if !row.summary.complete {
            notes.push("time cap reached".to_owned());
        }
        let mut cells = row.label.cells();
        cells.extend([
            micros(row.summary.p50_ns),
            micros(row.summary.p99_ns),
            micros(row.summary.p999_ns),
            micros(row.summary.max_ns),
            ratio(row.p50_vs_floor_busy),
            ratio(row.p50_vs_floor_blocking),
            thousands(row.summary.rounds),
            notes.join("; "),
        ]);
        table.row(cells);
    }
    table::titled(
        &table,
        "ping-pong round trips",
        machine,
        cores,
        ("client", "server"),
        "latencies in microseconds (us)",
    )
}

/// The plot: one panel per size, one line per contender, percentiles on a "nines" axis.
pub fn plot(rows: &[LatencyRow], machine: &Machine) -> String {
    let mut contenders: Vec<&str> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for row in rows {
        if !contenders.contains(&row.label.contender.as_str()) {
            contenders.push(&row.label.contender);
        }
        if !sizes.contains(&row.label.size) {
            sizes.push(row.label.size);
        }
    }
    let panels: Vec<Panel> = sizes
        .iter()
        .map(|&size| Panel {
            title: cli::size_label(size),
            series: rows
                .iter()
                .filter(|row| row.label.size == size)
                .map(|row| Series {
                    label: format!("{} {}", row.label.system, row.label.mode),
                    color: contenders
                        .iter()
                        .position(|name| *name == row.label.contender)
                        .unwrap_or(0),
                    points: row
                        .summary
                        .plot_points()
                        .iter()
                        .map(|&(_, x, ns)| (x, ns as f64 / 1e3))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let ticks: Vec<(f64, String)> = plot_ticks()
        .iter()
        .map(|&(label, x)| (x, label.to_owned()))
        .collect();
    let title = format!(
        "Ping-pong round-trip latency by percentile ({})",
        machine.date_utc
    );
    let subtitle = machine.summary();
    svg::render(&svg::Plot {
        title: &title,
        subtitle: &subtitle,
        x_label: "percentile",
        y_label: "round trip (us, log scale)",
        x_ticks: &ticks,
        panels: &panels,
    })
}

fn write_plot(path: &std::path::Path, rows: &[LatencyRow], machine: &Machine) -> Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, plot(rows, machine)).with_context(|| format!("writing {}", path.display()))
}

/// Round trips above a minute are recorded as a minute.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    type Fake = contender::tests::Fake<LatencyBaseline>;

    impl PingPongContender for Fake {
        fn baseline(&self) -> Option<LatencyBaseline> {
            self.1
        }
        fn run_server(&self, _: &ChildSpec, _: &mut dyn FnMut(&str)) -> Result<()> {
            bail!("not run")
        }
        fn connect(&self, _: &ChildSpec) -> Result<Box<dyn RoundTrip>> {
            bail!("not run")
        }
    }

    fn summary(base_ns: u64) -> LatencySummary {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).unwrap();
        for index in 0..10_000 {
            histogram.record(base_ns + index % 100).unwrap();
        }
        histogram.record(base_ns * 50).unwrap();
        LatencySummary::from_histogram(&histogram, Duration::from_secs(1), true)
    }

    fn rows() -> Vec<LatencyRow> {
        let busy = Fake::new("udp-busy", Some(LatencyBaseline::FloorBusy));
        let blocking = Fake::new("udp-blocking", Some(LatencyBaseline::FloorBlocking));
        let other = Fake::new("phyla", None);
        let mut rows = vec![
            LatencyRow::new(&blocking, 32, 32, summary(40_000)),
            LatencyRow::new(&busy, 32, 32, summary(4_000)),
            LatencyRow::new(&other, 32, 32, summary(8_000)),
            LatencyRow::new(&other, 65536, 65536, summary(80_000)),
        ];
        compute_ratios(&mut rows);
        rows
    }

    #[test]
    fn latency_rows_get_ratios_and_percentiles_in_json() {
        let rows = rows();
        let ratio = rows[2].p50_vs_floor_busy.unwrap();
        assert!((ratio - 2.0).abs() < 0.05, "{ratio}");
        assert!(rows[2].p50_vs_floor_blocking.unwrap() < 0.25);
        assert!(rows[2].p999_vs_floor_busy.is_some());
        assert_eq!(rows[2].p50_vs_zmq, None);
        assert_eq!(rows[3].p50_vs_floor_busy, None);
        let summary = &rows[2].summary;
        assert!(summary.p50_ns <= summary.p99_ns && summary.p99_ns <= summary.max_ns);
        assert_eq!(summary.rounds, 10_001);

        let json = serde_json::to_value(&rows).unwrap();
        for key in [
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "max_ns",
            "p50_vs_floor_busy",
            "p999_vs_floor_busy",
        ] {
            assert!(json[2].get(key).is_some(), "{key}");
        }
        let baselines = baselines(&rows);
        assert!(baselines["floor_busy"]["32"]["p50_ns"].is_u64());
        assert_eq!(baselines["zeromq"], json!({}));
        let table = render_table(
            &rows,
            &Machine::current(),
            CorePlan {
                sender: None,
                receiver: None,
            },
        );
        assert!(
            table.contains("p99.9") && table.contains("1.00x"),
            "{table}"
        );
    }

    #[test]
    fn plot_is_well_formed_svg_with_a_line_per_contender() {
        let rows = rows();
        let text = plot(&rows, &Machine::current());
        svg::tests::assert_well_formed(&text);
        assert_eq!(text.matches("<polyline").count(), rows.len());
        assert!(text.contains("99.99") && text.contains("max") && text.contains("64 KiB"));
    }

    #[test]
    fn nines_axis_positions() {
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert!(echo_matches(b"12345678abc", b"12345678xyz"));
        assert!(!echo_matches(b"12345678abc", b"22345678abc"));
        assert!(!echo_matches(b"1234", b"12345"));
    }

    #[test]
    fn parse_reads_options() {
        let command = parse(Args::new([
            "--rounds",
            "100",
            "--svg",
            "/tmp/x.svg",
            "--sizes",
            "32",
        ]))
        .unwrap();
        let PingPongCommand::Run(options) = command else {
            panic!("{command:?}")
        };
        assert_eq!(options.rounds, 100);
        assert_eq!(options.svg, Some(PathBuf::from("/tmp/x.svg")));
        assert_eq!(options.common.sizes, vec![32]);
        let PingPongCommand::Run(options) = parse(Args::new(["--no-svg"])).unwrap() else {
            panic!()
        };
        assert_eq!(options.svg, None);
        assert!(parse(Args::new(["--rounds", "x"])).is_err());
    }
}
