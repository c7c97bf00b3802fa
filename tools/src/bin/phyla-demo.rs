//! Runs Phyla sessions through a lossy in-memory network on virtual time and prints what
//! happened: messages, retransmissions, NAKs, duplicates, a peer changing address, a partition,
//! and the loss the session reports when its retransmit window is outrun.
//!
//! `phyla-demo --help` lists the options; with none it runs both acts with sensible defaults.
//! The last line of output is one JSON object with every figure.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: it times its own wall-clock run"
)]

use std::ops::Range;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::json;
use substrate::id::{NodeId, SessionHandle, StreamId};
use substrate::proto::rate::Rate;
use substrate::proto::session::{
    Endpoint, EndpointConfig, Event, OfferError, SessionConfig, SessionStats,
};
use substrate::rand::Rng;
use substrate::testing::{Cluster, LinkConfig, Loss, NodeIdx, test_locator};
use substrate::time::{Duration, Instant};

const STREAM: StreamId = StreamId(1);

#[derive(Clone, Debug)]
struct Options {
    seed: u64,
    messages: u64,
    loss: f64,
    latency_ms: u64,
    bandwidth_mbytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            messages: 100_000,
            loss: 0.03,
            latency_ms: 10,
            bandwidth_mbytes: 50,
        }
    }
}

const HELP: &str = "\
phyla-demo: Phyla sessions through a lossy in-memory network (virtual time)

Act 1: a reliable stream while the sender moves to a new address and the link is cut for 2 s:
       nothing is lost, the move is reported as PathMigrated.
Act 2: the sender paced at 80 % of the link and keeping only 2 MiB for retransmission, and a
       1 s blackout of the data direction:
       the session reports exactly which messages it could not repair, and carries on.

options:
  --seed N             seed for the network and the nodes (default 1)
  --messages N         messages per act (default 100000)
  --loss P             uniform datagram loss, 0..1 (default 0.03)
  --latency-ms N       one-way latency (default 10)
  --bandwidth-mbytes N link bandwidth in MB/s (default 50)
";

fn parse_options() -> Result<Options> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value {value:?} for {flag}");
        match flag.as_str() {
            "--seed" => o.seed = value.parse().with_context(bad)?,
            "--messages" => o.messages = value.parse().with_context(bad)?,
            "--loss" => o.loss = value.parse().with_context(bad)?,
            "--latency-ms" => o.latency_ms = value.parse().with_context(bad)?,
            "--bandwidth-mbytes" => o.bandwidth_mbytes = value.parse().with_context(bad)?,
            _ => bail!("unknown option {flag} (try --help)"),
        }
    }
    if !(0.0..0.5).contains(&o.loss) {
        bail!("--loss must be in [0, 0.5)");
    }
    if o.messages == 0 || o.bandwidth_mbytes == 0 {
        bail!("--messages and --bandwidth-mbytes must be positive");
    }
    Ok(o)
}

/// What one act measured.
#[derive(Debug, Default)]
struct ActReport {
    name: &'static str,
    offered: u64,
    delivered: u64,
    delivered_bytes: u64,
    lost: Vec<Range<u64>>,
    /// Every message number read, in reading order.
    delivered_numbers: Vec<u64>,
    in_order: bool,
    virtual_s: f64,
    sender: SessionStats,
    receiver: SessionStats,
    datagrams_dropped_by_network: u64,
    timeline: Vec<(f64, String)>,
}

struct Act {
    c: Cluster<Endpoint>,
    a: NodeIdx,
    b: NodeIdx,
    sa: SessionHandle,
    /// The receiver's handle, once its `Connected` arrives.
    sb: Option<SessionHandle>,
    /// Whether the sender has seen `Connected`.
    a_connected: bool,
    report: ActReport,
    /// The loss line being merged: messages, ranges, first and last message number.
    pending_loss: (u64, u64, u64, u64),
    /// The next message, refused for backpressure and handed back.
    refused: Option<Bytes>,
}

impl Act {
    fn new(name: &'static str, o: &Options, config: SessionConfig) -> Result<Self> {
        let link = LinkConfig::default()
            .latency(Duration::from_millis(o.latency_ms))
            .jitter(Duration::from_millis(o.latency_ms / 5))
            .bandwidth(o.bandwidth_mbytes * 1_000_000)
            .loss(Loss::Uniform(o.loss))
            .duplicate(0.01)
            .reorder(0.02, Duration::from_millis(2));
        let mut c = Cluster::new(o.seed, link);
        let node = |n| {
            let mut cfg = EndpointConfig::new(NodeId::from_u64(n));
            cfg.session = config.clone();
            Endpoint::new(cfg)
        };
        let a = c.add_node(node(1)?);
        let b = c.add_node(node(2)?);
        let to = c.locator(b);
        let sa = c.with_node(a, |e, now, rng| e.connect(now, to, rng))?;
        let mut act = Self {
            c,
            a,
            b,
            sa,
            sb: None,
            a_connected: false,
            report: ActReport {
                name,
                ..ActReport::default()
            },
            pending_loss: (0, 0, 0, 0),
            refused: None,
        };
        while act.sb.is_none() || !act.a_connected {
            if !act.step(0) {
                bail!("handshake did not complete");
            }
        }
        Ok(act)
    }

    /// Reports a loss; reports at the same instant are merged into one timeline line.
    fn note_loss(&mut self, who: &str, range: &Range<u64>) {
        let t = (self.c.now() - Instant::ZERO).as_secs_f64();
        let n = range.end - range.start;
        if let Some((last_t, line)) = self.report.timeline.last_mut() {
            if *last_t == t && line.starts_with(&format!("{who}: lost ")) {
                self.pending_loss.0 += n;
                self.pending_loss.1 += 1;
                self.pending_loss.3 = range.end;
                let (count, ranges, first, last) = self.pending_loss;
                *line = format!(
                    "{who}: lost {count} messages in {ranges} ranges between {first} and {last}, \
                     delivery continues"
                );
                return;
            }
        }
        self.pending_loss = (n, 1, range.start, range.end);
        self.note(format!(
            "{who}: lost {n} messages ({}..{}), delivery continues",
            range.start, range.end
        ));
    }

    fn note(&mut self, what: String) {
        let t = (self.c.now() - Instant::ZERO).as_secs_f64();
        self.report.timeline.push((t, what));
    }

    /// Offers up to `total`, reads everything ready, records events, takes one harness step.
    fn step(&mut self, total: u64) -> bool {
        let (sa, sb) = (self.sa, self.sb);
        while self.report.offered < total {
            let n = self.report.offered;
            // A refused offer hands the message back: keep it for the next try.
            let body = self.refused.take().unwrap_or_else(|| payload(n));
            match self
                .c
                .with_node(self.a, |e, now, _| e.offer(now, sa, STREAM, body))
            {
                Ok(_) => self.report.offered += 1,
                Err(OfferError::BackPressured(body)) => {
                    self.refused = Some(body);
                    break;
                }
                Err(e) => {
                    self.note(format!("offer failed: {e}"));
                    return false;
                }
            }
        }
        if let Some(sb) = sb {
            let got = self.c.with_node(self.b, |e, _, _| {
                std::iter::from_fn(|| e.recv(sb, STREAM)).collect::<Vec<_>>()
            });
            for m in got {
                if m.payload != payload(m.number) {
                    self.note(format!("message {} corrupted", m.number));
                }
                self.report.delivered_numbers.push(m.number);
                self.report.delivered += 1;
                self.report.delivered_bytes += m.payload.len() as u64;
            }
        }
        for node in [self.a, self.b] {
            for e in self.c.take_events(node) {
                let who = if node == self.a { "sender" } else { "receiver" };
                match e {
                    Event::Connected { session, peer } => {
                        if node == self.b {
                            self.sb = Some(session);
                        } else {
                            self.a_connected = true;
                        }
                        self.note(format!("{who}: connected to node {peer}"));
                    }
                    Event::PathMigrated { from, to, .. } => {
                        self.note(format!("{who}: peer moved, path validated: {from} -> {to}"));
                    }
                    Event::MessagesLost { range, .. } => {
                        self.note_loss(who, &range);
                        self.report.lost.push(range);
                    }
                    Event::PeerTimedOut { .. } | Event::Closed { .. } => {
                        self.note(format!("{who}: {e:?}"));
                    }
                    Event::Readable { .. }
                    | Event::Backpressured { .. }
                    | Event::Writable { .. } => {}
                }
            }
        }
        self.c.step()
    }

    fn lost_count(&self) -> u64 {
        self.report.lost.iter().map(|r| r.end - r.start).sum()
    }

    /// Runs until `pred` holds for the delivered count (or 10 minutes of virtual time pass).
    fn run_until_delivered(&mut self, total: u64, count: u64) -> Result<()> {
        let deadline = self.c.now() + Duration::from_secs(600);
        while self.report.delivered + self.lost_count() < count {
            if self.c.now() > deadline || !self.step(total) {
                let timeline: Vec<String> = self
                    .report
                    .timeline
                    .iter()
                    .map(|(t, w)| format!("t={t:.3}s {w}"))
                    .collect();
                bail!(
                    "{}: stalled after {} of the first {count} messages were delivered or lost; \
                     timeline: {}",
                    self.report.name,
                    self.report.delivered + self.lost_count(),
                    timeline.join("; ")
                );
            }
        }
        Ok(())
    }

    fn run_for(&mut self, total: u64, d: Duration) {
        let until = self.c.now() + d;
        while self.c.now() < until && self.step(total) {}
    }

    fn finish(mut self, total: u64) -> Result<ActReport> {
        self.run_until_delivered(total, total)?;
        let r = &mut self.report;
        r.in_order = exactly_once_in_order(&r.delivered_numbers, &r.lost, total)
            && !r.timeline.iter().any(|(_, w)| w.contains("corrupted"));
        r.virtual_s = (self.c.now() - Instant::ZERO).as_secs_f64();
        let info = |node, s| self.c.node(node).session_info(s).map(|i| i.stats);
        r.sender = info(self.a, self.sa).context("sender session closed")?;
        let sb = self.sb.context("receiver never connected")?;
        r.receiver = info(self.b, sb).context("receiver session closed")?;
        let net = self.c.net().stats();
        r.datagrams_dropped_by_network = net.dropped_loss + net.dropped_partition + net.unroutable;
        Ok(self.report)
    }
}

/// Whether every message number below `total` was either read or reported lost, never both,
/// and the reads came in increasing order.
fn exactly_once_in_order(delivered: &[u64], lost: &[Range<u64>], total: u64) -> bool {
    let increasing = delivered.windows(2).all(|w| w[0] < w[1]);
    let lost_count: u64 = lost.iter().map(|r| r.end - r.start).sum();
    let disjoint = delivered
        .iter()
        .all(|n| !lost.iter().any(|r| r.contains(n)));
    let in_range = delivered.last().is_none_or(|&n| n < total);
    increasing && disjoint && in_range && delivered.len() as u64 + lost_count == total
}

/// Message `n`: mostly small, some medium, a few up to 64 KiB; bytes depend on `n`.
fn payload(n: u64) -> Bytes {
    let mut r = Rng::with_seed(n);
    let size = match r.below(100) {
        0..80 => 1 + r.below(256),
        80..95 => 256 + r.below(3_840),
        _ => 4_096 + r.below(61_441),
    } as usize;
    let tag = n.to_le_bytes();
    Bytes::from((0..size).map(|i| tag[i % 8] ^ i as u8).collect::<Vec<u8>>())
}

fn act_reliable(o: &Options) -> Result<ActReport> {
    let total = o.messages;
    let mut act = Act::new("reliable", o, SessionConfig::default())?;
    act.run_until_delivered(total, total / 3)?;
    let moved_to = test_locator(1_000);
    act.note(format!("sender moves to {moved_to}"));
    let a = act.a;
    act.c.net_mut().rebind(a, moved_to);
    act.run_until_delivered(total, 2 * total / 3)?;
    act.note("link cut both ways for 2 s".into());
    let b = act.b;
    act.c.net_mut().partition(&[a], &[b]);
    act.run_for(total, Duration::from_secs(2));
    act.c.net_mut().heal();
    act.note("link restored".into());
    act.finish(total)
}

fn act_bounded(o: &Options) -> Result<ActReport> {
    let total = o.messages;
    // Paced below the link rate, so the retransmit window covers normal repairs but not a
    // blackout: the window is 2 MiB, the peer lets the sender run 4 MiB ahead.
    let config = SessionConfig {
        retransmit_window_bytes: Some(2 << 20),
        default_rate: Some(Rate::bytes_per_second(o.bandwidth_mbytes * 800_000)),
        ..SessionConfig::default()
    };
    let mut act = Act::new("bounded-retransmit", o, config)?;
    act.run_until_delivered(total, total / 2)?;
    act.note("data direction blacked out for 1 s (retransmit window: 2 MiB)".into());
    let (a, b) = (act.a, act.b);
    act.c.net_mut().block_one_way(&[a], &[b]);
    act.run_for(total, Duration::from_secs(1));
    act.c.net_mut().heal();
    act.note("blackout over".into());
    act.finish(total)
}

fn print_act(r: &ActReport) {
    println!("\n== act: {} ==", r.name);
    let mut timeline: Vec<_> = r.timeline.iter().collect();
    timeline.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (t, what) in timeline {
        println!("  t={t:>8.3}s  {what}");
    }
    let lost: u64 = r.lost.iter().map(|x| x.end - x.start).sum();
    let rows: [(&str, String); 12] = [
        ("messages offered", r.offered.to_string()),
        ("messages delivered", r.delivered.to_string()),
        (
            "messages reported lost",
            format!("{lost} in {} range(s)", r.lost.len()),
        ),
        ("delivered exactly once, in order", r.in_order.to_string()),
        ("virtual time", format!("{:.3} s", r.virtual_s)),
        (
            "goodput",
            format!("{:.1} MB/s", r.delivered_bytes as f64 / r.virtual_s / 1e6),
        ),
        (
            "datagrams sent (sender)",
            r.sender.datagrams_sent.to_string(),
        ),
        (
            "datagrams dropped by the network",
            r.datagrams_dropped_by_network.to_string(),
        ),
        (
            "fragments retransmitted",
            r.sender.fragments_retransmitted.to_string(),
        ),
        ("NAKs sent (receiver)", r.receiver.naks_sent.to_string()),
        (
            "duplicate fragments discarded",
            r.receiver.fragments_duplicate.to_string(),
        ),
        ("gap notices (unrepairable)", r.sender.gaps_sent.to_string()),
    ];
    println!("  {:<36} {:>20}", "measure", "value");
    for (k, v) in rows {
        println!("  {k:<36} {v:>20}");
    }
}

fn act_json(r: &ActReport) -> serde_json::Value {
    json!({
        "act": r.name,
        "messages_offered": r.offered,
        "messages_delivered": r.delivered,
        "messages_lost": r.lost.iter().map(|x| x.end - x.start).sum::<u64>(),
        "lost_ranges": r.lost.iter().map(|x| [x.start, x.end]).collect::<Vec<_>>(),
        "in_order_exactly_once": r.in_order,
        "virtual_seconds": r.virtual_s,
        "goodput_bytes_per_virtual_second": r.delivered_bytes as f64 / r.virtual_s,
        "datagrams_sent_by_sender": r.sender.datagrams_sent,
        "datagrams_sent_by_receiver": r.receiver.datagrams_sent,
        "datagrams_dropped_by_network": r.datagrams_dropped_by_network,
        "fragments_sent": r.sender.fragments_sent,
        "fragments_retransmitted": r.sender.fragments_retransmitted,
        "retransmit_ratio": r.sender.fragments_retransmitted as f64 / r.sender.fragments_sent.max(1) as f64,
        "naks_sent": r.receiver.naks_sent,
        "fragments_duplicate": r.receiver.fragments_duplicate,
        "gaps_sent": r.sender.gaps_sent,
        "path_migrations": r.timeline.iter().filter(|(_, w)| w.contains("path validated")).count(),
        "timeline": r.timeline.iter().map(|(t, w)| json!({"t_seconds": t, "what": w})).collect::<Vec<_>>(),
    })
}

fn main() -> ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("phyla-demo: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "Phyla session demo: {} messages per act, loss {:.1} %, 1 % duplication, 2 % reordering, \
         {} ms latency, {} MB/s, seed {}",
        o.messages,
        o.loss * 100.0,
        o.latency_ms,
        o.bandwidth_mbytes,
        o.seed
    );
    let wall = std::time::Instant::now();
    let acts = [act_reliable(&o), act_bounded(&o)];
    let mut ok = true;
    let mut reports = Vec::new();
    for act in acts {
        match act {
            Ok(r) => {
                print_act(&r);
                ok &= r.in_order;
                reports.push(r);
            }
            Err(e) => {
                eprintln!("phyla-demo: {e:#}");
                ok = false;
            }
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    println!(
        "\n{} in {wall_s:.2} s of wall-clock time",
        if ok {
            "all checks passed"
        } else {
            "CHECKS FAILED"
        }
    );
    let summary = json!({
        "program": "phyla-demo",
        "seed": o.seed,
        "messages_per_act": o.messages,
        "loss": o.loss,
        "latency_ms": o.latency_ms,
        "jitter_ms": o.latency_ms as f64 / 5.0,
        "duplication": 0.01,
        "reordering": 0.02,
        "reorder_delay_ms": 2,
        "bandwidth_bytes_per_second": o.bandwidth_mbytes * 1_000_000,
        "acts": reports.iter().map(act_json).collect::<Vec<_>>(),
        "wall_seconds": wall_s,
        "ok": ok,
    });
    println!("{summary}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
