//! Phyla groups: the publisher and every receiver join one group through
//! `group_comm::engine::GroupEngine`, the publisher offers each message once, and the group's
//! tree (Plumtree over a HyParView overlay) carries it to every member.
//!
//! Every process runs one engine with one shard in invoker mode and the engine's defaults
//! otherwise; the publisher starts the group and each receiver joins through the publisher's
//! locator. Receivers report what they forwarded
//! and the payload bytes copied on the way, so that the copies per forwarding hop are read from
//! the counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use group_comm::GroupEvent;
use group_comm::engine::{Group, GroupEngine, JoinOptions, PublishError};
use group_comm::stack::StackConfig;
use serde_json::{Value, json};
use substrate::id::NodeId;
use substrate::proto::session::SessionConfig;
use substrate::runtime::Threading;
use substrate::runtime::buf::COPIES;

use super::side::{FanoutSpec, Publish, Receive};
use super::unicast;

/// The group every run uses.
const GROUP_NAME: &str = "phyla-bench-fanout";

/// `GroupEngine::builder`'s `StackConfig::max_queued_frames`.
const ENGINE_MAX_QUEUED_FRAMES: usize = 65_536;

/// `GroupEngine::builder`'s `SessionConfig::send_buffer_bytes` for the stack's sessions.
const ENGINE_SEND_BUFFER_BYTES: u64 = 1 << 20;

/// How long a receiver may take to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the engine takes to refresh its counter snapshot, at most.
const STATS_REFRESH: Duration = Duration::from_millis(120);

/// Whether groups can run here.
pub(super) fn available() -> Result<(), String> {
    Ok(())
}

/// Starts the group; ready at once (receivers join through its locator).
pub(super) fn publisher(spec: &FanoutSpec) -> Result<(Box<dyn Publish>, String)> {
    let mut engine = engine(spec, 0)?;
    let group = engine
        .join(GROUP_NAME, JoinOptions::default())
        .context("starting the group")?;
    let endpoint = locator(&engine)?;
    Ok((
        Box::new(GroupPublisher {
            member: Member::new(engine, group, 0),
        }),
        endpoint,
    ))
}

/// Joins the group through the publisher; ready once it has its first neighbour.
pub(super) fn receiver(spec: &FanoutSpec) -> Result<(Box<dyn Receive>, String)> {
    let mut engine = engine(spec, spec.index)?;
    let contact: SocketAddr = spec
        .publisher_endpoint()?
        .parse()
        .context("the publisher's locator")?;
    let group = engine
        .join(GROUP_NAME, JoinOptions::contacts([contact]))
        .context("joining the group")?;
    let mut member = Member::new(engine, group, spec.index);
    let until = Instant::now() + JOIN_TIMEOUT;
    while !member.joined {
        if Instant::now() > until {
            bail!("not joined within {JOIN_TIMEOUT:?}");
        }
        member.cycle(true);
    }
    let endpoint = locator(&member.engine)?;
    Ok((
        Box::new(GroupReceiver {
            member,
            hops: [0; HOP_BUCKETS],
        }),
        endpoint,
    ))
}

fn engine(spec: &FanoutSpec, index: usize) -> Result<GroupEngine> {
    let mut builder = GroupEngine::builder(NodeId::from_u64(index as u64 + 1))
        .shards(1)
        .threading(Threading::Invoker)
        .idle(unicast::idle(spec)?)
        .pin(false)
        .seed(index as u64 + 1)
        .datagram_bytes(spec.datagram_bytes);
    if let Some(gather_min_bytes) = spec.gather_min_bytes {
        // Setting the stack's configuration replaces the engine's, so its two departures from
        // the defaults are restated here.
        builder = builder.stack(StackConfig {
            session: SessionConfig {
                send_buffer_bytes: ENGINE_SEND_BUFFER_BYTES,
                gather_min_bytes,
                ..SessionConfig::default()
            },
            max_queued_frames: ENGINE_MAX_QUEUED_FRAMES,
            ..StackConfig::default()
        });
    }
    if let Some(driver) = unicast::driver(spec)? {
        builder = builder.driver(driver);
    }
    builder.build().context("starting the group engine")
}

fn locator(engine: &GroupEngine) -> Result<String> {
    engine
        .locators()
        .first()
        .map(ToString::to_string)
        .context("the engine has no locator")
}

/// Wall-clock milliseconds (modulo 10^6 s), so that traces of different processes line up.
fn wall_ms() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() % 1_000_000) as f64 * 1e3 + f64::from(now.subsec_micros()) / 1e3
}

/// What publisher and receivers share: the engine, the group and the events seen.
struct Member {
    engine: GroupEngine,
    group: Group,
    joined: bool,
    neighbours_up: u64,
    neighbours_down: u64,
    messages_lost: u64,
    tree_repairs: u64,
    backpressured_events: u64,
    slow_consumer_dropped: u64,
    isolated: u64,
    peer_failures: u64,
    /// Neighbours up and down, messages lost and tree repairs when the measurement started.
    at_start: [u64; 4],
    /// With `PHYLA_BENCH_EVENTS=DIR`: every event but deliveries, and every 100 ms the
    /// counters and flow-control state, stamped with the wall clock, written to
    /// `DIR/member-<id>.log` (for diagnosing a run, not measuring); and when that was last done.
    trace: Option<(std::io::BufWriter<std::fs::File>, Instant)>,
    /// Messages the application polled (for the trace).
    polled: u64,
}

impl Member {
    fn new(engine: GroupEngine, group: Group, index: usize) -> Self {
        let trace = std::env::var_os("PHYLA_BENCH_EVENTS").and_then(|dir| {
            let path = std::path::Path::new(&dir).join(format!("member-{}.log", index + 1));
            let file = std::fs::File::create(path).ok()?;
            Some((std::io::BufWriter::new(file), Instant::now()))
        });
        Self {
            trace,
            polled: 0,
            engine,
            group,
            joined: false,
            neighbours_up: 0,
            neighbours_down: 0,
            messages_lost: 0,
            tree_repairs: 0,
            backpressured_events: 0,
            slow_consumer_dropped: 0,
            isolated: 0,
            peer_failures: 0,
            at_start: [0; 4],
        }
    }

    fn churn(&self) -> [u64; 4] {
        [
            self.neighbours_up,
            self.neighbours_down,
            self.messages_lost,
            self.tree_repairs,
        ]
    }

    fn mark_start(&mut self) {
        self.at_start = self.churn();
    }

    /// One duty cycle (waiting as the idle strategy says if `idle`), then the events; returns
    /// the work done.
    fn cycle(&mut self, idle: bool) -> usize {
        let work = if idle {
            self.engine.invoke_idle()
        } else {
            self.engine.invoke()
        };
        self.drain_events();
        if let Some((out, last)) = &mut self.trace {
            if last.elapsed() >= Duration::from_millis(100) {
                *last = Instant::now();
                use std::io::Write as _;
                let stats = self.engine.stats();
                let shard = stats.shards.first();
                let _ = writeln!(
                    out,
                    "{:>10.3} ms progress: polled {} | shard delivered {} rx datagrams {} tx {} \
                     frames rx {} tx {} queue max {}",
                    wall_ms(),
                    self.polled,
                    shard.map_or(0, |s| s.group.delivered),
                    shard.map_or(0, |s| s.driver.datagrams_received),
                    shard.map_or(0, |s| s.driver.datagrams_sent),
                    shard.map_or(0, |s| s.link.frames_received),
                    shard.map_or(0, |s| s.link.frames_sent),
                    shard.map_or(0, |s| s.link.max_queue_len),
                );
                let queued: Vec<(String, u64, u64)> = stats
                    .peers
                    .iter()
                    .filter(|p| p.queued_frames > 0)
                    .map(|p| {
                        (
                            p.peer.to_string(),
                            p.queued_frames,
                            p.session.offers_backpressured,
                        )
                    })
                    .collect();
                if !queued.is_empty() {
                    let _ = writeln!(out, "    queued {queued:?}");
                }
                for f in self.group.tree().flow {
                    let _ = writeln!(
                        out,
                        "    flow {} parent {:?} next {} children {:?}",
                        f.source, f.parent, f.next, f.children
                    );
                }
            }
        }
        work
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.group.poll_event() {
            if let Some((out, _)) = &mut self.trace {
                use std::io::Write as _;
                let _ = writeln!(out, "{:>10.3} ms {event:?}", wall_ms());
            }
            match event {
                GroupEvent::Joined { .. } => self.joined = true,
                GroupEvent::NeighborUp { .. } => {
                    self.joined = true;
                    self.neighbours_up += 1;
                }
                GroupEvent::NeighborDown { .. } => self.neighbours_down += 1,
                GroupEvent::MessagesLost { first, last, .. } => {
                    self.messages_lost += last.saturating_sub(first) + 1;
                }
                GroupEvent::TreeRepaired { .. } => self.tree_repairs += 1,
                GroupEvent::Backpressured { .. } => self.backpressured_events += 1,
                GroupEvent::SlowConsumer { dropped, .. } => self.slow_consumer_dropped += dropped,
                GroupEvent::Isolated { .. } => self.isolated += 1,
                GroupEvent::PeerFailed { .. } => self.peer_failures += 1,
                _ => {}
            }
        }
        while self.engine.poll_event().is_some() {}
    }

    /// The counters, after giving the shard time to publish a fresh snapshot.
    fn report(&mut self, extra: Value) -> Value {
        let until = Instant::now() + STATS_REFRESH;
        while Instant::now() < until {
            self.cycle(false);
        }
        if let Some((out, _)) = &mut self.trace {
            use std::io::Write as _;
            let _ = writeln!(out, "stats {:?}", self.engine.stats());
            let _ = out.flush();
        }
        let stats = self.engine.stats();
        let tree = self.group.tree();
        let publisher = NodeId::from_u64(1);
        let eager: Vec<String> = tree
            .sources
            .iter()
            .find(|(source, _)| *source == publisher)
            .map(|(_, links)| links.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let neighbours: Vec<String> = tree.neighbours.iter().map(ToString::to_string).collect();
        let (mut link, mut group, mut endpoint_copied, mut tx_copied, mut gathered) =
            (json!(null), json!(null), 0, 0, 0);
        let (mut datagrams_sent, mut datagrams_received, mut syscalls) = (0, 0, 0);
        for shard in &stats.shards {
            endpoint_copied += shard.endpoint.payload_bytes_copied;
            tx_copied += shard.endpoint.tx_payload_bytes_copied;
            gathered += shard.endpoint.payload_bytes_gathered;
            datagrams_sent += shard.driver.datagrams_sent;
            datagrams_received += shard.driver.datagrams_received;
            syscalls += shard.driver.syscalls;
            link = json!({
                "frames_sent": shard.link.frames_sent,
                "frames_received": shard.link.frames_received,
                "frames_dropped": shard.link.frames_dropped,
                "offers_backpressured": shard.link.offers_backpressured,
                "payload_bytes_copied": shard.link.payload_bytes_copied,
                "sessions_opened": shard.link.sessions_opened,
                "sessions_accepted": shard.link.sessions_accepted,
                "sessions_closed": shard.link.sessions_closed,
                "queue_overflows": shard.link.queue_overflows,
                "unreachable_reported": shard.link.unreachable_reported,
                "session_messages_lost": shard.link.session_messages_lost,
                "peers_evicted": shard.link.peers_evicted,
                "max_queue_len": shard.link.max_queue_len,
            });
            group = json!({
                "data_sent": shard.group.data_sent,
                "payload_bytes_sent": shard.group.payload_bytes_sent,
                "duplicates_received": shard.group.duplicates_received,
                "repairs_sent": shard.group.repairs_sent,
                "grafts_sent": shard.group.grafts_sent,
                "prunes_sent": shard.group.prunes_sent,
                "ihave_sent": shard.group.ihave_sent,
                "delivered": shard.group.delivered,
                "lost": shard.group.lost,
                "membership_sent": shard.group.membership_sent,
                "detection_sent": shard.group.detection_sent,
                "failures_declared": shard.group.failures_declared,
                "suspicions_refuted": shard.group.suspicions_refuted,
            });
        }
        let counters = self.group.counters();
        json!({
            "driver": self.engine.driver().name(),
            "member": self.group.member().to_string(),
            "neighbours": tree.neighbours.len(),
            "eager_links_for_publisher": eager.len(),
            "tree": { "neighbours": neighbours, "eager_for_publisher": eager },
            "forwarded_data_frames": group["data_sent"],
            "forwarded_payload_bytes": group["payload_bytes_sent"],
            "copies": {
                "offer_bytes": COPIES.offer_bytes.load(std::sync::atomic::Ordering::Relaxed),
                "rx_fallback_bytes": COPIES.rx_fallback_bytes.load(std::sync::atomic::Ordering::Relaxed),
                "rx_copybreak_bytes": COPIES.rx_copybreak_bytes.load(std::sync::atomic::Ordering::Relaxed),
                "rx_reassembly_bytes": endpoint_copied,
                "link_join_bytes": link["payload_bytes_copied"],
                "tx_slot_bytes": tx_copied,
                "tx_gathered_bytes": gathered,
            },
            "link": link,
            "group": group,
            "counters": {
                "published": counters.published,
                "delivered": counters.delivered,
                "lost": counters.lost,
                "repairs": counters.repairs,
                "backpressured": counters.backpressured,
                "slow_dropped": counters.slow_dropped,
            },
            "events": {
                "neighbours_up": self.neighbours_up,
                "neighbours_down": self.neighbours_down,
                "messages_lost": self.messages_lost,
                "tree_repairs": self.tree_repairs,
                "backpressured": self.backpressured_events,
                "slow_consumer_dropped": self.slow_consumer_dropped,
                "isolated": self.isolated,
                "peer_failures": self.peer_failures,
            },
            "during_measurement": {
                "neighbours_up": self.churn()[0] - self.at_start[0],
                "neighbours_down": self.churn()[1] - self.at_start[1],
                "messages_lost": self.churn()[2] - self.at_start[2],
                "tree_repairs": self.churn()[3] - self.at_start[3],
            },
            "driver_stats": {
                "datagrams_sent": datagrams_sent,
                "datagrams_received": datagrams_received,
                "syscalls": syscalls,
            },
            "extra": extra,
        })
    }
}

/// The publishing member.
struct GroupPublisher {
    member: Member,
}

impl Publish for GroupPublisher {
    fn offer(&mut self, payload: &[u8]) -> Result<bool> {
        match self.member.group.offer(payload) {
            Ok(_) => Ok(true),
            Err(PublishError::BackPressured) => Ok(false),
            Err(error) => bail!("group offer: {error}"),
        }
    }

    fn cycle(&mut self, idle: bool) -> Result<usize> {
        let work = self.member.cycle(idle);
        // The publisher is a member too: its own messages are delivered back to it.
        Ok(work + self.member.group.poll(|_| {}, usize::MAX))
    }

    fn mark_start(&mut self) {
        self.member.mark_start();
    }

    fn ready_to_start(&mut self) -> Result<bool> {
        Ok(self.member.joined)
    }

    fn report(&mut self) -> Value {
        self.member.report(json!({}))
    }
}

/// Hop counts kept apart (the last bucket is "this many or more").
const HOP_BUCKETS: usize = 8;

/// A receiving (and possibly forwarding) member.
struct GroupReceiver {
    member: Member,
    hops: [u64; HOP_BUCKETS],
}

impl Receive for GroupReceiver {
    fn poll(&mut self, idle: bool, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        self.member.cycle(idle);
        let hops = &mut self.hops;
        let polled = &mut self.member.polled;
        let count = self.member.group.poll(
            |message| {
                hops[usize::from(message.hops).min(HOP_BUCKETS - 1)] += 1;
                *polled += 1;
                on_message(&message.payload);
            },
            usize::MAX,
        );
        Ok(count)
    }

    fn mark_start(&mut self) {
        self.member.mark_start();
    }

    fn report(&mut self) -> Value {
        let hops = self.hops;
        self.member.report(json!({ "hops": hops }))
    }
}
