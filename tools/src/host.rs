//! The boundary between the tools and the group engine (`group_comm::engine`): building an
//! engine from settings, driving it, and turning its events and counters into the tools' log
//! lines and stats snapshots. Everything else in this crate is independent of the engine.

#![allow(
    clippy::disallowed_methods,
    reason = "a tool: it reads the clock to pace its loop"
)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use group_comm::engine::{EngineError, EngineEvent, EngineStats, GroupEngine};
use group_comm::{GroupConfig, GroupEvent, GroupId};
use serde_json::{Value, json};
use substrate::id::{Locator, NodeId};
use substrate::runtime::Threading;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;

use crate::check::DeliveryChecker;
use crate::identity::to_hex;
use crate::stats::{GroupSnapshot, PeerSnapshot, ShardSnapshot, Snapshot, TreeLinks};

/// How to build a node's engine: what the daemon's configuration or a tool's flags say.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// The node's identity.
    pub id: NodeId,
    /// Where shard 0 binds (shard `i` on port + `i`).
    pub bind: SocketAddr,
    /// The address to advertise when `bind` is a wildcard.
    pub advertise: Option<IpAddr>,
    /// Number of shards.
    pub shards: usize,
    /// A forced driver, or `None` for `PHYLA_DRIVER` then the probe.
    pub driver: Option<DriverKind>,
    /// The shards' idle strategy.
    pub idle: IdleStrategy,
    /// Dedicated shard threads, or invoker mode (the caller's loop runs the shards).
    pub threading: Threading,
    /// Pin dedicated shard threads to cores.
    pub pin: bool,
    /// Seed of the shards' random choices (`None`: from the kernel).
    pub seed: Option<u64>,
    /// Per-group publish budget (`None`: the engine's default).
    pub publication_bytes: Option<u64>,
    /// Largest datagram (`None`: the engine's choice by the bind address).
    pub datagram_bytes: Option<usize>,
    /// The group protocols' parameters (`None`: the engine's default).
    pub group_config: Option<GroupConfig>,
}

/// Longest wait of a parked invoker-mode loop: it bounds how late the tool's own periodic work
/// (stats file, progress lines, a paced publisher, a signal) runs.
pub const PARK_MAX: Duration = Duration::from_millis(10);

/// The idle strategy for a tool's invoker loop: `park` and `backoff` wait at most
/// [`PARK_MAX`] in the kernel, so the loop's own timers stay on time.
pub fn invoker_idle(idle: IdleStrategy) -> IdleStrategy {
    match idle {
        IdleStrategy::Backoff { spins, yields, max } => IdleStrategy::Backoff {
            spins,
            yields,
            max: max.min(PARK_MAX),
        },
        other => other,
    }
}

/// Builds and starts the engine.
///
/// # Errors
/// [`EngineError`] if a shard cannot start (address in use, no driver) or the configuration
/// does not validate.
pub fn start(s: &EngineSettings) -> Result<GroupEngine, EngineError> {
    let idle = match s.threading {
        Threading::Invoker => invoker_idle(s.idle),
        Threading::Dedicated => s.idle,
    };
    let mut b = GroupEngine::builder(s.id)
        .bind(s.bind)
        .shards(s.shards)
        .idle(idle)
        .threading(s.threading)
        .pin(s.pin);
    if let Some(ip) = s.advertise {
        b = b.advertise(ip);
    }
    if let Some(d) = s.driver {
        b = b.driver(d);
    }
    if let Some(seed) = s.seed {
        b = b.seed(seed);
    }
    if let Some(bytes) = s.publication_bytes {
        b = b.publication_bytes(bytes);
    }
    if let Some(bytes) = s.datagram_bytes {
        b = b.datagram_bytes(bytes);
    }
    if let Some(c) = &s.group_config {
        b = b.group_config(c.clone());
    }
    b.build()
}

/// Runs the engine a little: in invoker mode, one duty cycle of every shard (waiting in the
/// driver when idle, if `may_wait`); with dedicated threads, a short sleep when `may_wait`.
/// Returns the work done (0 = idle).
pub fn drive(engine: &mut GroupEngine, threading: Threading, may_wait: bool) -> usize {
    match threading {
        Threading::Invoker if may_wait => engine.invoke_idle(),
        Threading::Invoker => engine.invoke(),
        Threading::Dedicated => {
            if may_wait {
                std::thread::sleep(Duration::from_millis(1));
            }
            0
        }
    }
}

/// A node id in the short form of log lines (its first 16 hex digits).
pub fn short(id: &NodeId) -> String {
    id.to_string()
}

/// A locator as `ip:port` (the form of configuration files and flags).
pub fn locator(l: &Locator) -> String {
    match l {
        Locator::Udp(a) => a.to_string(),
    }
}

/// A group event as a log line's event name and fields; `group` is the group's name. `None`
/// for deliveries (summarised elsewhere, never logged one by one).
pub fn group_event(e: &GroupEvent, group: &str) -> Option<(&'static str, Value)> {
    Some(match e {
        GroupEvent::Joined { .. } => ("joined", json!({ "group": group })),
        GroupEvent::Delivered { .. } => return None,
        GroupEvent::MessagesLost {
            source,
            epoch,
            first,
            last,
            ..
        } => (
            "messages_lost",
            json!({
                "group": group, "source": short(source), "epoch": epoch, "first": first,
                "last": last, "count": last.saturating_sub(*first) + 1,
            }),
        ),
        GroupEvent::NeighborUp { peer, .. } => (
            "neighbor_up",
            json!({ "group": group, "peer": short(peer) }),
        ),
        GroupEvent::NeighborDown { peer, .. } => (
            "neighbor_down",
            json!({ "group": group, "peer": short(peer) }),
        ),
        GroupEvent::PeerSuspected { peer } => ("peer_suspected", json!({ "peer": short(peer) })),
        GroupEvent::PeerFailed { peer } => ("peer_failed", json!({ "peer": short(peer) })),
        GroupEvent::PeerRecovered { peer } => ("peer_recovered", json!({ "peer": short(peer) })),
        GroupEvent::TreeRepaired { source, via, .. } => (
            "tree_repaired",
            json!({ "group": group, "source": short(source), "via": short(via) }),
        ),
        GroupEvent::Isolated { .. } => ("isolated", json!({ "group": group })),
        GroupEvent::Backpressured { .. } => ("backpressured", json!({ "group": group })),
        GroupEvent::Writable { .. } => ("writable", json!({ "group": group })),
        GroupEvent::SlowConsumer { dropped, .. } => (
            "slow_consumer",
            json!({ "group": group, "dropped": dropped }),
        ),
    })
}

/// A node-scoped engine event as a log line's event name and fields.
pub fn engine_event(e: &EngineEvent) -> (&'static str, Value) {
    match e {
        EngineEvent::PeerSuspected { peer } => ("peer_suspected", json!({ "peer": short(peer) })),
        EngineEvent::PeerFailed { peer } => ("peer_failed", json!({ "peer": short(peer) })),
        EngineEvent::PeerRecovered { peer } => ("peer_recovered", json!({ "peer": short(peer) })),
        EngineEvent::DriverFailed { shard, error } => {
            ("driver_failed", json!({ "shard": shard, "error": error }))
        }
        other => ("engine_event", json!({ "detail": format!("{other:?}") })),
    }
}

/// Inserts `stringify!(field)` → `$s.field` for each field, under `$prefix.`.
macro_rules! counters {
    ($map:expr, $prefix:literal, $s:expr, [$($f:ident),* $(,)?]) => {
        $( $map.insert(concat!($prefix, ".", stringify!($f)).to_owned(), $s.$f); )*
    };
}

/// What a snapshot needs besides the engine's counters.
#[derive(Debug)]
pub struct SnapshotContext<'a> {
    /// The node's name.
    pub name: &'a str,
    /// The driver's reason for being chosen, if known.
    pub driver_reason: &'a str,
    /// When the node started (unix ms).
    pub started_ms: u64,
    /// When it started (monotonic), for the uptime.
    pub started: Instant,
    /// The groups joined: name and id.
    pub groups: &'a [(String, GroupId)],
    /// Which of those have been joined (had a `joined` event).
    pub joined: &'a [bool],
    /// The delivery check, keyed by group name.
    pub checker: &'a DeliveryChecker,
}

/// The stats snapshot of `engine` now.
pub fn snapshot(engine: &GroupEngine, stats: &EngineStats, cx: &SnapshotContext<'_>) -> Snapshot {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut shards = Vec::with_capacity(stats.shards.len());
    for s in &stats.shards {
        let mut c = BTreeMap::new();
        counters!(
            c,
            "driver",
            s.driver,
            [
                datagrams_sent,
                bytes_sent,
                zero_copy_sends,
                datagrams_received,
                bytes_received,
                send_errors,
                recv_errors,
                truncated,
                rx_pool_exhausted,
                syscalls,
            ]
        );
        counters!(
            c,
            "endpoint",
            s.endpoint,
            [
                datagrams_received,
                datagrams_invalid,
                invalid_truncated,
                invalid_magic,
                invalid_version,
                invalid_unknown_kind,
                invalid_field,
                invalid_protocol,
                unknown_connection,
                sessions_accepted,
                hellos_refused,
                replies_dropped,
                hellos_stale,
                payload_bytes_copied,
                tx_payload_bytes_copied,
                payload_bytes_gathered,
            ]
        );
        counters!(
            c,
            "link",
            s.link,
            [
                frames_sent,
                frames_received,
                payload_bytes_copied,
                sessions_opened,
                sessions_accepted,
                sessions_closed,
                offers_backpressured,
                max_queue_len,
                frames_dropped,
                frames_too_large,
                frames_to_self,
                queue_overflows,
                peers_evicted,
                peers_idle_closed,
                unreachable_reported,
                identity_mismatches,
                foreign_messages,
                session_messages_lost,
                connect_failures,
            ]
        );
        counters!(
            c,
            "group",
            s.group,
            [
                data_sent,
                payload_bytes_sent,
                duplicates_received,
                announcements_sent,
                ihave_sent,
                grafts_sent,
                prunes_sent,
                repair_requests_sent,
                repairs_sent,
                membership_sent,
                detection_sent,
                delivered,
                lost,
                invalid_frames,
                foreign_frames,
                failures_declared,
                suspicions_refuted,
            ]
        );
        for (k, v) in &c {
            let t = totals.entry(k.clone()).or_insert(0);
            *t = if k.ends_with("max_queue_len") {
                (*t).max(*v)
            } else {
                *t + *v
            };
        }
        shards.push(ShardSnapshot {
            index: u32::try_from(s.index).unwrap_or(u32::MAX),
            locator: s.locator.map(|l| l.to_string()).unwrap_or_default(),
            counters: c,
        });
    }
    totals.insert("invalid_frames".into(), stats.invalid());
    totals.insert("events_dropped".into(), stats.events_dropped);

    let mut groups = Vec::with_capacity(cx.groups.len());
    for (i, (name, id)) in cx.groups.iter().enumerate() {
        let shard = engine.shard_of(*id);
        let member = engine.member_id(shard);
        let counters = stats.groups.iter().find(|g| g.group == *id);
        let tree = stats.trees.iter().find(|t| t.group == *id);
        let duplicates = stats
            .shards
            .get(shard)
            .map_or(0, |s| s.group.duplicates_received);
        let mut g = GroupSnapshot {
            name: name.clone(),
            id: id.to_string(),
            member: to_hex(&member),
            joined: cx.joined.get(i).copied().unwrap_or(false),
            duplicates,
            sources: cx.checker.reports(name).cloned().collect(),
            ..GroupSnapshot::default()
        };
        if let Some(c) = counters {
            g.published = c.published;
            g.published_bytes = c.published_bytes;
            g.delivered = c.delivered;
            g.delivered_bytes = c.delivered_bytes;
            g.lost = c.lost;
            g.repairs = c.repairs;
            g.counters.insert("neighbours".into(), c.neighbours);
            g.counters.insert("backpressured".into(), c.backpressured);
            g.counters.insert("offers_dropped".into(), c.offers_dropped);
            g.counters.insert("slow_dropped".into(), c.slow_dropped);
        }
        if let Some(t) = tree {
            g.neighbors = t.neighbours.iter().map(to_hex).collect();
            g.tree = t
                .sources
                .iter()
                .map(|(source, eager)| TreeLinks {
                    source: to_hex(source),
                    eager: eager.iter().map(to_hex).collect(),
                })
                .collect();
        }
        groups.push(g);
    }

    let peers = stats
        .peers
        .iter()
        .map(|p| {
            let mut c = BTreeMap::new();
            c.insert("rtt_us".to_owned(), p.rtt_us);
            c.insert("queued_frames".to_owned(), p.queued_frames);
            counters!(
                c,
                "session",
                p.session,
                [
                    datagrams_sent,
                    bytes_sent,
                    datagrams_received,
                    bytes_received,
                    messages_offered,
                    messages_delivered,
                    messages_lost,
                    fragments_sent,
                    fragments_retransmitted,
                    fragments_duplicate,
                    fragments_over_window,
                    naks_sent,
                    naks_received,
                    gaps_sent,
                    fragments_evicted,
                    offers_backpressured,
                    heartbeats_sent,
                    path_challenges_sent,
                    path_validations_failed,
                    frames_invalid,
                ]
            );
            PeerSnapshot {
                id: to_hex(&p.peer),
                locator: p.locator.as_ref().map(locator),
                state: Some(
                    if p.established {
                        "established"
                    } else {
                        "connecting"
                    }
                    .into(),
                ),
                counters: c,
            }
        })
        .collect();

    let written_ms = crate::log::unix_ms();
    Snapshot {
        format: crate::stats::FORMAT,
        name: cx.name.to_owned(),
        node_id: to_hex(&engine.id()),
        pid: std::process::id(),
        driver: engine.driver().name().to_owned(),
        driver_reason: cx.driver_reason.to_owned(),
        locators: engine.locators().iter().map(ToString::to_string).collect(),
        started_ms: cx.started_ms,
        written_ms,
        uptime_ms: u64::try_from(cx.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        shards,
        groups,
        peers,
        totals,
    }
}

/// Whether no peer has frames queued (waiting for a session or its window): with the group
/// handle's `pending_bytes()` at 0, what a publisher waits for before it leaves.
pub fn drained(stats: &EngineStats) -> bool {
    stats.peers.iter().all(|p| p.queued_frames == 0)
}

/// The local address this host would send from to reach `contact` (no packet is sent): the
/// address a tool binds to when not told, so that the locator it advertises is reachable.
pub fn local_ip_towards(contact: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if contact.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect(contact).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

/// `contacts` without this node's own locators (a node listed in its own contacts, as when
/// every host of a testbed gets the same list).
pub fn other_contacts(
    contacts: &[SocketAddr],
    own: &[SocketAddr],
    advertise: Option<IpAddr>,
) -> Vec<SocketAddr> {
    contacts
        .iter()
        .filter(|c| {
            !own.iter()
                .any(|o| *o == **c || (advertise == Some(c.ip()) && o.port() == c.port()))
        })
        .copied()
        .collect()
}
