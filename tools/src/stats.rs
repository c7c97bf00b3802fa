//! The stats snapshot file, `<run_dir>/<name>.stats.json`: how a running node shows its
//! counters to other processes (`phyla-stat`, `phyla tree`, tests).
//!
//! The daemon rewrites the file every `stats_interval_ms` by writing a temporary file in the
//! same directory and renaming it over the old one, so a reader sees either the previous
//! snapshot or the next, never half of one. The format is JSON, described field by field in
//! `docs/daemon.md`; `format` is raised whenever a field changes meaning, and readers ignore
//! fields they do not know, so that a newer daemon can add counters without breaking older
//! readers.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::check::SourceReport;

/// The version of the snapshot layout written by this build.
pub const FORMAT: u32 = 1;
/// The stats file name suffix.
pub const SUFFIX: &str = ".stats.json";

/// One node's counters at one moment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Snapshot {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The node's configured name.
    pub name: String,
    /// The node's id, 64 hex digits.
    pub node_id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The I/O driver the shards use (`uring` or `poll`).
    pub driver: String,
    /// Why that driver was chosen (probe result, configuration, `PHYLA_DRIVER`).
    #[serde(default)]
    pub driver_reason: String,
    /// Where the node can be reached: one locator per shard.
    pub locators: Vec<String>,
    /// When the node started, in ms since the Unix epoch.
    pub started_ms: u64,
    /// When this snapshot was taken, in ms since the Unix epoch.
    pub written_ms: u64,
    /// `written_ms - started_ms`, from the monotonic clock.
    pub uptime_ms: u64,
    /// Per shard: its driver and session-endpoint counters.
    pub shards: Vec<ShardSnapshot>,
    /// Per group: the group's counters, the delivery check per source and the tree links.
    pub groups: Vec<GroupSnapshot>,
    /// Per peer: frames and bytes each way, retransmits, the session's state.
    pub peers: Vec<PeerSnapshot>,
    /// Node-wide totals (the group protocols' and the links' counters, invalid frames).
    pub totals: BTreeMap<String, u64>,
}

/// One shard's counters.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct ShardSnapshot {
    /// The shard's index.
    pub index: u32,
    /// The shard's locator.
    #[serde(default)]
    pub locator: String,
    /// Counters by name (`datagrams_received`, `bytes_sent`, `frames_invalid`, ...).
    pub counters: BTreeMap<String, u64>,
}

/// One group's counters on this node.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct GroupSnapshot {
    /// The group's name.
    pub name: String,
    /// The group's id (16 hex digits).
    pub id: String,
    /// This node's member id in the group (64 hex digits): the id its messages carry as their
    /// source and that other members' tree links name. With one shard it is the node id.
    #[serde(default)]
    pub member: String,
    /// Whether this node has joined the overlay (has had an active neighbour).
    #[serde(default)]
    pub joined: bool,
    /// Messages this node published.
    pub published: u64,
    /// Payload bytes this node published.
    pub published_bytes: u64,
    /// Messages delivered to this node.
    pub delivered: u64,
    /// Payload bytes delivered.
    pub delivered_bytes: u64,
    /// Messages reported lost.
    pub lost: u64,
    /// Tree repairs (`tree_repaired` events).
    pub repairs: u64,
    /// Duplicate copies received by the shard hosting the group (the engine counts them per
    /// shard, so this covers every group on that shard).
    pub duplicates: u64,
    /// Current active neighbours (member ids, 64 hex digits).
    pub neighbors: Vec<String>,
    /// Further counters of the engine, by name.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// The daemon's delivery check, per source.
    #[serde(default)]
    pub sources: Vec<SourceReport>,
    /// This node's tree links, per source.
    #[serde(default)]
    pub tree: Vec<TreeLinks>,
}

/// This node's links on one source's tree: the peers it pushes that source's messages to
/// eagerly (Plumtree's eager set). Links are symmetric once the tree settles; the whole tree is
/// the union of every member's links (see [`crate::dot`]).
#[derive(Clone, Debug, Default, Deserialize, Eq, PartialEq, Serialize)]
pub struct TreeLinks {
    /// The source (64 hex digits; a 16-digit short id is accepted too).
    pub source: String,
    /// The eager peers (as `source`).
    pub eager: Vec<String>,
}

/// One peer's counters.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct PeerSnapshot {
    /// The peer's id (64 hex digits).
    pub id: String,
    /// Where the peer was last heard from, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// The session's state, if the engine reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Counters by name (`frames_sent`, `bytes_received`, `retransmits`, ...).
    pub counters: BTreeMap<String, u64>,
}

/// Why a snapshot could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// No such file: the node is not running, or writes elsewhere.
    #[error("{}: no stats file (is the node running with this run directory?)", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a snapshot.
    #[error("{}: not a stats snapshot: {message}", path.display())]
    Garbled {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        message: String,
    },
    /// The snapshot's layout is newer than this reader knows.
    #[error("{}: snapshot format {found}, this reader knows up to {FORMAT}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The file's format.
        found: u32,
    },
    /// The run directory could not be listed.
    #[error("listing {}: {source}", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The snapshot could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The stats file of node `name` in `run_dir`.
pub fn path_of(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}{SUFFIX}"))
}

/// Writes `snapshot` to `path` atomically: to a temporary file beside it, then renamed over it.
///
/// # Errors
/// [`SnapshotError::Write`].
pub fn write(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(|e| SnapshotError::Write {
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    write_atomically(path, &bytes).map_err(|source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file (`.<file name>.tmp`) and a rename.
///
/// # Errors
/// What the system said.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.write_all(b"\n")?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the snapshot at `path`.
///
/// # Errors
/// [`SnapshotError`]: missing, unreadable, garbled or of a newer format.
pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SnapshotError::Missing {
            path: path.to_owned(),
        },
        _ => SnapshotError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    parse(&bytes, path)
}

/// Parses snapshot `bytes` (`path` names them in errors).
///
/// # Errors
/// [`SnapshotError::Garbled`] or [`SnapshotError::Format`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<Snapshot, SnapshotError> {
    let garbled = |message: String| SnapshotError::Garbled {
        path: path.to_owned(),
        message,
    };
    // The format first, so that a newer layout is reported as such rather than as garbage.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| garbled(e.to_string()))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| garbled("no `format` field".into()))?;
    if format > u64::from(FORMAT) {
        return Err(SnapshotError::Format {
            path: path.to_owned(),
            found: u32::try_from(format).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_value(value).map_err(|e| garbled(e.to_string()))
}

/// The names of the nodes with a stats file in `run_dir`, sorted.
///
/// # Errors
/// [`SnapshotError::List`] if the directory cannot be read.
pub fn list(run_dir: &Path) -> Result<Vec<String>, SnapshotError> {
    let entries = fs::read_dir(run_dir).map_err(|source| SnapshotError::List {
        path: run_dir.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SnapshotError::List {
            path: run_dir.to_owned(),
            source,
        })?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if file.starts_with('.') {
            continue;
        }
        if let Some(name) = file.strip_suffix(SUFFIX) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A node's name and its snapshot, or why it could not be read.
pub type NodeSnapshot = (String, Result<Snapshot, SnapshotError>);

/// The snapshot of every node in `run_dir` (or of the `names` given), each read or failed on
/// its own, in name order.
///
/// # Errors
/// [`SnapshotError::List`] if `names` is empty and the directory cannot be listed.
pub fn read_all(run_dir: &Path, names: &[String]) -> Result<Vec<NodeSnapshot>, SnapshotError> {
    let names = if names.is_empty() {
        list(run_dir)?
    } else {
        names.to_vec()
    };
    Ok(names
        .into_iter()
        .map(|n| {
            let s = read(&path_of(run_dir, &n));
            (n, s)
        })
        .collect())
}

/// Whether process `pid` exists (a snapshot whose daemon is gone is stale).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The short form of an id (its first 16 hex digits), as log lines and tables show it.
pub fn short_id(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
