//! The run directory: where a node's stats snapshot and pid file live, so that other processes
//! (`phyla-stat`, `phyla tree`, tests) find them.
//!
//! Without a configured `run_dir`, a node uses the first of `/run/phyla`, `$XDG_RUNTIME_DIR/phyla`
//! and `/tmp/phyla` that it can create and write to; readers look in the first of these that
//! holds a stats file. Nodes that should be read together (one host, one testbed) use one
//! directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::stats;

/// The default run directories, in order of preference.
pub fn candidates() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/run/phyla")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        dirs.push(PathBuf::from(x).join("phyla"));
    }
    dirs.push(PathBuf::from("/tmp/phyla"));
    dirs
}

/// Why a run directory or run file could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunDirError {
    /// The configured directory cannot be created or written to.
    #[error("run directory {}: {source}", path.display())]
    Unusable {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// None of the default directories is usable.
    #[error("no usable run directory among {tried} (set run_dir)")]
    NoneUsable {
        /// The directories tried.
        tried: String,
    },
    /// Another live process runs a node of the same name in this directory.
    #[error("node {name} is already running in {} (pid {pid})", dir.display())]
    AlreadyRunning {
        /// The node's name.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// The other process.
        pid: u32,
    },
    /// The pid file could not be written.
    #[error("writing {}: {source}", path.display())]
    PidFile {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The run directory a node writes to: `configured`, or the first usable default.
///
/// # Errors
/// [`RunDirError`] if the directory cannot be created or written to.
pub fn for_writing(configured: Option<&Path>) -> Result<PathBuf, RunDirError> {
    if let Some(dir) = configured {
        usable(dir).map_err(|source| RunDirError::Unusable {
            path: dir.to_owned(),
            source,
        })?;
        return Ok(dir.to_owned());
    }
    let all = candidates();
    for dir in &all {
        if usable(dir).is_ok() {
            return Ok(dir.clone());
        }
    }
    Err(RunDirError::NoneUsable {
        tried: all
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The run directory a reader looks in: `given`, else the first default that holds a stats file,
/// else the first that exists, else the last default.
pub fn for_reading(given: Option<PathBuf>) -> PathBuf {
    if let Some(d) = given {
        return d;
    }
    let all = candidates();
    if let Some(d) = all
        .iter()
        .find(|d| stats::list(d).is_ok_and(|names| !names.is_empty()))
    {
        return d.clone();
    }
    if let Some(d) = all.iter().find(|d| d.is_dir()) {
        return d.clone();
    }
    all.last()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/tmp/phyla"))
}

fn usable(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

/// A node's files in its run directory: the pid file (written at start) and the stats file.
/// [`RunFiles::remove`] deletes both on a clean exit.
#[derive(Debug)]
pub struct RunFiles {
    /// `<dir>/<name>.pid`.
    pub pid: PathBuf,
    /// `<dir>/<name>.stats.json`.
    pub stats: PathBuf,
}

impl RunFiles {
    /// Claims the name `name` in `dir`: refuses if a live process holds it, then writes the pid
    /// file.
    ///
    /// # Errors
    /// [`RunDirError::AlreadyRunning`] or [`RunDirError::PidFile`].
    pub fn claim(dir: &Path, name: &str) -> Result<Self, RunDirError> {
        let pid = dir.join(format!("{name}.pid"));
        if let Ok(text) = fs::read_to_string(&pid) {
            if let Ok(other) = text.trim().parse::<u32>() {
                if other != std::process::id() && stats::process_alive(other) {
                    return Err(RunDirError::AlreadyRunning {
                        name: name.to_owned(),
                        dir: dir.to_owned(),
                        pid: other,
                    });
                }
            }
        }
        stats::write_atomically(&pid, std::process::id().to_string().as_bytes()).map_err(
            |source| RunDirError::PidFile {
                path: pid.clone(),
                source,
            },
        )?;
        Ok(Self {
            pid,
            stats: stats::path_of(dir, name),
        })
    }

    /// Removes both files (a missing file is not an error).
    ///
    /// # Errors
    /// The first removal that failed for another reason.
    pub fn remove(&self) -> io::Result<()> {
        for f in [&self.stats, &self.pid] {
            match fs::remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
