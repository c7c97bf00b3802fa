//! The version-invariant datagram header.

use super::error::{DecodeError, EncodeError};
use crate::id::ConnectionId;

/// `magic [2] | version u8 | flags u8 | destination connection id u64 (BE)`: 12 bytes. Its layout
/// never changes between versions, so any node can read who a datagram is for and refuse an
/// unknown version cleanly.
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
        let _ = out;
        todo!()
    }

    /// Reads a header from the start of `input`.
    ///
    /// # Errors
    /// `Truncated`, `BadMagic`, or `UnsupportedVersion` for a version not in
    /// [`SUPPORTED_VERSIONS`](super::SUPPORTED_VERSIONS).
    pub fn decode(input: &[u8]) -> Result<Self, DecodeError> {
        let _ = input;
        todo!()
    }
}
