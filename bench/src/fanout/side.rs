//! A fan-out child process: its spec (passed on its command line), the two interfaces every
//! system implements ([`Publish`] and [`Receive`]), and the loops that drive them through a
//! throughput or a latency measurement, the same loops for every system.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::procs::Control;
use super::{group, unicast, zeromq};
use crate::cli::Args;
use crate::meter::{FIRST_MESSAGE_TIMEOUT, Meter, QUIET_TIMEOUT, RECEIVE_TIMEOUT};
use crate::throughput::{RxReport, SEND_TAIL};
use group_comm::engine::LOOPBACK_DATAGRAM_BYTES;

/// The hidden first argument of a fan-out child process.
pub const CHILD_FLAG: &str = "--fanout-side";

/// Messages a throughput publisher offers between two duty cycles.
const OFFER_BATCH: usize = 256;

/// A paced publisher offers what is due, runs its transport, then sleeps this long.
const PACE_TICK: Duration = Duration::from_millis(1);

/// Most duty cycles a paced publisher runs per tick.
const PACED_CYCLES_MAX: usize = 64;

/// How long a child waits for `GO` after it is ready (the parent starts and joins the others
/// meanwhile, one by one).
const GO_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes at the start of a latency probe: its sequence number and its publish time.
pub const PROBE_HEADER_BYTES: usize = 16;

/// The systems compared.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Phyla groups (`group_comm::engine`): one publication, the group's tree does the fan-out.
    Group,
    /// Baseline A: Phyla unicast, one session and one publication per receiver.
    Unicast,
    /// Baseline B: ZeroMQ PUB/SUB over TCP.
    Zmq,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [Self; 3] = [Self::Group, Self::Unicast, Self::Zmq];

    /// Stable name (`--only`, JSON).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Unicast => "unicast",
            Self::Zmq => "zmq",
        }
    }

    /// The system column.
    pub const fn system(self) -> &'static str {
        match self {
            Self::Group | Self::Unicast => "Phyla",
            Self::Zmq => "ZeroMQ",
        }
    }

    /// The mode column.
    pub const fn mode(self) -> &'static str {
        match self {
            Self::Group => "group (tree)",
            Self::Unicast => "N unicast sessions",
            Self::Zmq => "PUB/SUB tcp, no-drop",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|system| system.name() == name)
    }
}

/// What a run measures.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Mode {
    /// The publisher offers at a fixed rate, or as fast as back-pressure lets it.
    Throughput,
    /// The publisher sends stamped probes at a fixed rate; receivers time their arrival.
    Latency,
}

impl Mode {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Latency => "latency",
        }
    }
}

/// Which end a child is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Side {
    /// The one publisher.
    Publisher,
    /// One of the N receivers.
    Receiver,
}

/// Everything a fan-out child needs, passed on its command line.
#[derive(Clone, Debug, PartialEq)]
pub struct FanoutSpec {
    /// Which end.
    pub side: Side,
    /// Which system.
    pub system: System,
    /// What is measured.
    pub mode: Mode,
    /// 0 for the publisher, 1..=N for the receivers (also their node ids).
    pub index: usize,
    /// N, the number of receivers.
    pub receivers: usize,
    /// Payload bytes per message.
    pub payload_bytes: usize,
    /// Throughput: from the start (publisher) or first message (receiver) to the window.
    pub warmup: Duration,
    /// Throughput: the measured window.
    pub duration: Duration,
    /// Latency: measured probes.
    pub count: u64,
    /// Latency: probes sent before the measured ones.
    pub warmup_count: u64,
    /// Latency: probes per second.
    pub rate: u64,
    /// Throughput: messages per second the publisher offers (0: as many as it can).
    pub pace: u64,
    /// Phyla's driver (`uring` or `poll`; `None`: the engine's choice).
    pub driver: Option<String>,
    /// Idle strategy: `park`, `spin` or `yield`.
    pub idle: String,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Whether this process shares its core with a busy one (spinning loops then yield).
    pub shared_core: bool,
    /// Publisher of unicast: the receivers' endpoints. Receivers of group and ZeroMQ: the
    /// publisher's endpoint (the contact, or where to connect).
    pub endpoints: Vec<String>,
    /// Seconds a group member gives the overlay after joining before it reports ready.
    pub settle: Duration,
    /// Phyla sessions: `SessionConfig::gather_min_bytes` (`None`: the library's default).
    pub gather_min_bytes: Option<usize>,
    /// Phyla sessions: the largest datagram.
    pub datagram_bytes: usize,
}

impl FanoutSpec {
    /// The command-line arguments that [`FanoutSpec::parse`] reads back (after [`CHILD_FLAG`]).
    pub fn to_args(&self) -> Vec<String> {
        let side = match self.side {
            Side::Publisher => "pub",
            Side::Receiver => "sub",
        };
        let mut args = vec![
            CHILD_FLAG.to_owned(),
            side.to_owned(),
            "--system".to_owned(),
            self.system.name().to_owned(),
            "--mode".to_owned(),
            self.mode.as_str().to_owned(),
            "--index".to_owned(),
            self.index.to_string(),
            "--receivers".to_owned(),
            self.receivers.to_string(),
            "--payload-bytes".to_owned(),
            self.payload_bytes.to_string(),
            "--warmup-ns".to_owned(),
            self.warmup.as_nanos().to_string(),
            "--duration-ns".to_owned(),
            self.duration.as_nanos().to_string(),
            "--count".to_owned(),
            self.count.to_string(),
            "--warmup-count".to_owned(),
            self.warmup_count.to_string(),
            "--rate".to_owned(),
            self.rate.to_string(),
            "--pace".to_owned(),
            self.pace.to_string(),
            "--idle".to_owned(),
            self.idle.clone(),
            "--settle-ns".to_owned(),
            self.settle.as_nanos().to_string(),
        ];
        if let Some(driver) = &self.driver {
            args.extend(["--driver".to_owned(), driver.clone()]);
        }
        if let Some(core) = self.core {
            args.extend(["--core".to_owned(), core.to_string()]);
        }
        if self.shared_core {
            args.push("--shared-core".to_owned());
        }
        if !self.endpoints.is_empty() {
            args.extend(["--endpoints".to_owned(), self.endpoints.join(",")]);
        }
        if let Some(bytes) = self.gather_min_bytes {
            args.extend(["--gather-min".to_owned(), bytes.to_string()]);
        }
        args.extend(["--datagram".to_owned(), self.datagram_bytes.to_string()]);
        args
    }

    /// Reads a spec from arguments that start with [`CHILD_FLAG`].
    ///
    /// # Errors
    /// When an argument is unknown, missing or malformed.
    pub fn parse(args: &mut Args) -> Result<Self> {
        let mut spec = Self {
            side: Side::Receiver,
            system: System::Group,
            mode: Mode::Throughput,
            index: 0,
            receivers: 0,
            payload_bytes: 0,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            count: 0,
            warmup_count: 0,
            rate: 0,
            pace: 0,
            driver: None,
            idle: "park".to_owned(),
            core: None,
            shared_core: false,
            endpoints: Vec::new(),
            settle: Duration::ZERO,
            gather_min_bytes: None,
            datagram_bytes: LOOPBACK_DATAGRAM_BYTES,
        };
        let mut have_side = false;
        while let Some(flag) = args.next_flag() {
            match flag.as_str() {
                CHILD_FLAG => {
                    spec.side = match args.raw_value(&flag)?.as_str() {
                        "pub" => Side::Publisher,
                        "sub" => Side::Receiver,
                        other => bail!("unknown side {other:?}"),
                    };
                    have_side = true;
                }
                "--system" => {
                    let name = args.raw_value(&flag)?;
                    spec.system =
                        System::parse(&name).with_context(|| format!("unknown system {name:?}"))?;
                }
                "--mode" => {
                    spec.mode = match args.raw_value(&flag)?.as_str() {
                        "throughput" => Mode::Throughput,
                        "latency" => Mode::Latency,
                        other => bail!("unknown mode {other:?}"),
                    };
                }
                "--index" => spec.index = args.value(&flag)?,
                "--receivers" => spec.receivers = args.value(&flag)?,
                "--payload-bytes" => spec.payload_bytes = args.value(&flag)?,
                "--warmup-ns" => spec.warmup = Duration::from_nanos(args.value(&flag)?),
                "--duration-ns" => spec.duration = Duration::from_nanos(args.value(&flag)?),
                "--count" => spec.count = args.value(&flag)?,
                "--warmup-count" => spec.warmup_count = args.value(&flag)?,
                "--rate" => spec.rate = args.value(&flag)?,
                "--pace" => spec.pace = args.value(&flag)?,
                "--idle" => spec.idle = args.raw_value(&flag)?,
                "--settle-ns" => spec.settle = Duration::from_nanos(args.value(&flag)?),
                "--driver" => spec.driver = Some(args.raw_value(&flag)?),
                "--core" => spec.core = Some(args.value(&flag)?),
                "--shared-core" => spec.shared_core = true,
                "--gather-min" => spec.gather_min_bytes = Some(args.value(&flag)?),
                "--datagram" => spec.datagram_bytes = args.value(&flag)?,
                "--endpoints" => {
                    spec.endpoints = args
                        .raw_value(&flag)?
                        .split(',')
                        .map(str::trim)
                        .filter(|endpoint| !endpoint.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                _ => bail!("unknown fan-out child argument {flag:?}"),
            }
        }
        if !have_side || spec.payload_bytes == 0 || spec.receivers == 0 {
            bail!("a fan-out child needs {CHILD_FLAG}, --payload-bytes and --receivers");
        }
        if spec.mode == Mode::Latency && (spec.rate == 0 || spec.count == 0) {
            bail!("a latency child needs a positive --rate and --count");
        }
        Ok(spec)
    }

    /// Whether the idle strategy waits in the kernel (rather than spinning or yielding).
    pub fn parks(&self) -> bool {
        self.idle == "park"
    }

    /// The one endpoint a receiver of group or ZeroMQ needs.
    ///
    /// # Errors
    /// When the parent passed none.
    pub fn publisher_endpoint(&self) -> Result<&str> {
        self.endpoints
            .first()
            .map(String::as_str)
            .context("this side needs --endpoints")
    }
}

/// A publisher of any system, as the measurement loops drive it.
pub trait Publish {
    /// Offers one message to every receiver. `Ok(false)`: back-pressured, nothing more can be
    /// taken now; call again later with the same payload (a system that sends to receivers one
    /// by one remembers which ones already have it).
    ///
    /// # Errors
    /// When the transport failed for good.
    fn offer(&mut self, payload: &[u8]) -> Result<bool>;

    /// Runs the transport once; returns the work it did (0: nothing to do, as far as it
    /// knows). `idle`: the caller has nothing to offer now, so the transport may wait as the
    /// idle strategy says (until something arrives, or a short timeout).
    ///
    /// # Errors
    /// When the transport failed for good.
    fn cycle(&mut self, idle: bool) -> Result<usize>;

    /// The measurement starts now (after `GO`): counters that should cover only the
    /// measurement take their starting point.
    fn mark_start(&mut self) {}

    /// Whether every receiver can be sent to yet (ZeroMQ: their subscriptions arrived).
    ///
    /// # Errors
    /// When the transport failed for good.
    fn ready_to_start(&mut self) -> Result<bool> {
        Ok(true)
    }

    /// The system's own figures (counters, copies) for the report.
    fn report(&mut self) -> Value;
}

/// A receiver of any system, as the measurement loops drive it.
pub trait Receive {
    /// Runs the transport once and hands every message that arrived to `on_message`; returns
    /// how many. `idle`: the last call found nothing, so it may wait as the idle strategy says.
    ///
    /// # Errors
    /// When the transport failed for good.
    fn poll(&mut self, idle: bool, on_message: &mut dyn FnMut(&[u8])) -> Result<usize>;

    /// The measurement starts now (after `GO`): counters that should cover only the
    /// measurement take their starting point.
    fn mark_start(&mut self) {}

    /// The system's own figures (counters, copies, forwarding) for the report.
    fn report(&mut self) -> Value;
}

/// CPU time and context switches of this process so far (all its threads), from `getrusage`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct Usage {
    /// User CPU time.
    pub user_ns: u64,
    /// System (kernel) CPU time.
    pub sys_ns: u64,
    /// Times the process gave up the CPU to wait.
    pub voluntary_switches: u64,
    /// Times the scheduler took the CPU away.
    pub involuntary_switches: u64,
}

impl Usage {
    /// This process's usage now.
    pub fn now() -> Self {
        // SAFETY: `rusage` is plain old data; all-zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is valid for writes of a whole `rusage`.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return Self::default();
        }
        let ns = |time: libc::timeval| {
            u64::try_from(time.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(time.tv_usec).unwrap_or(0) * 1_000
        };
        Self {
            user_ns: ns(usage.ru_utime),
            sys_ns: ns(usage.ru_stime),
            voluntary_switches: u64::try_from(usage.ru_nvcsw).unwrap_or(0),
            involuntary_switches: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
        }
    }

    /// User plus system time.
    pub fn cpu_ns(&self) -> u64 {
        self.user_ns + self.sys_ns
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the host, so a publish time
/// stamped by one process can be subtracted from an arrival time read by another.
pub fn monotonic_ns() -> u64 {
    // SAFETY: `timespec` is plain old data; all-zero is a valid value.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is valid for writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// A counted stretch of a run: messages, bytes, wall time and CPU time inside it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Window {
    /// Messages inside it.
    pub messages: u64,
    /// Payload bytes inside it.
    pub bytes: u64,
    /// Its length.
    pub ns: u64,
    /// CPU time of the whole process inside it, and its context switches.
    pub usage: Usage,
}

/// What a throughput publisher reports.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct PublisherReport {
    /// Messages offered and taken, in all.
    pub messages_total: u64,
    /// The measured window (from `warmup` after `GO`, for `duration`).
    pub window: Window,
    /// Whether the window ran its full length.
    pub complete: bool,
    /// Times an offer was refused for back-pressure.
    pub backpressured: u64,
    /// Paced: ticks at which back-pressure kept the publisher behind its schedule.
    #[serde(default)]
    pub ticks_behind: u64,
    /// Paced: ticks (wake-ups) in all.
    #[serde(default)]
    pub ticks: u64,
    /// Paced: duty cycles run in those ticks.
    #[serde(default)]
    pub cycles: u64,
    /// The whole run's usage, from `GO` to the end of sending.
    pub usage: Usage,
    /// Latency mode: probes sent.
    pub probes_sent: u64,
    /// The system's own figures.
    pub system: Value,
}

/// What a receiver reports.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ReceiverReport {
    /// 1..=N.
    pub index: usize,
    /// Throughput: the receiver's window, as the throughput program's receivers report it.
    pub rx: Option<RxReport>,
    /// Throughput: the CPU time and switches inside the window.
    pub window_usage: Option<Usage>,
    /// Latency: probe sequence numbers received (warm-up included).
    pub probes_received: u64,
    /// Latency: for each measured probe, publish-to-delivery time in nanoseconds (0: missing).
    pub latencies_ns: Vec<u64>,
    /// The whole run's usage, from `GO` to the end of measuring.
    pub usage: Usage,
    /// The system's own figures.
    pub system: Value,
}

/// Runs a fan-out child: sets up its side of its system, tells the parent it is ready, measures
/// after `GO`, reports, and keeps its transport running (a group member may be forwarding to
/// others) until `STOP`.
///
/// # Errors
/// When setting up or measuring fails.
pub fn run(spec: &FanoutSpec) -> Result<()> {
    let pinned = spec.core.is_some_and(|id| {
        let pinned = core_affinity::set_for_current(core_affinity::CoreId { id });
        if !pinned {
            eprintln!("warning: could not pin to core {id}; running unpinned");
        }
        pinned
    });
    let mut control = Control::start();
    match spec.side {
        Side::Publisher => {
            let (mut publisher, endpoint): (Box<dyn Publish>, String) = match spec.system {
                System::Group => group::publisher(spec)?,
                System::Unicast => unicast::publisher(spec)?,
                System::Zmq => zeromq::publisher(spec)?,
            };
            println!("READY {endpoint}");
            let report = match spec.mode {
                Mode::Throughput => publish_throughput(publisher.as_mut(), spec, &mut control)?,
                Mode::Latency => publish_probes(publisher.as_mut(), spec, &mut control)?,
            };
            announce(pinned, &serde_json::to_value(report)?);
            while !control.stop() {
                publisher.cycle(true)?;
            }
        }
        Side::Receiver => {
            let (mut receiver, endpoint): (Box<dyn Receive>, String) = match spec.system {
                System::Group => group::receiver(spec)?,
                System::Unicast => unicast::receiver(spec)?,
                System::Zmq => zeromq::receiver(spec)?,
            };
            println!("READY {endpoint}");
            let report = match spec.mode {
                Mode::Throughput => receive_throughput(receiver.as_mut(), spec, &mut control)?,
                Mode::Latency => receive_probes(receiver.as_mut(), spec, &mut control)?,
            };
            announce(pinned, &serde_json::to_value(report)?);
            let mut idle = false;
            while !control.stop() {
                idle = receiver.poll(idle, &mut |_| {})? == 0;
            }
        }
    }
    Ok(())
}

fn announce(pinned: bool, report: &Value) {
    println!("RESULT {}", json!({ "pinned": pinned, "report": report }));
}

/// Waits for `GO` and for the transport to be ready, servicing it meanwhile.
fn start_publisher(
    publisher: &mut dyn Publish,
    spec: &FanoutSpec,
    control: &mut Control,
) -> Result<()> {
    control.wait_go(GO_TIMEOUT, || publisher.cycle(true).map(drop))?;
    let until = Instant::now() + FIRST_MESSAGE_TIMEOUT;
    while !publisher.ready_to_start()? {
        if Instant::now() > until {
            bail!(
                "the {} publisher was not ready to send within {FIRST_MESSAGE_TIMEOUT:?}",
                spec.system.name()
            );
        }
        publisher.cycle(true)?;
    }
    publisher.mark_start();
    Ok(())
}

/// Throughput publisher: offer at `spec.pace` (or as fast as back-pressure allows, if 0) for
/// `warmup + duration +` [`SEND_TAIL`], counting the window's messages and CPU time.
fn publish_throughput(
    publisher: &mut dyn Publish,
    spec: &FanoutSpec,
    control: &mut Control,
) -> Result<PublisherReport> {
    start_publisher(publisher, spec, control)?;
    let payload = vec![0x5a_u8; spec.payload_bytes];
    let start = Instant::now();
    let usage_start = Usage::now();
    let window_start = start + spec.warmup;
    let window_end = window_start + spec.duration;
    let deadline = window_end + SEND_TAIL;
    let mut opened: Option<(Instant, Usage, u64)> = None;
    let mut window = Window::default();
    let mut closed = false;
    let (mut published, mut backpressured) = (0_u64, 0_u64);
    let (mut behind, mut ticks, mut cycles) = (0_u64, 0_u64, 0_u64);
    loop {
        let mut blocked = false;
        let allowed = if spec.pace == 0 {
            published + OFFER_BATCH as u64
        } else {
            // Paced: whatever the schedule says should be out by now.
            (start.elapsed().as_secs_f64() * spec.pace as f64) as u64
        };
        while published < allowed {
            if publisher.offer(&payload)? {
                published += 1;
            } else {
                backpressured += 1;
                blocked = true;
                break;
            }
        }
        if spec.pace == 0 {
            publisher.cycle(blocked)?;
        } else {
            if blocked {
                behind += 1;
            }
            // Run the transport until it has nothing left to do, then sleep to the next tick:
            // CPU time is then the work the messages took, not waiting.
            ticks += 1;
            for _ in 0..PACED_CYCLES_MAX {
                cycles += 1;
                if publisher.cycle(false)? == 0 {
                    break;
                }
            }
            std::thread::sleep(PACE_TICK);
        }
        let now = Instant::now();
        if opened.is_none() && now >= window_start {
            opened = Some((now, Usage::now(), published));
        }
        if let (false, Some((at, usage, count))) = (closed, opened)
            && now >= window_end
        {
            window = Window {
                messages: published - count,
                bytes: (published - count) * spec.payload_bytes as u64,
                ns: nanos(now - at),
                usage: Usage::now().since(&usage),
            };
            closed = true;
        }
        if now >= deadline || control.stop() {
            break;
        }
    }
    Ok(PublisherReport {
        messages_total: published,
        window,
        complete: closed,
        backpressured,
        ticks_behind: behind,
        ticks,
        cycles,
        usage: Usage::now().since(&usage_start),
        probes_sent: 0,
        system: publisher.report(),
    })
}

/// Latency publisher: `warmup_count + count` probes at `rate` per second, each stamped with its
/// sequence number and `CLOCK_MONOTONIC` just before it is offered.
fn publish_probes(
    publisher: &mut dyn Publish,
    spec: &FanoutSpec,
    control: &mut Control,
) -> Result<PublisherReport> {
    start_publisher(publisher, spec, control)?;
    let mut payload = vec![0x5a_u8; spec.payload_bytes.max(PROBE_HEADER_BYTES)];
    let total = spec.warmup_count + spec.count;
    let interval = Duration::from_secs(1) / u32::try_from(spec.rate.max(1)).unwrap_or(u32::MAX);
    let start = Instant::now();
    let usage_start = Usage::now();
    let mut backpressured = 0_u64;
    for sequence in 0..total {
        let due = start + interval * u32::try_from(sequence).unwrap_or(u32::MAX);
        // The publisher has a core of its own: it spins its duty cycle until the probe is due.
        while Instant::now() < due {
            publisher.cycle(false)?;
            if spec.shared_core {
                std::thread::yield_now();
            }
        }
        payload[..8].copy_from_slice(&sequence.to_le_bytes());
        payload[8..16].copy_from_slice(&monotonic_ns().to_le_bytes());
        while !publisher.offer(&payload)? {
            backpressured += 1;
            publisher.cycle(false)?;
        }
        publisher.cycle(false)?;
        if control.stop() {
            bail!("stopped while sending probes");
        }
    }
    Ok(PublisherReport {
        messages_total: total,
        window: Window::default(),
        complete: true,
        backpressured,
        ticks_behind: 0,
        ticks: 0,
        cycles: 0,
        usage: Usage::now().since(&usage_start),
        probes_sent: total,
        system: publisher.report(),
    })
}

/// Throughput receiver: a [`Meter`] from `GO`, plus the CPU time inside its window.
fn receive_throughput(
    receiver: &mut dyn Receive,
    spec: &FanoutSpec,
    control: &mut Control,
) -> Result<ReceiverReport> {
    let mut idle = false;
    control.wait_go(GO_TIMEOUT, || {
        idle = receiver.poll(idle, &mut |_| {})? == 0;
        Ok(())
    })?;
    receiver.mark_start();
    let usage_start = Usage::now();
    let mut meter = Meter::new(spec.warmup, spec.duration);
    let mut last_check = Instant::now();
    let mut first: Option<Instant> = None;
    let mut opened: Option<Usage> = None;
    let mut window_usage: Option<Usage> = None;
    loop {
        let (mut messages, mut bytes) = (0_u64, 0_u64);
        let count = receiver.poll(idle, &mut |message| {
            messages += 1;
            bytes += message.len() as u64;
        })?;
        idle = count == 0;
        let now = Instant::now();
        if messages > 0 {
            let first = *first.get_or_insert(now);
            if opened.is_none() && now >= first + spec.warmup {
                opened = Some(Usage::now());
            }
            let go_on = meter.record(messages, bytes);
            if let (None, Some(at)) = (window_usage, opened)
                && meter.done()
            {
                window_usage = Some(Usage::now().since(&at));
            }
            if !go_on {
                break;
            }
        } else if now.duration_since(last_check) >= RECEIVE_TIMEOUT {
            last_check = now;
            if !meter.idle()? {
                break;
            }
        }
        if control.stop() {
            bail!("stopped while measuring");
        }
    }
    if let (None, Some(at)) = (window_usage, opened) {
        // The window ended early (the publisher went quiet): count up to now.
        window_usage = Some(Usage::now().since(&at));
    }
    Ok(ReceiverReport {
        index: spec.index,
        rx: Some(meter.report()),
        window_usage,
        probes_received: 0,
        latencies_ns: Vec::new(),
        usage: Usage::now().since(&usage_start),
        system: receiver.report(),
    })
}

/// Latency receiver: for every measured probe, the time from its stamp to its delivery here.
fn receive_probes(
    receiver: &mut dyn Receive,
    spec: &FanoutSpec,
    control: &mut Control,
) -> Result<ReceiverReport> {
    let mut idle = false;
    control.wait_go(GO_TIMEOUT, || {
        idle = receiver.poll(idle, &mut |_| {})? == 0;
        Ok(())
    })?;
    receiver.mark_start();
    let usage_start = Usage::now();
    let total = spec.warmup_count + spec.count;
    let count = usize::try_from(spec.count).context("--count too large")?;
    let mut latencies = vec![0_u64; count];
    let mut received = 0_u64;
    let started = Instant::now();
    let mut last: Option<Instant> = None;
    while received < total {
        let mut got = 0_u64;
        let polled = receiver.poll(idle, &mut |message| {
            let now = monotonic_ns();
            let (Some(sequence), Some(stamp)) = (read_u64(message, 0), read_u64(message, 8)) else {
                return;
            };
            got += 1;
            if let Some(slot) = sequence
                .checked_sub(spec.warmup_count)
                .and_then(|index| usize::try_from(index).ok())
                .and_then(|index| latencies.get_mut(index))
            {
                *slot = now.saturating_sub(stamp).max(1);
            }
        })?;
        idle = polled == 0;
        received += got;
        let now = Instant::now();
        if got > 0 {
            last = Some(now);
        }
        match last {
            Some(last) if now.duration_since(last) >= QUIET_TIMEOUT => break,
            None if now.duration_since(started) >= FIRST_MESSAGE_TIMEOUT => {
                bail!("no probe arrived within {FIRST_MESSAGE_TIMEOUT:?}")
            }
            _ => {}
        }
        if control.stop() {
            bail!("stopped while measuring");
        }
    }
    if let Some(dir) = std::env::var_os("PHYLA_BENCH_EVENTS") {
        // Diagnosis: every measured probe's publish-to-delivery time, in probe order.
        let lines: String = latencies.iter().map(|l| format!("{l}\n")).collect();
        let path = std::path::Path::new(&dir).join(format!("latency-{}.txt", spec.index + 1));
        let _ = std::fs::write(path, lines);
    }
    Ok(ReceiverReport {
        index: spec.index,
        rx: None,
        window_usage: None,
        probes_received: received,
        latencies_ns: latencies,
        usage: Usage::now().since(&usage_start),
        system: receiver.report(),
    })
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

/// A duration in nanoseconds, saturating.
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_arguments() {
        let spec = FanoutSpec {
            side: Side::Publisher,
            system: System::Unicast,
            mode: Mode::Latency,
            index: 0,
            receivers: 8,
            payload_bytes: 1024,
            warmup: Duration::from_millis(250),
            duration: Duration::from_secs(2),
            count: 5_000,
            warmup_count: 500,
            rate: 2_000,
            pace: 20_000,
            driver: Some("poll".to_owned()),
            idle: "park".to_owned(),
            core: Some(0),
            shared_core: true,
            endpoints: vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()],
            settle: Duration::from_millis(500),
            gather_min_bytes: Some(1024),
            datagram_bytes: 1_472,
        };
        let parsed = FanoutSpec::parse(&mut Args::new(spec.to_args())).unwrap();
        assert_eq!(parsed, spec);
    }

    #[test]
    fn spec_rejects_bad_arguments() {
        assert!(FanoutSpec::parse(&mut Args::new([CHILD_FLAG, "sideways"])).is_err());
        assert!(
            FanoutSpec::parse(&mut Args::new([
                CHILD_FLAG,
                "pub",
                "--payload-bytes",
                "1",
                "--receivers",
                "1",
                "--system",
                "carrier-pigeon"
            ]))
            .is_err()
        );
        assert!(
            FanoutSpec::parse(&mut Args::new([CHILD_FLAG, "pub", "--receivers", "1"])).is_err()
        );
    }

    #[test]
    fn usage_and_clock_move_forward() {
        let before = (Usage::now(), monotonic_ns());
        let mut x = 0_u64;
        for i in 0..1_000_000_u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = (Usage::now(), monotonic_ns());
        assert!(after.0.cpu_ns() >= before.0.cpu_ns());
        assert!(after.1 >= before.1);
        assert_eq!(after.0.since(&after.0).cpu_ns(), 0);
        assert_eq!(read_u64(&7_u64.to_le_bytes(), 0), Some(7));
        assert_eq!(read_u64(&[1, 2, 3], 0), None);
    }
}
