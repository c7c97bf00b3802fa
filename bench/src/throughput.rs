//! The throughput program: contenders, what their two processes report, and the table and JSON.
//!
//! For each contender and size the receiver binds, the sender sends as fast as it can for
//! `warmup + duration +` [`SEND_TAIL`], and the receiver measures messages/s and MB/s (MB = 10^6
//! bytes) over a window of `duration` that opens `warmup` after the first message (see
//! [`Meter`](crate::meter::Meter)). Every row gets its ratio to the kernel floor and to ZeroMQ at
//! the same size, when those were measured in the run.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::child::{self, ChildSpec, CorePlan, Role};
use crate::cli::{self, Args, CommonOptions};
use crate::contender::{self, Command, Contender, Program, ProgramOptions, RowLabel};
use crate::machine::Machine;
use crate::meter::DRAIN_MAX;
use crate::table::{self, Align, Table, ratio, thousands};

/// How long the sender keeps sending after the receiver's window should have closed.
pub const SEND_TAIL: Duration = Duration::from_millis(250);

/// One system under test in the throughput program: a receiving and a sending side, on top of
/// what every [`Contender`] is (name, columns, payload size, availability).
///
/// Both sides run in their own process (see [`child`]), so implementations hold no
/// state between them; everything they need is in the [`ChildSpec`].
pub trait ThroughputContender: Contender {
    /// Which baseline this contender is, if any; other rows get ratios against the baselines.
    fn baseline(&self) -> Option<ThroughputBaseline> {
        None
    }

    /// Receiver process: bind, call `ready` with the endpoint for the sender, then receive and
    /// feed a [`Meter`](crate::meter::Meter) built from `spec.warmup` and `spec.duration` until it
    /// says stop, and return its report (with any contender-specific figures in `extra`).
    ///
    /// # Errors
    /// When setting up or receiving fails.
    fn run_rx(&self, spec: &ChildSpec, ready: &mut dyn FnMut(&str)) -> Result<RxReport>;

    /// Sender process: connect to `spec.endpoint()` and send `spec.payload_bytes`-byte messages as
    /// fast as possible until [`send_deadline`]; report what was sent.
    ///
    /// # Errors
    /// When setting up or sending fails.
    fn run_tx(&self, spec: &ChildSpec) -> Result<TxReport>;
}

/// The baselines that other rows are compared with.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ThroughputBaseline {
    /// The kernel floor: UDP with `sendmmsg`/`recvmmsg`.
    Floor,
    /// ZeroMQ PUSH/PULL over TCP.
    ZeroMq,
}

impl ThroughputBaseline {
    /// Key in the JSON `baselines` object.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::ZeroMq => "zeromq",
        }
    }
}

/// What a receiver measured.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct RxReport {
    /// Messages received inside the window.
    pub messages: u64,
    /// Payload bytes received inside the window.
    pub bytes: u64,
    /// Length of the window.
    pub window_ns: u64,
    /// Messages received in all (warm-up, window and drain).
    pub messages_total: u64,
    /// Payload bytes received in all.
    pub bytes_total: u64,
    /// False if the sender went quiet before the window's end.
    pub complete: bool,
    /// Contender-specific figures (socket buffer sizes, ...).
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// What a sender sent.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct TxReport {
    /// Messages handed to the transport.
    pub messages: u64,
    /// Payload bytes handed to the transport.
    pub bytes: u64,
    /// From the first send to the last.
    pub elapsed_ns: u64,
    /// Contender-specific figures.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// One line of the result: a contender at one size.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRow {
    /// Which contender at which size; its baseline key is `floor` or `zeromq`, if any.
    #[serde(flatten)]
    pub label: RowLabel,
    /// Messages per second received in the window.
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second received in the window.
    pub mb_per_s: f64,
    /// Messages per second the sender handed to the transport.
    pub sent_msgs_per_s: f64,
    /// Fraction of sent messages never received (drops), from the totals.
    pub loss: f64,
    /// Whether the window ran its full length.
    pub complete: bool,
    /// Messages per second over the floor's at the same size.
    pub ratio_vs_floor: Option<f64>,
    /// Messages per second over ZeroMQ's at the same size.
    pub ratio_vs_zmq: Option<f64>,
    /// The receiver's report.
    pub rx: RxReport,
    /// The sender's report.
    pub tx: TxReport,
}

impl ThroughputRow {
    /// A row from the two reports.
    pub fn new(
        contender: &dyn ThroughputContender,
        size: usize,
        payload_bytes: usize,
        rx: RxReport,
        tx: TxReport,
    ) -> Self {
        let window_s = rx.window_ns as f64 / 1e9;
        let per_second = |count: u64| {
            if window_s > 0.0 {
                count as f64 / window_s
            } else {
                0.0
            }
        };
        let sent_s = tx.elapsed_ns as f64 / 1e9;
        let loss = if tx.messages > 0 {
            (1.0 - rx.messages_total as f64 / tx.messages as f64).max(0.0)
        } else {
            0.0
        };
        Self {
            label: RowLabel::new(
                contender,
                contender.baseline().map(ThroughputBaseline::key),
                size,
                payload_bytes,
            ),
            msgs_per_s: per_second(rx.messages),
            mb_per_s: per_second(rx.bytes) / 1e6,
            sent_msgs_per_s: if sent_s > 0.0 {
                tx.messages as f64 / sent_s
            } else {
                0.0
            },
            loss,
            complete: rx.complete,
            ratio_vs_floor: None,
            ratio_vs_zmq: None,
            rx,
            tx,
        }
    }
}

/// Fills in every row's ratios against the baselines measured at the same size.
pub fn compute_ratios(rows: &mut [ThroughputRow]) {
    let baseline = |rows: &[ThroughputRow], key: &str, size: usize| {
        rows.iter()
            .find(|row| row.label.baseline == Some(key) && row.label.size == size)
            .map(|row| row.msgs_per_s)
            .filter(|rate| *rate > 0.0)
    };
    for index in 0..rows.len() {
        let size = rows[index].label.size;
        let floor = baseline(rows, ThroughputBaseline::Floor.key(), size);
        let zmq = baseline(rows, ThroughputBaseline::ZeroMq.key(), size);
        let rate = rows[index].msgs_per_s;
        rows[index].ratio_vs_floor = floor.map(|floor| rate / floor);
        rows[index].ratio_vs_zmq = zmq.map(|zmq| rate / zmq);
    }
}

/// The throughput program's options.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputOptions {
    /// Options both programs take.
    pub common: CommonOptions,
    /// From the first message to the start of the window.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
}

impl Default for ThroughputOptions {
    fn default() -> Self {
        Self {
            common: CommonOptions::default(),
            warmup: Duration::from_millis(250),
            duration: Duration::from_secs(2),
        }
    }
}

impl ProgramOptions for ThroughputOptions {
    fn common(&mut self) -> &mut CommonOptions {
        &mut self.common
    }

    fn parse_flag(&mut self, flag: &str, args: &mut Args) -> Result<bool> {
        match flag {
            "--duration" => self.duration = cli::parse_duration(&args.raw_value(flag)?)?,
            "--warmup" => self.warmup = cli::parse_duration(&args.raw_value(flag)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn check(&self) -> Result<()> {
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        Ok(())
    }
}

/// What the command line asks for.
pub type ThroughputCommand = Command<ThroughputOptions>;

/// Parses the throughput program's command line.
///
/// # Errors
/// On an unknown option or a malformed value.
pub fn parse(args: Args) -> Result<ThroughputCommand> {
    contender::parse(args)
}

/// The help text.
pub fn help() -> String {
    format!(
        "throughput: messages/s and MB/s (MB = 10^6 bytes) from a sender process to a receiver
process on loopback, each pinned to its own core, against the kernel floor (UDP
sendmmsg/recvmmsg) and ZeroMQ (PUSH/PULL over TCP) measured in the same run. Prints a table
and, as its last line, one JSON object with every figure.

usage: throughput [OPTIONS]
  --duration SECS   measured window per contender and size (default 2s)
  --warmup SECS     from the first message to the start of the window (default 250ms)
{}
",
        cli::COMMON_HELP
    )
}

/// The throughput program: `main` of `src/bin/throughput.rs`, given the registry of contenders.
pub fn main(contenders: &[Box<dyn ThroughputContender>]) -> ExitCode {
    contender::main::<Throughput>(contenders)
}

/// The throughput program, for [`contender::main`].
struct Throughput;

impl Program for Throughput {
    type Contender = dyn ThroughputContender;
    type Options = ThroughputOptions;

    const LIST_WIDTH: usize = 12;

    fn help() -> String {
        help()
    }

    fn run_side(contender: &dyn ThroughputContender, spec: &ChildSpec) -> Result<Value> {
        Ok(match spec.role {
            Role::Receiver => {
                serde_json::to_value(contender.run_rx(spec, &mut child::announce_ready)?)?
            }
            Role::Sender => serde_json::to_value(contender.run_tx(spec)?)?,
            Role::Server | Role::Client => {
                bail!("the throughput program has no {:?} role", spec.role)
            }
        })
    }

    fn run(contenders: &[Box<dyn ThroughputContender>], options: &ThroughputOptions) -> Result<()> {
        run(contenders, options)
    }
}

/// The sender's deadline: long enough to cover the receiver's warm-up and window.
pub fn send_deadline(spec: &ChildSpec) -> Instant {
    Instant::now() + spec.warmup + spec.duration + SEND_TAIL
}

fn run(contenders: &[Box<dyn ThroughputContender>], options: &ThroughputOptions) -> Result<()> {
    contender::check_only(contenders, &options.common)?;
    let machine = Machine::current();
    let cores = CorePlan::resolve(options.common.cores);
    let started = Instant::now();
    let mut sweep = contender::sweep(
        "throughput",
        contenders,
        &options.common,
        |contender, size, payload_bytes| {
            let (rx, tx) = measure(contender, payload_bytes, options, cores)?;
            Ok(ThroughputRow::new(contender, size, payload_bytes, rx, tx))
        },
        |row| format!("{} msgs/s", thousands(row.msgs_per_s.round() as u64)),
    );
    compute_ratios(&mut sweep.rows);
    if !options.common.json_only {
        cli::print(&render_table(&sweep.rows, &machine, cores))?;
    }
    let fields = json!({
        "program": "throughput",
        "units": { "rate": "messages per second", "mb_per_s": "10^6 payload bytes per second",
                   "size": "payload bytes", "loss": "fraction of sent messages not received" },
        "config": {
            "sizes": options.common.sizes,
            "warmup_s": options.warmup.as_secs_f64(),
            "duration_s": options.duration.as_secs_f64(),
            "cores": cores.to_json(),
        },
        "baselines": baselines(&sweep.rows),
    });
    sweep.print_report(fields, &machine, started)
}

fn measure(
    contender: &dyn ThroughputContender,
    payload_bytes: usize,
    options: &ThroughputOptions,
    cores: CorePlan,
) -> Result<(RxReport, TxReport)> {
    let mut receiver = ChildSpec::new(Role::Receiver, contender.name(), payload_bytes);
    receiver.warmup = options.warmup;
    receiver.duration = options.duration;
    receiver.core = cores.receiver;
    receiver.shared_core = cores.shared();
    let mut sender = receiver.clone();
    sender.role = Role::Sender;
    sender.core = cores.sender;
    let timeout =
        options.warmup + options.duration + SEND_TAIL + DRAIN_MAX + Duration::from_secs(15);
    let outcome = child::run_pair(&receiver, &sender, timeout)?;
    let report = |value: Option<Value>, side: &str| -> Result<Value> {
        let value = value.with_context(|| format!("the {side} reported nothing"))?;
        value
            .get("report")
            .cloned()
            .with_context(|| format!("the {side}'s result has no report"))
    };
    let rx: RxReport = serde_json::from_value(report(outcome.binder, "receiver")?)
        .context("the receiver's report")?;
    let tx: TxReport = serde_json::from_value(report(outcome.connector, "sender")?)
        .context("the sender's report")?;
    Ok((rx, tx))
}

fn baselines(rows: &[ThroughputRow]) -> Value {
    let mut baselines = Map::new();
    for key in [
        ThroughputBaseline::Floor.key(),
        ThroughputBaseline::ZeroMq.key(),
    ] {
        let mut sizes = Map::new();
        for row in rows.iter().filter(|row| row.label.baseline == Some(key)) {
            sizes.insert(
                row.label.size.to_string(),
                json!({ "contender": row.label.contender, "msgs_per_s": row.msgs_per_s,
                        "mb_per_s": row.mb_per_s, "payload_bytes": row.label.payload_bytes }),
            );
        }
        baselines.insert(key.to_owned(), Value::Object(sizes));
    }
    Value::Object(baselines)
}

/// The readable table, with a title line and notes.
pub fn render_table(rows: &[ThroughputRow], machine: &Machine, cores: CorePlan) -> String {
    let mut table = Table::new(&[
        ("system", Align::Left),
        ("mode", Align::Left),
        ("size", Align::Right),
        ("msgs/s", Align::Right),
        ("MB/s", Align::Right),
        ("vs floor", Align::Right),
        ("vs ZeroMQ", Align::Right),
        ("sent msgs/s", Align::Right),
        ("lost", Align::Right),
        ("note", Align::Left),
    ]);
    for row in rows {
        let mut notes = row.label.notes();
        if !row.complete {
            notes.push("sender went quiet: short window".to_owned());
        }
        let mut cells = row.label.cells();
        cells.extend([
            thousands(row.msgs_per_s.round() as u64),
            format!("{:.1}", row.mb_per_s),
            ratio(row.ratio_vs_floor),
            ratio(row.ratio_vs_zmq),
            thousands(row.sent_msgs_per_s.round() as u64),
            format!("{:.1} %", row.loss * 100.0),
            notes.join("; "),
        ]);
        table.row(cells);
    }
    table::titled(
        &table,
        "throughput",
        machine,
        cores,
        ("sender", "receiver"),
        "MB = 10^6 payload bytes; lost = sent but never received",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fake = contender::tests::Fake<ThroughputBaseline>;

    impl ThroughputContender for Fake {
        fn baseline(&self) -> Option<ThroughputBaseline> {
            self.1
        }
        fn run_rx(&self, _: &ChildSpec, _: &mut dyn FnMut(&str)) -> Result<RxReport> {
            bail!("not run")
        }
        fn run_tx(&self, _: &ChildSpec) -> Result<TxReport> {
            bail!("not run")
        }
    }

    fn row(contender: &Fake, size: usize, messages: u64) -> ThroughputRow {
        let rx = RxReport {
            messages,
            bytes: messages * size as u64,
            window_ns: 2_000_000_000,
            messages_total: messages + 10,
            bytes_total: 0,
            complete: true,
            extra: Map::new(),
        };
        let tx = TxReport {
            messages: messages + 20,
            bytes: 0,
            elapsed_ns: 2_000_000_000,
            extra: Map::new(),
        };
        ThroughputRow::new(contender, size, size, rx, tx)
    }

    #[test]
    fn rows_get_ratios_against_baselines_of_the_same_size() {
        let floor = Fake::new("udp-floor", Some(ThroughputBaseline::Floor));
        let zmq = Fake::new("zmq", Some(ThroughputBaseline::ZeroMq));
        let other = Fake::new("phyla", None);
        let mut rows = vec![
            row(&floor, 32, 4_000),
            row(&zmq, 32, 2_000),
            row(&other, 32, 1_000),
            row(&other, 1024, 1_000),
        ];
        compute_ratios(&mut rows);
        assert_eq!(rows[0].msgs_per_s, 2_000.0);
        assert_eq!(rows[2].ratio_vs_floor, Some(0.25));
        assert_eq!(rows[2].ratio_vs_zmq, Some(0.5));
        assert_eq!(rows[0].ratio_vs_floor, Some(1.0));
        assert_eq!(rows[3].ratio_vs_floor, None);
        assert!((rows[2].loss - 10.0 / 1020.0).abs() < 1e-12);

        let json = serde_json::to_value(&rows).unwrap();
        for key in [
            "msgs_per_s",
            "mb_per_s",
            "ratio_vs_floor",
            "ratio_vs_zmq",
            "loss",
            "size",
        ] {
            assert!(json[2].get(key).is_some(), "{key}");
        }
        let baselines = baselines(&rows);
        assert_eq!(baselines["floor"]["32"]["msgs_per_s"], 2_000.0);
        assert_eq!(baselines["zeromq"]["32"]["msgs_per_s"], 1_000.0);
        let machine = Machine::current();
        let cores = CorePlan {
            sender: Some(0),
            receiver: Some(1),
        };
        let table = render_table(&rows, &machine, cores);
        assert!(table.contains("0.25x"), "{table}");
    }

    #[test]
    fn parse_reads_options_and_hidden_child_mode() {
        let command = parse(Args::new([
            "--duration",
            "3",
            "--warmup=100ms",
            "--json-only",
        ]))
        .unwrap();
        let ThroughputCommand::Run(options) = command else {
            panic!("{command:?}")
        };
        assert_eq!(options.duration, Duration::from_secs(3));
        assert_eq!(options.warmup, Duration::from_millis(100));
        assert!(options.common.json_only);
        assert_eq!(
            parse(Args::new(["--help"])).unwrap(),
            ThroughputCommand::Help
        );
        assert!(parse(Args::new(["--bogus"])).is_err());
        assert!(parse(Args::new(["--duration", "0"])).is_err());
        let spec = ChildSpec::new(Role::Sender, "udp-floor", 32);
        assert_eq!(
            parse(Args::new(spec.to_args())).unwrap(),
            ThroughputCommand::Child(spec)
        );
    }
}
