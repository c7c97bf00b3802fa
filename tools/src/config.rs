//! The daemon's configuration file (TOML), parsed once into a [`NodeConfig`] ("parse, don't
//! validate"): after [`load`] or [`parse`] succeeds, every value is in range and every path is
//! resolved.
//!
//! Every key is documented in `docs/daemon.md`; `tools/examples/node.toml` is a complete
//! example. Unknown keys and bad values are [`ConfigError`]s that name the key (and its line),
//! so that a typo is never silently ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use group_comm::engine::LOOPBACK_DATAGRAM_BYTES;
use group_comm::{Dissemination, GroupConfig};
use serde::Deserialize;
use substrate::proto::MIN_DATAGRAM_BYTES;
use substrate::runtime::driver::DriverKind;
use substrate::runtime::idle::IdleStrategy;
use thiserror::Error;

/// Default period of the stats snapshot file.
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 250;
/// Default period of the per-source delivery progress lines.
pub const DEFAULT_PROGRESS_INTERVAL_MS: u64 = 1000;
/// Default expected group size (sizes the membership views).
pub const DEFAULT_EXPECTED_MEMBERS: usize = 64;
/// Default size of a published message.
pub const DEFAULT_MESSAGE_BYTES: usize = 64;
/// Most shards a node may run.
pub const MAX_SHARDS: usize = 64;
/// Largest message the publisher settings accept (the engine may refuse less).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A configuration file that cannot be used. Each variant's message is one line and names the
/// file, the line when known, and the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}:{line}: TOML syntax: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line of the error (1-based).
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A key the daemon does not know (a typo, or a key in the wrong table).
    #[error("{path}{}: unknown key `{key}` ({message})", at(*line))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// Line of the key (1-based), when known.
        line: Option<usize>,
        /// The key's full path, e.g. `group[1].publish.rate`.
        key: String,
        /// What the parser said (with the keys it expected).
        message: String,
    },
    /// A required key is absent.
    #[error("{path}: missing key `{key}`")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key's full path.
        key: String,
    },
    /// A key's value has the wrong type or is out of range.
    #[error("{path}{}: `{key}`: {message}", at(*line))]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Line of the value (1-based), when known.
        line: Option<usize>,
        /// The key's full path.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Which I/O driver the node's shards use.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// `PHYLA_DRIVER` if set, else io_uring when the kernel has every feature, else poll.
    #[default]
    Auto,
    /// io_uring; fails if the kernel lacks it.
    Uring,
    /// epoll (mio) with `sendmmsg`/`recvmmsg`.
    Poll,
}

impl DriverChoice {
    /// The driver to force, if any.
    pub fn forced(self) -> Option<DriverKind> {
        match self {
            Self::Auto => None,
            Self::Uring => Some(DriverKind::Uring),
            Self::Poll => Some(DriverKind::Poll),
        }
    }
}

/// What a shard does when it has no work.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum IdleChoice {
    /// Busy-spin: lowest latency, one core at 100 % per shard.
    Spin,
    /// Yield the core between polls, never sleep.
    Yield,
    /// Wait in the kernel as soon as there is no work: lowest CPU (the default, since a daemon
    /// shares its host).
    #[default]
    Park,
    /// Spin, then yield, then wait in the kernel.
    Backoff,
}

impl IdleChoice {
    /// The engine's idle strategy.
    pub fn strategy(self) -> IdleStrategy {
        match self {
            Self::Spin => IdleStrategy::BusySpin,
            Self::Yield => IdleStrategy::Yield,
            Self::Park => IdleStrategy::park(),
            Self::Backoff => IdleStrategy::default(),
        }
    }

    /// The configuration word.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::Yield => "yield",
            Self::Park => "park",
            Self::Backoff => "backoff",
        }
    }
}

/// Which thread runs the shards.
#[derive(Clone, Copy, Debug, Default, Deserialize, Eq, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ThreadingChoice {
    /// The daemon's main thread runs the shards between its own work (no extra thread: best on
    /// small machines and when many nodes share a host, as on the testbed).
    #[default]
    Invoker,
    /// Each shard on its own thread; the main thread only logs and writes stats.
    Dedicated,
}

/// The validated configuration of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's name: names its run files and log lines.
    pub name: String,
    /// The identity file (resolved against the configuration file's directory).
    pub identity: PathBuf,
    /// Where shard 0 binds; shard `i` binds port + `i`.
    pub bind: SocketAddr,
    /// The address peers are told to reach this node at, when `bind` is a wildcard address.
    pub advertise: Option<IpAddr>,
    /// Number of shards.
    pub shards: usize,
    /// The I/O driver.
    pub driver: DriverChoice,
    /// The idle strategy.
    pub idle: IdleChoice,
    /// Which thread runs the shards.
    pub threading: ThreadingChoice,
    /// Pin shard threads to cores (dedicated threading only).
    pub pin: bool,
    /// Where the stats and pid files go; `None`: the default (see [`crate::rundir`]).
    pub run_dir: Option<PathBuf>,
    /// How often the stats file is rewritten.
    pub stats_interval: Duration,
    /// How often a progress line per source is logged while messages arrive.
    pub progress_interval: Duration,
    /// Seed of the engine's random choices; `None`: drawn at start.
    pub seed: Option<u64>,
    /// Per-group publish budget in bytes; `None`: the engine's default.
    pub publication_bytes: Option<u64>,
    /// Largest datagram of the node's sessions; `None`: the engine's choice by the bind address
    /// (the loopback limit on loopback, else 1,472).
    pub datagram_bytes: Option<usize>,
    /// The group protocols' parameters: the engine runs every group of a node with one
    /// configuration, sized for the largest `expected_members` of the groups and with their
    /// `overrides` (which must agree) applied, then validated.
    pub group_config: GroupConfig,
    /// The groups to join, in file order.
    pub groups: Vec<GroupSettings>,
}

/// One `[[group]]` table.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// The group's name (its id is derived from it).
    pub name: String,
    /// Locators of members to join through; empty for the first member.
    pub contacts: Vec<SocketAddr>,
    /// The expected number of members (sizes the views; see [`NodeConfig::group_config`]).
    pub expected_members: usize,
    /// A load to publish, if any.
    pub publish: Option<PublishSettings>,
}

/// What the daemon publishes to a group (for tests and the testbed).
#[derive(Clone, Debug, PartialEq)]
pub struct PublishSettings {
    /// How many messages.
    pub messages: u64,
    /// Bytes per message (at least [`crate::check::HEADER_BYTES`], so receivers can check them).
    pub message_bytes: usize,
    /// Messages per second; `None`: as fast as the engine's backpressure allows.
    pub messages_per_sec: Option<f64>,
    /// Wait this long after the group is joined before the first message.
    pub start_delay: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    identity: Option<PathBuf>,
    bind: SocketAddr,
    advertise: Option<IpAddr>,
    #[serde(default = "one")]
    shards: usize,
    #[serde(default)]
    driver: DriverChoice,
    #[serde(default)]
    idle: IdleChoice,
    #[serde(default)]
    threading: ThreadingChoice,
    #[serde(default)]
    pin: bool,
    run_dir: Option<PathBuf>,
    #[serde(default = "default_stats_interval")]
    stats_interval_ms: u64,
    #[serde(default = "default_progress_interval")]
    progress_interval_ms: u64,
    seed: Option<u64>,
    publication_bytes: Option<u64>,
    datagram_bytes: Option<usize>,
    #[serde(default, rename = "group")]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    contacts: Vec<SocketAddr>,
    #[serde(default = "default_expected_members")]
    expected_members: usize,
    overrides: Option<RawOverrides>,
    publish: Option<RawPublish>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawOverrides {
    active_size: Option<usize>,
    passive_size: Option<usize>,
    latency_slots: Option<usize>,
    heartbeat_interval_ms: Option<u64>,
    suspicion_timeout_ms: Option<u64>,
    phi_suspect: Option<f64>,
    phi_fail: Option<f64>,
    lazy_interval_ms: Option<u64>,
    graft_timeout_ms: Option<u64>,
    repair_timeout_ms: Option<u64>,
    loss_timeout_ms: Option<u64>,
    anti_entropy_interval_ms: Option<u64>,
    cache_capacity: Option<usize>,
    reorder_capacity: Option<usize>,
    max_sources: Option<usize>,
    flood_fanout: Option<usize>,
    flow_window_messages: Option<u64>,
    flow_window_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    messages: u64,
    #[serde(default = "default_message_bytes")]
    message_bytes: usize,
    messages_per_sec: Option<f64>,
    #[serde(default = "default_start_delay")]
    start_delay_ms: u64,
}

fn one() -> usize {
    1
}
fn default_stats_interval() -> u64 {
    DEFAULT_STATS_INTERVAL_MS
}
fn default_progress_interval() -> u64 {
    DEFAULT_PROGRESS_INTERVAL_MS
}
fn default_expected_members() -> usize {
    DEFAULT_EXPECTED_MEMBERS
}
fn default_message_bytes() -> usize {
    DEFAULT_MESSAGE_BYTES
}
fn default_start_delay() -> u64 {
    1000
}

/// Reads and validates the configuration file at `path`. Relative paths inside it (`identity`,
/// `run_dir`) are resolved against the file's directory.
///
/// # Errors
/// [`ConfigError`] naming the file, the key and (when known) the line.
pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Parses and validates configuration `text`; `path` names it in errors and relative paths
/// resolve against `base`.
///
/// # Errors
/// [`ConfigError`] naming the key and (when known) the line.
pub fn parse(text: &str, path: &Path, base: &Path) -> Result<NodeConfig, ConfigError> {
    // Syntax first, so that a syntax error is never reported as a bad value.
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        return Err(ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map_or(1, |s| locate(text, s.start).line),
            message: e.message().trim().replace('\n', "; "),
        });
    }
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&e, text, path))?;
    let bad = |key: &str, message: String| ConfigError::BadValue {
        path: path.to_owned(),
        line: None,
        key: key.to_owned(),
        message,
    };
    check_name(&raw.name).map_err(|m| bad("name", m))?;
    if raw.shards == 0 || raw.shards > MAX_SHARDS {
        return Err(bad(
            "shards",
            format!("{} (expected 1..={MAX_SHARDS})", raw.shards),
        ));
    }
    if raw.bind.port() != 0 && usize::from(raw.bind.port()) + raw.shards - 1 > 65535 {
        return Err(bad(
            "shards",
            format!(
                "{} shards from port {} pass port 65535",
                raw.shards,
                raw.bind.port()
            ),
        ));
    }
    if raw.stats_interval_ms == 0 {
        return Err(bad("stats_interval_ms", "0 (expected at least 1)".into()));
    }
    if raw.progress_interval_ms == 0 {
        return Err(bad(
            "progress_interval_ms",
            "0 (expected at least 1)".into(),
        ));
    }
    if raw.publication_bytes == Some(0) {
        return Err(bad("publication_bytes", "0 (expected at least 1)".into()));
    }
    if let Some(n) = raw
        .datagram_bytes
        .filter(|n| !(MIN_DATAGRAM_BYTES..=LOOPBACK_DATAGRAM_BYTES).contains(n))
    {
        return Err(bad(
            "datagram_bytes",
            format!("{n} (expected {MIN_DATAGRAM_BYTES}..={LOOPBACK_DATAGRAM_BYTES})"),
        ));
    }
    if raw.advertise.is_some_and(|ip| ip.is_unspecified()) {
        return Err(bad(
            "advertise",
            "a wildcard address cannot be reached".into(),
        ));
    }
    let mut groups: Vec<GroupSettings> = Vec::with_capacity(raw.groups.len());
    // The overrides every group agrees on, and which group gave them first.
    let mut overrides: Option<(usize, RawOverrides)> = None;
    for (i, g) in raw.groups.into_iter().enumerate() {
        let key = |k: &str| format!("group[{i}].{k}");
        if g.name.is_empty() {
            return Err(bad(&key("name"), "empty".into()));
        }
        if groups.iter().any(|o| o.name == g.name) {
            return Err(bad(&key("name"), format!("{:?} is joined twice", g.name)));
        }
        if g.expected_members == 0 {
            return Err(bad(
                &key("expected_members"),
                "0 (expected at least 1)".into(),
            ));
        }
        if let Some(c) = g
            .contacts
            .iter()
            .find(|c| c.port() == 0 || c.ip().is_unspecified())
        {
            return Err(bad(
                &key("contacts"),
                format!("{c} is not a reachable locator"),
            ));
        }
        match (&overrides, g.overrides) {
            (_, None) => {}
            (None, Some(o)) => overrides = Some((i, o)),
            (Some((first, o1)), Some(o)) if *o1 != o => {
                return Err(bad(
                    &key("overrides"),
                    format!(
                        "differ from group[{first}].overrides: the engine runs all of a node's \
                         groups with one configuration"
                    ),
                ));
            }
            (Some(_), Some(_)) => {}
        }
        let publish = match g.publish {
            None => None,
            Some(p) => Some(
                check_publish(&p).map_err(|(k, m)| bad(&format!("group[{i}].publish.{k}"), m))?,
            ),
        };
        groups.push(GroupSettings {
            name: g.name,
            contacts: g.contacts,
            expected_members: g.expected_members,
            publish,
        });
    }
    let expected = groups
        .iter()
        .map(|g| g.expected_members)
        .max()
        .unwrap_or(DEFAULT_EXPECTED_MEMBERS);
    let (first, o) = overrides.unwrap_or_default();
    let group_config = apply_overrides(expected, &o).map_err(|(k, m)| {
        let key = if k.is_empty() {
            format!("group[{first}].overrides")
        } else {
            format!("group[{first}].overrides.{k}")
        };
        bad(&key, m)
    })?;
    let identity = match raw.identity {
        Some(p) if p.as_os_str().is_empty() => return Err(bad("identity", "empty path".into())),
        Some(p) => base.join(p),
        None => base.join(format!("{}.id", raw.name)),
    };
    Ok(NodeConfig {
        name: raw.name,
        identity,
        bind: raw.bind,
        advertise: raw.advertise,
        shards: raw.shards,
        driver: raw.driver,
        idle: raw.idle,
        threading: raw.threading,
        pin: raw.pin,
        run_dir: raw.run_dir.map(|d| base.join(d)),
        stats_interval: Duration::from_millis(raw.stats_interval_ms),
        progress_interval: Duration::from_millis(raw.progress_interval_ms),
        seed: raw.seed,
        publication_bytes: raw.publication_bytes,
        datagram_bytes: raw.datagram_bytes,
        group_config,
        groups,
    })
}

/// A node name must make a plain file name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot.
///
/// # Errors
/// Why the name is refused.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?}: expected 1 to 64 characters"));
    }
    if name.starts_with('.') {
        return Err(format!("{name:?} starts with a dot"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{name:?} contains {c:?} (allowed: A-Z a-z 0-9 . _ -)"
        )),
        None => Ok(()),
    }
}

fn apply_overrides(
    expected_members: usize,
    o: &RawOverrides,
) -> Result<GroupConfig, (&'static str, String)> {
    let mut c = group_comm::engine::GroupEngine::group_config_for(expected_members);
    let ms = |v: u64, key: &'static str| {
        if v == 0 {
            Err((key, "0 ms (expected at least 1)".to_owned()))
        } else {
            Ok(Duration::from_millis(v))
        }
    };
    if let Some(v) = o.active_size {
        c.active_size = v;
        // Keep the derived ratios unless they are overridden too.
        c.passive_size = c.passive_size.max(v);
        c.latency_slots = c.latency_slots.min(v.saturating_sub(1));
    }
    if let Some(v) = o.passive_size {
        c.passive_size = v;
    }
    if let Some(v) = o.latency_slots {
        c.latency_slots = v;
    }
    if let Some(v) = o.heartbeat_interval_ms {
        c.heartbeat_interval = ms(v, "heartbeat_interval_ms")?;
    }
    if let Some(v) = o.suspicion_timeout_ms {
        c.suspicion_timeout = ms(v, "suspicion_timeout_ms")?;
    }
    if let Some(v) = o.phi_suspect {
        c.phi_suspect = v;
    }
    if let Some(v) = o.phi_fail {
        c.phi_fail = v;
    }
    if let Some(v) = o.lazy_interval_ms {
        c.lazy_interval = ms(v, "lazy_interval_ms")?;
    }
    if let Some(v) = o.graft_timeout_ms {
        c.graft_timeout = ms(v, "graft_timeout_ms")?;
    }
    if let Some(v) = o.repair_timeout_ms {
        c.repair_timeout = ms(v, "repair_timeout_ms")?;
    }
    if let Some(v) = o.loss_timeout_ms {
        c.loss_timeout = ms(v, "loss_timeout_ms")?;
    }
    if let Some(v) = o.anti_entropy_interval_ms {
        c.anti_entropy_interval = ms(v, "anti_entropy_interval_ms")?;
    }
    if let Some(v) = o.cache_capacity {
        c.cache_capacity = v;
        // The flow window follows a smaller cache (a quarter of it), unless it is set too.
        if let Some(w) = &mut c.flow_window {
            w.messages = w.messages.min((v as u64 / 4).max(1));
        }
    }
    match (o.flow_window_messages, &mut c.flow_window) {
        // 0: no flow control (sources publish freely; a slow member may then lose messages).
        (Some(0), _) => c.flow_window = None,
        (Some(v), Some(w)) => w.messages = v,
        (Some(v), None) => {
            c.flow_window = Some(group_comm::FlowWindow {
                messages: v,
                bytes: u64::MAX,
            });
        }
        (None, _) => {}
    }
    if let (Some(v), Some(w)) = (o.flow_window_bytes, &mut c.flow_window) {
        w.bytes = v;
    }
    if let Some(v) = o.reorder_capacity {
        c.reorder_capacity = v;
    }
    if let Some(v) = o.max_sources {
        c.max_sources = v;
    }
    if let Some(v) = o.flood_fanout {
        c.dissemination = Dissemination::Flood { fanout: v };
    }
    c.validate()
        .map_err(|e| ("", format!("out of range or inconsistent: {}", e.field)))?;
    Ok(c)
}

fn check_publish(p: &RawPublish) -> Result<PublishSettings, (&'static str, String)> {
    if p.messages == 0 {
        return Err(("messages", "0 (expected at least 1)".into()));
    }
    let min = crate::check::HEADER_BYTES;
    if p.message_bytes < min || p.message_bytes > MAX_MESSAGE_BYTES {
        return Err((
            "message_bytes",
            format!("{} (expected {min}..={MAX_MESSAGE_BYTES})", p.message_bytes),
        ));
    }
    let rate = match p.messages_per_sec {
        None => None,
        Some(r) if r.is_finite() && r > 0.0 => Some(r),
        Some(r) => return Err(("messages_per_sec", format!("{r} (expected > 0)"))),
    };
    Ok(PublishSettings {
        messages: p.messages,
        message_bytes: p.message_bytes,
        messages_per_sec: rate,
        start_delay: Duration::from_millis(p.start_delay_ms),
    })
}

/// Turns a TOML error into a one-line [`ConfigError`] that names the key and its line.
fn toml_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let message = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return match backticked(&message, "missing field") {
            Some(key) => ConfigError::MissingKey {
                path: path.to_owned(),
                key,
            },
            None => ConfigError::BadValue {
                path: path.to_owned(),
                line: None,
                key: "(file)".into(),
                message,
            },
        };
    };
    let loc = locate(text, span.start);
    if let Some(unknown) = backticked(&message, "unknown field") {
        return ConfigError::UnknownKey {
            path: path.to_owned(),
            line: Some(loc.line),
            key: loc.path(Some(&unknown)),
            message: message
                .split_once(", ")
                .map_or_else(String::new, |(_, rest)| rest.to_owned()),
        };
    }
    if let Some(missing) = backticked(&message, "missing field") {
        return ConfigError::MissingKey {
            path: path.to_owned(),
            key: loc.path(Some(&missing)),
        };
    }
    let key = loc.path(None);
    ConfigError::BadValue {
        path: path.to_owned(),
        line: Some(loc.line),
        key: if key.is_empty() { "(file)".into() } else { key },
        message,
    }
}

/// The word in backticks after `prefix` at the start of `message`.
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.trim_start();
    let rest = rest.strip_prefix('`')?;
    rest.split_once('`').map(|(k, _)| k.to_owned())
}

/// For a byte offset into a TOML text: its 1-based line, the table it is in (`group[1].publish`,
/// counting `[[array]]` tables from 0) and the key whose value (or name) is at the offset,
/// including enclosing inline tables. A best-effort reading of the text, good for messages.
fn locate(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for l in before.lines().take(line_no.saturating_sub(1)) {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 0));
                    0
                }
            };
            table = format!("{name}[{n}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            // `[group.publish]` inside the latest `[[group]]`.
            let name = name.trim();
            table = match name.split_once('.') {
                Some((head, tail)) => match counts.iter().find(|(k, _)| k == head) {
                    Some((_, n)) => format!("{head}[{n}].{tail}"),
                    None => name.to_owned(),
                },
                None => name.to_owned(),
            };
        }
    }
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let prefix = &text[line_start..offset];
    let whole = &text[line_start..line_end];
    // Keys of inline tables still open before the offset, and the last key before it.
    let mut stack: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut token = String::new();
    for c in prefix.chars() {
        match c {
            '=' => {
                last = std::mem::take(&mut token)
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            }
            '{' => {
                stack.push(std::mem::take(&mut last));
                token.clear();
            }
            '}' => {
                stack.pop();
                token.clear();
            }
            ',' => token.clear(),
            _ => token.push(c),
        }
    }
    let key = if !prefix.contains('=') {
        // The offset is on the key itself, at the start of a line (an unknown key).
        whole
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned()
    } else {
        last
    };
    stack.retain(|p| !p.is_empty());
    Location {
        line: line_no,
        table,
        inline: stack,
        key,
    }
}

/// Where in a TOML text an error is: see [`locate`].
#[derive(Debug, PartialEq)]
struct Location {
    /// 1-based line.
    line: usize,
    /// The table, e.g. `group[1].publish`; empty at the top level.
    table: String,
    /// Inline tables open at the offset, outermost first.
    inline: Vec<String>,
    /// The key whose value (or name) is at the offset; empty if unknown.
    key: String,
}

impl Location {
    /// The full path of `key` (or of the located key if `key` is `None`).
    fn path(&self, key: Option<&str>) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if !self.table.is_empty() {
            parts.push(&self.table);
        }
        parts.extend(self.inline.iter().map(String::as_str));
        let key = key.unwrap_or(&self.key);
        if !key.is_empty() && parts.last() != Some(&key) {
            parts.push(key);
        }
        parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_names_keys_in_tables_and_inline_tables() {
        let text = "name = \"a\"\n[[group]]\nname = \"g\"\n[[group]]\nname = 3\n\
                    overrides = { active_size = \"x\" }\n";
        let at = |s: &str| text.find(s).unwrap_or(0);
        let path = |s: &str| {
            let l = locate(text, at(s));
            (l.line, l.path(None))
        };
        assert_eq!(path("\"a\""), (1, "name".into()));
        assert_eq!(path("3"), (5, "group[1].name".into()));
        assert_eq!(path("\"x\""), (6, "group[1].overrides.active_size".into()));
    }
}
