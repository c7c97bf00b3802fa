//! The identity file: a node's 32-byte [`NodeId`] as 64 hex digits.
//!
//! A node keeps its NodeId across restarts and address changes, so the id lives in a file of its
//! own. A missing file is created with a random id (from `/dev/urandom`) and mode 0600, so that
//! a fresh host needs no setup; a file that exists but does not hold an id is an error, never
//! silently replaced: replacing it would give the node a new name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use substrate::id::NodeId;
use thiserror::Error;

/// Why an identity file could not be read or created.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file exists but could not be read.
    #[error("identity file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file was missing and could not be created.
    #[error("creating identity file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file does not hold a node id.
    #[error("identity file {path} is malformed: {reason} (expected 64 hex digits)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No random bytes for a new id.
    #[error("reading /dev/urandom for a new node id: {0}")]
    Random(io::Error),
}

/// Whether [`load_or_create`] found the file or made it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Origin {
    /// The file existed.
    Loaded,
    /// The file was created with a new random id.
    Created,
}

/// The node id in `path`, creating the file (and its directory) with a random id if it is
/// missing.
///
/// # Errors
/// [`IdentityError`]: unreadable, malformed, or not creatable.
pub fn load_or_create(path: &Path) -> Result<(NodeId, Origin), IdentityError> {
    match load(path) {
        Ok(id) => return Ok((id, Origin::Loaded)),
        Err(IdentityError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = random_id()?;
    let create = |source| IdentityError::Create {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(create)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return load(path).map(|id| (id, Origin::Loaded));
        }
        Err(e) => return Err(create(e)),
    };
    file.write_all(format!("{}\n", to_hex(&id)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(create)?;
    Ok((id, Origin::Created))
}

/// The node id in `path`, which must exist.
///
/// # Errors
/// [`IdentityError::Read`] or [`IdentityError::Malformed`].
pub fn load(path: &Path) -> Result<NodeId, IdentityError> {
    let read = |source| IdentityError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    File::open(path)
        .map_err(read)?
        // An id is 65 bytes; reading a little more shows a wrong file without reading a huge one.
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => IdentityError::Malformed {
                path: path.to_owned(),
                reason: "not text".into(),
            },
            _ => read(e),
        })?;
    parse_hex(&text).map_err(|reason| IdentityError::Malformed {
        path: path.to_owned(),
        reason,
    })
}

/// Parses 64 hex digits (surrounding whitespace allowed) into a node id.
///
/// # Errors
/// What is wrong, in words.
pub fn parse_hex(text: &str) -> Result<NodeId, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the file is empty".into());
    }
    if let Some((i, c)) = t.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("{c:?} at offset {i} is not a hex digit"));
    }
    if t.len() != 64 {
        return Err(format!("{} hex digits", t.len()));
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        let pair = t.get(2 * i..2 * i + 2).unwrap_or("00");
        *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
    }
    Ok(NodeId(id))
}

/// A node id as 64 lowercase hex digits (the form used in identity and stats files).
pub fn to_hex(id: &NodeId) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random node id from the kernel.
///
/// # Errors
/// [`IdentityError::Random`] if `/dev/urandom` cannot be read.
pub fn random_id() -> Result<NodeId, IdentityError> {
    let mut id = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(IdentityError::Random)?;
    Ok(NodeId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let id = NodeId([0xab; 32]);
        assert_eq!(parse_hex(&format!(" {}\n", to_hex(&id))), Ok(id));
        assert!(parse_hex("").is_err());
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex(&"g".repeat(64)).is_err());
        assert!(parse_hex(&"a".repeat(66)).is_err());
    }
}
