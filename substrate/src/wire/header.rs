//! The version-invariant datagram header.

use super::error::{DecodeError, EncodeError};
use super::{HEADER_LEN, MAGIC, SUPPORTED_VERSIONS};
use crate::id::ConnectionId;

/// `magic [2] | version u8 | flags u8 | destination connection id u64 (BE)`: 12 bytes. Its layout
/// never changes between versions, so any node can read who a datagram is for and refuse an
/// unknown version cleanly.
///
/// ```text
///  0        2        3        4                                12
/// +--------+--------+--------+--------------------------------+
/// | magic  |version | flags  | destination connection id (BE) |
/// | "PH"   |   u8   |   u8   |              u64               |
/// +--------+--------+--------+--------------------------------+
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Header {
    /// Wire version of the frames that follow.
    pub version: u8,
    /// Reserved; sent as 0, ignored on receipt.
    pub flags: u8,
    /// The receiver's connection id, or [`ConnectionId::NONE`] on a session's first datagram.
    pub destination: ConnectionId,
}

impl Header {
    /// Writes the header at the start of `out`; returns [`HEADER_LEN`](super::HEADER_LEN).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] if `out` is shorter than the header.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let Some(out) = out.get_mut(..HEADER_LEN) else {
            return Err(EncodeError::BufferTooSmall {
                needed: HEADER_LEN,
                have: out.len(),
            });
        };
        out[..2].copy_from_slice(&MAGIC);
        out[2] = self.version;
        out[3] = self.flags;
        out[4..].copy_from_slice(&self.destination.0.to_be_bytes());
        Ok(HEADER_LEN)
    }

    /// Reads a header from the start of `input`.
    ///
    /// # Errors
    /// `Truncated`, `BadMagic`, or `UnsupportedVersion` for a version not in
    /// [`SUPPORTED_VERSIONS`](super::SUPPORTED_VERSIONS).
    pub fn decode(input: &[u8]) -> Result<Self, DecodeError> {
        let Some(bytes) = input.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                have: input.len(),
            });
        };
        let magic = [bytes[0], bytes[1]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = bytes[2];
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mut destination = [0u8; 8];
        destination.copy_from_slice(&bytes[4..]);
        Ok(Self {
            version,
            flags: bytes[3],
            destination: ConnectionId(u64::from_be_bytes(destination)),
        })
    }
}
