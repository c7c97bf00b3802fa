//! The group simulator at scale: Plumtree over HyParView against the flooding baseline, in one
//! process on virtual time, with the measures of the epidemic-broadcast literature. `--help` for
//! the options; `docs/simulation.md` for the definitions.
//!
//! Prints a table (Plumtree, flooding, ratio), writes two SVG plots to `target/bench/`, and ends
//! with one JSON line holding every figure. A checker failure prints the command that reproduces
//! it, seed included.

// Benchmarks own their clocks: the sans-IO rules of clippy.toml are for protocol code.
#![allow(clippy::disallowed_methods, reason = "the bench measures wall time")]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant as WallInstant;

use anyhow::{Context as _, Result, bail};
use group_comm::Dissemination;
use group_comm::sim::{
    Broadcasts, Churn, Crash, LatencyModel, Loss, LossMode, Partition, Plan, Report, World,
};
use phyla_bench::cli::{self, Args};
use phyla_bench::machine::Machine;
use phyla_bench::svg;
use phyla_bench::table::{Align, Table, thousands};
use serde_json::{Value, json};
use substrate::time::Duration;

fn main() -> ExitCode {
    cli::report_errors(run())
}

/// What the command line asked for.
#[derive(Clone, Debug)]
struct Options {
    scenario: Scenario,
    nodes: usize,
    broadcasts: usize,
    sources: usize,
    rate: f64,
    payload: usize,
    latency: LatencyModel,
    loss: f64,
    loss_mode: LossMode,
    crash_fraction: f64,
    crash_at: Option<Duration>,
    partition_fraction: f64,
    partition_at: Option<Duration>,
    partition_for: Duration,
    churn_rate: f64,
    uplink: Option<u64>,
    stabilize: Option<Duration>,
    settle: Duration,
    seed: u64,
    baseline: bool,
    flood_fanout: Option<usize>,
    json_only: bool,
    /// The arguments as given, to print the reproduction line.
    raw: Vec<String>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Scenario {
    Stable,
    Crash,
    Partition,
    Churn,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Crash => "crash",
            Self::Partition => "partition",
            Self::Churn => "churn",
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: Scenario::Crash,
            nodes: 10_000,
            broadcasts: 200,
            sources: 5,
            rate: 20.0,
            payload: 100,
            latency: LatencyModel::default(),
            loss: 0.0,
            loss_mode: LossMode::Retransmit,
            crash_fraction: 0.4,
            crash_at: None,
            partition_fraction: 0.3,
            partition_at: None,
            partition_for: Duration::from_secs(5),
            churn_rate: 0.01,
            uplink: None,
            stabilize: None,
            settle: Duration::from_secs(10),
            seed: 1,
            baseline: true,
            flood_fanout: None,
            json_only: false,
            raw: Vec::new(),
        }
    }
}

fn help() -> String {
    "sim: Plumtree over HyParView against flooding, in the deterministic simulator

usage: cargo run --release -p phyla-bench --bin sim -- [options]

  --scenario NAME       stable | crash | partition | churn (default crash: a stable first
                        half, then a massive crash)
  --nodes N             nodes (default 10000; up to 100000 and more)
  --broadcasts N        messages (default 200)
  --sources N           distinct sources (default 5)
  --rate R              broadcasts per second (default 20)
  --payload BYTES       payload size, at least 8 (default 100)
  --latency MODEL       regions[:N] (default regions:5, 2-10 ms near, 40-120 ms far) or
                        uniform:MIN-MAX in ms (e.g. uniform:5-50)
  --loss P              link loss probability per transmission (default 0)
  --loss-mode MODE      retransmit (the link resends; default) | drop (lost outright)
  --crash-fraction F    fraction of live nodes that crash (crash; default 0.4)
  --crash-at S          seconds after traffic start (default: half the broadcasts)
  --partition-fraction F  fraction cut off (partition; default 0.3)
  --partition-at S      seconds after traffic start (default: a quarter of the broadcasts)
  --partition-for S     how long it lasts (default 5)
  --churn-rate R        crashes and restarts per node per minute (churn; default 0.01)
  --uplink BYTES        per-node uplink in bytes per second (default unlimited)
  --stabilize S         quiet seconds before traffic (default 60: the latency-biased
                        neighbour slots need about a minute to converge)
  --settle S            seconds simulated after the last broadcast (default 10)
  --seed N              the seed (default 1)
  --flood-fanout N      the baseline's fan-out (default: the active view size)
  --no-baseline         skip the flooding baseline
  --json-only           print only the JSON line
  --help                this text
"
    .to_owned()
}

fn parse(mut args: Args) -> Result<Option<Options>> {
    let mut options = Options::default();
    while let Some(flag) = args.next_flag() {
        if flag != "--help" && flag != "--no-baseline" && flag != "--json-only" {
            options.raw.push(flag.clone());
        }
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--scenario" => {
                let name = args.raw_value(&flag)?;
                options.raw.push(name.clone());
                options.scenario = match name.as_str() {
                    "stable" => Scenario::Stable,
                    "crash" => Scenario::Crash,
                    "partition" => Scenario::Partition,
                    "churn" => Scenario::Churn,
                    other => bail!("--scenario {other:?}: stable, crash, partition or churn"),
                };
            }
            "--latency" => {
                let text = args.raw_value(&flag)?;
                options.raw.push(text.clone());
                options.latency = parse_latency(&text)?;
            }
            "--loss-mode" => {
                let text = args.raw_value(&flag)?;
                options.raw.push(text.clone());
                options.loss_mode = match text.as_str() {
                    "retransmit" => LossMode::Retransmit,
                    "drop" => LossMode::Drop,
                    other => bail!("--loss-mode {other:?}: retransmit or drop"),
                };
            }
            "--no-baseline" => {
                options.baseline = false;
                options.raw.push(flag.clone());
            }
            "--json-only" => options.json_only = true,
            _ => {
                let text = args.raw_value(&flag)?;
                options.raw.push(text.clone());
                apply_value(&mut options, &flag, &text)?;
            }
        }
    }
    Ok(Some(options))
}

fn apply_value(options: &mut Options, flag: &str, text: &str) -> Result<()> {
    let number = |text: &str| -> Result<f64> {
        let value: f64 = text
            .trim()
            .parse()
            .with_context(|| format!("{flag} {text:?} is not a number"))?;
        if !value.is_finite() || value < 0.0 {
            bail!("{flag} {text:?} must be a finite number >= 0");
        }
        Ok(value)
    };
    let count = |text: &str| -> Result<usize> {
        text.trim()
            .parse()
            .with_context(|| format!("{flag} {text:?} is not a whole number"))
    };
    let seconds = |text: &str| cli::parse_duration(text).with_context(|| flag.to_owned());
    let fraction = |text: &str| -> Result<f64> {
        let value = number(text)?;
        if value > 1.0 {
            bail!("{flag} {text:?} must be between 0 and 1");
        }
        Ok(value)
    };
    match flag {
        "--nodes" => options.nodes = count(text)?,
        "--broadcasts" => options.broadcasts = count(text)?,
        "--sources" => options.sources = count(text)?,
        "--rate" => options.rate = number(text)?,
        "--payload" => options.payload = cli::parse_sizes(text)?[0],
        "--loss" => options.loss = fraction(text)?,
        "--crash-fraction" => options.crash_fraction = fraction(text)?,
        "--crash-at" => options.crash_at = Some(seconds(text)?),
        "--partition-fraction" => options.partition_fraction = fraction(text)?,
        "--partition-at" => options.partition_at = Some(seconds(text)?),
        "--partition-for" => options.partition_for = seconds(text)?,
        "--churn-rate" => options.churn_rate = number(text)?,
        "--uplink" => options.uplink = Some(count(text)? as u64),
        "--stabilize" => options.stabilize = Some(seconds(text)?),
        "--settle" => options.settle = seconds(text)?,
        "--seed" => {
            options.seed = text
                .trim()
                .parse()
                .with_context(|| format!("--seed {text:?}"))?;
        }
        "--flood-fanout" => options.flood_fanout = Some(count(text)?),
        other => bail!("unknown option {other:?} (see --help)"),
    }
    Ok(())
}

fn parse_latency(text: &str) -> Result<LatencyModel> {
    let ms = |text: &str| -> Result<Duration> {
        let value: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("--latency: {text:?} is not a whole number of ms"))?;
        Ok(Duration::from_millis(value))
    };
    if let Some(range) = text.strip_prefix("uniform:") {
        let Some((min, max)) = range.split_once('-') else {
            bail!("--latency uniform:MIN-MAX (ms), e.g. uniform:5-50");
        };
        return Ok(LatencyModel::Uniform {
            min: ms(min)?,
            max: ms(max)?,
        });
    }
    if text == "regions" {
        return Ok(LatencyModel::default());
    }
    if let Some(count) = text.strip_prefix("regions:") {
        let regions: u32 = count
            .trim()
            .parse()
            .with_context(|| format!("--latency regions:N: {count:?}"))?;
        let LatencyModel::Regions { near, far, .. } = LatencyModel::default() else {
            bail!("the default latency model has regions");
        };
        return Ok(LatencyModel::Regions { regions, near, far });
    }
    bail!("--latency {text:?}: regions[:N] or uniform:MIN-MAX")
}

fn plan(options: &Options) -> Plan {
    let base = Plan::new(options.nodes);
    let traffic = Duration::from_secs_f64(options.broadcasts as f64 / options.rate.max(1e-9));
    let mut plan = Plan {
        seed: options.seed,
        latency: options.latency,
        uplink_bytes_per_s: options.uplink,
        loss: Loss {
            probability: options.loss,
            mode: options.loss_mode,
        },
        stabilize: options.stabilize.unwrap_or(DEFAULT_STABILIZE),
        broadcasts: Broadcasts {
            count: options.broadcasts,
            sources: options.sources,
            per_second: options.rate,
            payload_bytes: options.payload,
        },
        settle: options.settle,
        ..base
    };
    match options.scenario {
        Scenario::Stable => {}
        Scenario::Crash => plan.crashes.push(Crash {
            at: options.crash_at.unwrap_or(traffic / 2),
            fraction: options.crash_fraction,
        }),
        Scenario::Partition => plan.partitions.push(Partition {
            at: options.partition_at.unwrap_or(traffic / 4),
            duration: options.partition_for,
            fraction: options.partition_fraction,
        }),
        Scenario::Churn => {
            let per_s = options.churn_rate * options.nodes as f64 / 60.0;
            plan.churn = Some(Churn {
                crashes_per_s: per_s,
                restarts_per_s: per_s,
                from: Duration::ZERO,
                until: traffic,
            });
        }
    }
    plan
}

/// One finished run.
struct Run {
    label: &'static str,
    report: Report,
    wall_s: f64,
    rss_peak_bytes: Option<u64>,
    failure: Option<String>,
}

impl Run {
    fn events_per_s(&self) -> f64 {
        self.report.events_processed as f64 / self.wall_s.max(1e-9)
    }
}

fn simulate(label: &'static str, plan: Plan, quiet: bool) -> Result<Run> {
    reset_peak_rss();
    let started = WallInstant::now();
    let mut world = World::new(plan).context("building the world")?;
    let end = world.end().as_nanos().max(1) as f64;
    let mut last_events = 0;
    let mut last_wall = started;
    while world.run_for(PROGRESS_EVENTS) {
        if !quiet {
            let now = WallInstant::now();
            let rate = (world.events_processed() - last_events) as f64
                / now.duration_since(last_wall).as_secs_f64().max(1e-9);
            (last_events, last_wall) = (world.events_processed(), now);
            progress(
                label,
                world.now().as_nanos() as f64 / end,
                world.now().as_nanos(),
                rate,
                world.queued(),
            );
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    if !quiet {
        eprint!("\r{:100}\r", "");
    }
    let report = world.report();
    let failure = world.verdict().err().map(|failure| failure.to_string());
    Ok(Run {
        label,
        report,
        wall_s,
        rss_peak_bytes: peak_rss_bytes(),
        failure,
    })
}

fn progress(label: &str, fraction: f64, now_ns: u64, events_per_s: f64, queued: usize) {
    const WIDTH: usize = 30;
    let filled = ((fraction.clamp(0.0, 1.0)) * WIDTH as f64) as usize;
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\r{label:<9} [{bar}] {:>7.1} s virtual  {:>5.2} M events/s  {:>5.1} M queued ",
        now_ns as f64 / 1e9,
        events_per_s / 1e6,
        queued as f64 / 1e6
    );
    let _ = stderr.flush();
}

/// Resets the kernel's peak-RSS mark (`VmHWM`), so each run's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` from `/proc/self/status`, in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn run() -> Result<()> {
    let Some(options) = parse(Args::from_env()?)? else {
        cli::print(&help())?;
        return Ok(());
    };
    let machine = Machine::current();
    let plan = plan(&options);
    plan.validate().context("the plan")?;
    let active_size = plan.group_config().active_size;
    let tree = simulate("plumtree", plan.clone(), options.json_only)?;
    let baseline = if options.baseline {
        let fanout = options.flood_fanout.unwrap_or(active_size);
        let flood = Plan {
            dissemination: Some(Dissemination::Flood { fanout }),
            ..plan.clone()
        };
        Some(simulate("flooding", flood, options.json_only)?)
    } else {
        None
    };
    let runs: Vec<&Run> = std::iter::once(&tree).chain(baseline.as_ref()).collect();
    if !options.json_only {
        cli::print(&render_table(&options, &plan, &runs, &machine))?;
    }
    let written = write_plots(&options, &plan, &runs)?;
    if !options.json_only {
        for path in &written {
            cli::print(&format!("wrote {path}\n"))?;
        }
    }
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            run.failure
                .as_ref()
                .map(|failure| format!("{}: {failure}", run.label))
        })
        .collect();
    for failure in &failures {
        eprintln!("checker failure: {failure}");
        eprintln!(
            "reproduce: cargo run --release -p phyla-bench --bin sim -- {} --seed {}",
            reproduce_args(&options.raw),
            options.seed
        );
    }
    cli::print(&format!(
        "{}\n",
        json_line(&options, &plan, &runs, &machine)
    ))?;
    if !failures.is_empty() {
        bail!("{} run(s) broke a checked property", failures.len());
    }
    Ok(())
}

/// The arguments as given, without `--seed` and its value (the reproduction line adds the
/// seed last).
fn reproduce_args(raw: &[String]) -> String {
    let mut kept = Vec::new();
    let mut skip = false;
    for arg in raw {
        if skip {
            skip = false;
        } else if arg == "--seed" {
            skip = true;
        } else {
            kept.push(arg.as_str());
        }
    }
    kept.join(" ")
}

/// A figure of both runs with its ratio (Plumtree over flooding).
fn figures(run: &Run) -> Vec<(&'static str, f64, String)> {
    let r = &run.report;
    let ms = |ns: f64| format!("{:.1}", ns / 1e6);
    let opt_s = |ns: Option<u64>| ns.map_or("-".to_owned(), |ns| format!("{:.2}", ns as f64 / 1e9));
    let repair = r.repairs.first();
    let reliable_after = repair.and_then(|x| x.reliable_after_ns);
    let views_clean = repair.and_then(|x| x.views_clean_after_ns);
    vec![
        (
            "reliability min",
            r.all.reliability_min,
            format!("{:.4}", r.all.reliability_min),
        ),
        (
            "reliability mean",
            r.all.reliability_mean,
            format!("{:.4}", r.all.reliability_mean),
        ),
        (
            "broadcasts at reliability 1",
            r.all.reliable_count as f64,
            format!("{} / {}", r.all.reliable_count, r.all.broadcasts),
        ),
        (
            "latency mean (ms)",
            r.all.latency_ns_mean,
            ms(r.all.latency_ns_mean),
        ),
        (
            "latency p50 (ms)",
            r.all.latency_ns_p50 as f64,
            ms(r.all.latency_ns_p50 as f64),
        ),
        (
            "latency p99 (ms)",
            r.all.latency_ns_p99 as f64,
            ms(r.all.latency_ns_p99 as f64),
        ),
        (
            "latency max (ms)",
            r.all.latency_ns_max as f64,
            ms(r.all.latency_ns_max as f64),
        ),
        ("RDP mean", r.all.rdp_mean, format!("{:.2}", r.all.rdp_mean)),
        ("RDP p99", r.all.rdp_p99, format!("{:.2}", r.all.rdp_p99)),
        (
            "last-delivery hop mean",
            r.all.last_hop_mean,
            format!("{:.1}", r.all.last_hop_mean),
        ),
        (
            "last-delivery hop max",
            r.all.last_hop_max as f64,
            r.all.last_hop_max.to_string(),
        ),
        (
            "payload copies per delivery (RMR+1)",
            r.all.rmr + 1.0,
            format!("{:.2}", r.all.rmr + 1.0),
        ),
        (
            "link stress mean",
            r.all.link_stress_mean,
            format!("{:.2}", r.all.link_stress_mean),
        ),
        (
            "link stress max",
            r.all.link_stress_max as f64,
            r.all.link_stress_max.to_string(),
        ),
        (
            "fan-out max",
            r.fan_out_max as f64,
            r.fan_out_max.to_string(),
        ),
        (
            "fan-out mean",
            r.fan_out_mean,
            format!("{:.2}", r.fan_out_mean),
        ),
        (
            "control msgs per broadcast",
            r.control_per_broadcast,
            format!("{:.0}", r.control_per_broadcast),
        ),
        (
            "membership+detection msgs/node/s",
            r.overhead_per_node_per_s,
            format!("{:.2}", r.overhead_per_node_per_s),
        ),
        (
            "repair: reliable again after (s)",
            reliable_after.map_or(f64::NAN, |ns| ns as f64),
            opt_s(reliable_after),
        ),
        (
            "repair: views clean after (s)",
            views_clean.map_or(f64::NAN, |ns| ns as f64),
            opt_s(views_clean),
        ),
        (
            "events processed",
            r.events_processed as f64,
            thousands(r.events_processed),
        ),
        (
            "events/s (wall)",
            run.events_per_s(),
            thousands(run.events_per_s() as u64),
        ),
        ("wall time (s)", run.wall_s, format!("{:.1}", run.wall_s)),
        (
            "peak RSS (MiB)",
            run.rss_peak_bytes.map_or(f64::NAN, |b| b as f64),
            run.rss_peak_bytes
                .map_or("-".to_owned(), |b| format!("{:.0}", b as f64 / 1048576.0)),
        ),
    ]
}

fn render_table(options: &Options, plan: &Plan, runs: &[&Run], machine: &Machine) -> String {
    let mut columns = vec![("measure", Align::Left), ("plumtree", Align::Right)];
    if runs.len() > 1 {
        columns.push(("flooding", Align::Right));
        columns.push(("ratio", Align::Right));
    }
    let mut table = Table::new(&columns);
    let tree = figures(runs[0]);
    let flood = runs.get(1).map(|run| figures(run));
    for (index, (name, value, text)) in tree.iter().enumerate() {
        let mut row = vec![(*name).to_owned(), text.clone()];
        if let Some(flood) = &flood {
            let (_, other, other_text) = &flood[index];
            row.push(other_text.clone());
            row.push(match value / other {
                ratio if ratio.is_finite() => format!("{ratio:.2}x"),
                _ => "-".to_owned(),
            });
        }
        table.row(row);
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "sim: scenario {}, {} nodes, {} broadcasts from {} sources at {}/s, seed {} on {}",
        options.scenario.name(),
        thousands(plan.nodes as u64),
        plan.broadcasts.count,
        plan.broadcasts.sources,
        plan.broadcasts.per_second,
        plan.seed,
        machine.summary()
    );
    let _ = writeln!(
        text,
        "active view {}, {}; virtual time {:.1} s; ratio = plumtree / flooding\n",
        runs[0].report.active_size,
        match runs.get(1) {
            Some(run) => format!("baseline {}", run.report.dissemination),
            None => "no baseline".to_owned(),
        },
        runs[0].report.virtual_ns as f64 / 1e9
    );
    text.push_str(&table.render());
    for run in runs {
        let r = &run.report;
        let _ = writeln!(
            text,
            "{}: stable phase reliability min {:.4} ({} broadcasts), after the fault {:.4} ({}); \
             {} violations; trace {:016x}",
            run.label,
            r.stable.reliability_min,
            r.stable.broadcasts,
            r.faulty.reliability_min,
            r.faulty.broadcasts,
            r.violations_total,
            r.trace_hash
        );
    }
    text
}

fn json_line(options: &Options, plan: &Plan, runs: &[&Run], machine: &Machine) -> Value {
    let run_json = |run: &Run| {
        let mut value = run.report.to_json();
        value["wall_s"] = json!(run.wall_s);
        value["events_per_s"] = json!(run.events_per_s());
        value["rss_peak_bytes"] = json!(run.rss_peak_bytes);
        value["failure"] = json!(run.failure);
        value
    };
    let mut ratios = serde_json::Map::new();
    if let Some(flood) = runs.get(1) {
        for ((name, a, _), (_, b, _)) in figures(runs[0]).into_iter().zip(figures(flood)) {
            let ratio = a / b;
            ratios.insert(name.to_owned(), json!(ratio.is_finite().then_some(ratio)));
        }
    }
    json!({
        "program": "sim",
        "scenario": options.scenario.name(),
        "args": options.raw,
        "machine": machine.to_json(),
        "plan": {
            "nodes": plan.nodes,
            "broadcasts": plan.broadcasts.count,
            "sources": plan.broadcasts.sources,
            "rate_per_s": plan.broadcasts.per_second,
            "payload_bytes": plan.broadcasts.payload_bytes,
            "latency": format!("{:?}", plan.latency),
            "loss": plan.loss.probability,
            "loss_mode": format!("{:?}", plan.loss.mode),
            "seed": plan.seed,
        },
        "plumtree": run_json(runs[0]),
        "flooding": runs.get(1).map(|run| run_json(run)),
        "ratios": ratios,
    })
}

fn write_plots(options: &Options, plan: &Plan, runs: &[&Run]) -> Result<Vec<String>> {
    let dir = Path::new("target/bench");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let subtitle = format!(
        "scenario {}, {} nodes, {} broadcasts, seed {}",
        options.scenario.name(),
        thousands(plan.nodes as u64),
        plan.broadcasts.count,
        plan.seed
    );
    let colors = [0, 1];
    // Latency distribution: percentiles on a "nines" axis.
    let nines = |p: f64| -(1.0 - (p / 100.0).min(0.999_999)).log10();
    let latency = svg::Panel {
        title: "delivery latency".to_owned(),
        series: runs
            .iter()
            .zip(colors)
            .map(|(run, color)| svg::Series {
                label: run.label.to_owned(),
                color,
                points: run
                    .report
                    .latency_percentiles
                    .iter()
                    .filter(|(p, _)| *p < 100.0)
                    .map(|&(p, ns)| (nines(p), ns as f64 / 1e6))
                    .collect(),
            })
            .collect(),
    };
    let ticks: Vec<(f64, String)> = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999]
        .iter()
        .map(|&p| (nines(p), format!("p{p}")))
        .collect();
    let latency_svg = svg::render(&svg::Plot {
        title: "Delivery latency distribution",
        subtitle: &subtitle,
        x_label: "percentile",
        y_label: "publish to delivery (ms)",
        x_ticks: &ticks,
        panels: &[latency],
    });
    // Reliability of each broadcast over time.
    let start_ns = plan.traffic_start().as_nanos() as f64;
    let reliability = svg::Panel {
        title: "reliability of each broadcast".to_owned(),
        series: runs
            .iter()
            .zip(colors)
            .map(|(run, color)| svg::Series {
                label: run.label.to_owned(),
                color,
                points: run
                    .report
                    .reliability_over_time
                    .iter()
                    .map(|&(at, r)| ((at as f64 - start_ns) / 1e9, r.max(1e-3)))
                    .collect(),
            })
            .collect(),
    };
    let span_s = (plan.end_time().as_secs_f64()
        - plan.traffic_start().as_secs_f64()
        - plan.settle.as_secs_f64())
    .max(1.0);
    let time_ticks: Vec<(f64, String)> = (0..=5)
        .map(|k| {
            let s = span_s * f64::from(k) / 5.0;
            (s, format!("{s:.1}"))
        })
        .collect();
    let reliability_svg = svg::render(&svg::Plot {
        title: "Reliability across the fault",
        subtitle: &subtitle,
        x_label: "publish time after traffic start (s)",
        y_label: "fraction of live members that delivered",
        x_ticks: &time_ticks,
        panels: &[reliability],
    });
    let mut written = Vec::new();
    for (name, text) in [
        ("sim-latency.svg", latency_svg),
        ("sim-reliability.svg", reliability_svg),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// Events between two progress updates.
const PROGRESS_EVENTS: u64 = 200_000;

/// Quiet time before traffic unless `--stabilize` says otherwise: the latency-biased active
/// slots converge in about a minute of virtual time, and the figures are for a settled overlay.
const DEFAULT_STABILIZE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Option<Options>> {
        parse(Args::new(args.iter().copied()))
    }

    #[test]
    fn flags_parse_into_a_plan() {
        let options = parsed(&[
            "--nodes=500",
            "--scenario",
            "partition",
            "--latency",
            "uniform:5-50",
            "--loss",
            "0.05",
            "--loss-mode",
            "drop",
            "--seed",
            "9",
            "--no-baseline",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.nodes, 500);
        assert!(!options.baseline);
        let plan = plan(&options);
        assert_eq!(plan.seed, 9);
        assert_eq!(plan.partitions.len(), 1);
        assert_eq!(plan.loss.mode, LossMode::Drop);
        assert!(plan.validate().is_ok());
        assert!(options.raw.contains(&"--no-baseline".to_owned()));
    }

    #[test]
    fn reproduction_line_keeps_every_argument_but_the_seed() {
        let options = parsed(&["--no-baseline", "--seed", "4", "--nodes", "50"])
            .unwrap()
            .unwrap();
        assert_eq!(reproduce_args(&options.raw), "--no-baseline --nodes 50");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(parsed(&["--nodes", "many"]).is_err());
        assert!(parsed(&["--loss", "2"]).is_err());
        assert!(parsed(&["--scenario", "meteor"]).is_err());
        assert!(parsed(&["--latency", "uniform:5"]).is_err());
        assert!(parsed(&["--seed"]).is_err());
        assert!(parsed(&["--frobnicate", "1"]).is_err());
        assert!(parsed(&["--help"]).unwrap().is_none());
    }
}
