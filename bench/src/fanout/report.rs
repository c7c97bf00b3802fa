//! The fan-out program's results: rows built from the children's reports, the ratios between
//! systems, the readable tables and the JSON line.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use super::side::{PublisherReport, ReceiverReport, System};
use super::{FanoutOptions, Results};
use crate::child::CorePlan;
use crate::cli;
use crate::contender::Sweep;
use crate::machine::Machine;
use crate::pingpong::{LatencyBaseline, LatencySummary, PingPongContender};
use crate::table::{self, Align, Table, micros, ratio, thousands};

/// Latencies above a minute are recorded as a minute.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// One throughput run: a system fanning out to N receivers.
#[derive(Clone, Debug, Serialize)]
pub(super) struct ThroughputRow {
    /// `group`, `unicast` or `zmq`.
    pub(super) system: &'static str,
    /// The system column.
    pub(super) label: &'static str,
    /// The mode column.
    pub(super) mode: &'static str,
    /// N.
    pub(super) receivers: usize,
    /// Payload bytes.
    pub(super) size: usize,
    /// The publisher's offered rate, messages per second (`None`: as fast as it could).
    pub(super) pace: Option<u64>,
    /// Messages per second the publisher published in its window.
    pub(super) publisher_msgs_per_s: f64,
    /// Messages per second the slowest receiver got in its window.
    pub(super) delivered_msgs_per_s_min: f64,
    /// Mean over receivers.
    pub(super) delivered_msgs_per_s_mean: f64,
    /// The publisher's cost: its CPU time per message published, in its window.
    pub(super) publisher_cpu_ns_per_msg: f64,
    /// The publisher's CPU time over wall time in its window (1.0 = one core busy).
    pub(super) publisher_cores: f64,
    /// Sum over receivers of each one's CPU time per message it received: what one message
    /// costs the receiving side in all (forwarding included).
    pub(super) receivers_cpu_ns_per_msg: f64,
    /// Fraction of published messages the worst receiver had not received when it stopped.
    pub(super) undelivered: f64,
    /// Whether every window ran its full length.
    pub(super) complete: bool,
    /// This system's publisher cost over its own at N = 1 (same size).
    pub(super) cost_vs_one_receiver: Option<f64>,
    /// Unicast's publisher cost over this row's (same N and size): how many times cheaper
    /// this row is than N unicast sessions.
    pub(super) unicast_cost_over_this: Option<f64>,
    /// ZeroMQ's publisher cost over this row's.
    pub(super) zmq_cost_over_this: Option<f64>,
    /// This row's slowest-receiver rate over ZeroMQ's.
    pub(super) rate_over_zmq: Option<f64>,
    /// This row's slowest-receiver rate over unicast's.
    pub(super) rate_over_unicast: Option<f64>,
    /// Groups: what the receivers forwarded and the copies on the way.
    pub(super) forwarding: Option<Forwarding>,
    /// The publisher's report.
    pub(super) publisher: PublisherReport,
    /// Every receiver's report.
    pub(super) receiver_reports: Vec<ReceiverReport>,
}

impl ThroughputRow {
    /// A row from the children's reports.
    pub(super) fn new(
        system: System,
        receivers: usize,
        size: usize,
        pace: u64,
        publisher: PublisherReport,
        reports: Vec<ReceiverReport>,
    ) -> Self {
        let window = publisher.window;
        let per_second = |count: u64, ns: u64| {
            if ns == 0 {
                0.0
            } else {
                count as f64 * 1e9 / ns as f64
            }
        };
        let rates: Vec<f64> = reports
            .iter()
            .map(|report| {
                report
                    .rx
                    .as_ref()
                    .map_or(0.0, |rx| per_second(rx.messages, rx.window_ns))
            })
            .collect();
        let receivers_cpu_ns_per_msg = reports
            .iter()
            .filter_map(|report| {
                let messages = report.rx.as_ref()?.messages;
                let cpu = report.window_usage?.cpu_ns();
                (messages > 0).then(|| cpu as f64 / messages as f64)
            })
            .sum();
        let least_received = reports
            .iter()
            .map(|report| report.rx.as_ref().map_or(0, |rx| rx.messages_total))
            .min()
            .unwrap_or(0);
        let undelivered = if publisher.messages_total > 0 {
            (1.0 - least_received as f64 / publisher.messages_total as f64).max(0.0)
        } else {
            0.0
        };
        let complete = publisher.complete
            && reports
                .iter()
                .all(|report| report.rx.as_ref().is_some_and(|rx| rx.complete));
        Self {
            system: system.name(),
            label: system.system(),
            mode: system.mode(),
            receivers,
            size,
            pace: (pace > 0).then_some(pace),
            publisher_msgs_per_s: per_second(window.messages, window.ns),
            delivered_msgs_per_s_min: if rates.is_empty() {
                0.0
            } else {
                rates.iter().copied().fold(f64::INFINITY, f64::min)
            },
            delivered_msgs_per_s_mean: if rates.is_empty() {
                0.0
            } else {
                rates.iter().sum::<f64>() / rates.len() as f64
            },
            publisher_cpu_ns_per_msg: if window.messages == 0 {
                0.0
            } else {
                window.usage.cpu_ns() as f64 / window.messages as f64
            },
            publisher_cores: if window.ns == 0 {
                0.0
            } else {
                window.usage.cpu_ns() as f64 / window.ns as f64
            },
            receivers_cpu_ns_per_msg,
            undelivered,
            complete,
            cost_vs_one_receiver: None,
            unicast_cost_over_this: None,
            zmq_cost_over_this: None,
            rate_over_zmq: None,
            rate_over_unicast: None,
            forwarding: (system == System::Group).then(|| Forwarding::new(&reports, size)),
            publisher,
            receiver_reports: reports,
        }
    }
}

impl ThroughputRow {
    /// Messages the receivers were told were lost for good (group `MessagesLost` events).
    pub(super) fn messages_lost(&self) -> u64 {
        self.receiver_reports
            .iter()
            .filter_map(|report| report.system.get("events")?.get("messages_lost")?.as_u64())
            .sum()
    }

    /// Groups: neighbour changes (`NeighborDown` events) at every member during the
    /// measurement; a settled overlay has none.
    pub(super) fn churn(&self) -> u64 {
        std::iter::once(&self.publisher.system)
            .chain(self.receiver_reports.iter().map(|report| &report.system))
            .filter_map(|system| {
                system
                    .get("during_measurement")?
                    .get("neighbours_down")?
                    .as_u64()
            })
            .sum()
    }
}

/// A publisher's rate for the tables: `20,000/s`, or `max`.
pub(super) fn pace_label(pace: u64) -> String {
    if pace == 0 {
        "max".to_owned()
    } else {
        format!("{}/s", thousands(pace))
    }
}

/// What a group's receivers forwarded, and the payload bytes copied on the way.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Forwarding {
    /// Receivers that forwarded at least a tenth of what they received: the tree's interior
    /// nodes (others may send a few frames in answer to grafts and repairs).
    pub(super) interior: usize,
    /// `Data` frames the receivers sent (eager pushes, graft answers and repairs).
    pub(super) data_frames: u64,
    /// Payload bytes in those frames.
    pub(super) payload_bytes: u64,
    /// At the receivers: payload bytes the group link layer copied to join a frame's head and
    /// payload into one session message (`StackStats::payload_bytes_copied`).
    pub(super) link_join_bytes: u64,
    /// At the receivers: message bytes sessions copied into transmit slots (frame heads, and
    /// every message not gathered, control frames included).
    pub(super) tx_slot_bytes: u64,
    /// At the receivers: message bytes sent as gathered datagram parts, without a copy.
    pub(super) tx_gathered_bytes: u64,
    /// Payload bytes the receivers received (delivered to them).
    pub(super) received_bytes: u64,
    /// At the receivers: received bytes copied (reassembly, receive pool exhausted, copybreak).
    pub(super) rx_copied_bytes: u64,
    /// Sending side of a hop: (join copies + forwarded payload bytes not sent as gathered
    /// tails, hence copied into a transmit slot) / forwarded payload bytes.
    pub(super) tx_copies_per_forwarded_byte: Option<f64>,
    /// Receiving side of a hop: received bytes copied / received payload bytes.
    pub(super) rx_copies_per_received_byte: Option<f64>,
    /// Payload copies per forwarding hop: the sum of the two. 0 is the design's claim.
    pub(super) copies_per_hop: Option<f64>,
    /// Deliveries by hop count, over all receivers (the last bucket is 7 or more).
    pub(super) hops: Vec<u64>,
}

impl Forwarding {
    /// What `reports` say; `size` is the payload size, for receivers that report messages but
    /// not bytes (latency runs).
    fn new(reports: &[ReceiverReport], size: usize) -> Self {
        let mut forwarding = Self::default();
        let number = |value: &Value, path: &[&str]| {
            path.iter()
                .try_fold(value, |value, key| value.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        for report in reports {
            let system = &report.system;
            if let Some(hops) = system
                .get("extra")
                .and_then(|extra| extra.get("hops"))
                .and_then(Value::as_array)
            {
                if forwarding.hops.len() < hops.len() {
                    forwarding.hops.resize(hops.len(), 0);
                }
                for (sum, count) in forwarding.hops.iter_mut().zip(hops) {
                    *sum += count.as_u64().unwrap_or(0);
                }
            }
            let delivered = number(system, &["counters", "delivered"]);
            let received = report.rx.as_ref().map_or(delivered, |rx| rx.messages_total);
            let frames = number(system, &["forwarded_data_frames"]);
            if frames > 0 && frames * 10 >= received {
                forwarding.interior += 1;
            }
            forwarding.data_frames += frames;
            forwarding.payload_bytes += number(system, &["forwarded_payload_bytes"]);
            forwarding.link_join_bytes += number(system, &["copies", "link_join_bytes"]);
            forwarding.tx_slot_bytes += number(system, &["copies", "tx_slot_bytes"]);
            forwarding.tx_gathered_bytes += number(system, &["copies", "tx_gathered_bytes"]);
            forwarding.received_bytes += report
                .rx
                .as_ref()
                .map_or(delivered * size as u64, |rx| rx.bytes_total);
            forwarding.rx_copied_bytes += number(system, &["copies", "rx_reassembly_bytes"])
                + number(system, &["copies", "rx_fallback_bytes"])
                + number(system, &["copies", "rx_copybreak_bytes"]);
        }
        let over = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let not_gathered = forwarding
            .payload_bytes
            .saturating_sub(forwarding.tx_gathered_bytes);
        forwarding.tx_copies_per_forwarded_byte = over(
            forwarding.link_join_bytes + not_gathered,
            forwarding.payload_bytes,
        );
        forwarding.rx_copies_per_received_byte =
            over(forwarding.rx_copied_bytes, forwarding.received_bytes);
        forwarding.copies_per_hop = match (
            forwarding.tx_copies_per_forwarded_byte,
            forwarding.rx_copies_per_received_byte,
        ) {
            (Some(tx), Some(rx)) => Some(tx + rx),
            _ => None,
        };
        forwarding
    }
}

/// Summary of one set of latencies, in nanoseconds.
fn summarize(histogram: &Histogram<u64>, complete: bool) -> LatencySummary {
    LatencySummary::from_histogram(histogram, Duration::ZERO, complete)
}

/// One latency run: probes from the publisher to N receivers.
#[derive(Clone, Debug, Serialize)]
pub(super) struct LatencyRow {
    /// `group`, `unicast` or `zmq`.
    pub(super) system: &'static str,
    /// The system column.
    pub(super) label: &'static str,
    /// The mode column.
    pub(super) mode: &'static str,
    /// N.
    pub(super) receivers: usize,
    /// Payload bytes.
    pub(super) size: usize,
    /// Measured probes sent.
    pub(super) probes: u64,
    /// Probes every receiver got (only those count in `last`).
    pub(super) probes_to_all: u64,
    /// Per probe, the time from publish to its delivery at the last of the N receivers.
    pub(super) last: LatencySummary,
    /// Every (probe, receiver) delivery: the time to one receiver.
    pub(super) each: LatencySummary,
    /// `last.p50` over the busy-polling UDP floor's round-trip p50.
    pub(super) p50_over_floor_busy_rtt: Option<f64>,
    /// `last.p50` over the blocking UDP floor's round-trip p50.
    pub(super) p50_over_floor_blocking_rtt: Option<f64>,
    /// `last.p99` over the blocking UDP floor's round-trip p99.
    pub(super) p99_over_floor_blocking_rtt: Option<f64>,
    /// `last.p50` over Phyla's own unicast ping-pong round trip (parked).
    pub(super) p50_over_phyla_rtt: Option<f64>,
    /// `last.p99` over Phyla's own unicast ping-pong round trip (parked).
    pub(super) p99_over_phyla_rtt: Option<f64>,
    /// Groups: what the receivers forwarded and the copies on the way, at the probe rate.
    pub(super) forwarding: Option<Forwarding>,
    /// Each receiver: its own latencies and its system's report.
    pub(super) per_receiver: Vec<Value>,
}

impl LatencyRow {
    /// A row from the receivers' reports: `count` measured probes each.
    ///
    /// # Errors
    /// When the histogram cannot be made.
    pub(super) fn new(
        system: System,
        receivers: usize,
        size: usize,
        count: u64,
        reports: &[ReceiverReport],
    ) -> Result<Self> {
        let histogram =
            || Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).context("histogram");
        let (mut last, mut each) = (histogram()?, histogram()?);
        let mut to_all = 0_u64;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        for probe in 0..count {
            let mut slowest = 0_u64;
            let mut everyone = !reports.is_empty();
            for report in reports {
                match report.latencies_ns.get(probe).copied() {
                    Some(ns) if ns > 0 => {
                        each.saturating_record(ns);
                        slowest = slowest.max(ns);
                    }
                    _ => everyone = false,
                }
            }
            if everyone {
                last.saturating_record(slowest);
                to_all += 1;
            }
        }
        let probes = count as u64;
        Ok(Self {
            system: system.name(),
            label: system.system(),
            mode: system.mode(),
            receivers,
            size,
            probes,
            probes_to_all: to_all,
            last: summarize(&last, to_all == probes),
            each: summarize(&each, to_all == probes),
            p50_over_floor_busy_rtt: None,
            p50_over_floor_blocking_rtt: None,
            p99_over_floor_blocking_rtt: None,
            p50_over_phyla_rtt: None,
            p99_over_phyla_rtt: None,
            forwarding: (system == System::Group).then(|| Forwarding::new(reports, size)),
            per_receiver: reports
                .iter()
                .map(|report| {
                    let mut own = histogram()?;
                    for &ns in report.latencies_ns.iter().filter(|ns| **ns > 0) {
                        own.saturating_record(ns);
                    }
                    Ok(json!({
                        "index": report.index,
                        "probes_received": report.probes_received,
                        "p50_ns": own.value_at_quantile(0.5),
                        "p99_ns": own.value_at_quantile(0.99),
                        "max_ns": own.max(),
                        "usage": report.usage,
                        "system": report.system,
                    }))
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// One ping-pong floor: round trips between two processes.
#[derive(Clone, Debug, Serialize)]
pub(super) struct FloorRow {
    /// The contender's name (`udp-busy`, `udp-blocking`, `phyla-poll-park`, ...).
    pub(super) contender: &'static str,
    /// The system column.
    pub(super) label: &'static str,
    /// The mode column.
    pub(super) mode: &'static str,
    /// Which floor it is, if a kernel one: `floor_busy` or `floor_blocking`.
    pub(super) baseline: Option<&'static str>,
    /// Payload bytes asked for.
    pub(super) size: usize,
    /// The round trips.
    #[serde(flatten)]
    pub(super) summary: LatencySummary,
}

impl FloorRow {
    /// A row from the client's summary.
    pub(super) fn new(
        contender: &dyn PingPongContender,
        size: usize,
        summary: LatencySummary,
    ) -> Self {
        Self {
            contender: contender.name(),
            label: contender.system(),
            mode: contender.mode(),
            baseline: contender.baseline().map(LatencyBaseline::key),
            size,
            summary,
        }
    }
}

/// Fills in every ratio: each throughput row against its own N = 1 row and the baselines at
/// the same N and size; each latency row against the floors at its size.
pub(super) fn compute_ratios(
    throughput: &mut [ThroughputRow],
    latency: &mut [LatencyRow],
    floor: &[FloorRow],
) {
    let find = |rows: &[ThroughputRow], key: (&str, usize, usize, Option<u64>)| {
        rows.iter()
            .find(|row| (row.system, row.receivers, row.size, row.pace) == key)
            .map(|row| (row.publisher_cpu_ns_per_msg, row.delivered_msgs_per_s_min))
    };
    let over = |a: f64, b: f64| (a > 0.0 && b > 0.0).then(|| a / b);
    for index in 0..throughput.len() {
        let (system, receivers, size, pace) = {
            let row = &throughput[index];
            (row.system, row.receivers, row.size, row.pace)
        };
        let one = find(throughput, (system, 1, size, pace));
        let unicast = find(throughput, (System::Unicast.name(), receivers, size, pace));
        let zmq = find(throughput, (System::Zmq.name(), receivers, size, pace));
        let row = &mut throughput[index];
        let (cost, rate) = (row.publisher_cpu_ns_per_msg, row.delivered_msgs_per_s_min);
        row.cost_vs_one_receiver = one.and_then(|(one, _)| over(cost, one));
        row.unicast_cost_over_this = unicast.and_then(|(other, _)| over(other, cost));
        row.zmq_cost_over_this = zmq.and_then(|(other, _)| over(other, cost));
        row.rate_over_unicast = unicast.and_then(|(_, other)| over(rate, other));
        row.rate_over_zmq = zmq.and_then(|(_, other)| over(rate, other));
    }
    let floor_of = |size: usize, which: &dyn Fn(&FloorRow) -> bool| {
        floor
            .iter()
            .find(|row| row.size == size && which(row))
            .map(|row| row.summary.clone())
    };
    let ratio_ns = |a: u64, b: Option<u64>| b.filter(|b| *b > 0).map(|b| a as f64 / b as f64);
    for row in latency.iter_mut().filter(|row| row.probes_to_all > 0) {
        let busy = floor_of(row.size, &|f| {
            f.baseline == Some(LatencyBaseline::FloorBusy.key())
        });
        let blocking = floor_of(row.size, &|f| {
            f.baseline == Some(LatencyBaseline::FloorBlocking.key())
        });
        let phyla = floor_of(row.size, &|f| f.label == "Phyla");
        row.p50_over_floor_busy_rtt = ratio_ns(row.last.p50_ns, busy.map(|s| s.p50_ns));
        row.p50_over_floor_blocking_rtt =
            ratio_ns(row.last.p50_ns, blocking.as_ref().map(|s| s.p50_ns));
        row.p99_over_floor_blocking_rtt = ratio_ns(row.last.p99_ns, blocking.map(|s| s.p99_ns));
        row.p50_over_phyla_rtt = ratio_ns(row.last.p50_ns, phyla.as_ref().map(|s| s.p50_ns));
        row.p99_over_phyla_rtt = ratio_ns(row.last.p99_ns, phyla.map(|s| s.p99_ns));
    }
}

/// The headline: for each N, the publisher's cost of each system and the ratios between them.
fn summary(rows: &[ThroughputRow]) -> Vec<Value> {
    let mut keys: Vec<(Option<u64>, usize, usize)> = Vec::new();
    for row in rows {
        if !keys.contains(&(row.pace, row.size, row.receivers)) {
            keys.push((row.pace, row.size, row.receivers));
        }
    }
    keys.into_iter()
        .map(|(pace, size, receivers)| {
            let get = |system: System| {
                rows.iter().find(|row| {
                    (row.system, row.pace, row.size, row.receivers)
                        == (system.name(), pace, size, receivers)
                })
            };
            let group = get(System::Group);
            let cost = |row: Option<&ThroughputRow>| row.map(|row| row.publisher_cpu_ns_per_msg);
            let growth = |row: Option<&ThroughputRow>| row.and_then(|row| row.cost_vs_one_receiver);
            json!({
                "pace": pace,
                "size": size,
                "receivers": receivers,
                "publisher_cpu_ns_per_msg": {
                    "group": cost(group),
                    "unicast": cost(get(System::Unicast)),
                    "zmq": cost(get(System::Zmq)),
                },
                "cost_vs_one_receiver": {
                    "group": growth(group),
                    "unicast": growth(get(System::Unicast)),
                    "zmq": growth(get(System::Zmq)),
                },
                "unicast_cost_over_group": group.and_then(|row| row.unicast_cost_over_this),
                "zmq_cost_over_group": group.and_then(|row| row.zmq_cost_over_this),
                "delivered_msgs_per_s_min": {
                    "group": group.map(|row| row.delivered_msgs_per_s_min),
                    "unicast": get(System::Unicast).map(|row| row.delivered_msgs_per_s_min),
                    "zmq": get(System::Zmq).map(|row| row.delivered_msgs_per_s_min),
                },
                "group_rate_over_zmq": group.and_then(|row| row.rate_over_zmq),
                "group_rate_over_unicast": group.and_then(|row| row.rate_over_unicast),
                "group_copies_per_hop": group
                    .and_then(|row| row.forwarding.as_ref())
                    .and_then(|forwarding| forwarding.copies_per_hop),
            })
        })
        .collect()
}

/// Every table, with notes on what the figures mean.
pub(super) fn render(
    results: &Results,
    options: &FanoutOptions,
    machine: &Machine,
    cores: CorePlan,
) -> String {
    let mut text = String::new();
    if !results.throughput.is_empty() {
        text.push_str(&throughput_table(&results.throughput, machine, cores));
        text.push('\n');
        text.push_str(&summary_table(&results.throughput));
    }
    if !results.latency.is_empty() {
        text.push('\n');
        text.push_str(&latency_table(&results.latency, options));
    }
    let mut copies: Vec<CopiesEntry<'_>> = Vec::new();
    for row in &results.throughput {
        if let Some(forwarding) = &row.forwarding {
            let load = pace_label(row.pace.unwrap_or(0));
            copies.push((load, row.receivers, row.size, forwarding));
        }
    }
    for row in &results.latency {
        if let Some(forwarding) = &row.forwarding {
            let load = format!("probes {}/s", thousands(options.rate));
            copies.push((load, row.receivers, row.size, forwarding));
        }
    }
    if !copies.is_empty() {
        text.push('\n');
        text.push_str(&copies_text(&copies));
    }
    if !results.floor.is_empty() {
        text.push('\n');
        text.push_str(&floor_table(&results.floor));
    }
    text.push('\n');
    text.push_str(&two_core_note(machine, cores));
    text
}

fn throughput_table(rows: &[ThroughputRow], machine: &Machine, cores: CorePlan) -> String {
    let mut table = Table::new(&[
        ("system", Align::Left),
        ("mode", Align::Left),
        ("N", Align::Right),
        ("size", Align::Right),
        ("offered", Align::Right),
        ("pub CPU us/msg", Align::Right),
        ("vs N=1", Align::Right),
        ("pub msgs/s", Align::Right),
        ("pub cores", Align::Right),
        ("slowest rx msgs/s", Align::Right),
        ("rx CPU us/msg", Align::Right),
        ("unicast/this", Align::Right),
        ("ZeroMQ/this", Align::Right),
        ("note", Align::Left),
    ]);
    for row in rows {
        let mut notes = Vec::new();
        if !row.complete {
            notes.push("window cut short".to_owned());
        }
        if let Some(pace) = row.pace
            && row.delivered_msgs_per_s_min < pace as f64 * 0.95
        {
            notes.push("rate not sustained".to_owned());
        }
        let lost = row.messages_lost();
        if lost > 0 {
            notes.push(format!("{} reported lost", thousands(lost)));
        }
        let churn = row.churn();
        if churn > 0 {
            notes.push(format!(
                "overlay churn: {} neighbour changes",
                thousands(churn)
            ));
        }
        if row.undelivered > 0.001 {
            notes.push(format!(
                "{:.1} % undelivered at stop",
                row.undelivered * 100.0
            ));
        }
        if let Some(forwarding) = &row.forwarding
            && forwarding.interior > 0
        {
            notes.push(format!("{} interior", forwarding.interior));
        }
        table.row(vec![
            row.label.to_owned(),
            row.mode.to_owned(),
            row.receivers.to_string(),
            cli::size_label(row.size),
            pace_label(row.pace.unwrap_or(0)),
            format!("{:.2}", row.publisher_cpu_ns_per_msg / 1e3),
            ratio(row.cost_vs_one_receiver),
            thousands(row.publisher_msgs_per_s.round() as u64),
            format!("{:.2}", row.publisher_cores),
            thousands(row.delivered_msgs_per_s_min.round() as u64),
            format!("{:.2}", row.receivers_cpu_ns_per_msg / 1e3),
            ratio(row.unicast_cost_over_this),
            ratio(row.zmq_cost_over_this),
            notes.join("; "),
        ]);
    }
    table::titled(
        &table,
        "fan-out: the publisher's cost",
        machine,
        cores,
        ("publisher", "receivers"),
        "pub CPU = CPU time (user+sys, all threads) of the publishing process per message \
         published at the offered rate (max: as fast as the slowest receiver allows); \
         unicast/this and ZeroMQ/this = their publisher CPU per message over this row's",
    )
}

fn summary_table(rows: &[ThroughputRow]) -> String {
    let mut table = Table::new(&[
        ("offered", Align::Right),
        ("N", Align::Right),
        ("size", Align::Right),
        ("group us/msg", Align::Right),
        ("(vs N=1)", Align::Right),
        ("unicast us/msg", Align::Right),
        ("(vs N=1)", Align::Right),
        ("ZeroMQ us/msg", Align::Right),
        ("(vs N=1)", Align::Right),
        ("unicast/group", Align::Right),
        ("ZeroMQ/group", Align::Right),
        ("group/ZeroMQ rate", Align::Right),
    ]);
    for entry in summary(rows) {
        let us = |system: &str| {
            entry["publisher_cpu_ns_per_msg"][system]
                .as_f64()
                .map_or_else(|| "-".to_owned(), |ns| format!("{:.2}", ns / 1e3))
        };
        let growth = |system: &str| ratio(entry["cost_vs_one_receiver"][system].as_f64());
        table.row(vec![
            pace_label(entry["pace"].as_u64().unwrap_or(0)),
            entry["receivers"].to_string(),
            cli::size_label(entry["size"].as_u64().unwrap_or(0) as usize),
            us("group"),
            growth("group"),
            us("unicast"),
            growth("unicast"),
            us("zmq"),
            growth("zmq"),
            ratio(entry["unicast_cost_over_group"].as_f64()),
            ratio(entry["zmq_cost_over_group"].as_f64()),
            ratio(entry["group_rate_over_zmq"].as_f64()),
        ]);
    }
    format!(
        "publisher's CPU per message by N, and the ratios (unicast/group > 1: the group is \
         cheaper; rate = slowest receiver's msgs/s)\n\n{}",
        table.render()
    )
}

/// One line of the copies table: the run's load, N, the size and what was forwarded.
type CopiesEntry<'a> = (String, usize, usize, &'a Forwarding);

fn copies_text(entries: &[CopiesEntry<'_>]) -> String {
    let mut table = Table::new(&[
        ("load", Align::Right),
        ("N", Align::Right),
        ("size", Align::Right),
        ("deliveries by hops", Align::Left),
        ("interior", Align::Right),
        ("data frames fwd", Align::Right),
        ("gathered", Align::Right),
        ("tx copies/fwd byte", Align::Right),
        ("rx copies/rx byte", Align::Right),
        ("copies/hop", Align::Right),
    ]);
    let fixed = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let any = !entries.is_empty();
    for (load, receivers, size, forwarding) in entries {
        let hops: Vec<String> = forwarding
            .hops
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(hops, count)| format!("{hops}:{}", thousands(*count)))
            .collect();
        let gathered = (forwarding.payload_bytes > 0).then(|| {
            forwarding.tx_gathered_bytes.min(forwarding.payload_bytes) as f64
                / forwarding.payload_bytes as f64
        });
        table.row(vec![
            load.clone(),
            receivers.to_string(),
            cli::size_label(*size),
            hops.join(" "),
            forwarding.interior.to_string(),
            thousands(forwarding.data_frames),
            gathered.map_or_else(|| "-".to_owned(), |share| format!("{:.0} %", share * 100.0)),
            fixed(forwarding.tx_copies_per_forwarded_byte),
            fixed(forwarding.rx_copies_per_received_byte),
            fixed(forwarding.copies_per_hop),
        ]);
    }
    if !any {
        return String::new();
    }
    format!(
        "group forwarding and payload copies, from the receivers' counters: interior = receivers \
         that forwarded at least a tenth of what they received; gathered = share of forwarded \
         payload bytes sent as gathered datagram parts (no copy); tx copies = (join copies + \
         forwarded payload bytes not gathered) / forwarded payload bytes; rx copies = received \
         bytes copied (reassembly, pool exhausted, copybreak) / received payload bytes; copies/hop = tx + rx \
         (the design's claim: 0)\n\n{}",
        table.render()
    )
}

fn latency_table(rows: &[LatencyRow], options: &FanoutOptions) -> String {
    let mut table = Table::new(&[
        ("system", Align::Left),
        ("mode", Align::Left),
        ("N", Align::Right),
        ("size", Align::Right),
        ("last p50", Align::Right),
        ("last p99", Align::Right),
        ("last p99.9", Align::Right),
        ("last max", Align::Right),
        ("each p50", Align::Right),
        ("each p99", Align::Right),
        ("p50/UDP RTT", Align::Right),
        ("p99/UDP RTT", Align::Right),
        ("p50/Phyla RTT", Align::Right),
        ("probes to all", Align::Right),
    ]);
    for row in rows {
        // No probe reached every receiver: there is no "last" to show.
        let last = |ns: u64| {
            if row.probes_to_all == 0 {
                "-".to_owned()
            } else {
                micros(ns)
            }
        };
        table.row(vec![
            row.label.to_owned(),
            row.mode.to_owned(),
            row.receivers.to_string(),
            cli::size_label(row.size),
            last(row.last.p50_ns),
            last(row.last.p99_ns),
            last(row.last.p999_ns),
            last(row.last.max_ns),
            micros(row.each.p50_ns),
            micros(row.each.p99_ns),
            ratio(row.p50_over_floor_blocking_rtt),
            ratio(row.p99_over_floor_blocking_rtt),
            ratio(row.p50_over_phyla_rtt),
            format!("{}/{}", thousands(row.probes_to_all), thousands(row.probes)),
        ]);
    }
    format!(
        "latency from publish to delivery, us: \"last\" = to the last of the N receivers (per \
         probe, the slowest), \"each\" = to any one; {} probes at {}/s after {} warm-up probes, \
         idle processes {}; ratios against the round trip of the ping-pong floors below (UDP \
         blocking; Phyla parked)\n\n{}",
        thousands(options.count),
        thousands(options.rate),
        thousands(options.warmup_count),
        if options.idle == "park" {
            "parked in the kernel".to_owned()
        } else {
            format!("idling by {}", options.idle)
        },
        table.render()
    )
}

fn floor_table(rows: &[FloorRow]) -> String {
    let mut table = Table::new(&[
        ("system", Align::Left),
        ("mode", Align::Left),
        ("size", Align::Right),
        ("RTT p50", Align::Right),
        ("RTT p99", Align::Right),
        ("RTT p99.9", Align::Right),
        ("RTT max", Align::Right),
        ("one-way p50 (RTT/2)", Align::Right),
        ("rounds", Align::Right),
    ]);
    for row in rows {
        table.row(vec![
            row.label.to_owned(),
            row.mode.to_owned(),
            cli::size_label(row.size),
            micros(row.summary.p50_ns),
            micros(row.summary.p99_ns),
            micros(row.summary.p999_ns),
            micros(row.summary.max_ns),
            micros(row.summary.p50_ns / 2),
            thousands(row.summary.rounds),
        ]);
    }
    format!(
        "unicast ping-pong floors (round trips, us; client on the publisher's core, server on \
         the receivers')\n\n{}",
        table.render()
    )
}

fn two_core_note(machine: &Machine, cores: CorePlan) -> String {
    let placement = match (cores.sender, cores.receiver) {
        (Some(publisher), Some(receivers)) if publisher != receivers => format!(
            "the publisher had core {publisher} to itself and all N receivers shared core \
             {receivers}"
        ),
        (Some(core), Some(_)) => format!("every process shared core {core}"),
        _ => "processes were not pinned".to_owned(),
    };
    format!(
        "On this machine ({} cores) {placement}. The receivers' core is the bottleneck for every \
         system: as N grows each message costs that core N deliveries, so rates fall with N \
         whatever the fan-out costs the publisher. The publisher's CPU per message is measured \
         on its own core, and counts only the time it ran (waiting in the kernel costs nothing), \
         so it is the figure that compares fan-out mechanisms; rates compare what the whole \
         machine sustains. Latencies include each receiver's wake-up, and, with 8 receivers on \
         one core, waiting for the others to run.\n",
        machine.cores
    )
}

/// Prints the JSON line: every row, the summary, the definitions and the configuration.
///
/// # Errors
/// When printing fails.
pub(super) fn print_json(
    results: Results,
    options: &FanoutOptions,
    machine: &Machine,
    cores: CorePlan,
    started: Instant,
) -> Result<()> {
    let fields = json!({
        "program": "fanout",
        "units": {
            "cpu": "nanoseconds of CPU time (user + system, all threads)",
            "rate": "messages per second",
            "latency": "nanoseconds",
            "size": "payload bytes",
        },
        "definitions": {
            "publisher_cpu_ns_per_msg": "CPU time of the publishing process per message \
                published, in its measured window, at the row's pace (messages per second \
                offered; null: as fast as back-pressure from the slowest receiver allows); idle \
                processes wait in the kernel",
            "delivered_msgs_per_s_min": "messages per second the slowest receiver got in its window",
            "receivers_cpu_ns_per_msg": "sum over receivers of each one's CPU time per message \
                it received",
            "latency.last": "per probe, publish to delivery at the last of the N receivers \
                (CLOCK_MONOTONIC, shared by all processes)",
            "payload_copies_per_forwarded_byte": "at receivers that forwarded: (link-layer join \
                copies + receive copies + forwarded payload bytes not sent as gathered parts) / \
                forwarded payload bytes",
        },
        "config": {
            "receivers": options.receivers,
            "latency_receivers": options.latency_receivers,
            "sizes": options.sizes,
            "warmup_s": options.warmup.as_secs_f64(),
            "duration_s": options.duration.as_secs_f64(),
            "count": options.count,
            "warmup_count": options.warmup_count,
            "rate": options.rate,
            "floor_rounds": options.floor_rounds,
            "driver": options.driver,
            "driver_used": results.driver,
            "idle": options.idle,
            "settle_s": options.settle.as_secs_f64(),
            "gather_min_bytes": options.gather_min_bytes,
            "datagram_bytes": options.datagram_bytes,
            "cores": { "publisher": cores.sender, "receivers": cores.receiver,
                       "shared": cores.shared() },
        },
        "summary": summary(&results.throughput),
        "latency": results.latency,
        "floor": results.floor,
    });
    let sweep = Sweep {
        rows: results.throughput,
        skipped: results.skipped,
        errors: results.errors,
    };
    sweep.print_report(fields, machine, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::side::{Usage, Window};
    use crate::throughput::RxReport;

    fn usage(cpu_ns: u64) -> Usage {
        Usage {
            user_ns: cpu_ns,
            ..Usage::default()
        }
    }

    fn publisher(messages: u64, cpu_ns: u64) -> PublisherReport {
        PublisherReport {
            messages_total: messages + 100,
            window: Window {
                messages,
                bytes: messages * 1024,
                ns: 1_000_000_000,
                usage: usage(cpu_ns),
            },
            complete: true,
            backpressured: 0,
            ticks_behind: 0,
            ticks: 0,
            cycles: 0,
            usage: usage(cpu_ns),
            probes_sent: 0,
            system: json!({}),
        }
    }

    fn receiver(index: usize, messages: u64, system: Value) -> ReceiverReport {
        ReceiverReport {
            index,
            rx: Some(RxReport {
                messages,
                bytes: messages * 1024,
                window_ns: 1_000_000_000,
                messages_total: messages + 100,
                bytes_total: (messages + 100) * 1024,
                complete: true,
                extra: serde_json::Map::new(),
            }),
            window_usage: Some(usage(messages * 500)),
            probes_received: 0,
            latencies_ns: Vec::new(),
            usage: Usage::default(),
            system,
        }
    }

    fn row(system: System, receivers: usize, cpu_ns_per_msg: u64) -> ThroughputRow {
        let reports = (1..=receivers)
            .map(|index| receiver(index, 1_000 + index as u64, json!({})))
            .collect();
        ThroughputRow::new(
            system,
            receivers,
            1024,
            0,
            publisher(1_000, 1_000 * cpu_ns_per_msg),
            reports,
        )
    }

    #[test]
    fn throughput_rows_get_costs_rates_and_ratios() {
        let mut rows = vec![
            row(System::Group, 1, 2_000),
            row(System::Group, 8, 3_000),
            row(System::Unicast, 1, 2_000),
            row(System::Unicast, 8, 12_000),
            row(System::Zmq, 8, 6_000),
        ];
        compute_ratios(&mut rows, &mut [], &[]);
        let group8 = &rows[1];
        assert_eq!(group8.publisher_cpu_ns_per_msg, 3_000.0);
        assert_eq!(group8.publisher_msgs_per_s, 1_000.0);
        assert_eq!(group8.delivered_msgs_per_s_min, 1_001.0);
        assert_eq!(group8.publisher_cores, 0.003);
        assert_eq!(group8.receivers_cpu_ns_per_msg, 8.0 * 500.0);
        assert_eq!(group8.cost_vs_one_receiver, Some(1.5));
        assert_eq!(group8.unicast_cost_over_this, Some(4.0));
        assert_eq!(group8.zmq_cost_over_this, Some(2.0));
        assert_eq!(rows[3].cost_vs_one_receiver, Some(6.0));
        assert_eq!(rows[0].zmq_cost_over_this, None);
        let summary = summary(&rows);
        let eight = summary
            .iter()
            .find(|entry| entry["receivers"] == 8)
            .unwrap();
        assert_eq!(eight["unicast_cost_over_group"], 4.0);
        assert_eq!(eight["cost_vs_one_receiver"]["unicast"], 6.0);
        let text = summary_table(&rows);
        assert!(text.contains("4.00x") && text.contains("6.00x"), "{text}");
        let json = serde_json::to_value(&rows).unwrap();
        assert!(json[1]["publisher"]["window"]["usage"]["user_ns"].is_u64());
    }

    #[test]
    fn forwarding_counts_copies_only_at_forwarders() {
        let forwarder = json!({
            "forwarded_data_frames": 100,
            "forwarded_payload_bytes": 102_400,
            "copies": { "link_join_bytes": 0, "tx_slot_bytes": 3_000, "tx_gathered_bytes": 102_400,
                        "rx_reassembly_bytes": 0, "rx_fallback_bytes": 0 },
            "extra": { "hops": [0, 150, 50] },
        });
        let leaf = json!({
            "forwarded_data_frames": 0,
            "copies": { "link_join_bytes": 999 },
            "extra": { "hops": [0, 0, 100] },
        });
        let reports = vec![receiver(1, 10, forwarder), receiver(2, 10, leaf)];
        let forwarding = Forwarding::new(&reports, 1024);
        assert_eq!(forwarding.interior, 1);
        assert_eq!(forwarding.link_join_bytes, 999);
        assert_eq!(
            forwarding.tx_copies_per_forwarded_byte,
            Some(999.0 / 102_400.0)
        );
        assert_eq!(forwarding.rx_copies_per_received_byte, Some(0.0));
        assert_eq!(forwarding.hops, vec![0, 150, 150]);
        assert!(copies_text(&[]).is_empty());
        let text = copies_text(&[("max".to_owned(), 2, 1024, &forwarding)]);
        assert!(text.contains("1:150") && text.contains("100 %"), "{text}");

        let copying = json!({
            "forwarded_data_frames": 10,
            "forwarded_payload_bytes": 1_000,
            "copies": { "link_join_bytes": 1_000, "tx_gathered_bytes": 0,
                        "rx_reassembly_bytes": 112_640 },
        });
        let forwarding = Forwarding::new(&[receiver(1, 10, copying)], 1024);
        assert_eq!(forwarding.tx_copies_per_forwarded_byte, Some(2.0));
        assert_eq!(forwarding.rx_copies_per_received_byte, Some(1.0));
        assert_eq!(forwarding.copies_per_hop, Some(3.0));
    }

    #[test]
    fn latency_rows_take_the_slowest_receiver_per_probe() {
        let mut first = receiver(1, 0, json!({}));
        first.latencies_ns = vec![10_000, 20_000, 0];
        let mut second = receiver(2, 0, json!({}));
        second.latencies_ns = vec![30_000, 5_000, 7_000];
        let mut rows = vec![LatencyRow::new(System::Group, 2, 1024, 3, &[first, second]).unwrap()];
        assert_eq!(rows[0].probes_to_all, 2);
        assert!(!rows[0].last.complete);
        assert_eq!(rows[0].last.max_ns / 1000, 30);
        assert_eq!(rows[0].each.rounds, 5);
        let floor = FloorRow {
            contender: "udp-blocking",
            label: "kernel",
            mode: "UDP blocking",
            baseline: Some(LatencyBaseline::FloorBlocking.key()),
            size: 1024,
            summary: rows[0].last.clone(),
        };
        compute_ratios(&mut [], &mut rows, std::slice::from_ref(&floor));
        assert_eq!(rows[0].p50_over_floor_blocking_rtt, Some(1.0));
        assert_eq!(rows[0].p50_over_phyla_rtt, None);

        let mut cut_off = receiver(1, 0, json!({}));
        cut_off.latencies_ns = vec![10_000, 0];
        let mut rows = vec![
            LatencyRow::new(
                System::Group,
                2,
                1024,
                2,
                &[cut_off, receiver(2, 0, json!({}))],
            )
            .unwrap(),
        ];
        compute_ratios(&mut [], &mut rows, &[floor]);
        assert_eq!(rows[0].probes_to_all, 0);
        assert_eq!(rows[0].p50_over_floor_blocking_rtt, None);
        let options = FanoutOptions::default();
        let text = latency_table(&rows, &options);
        assert!(text.contains("0/2"), "{text}");
    }
}
