//! Wire errors: cheap, `Copy`, allocation-free, returned per datagram.

use thiserror::Error;

/// What is wrong with received bytes, and where. Receivers count these and drop the datagram.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before a fixed-size field or a complete varint.
    #[error("truncated: needed {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        have: usize,
    },
    /// The first two bytes are not [`MAGIC`](super::MAGIC): not a Phyla datagram.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// The header names a version this build cannot decode.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// A mandatory frame kind this build does not know.
    #[error("unknown mandatory frame kind {0:#04x}")]
    UnknownFrameKind(u8),
    /// A mandatory handshake parameter this build does not know.
    #[error("unknown mandatory handshake parameter {0:#04x}")]
    UnknownParameter(u8),
    /// A length field claims more bytes than follow it.
    #[error("bad length in {field}: claims {len} bytes, {have} follow")]
    BadLength {
        /// Which length field.
        field: &'static str,
        /// What it claims.
        len: u64,
        /// What is there.
        have: usize,
    },
    /// A length or count exceeds the protocol's limit for it.
    #[error("{field} too large: {len} > {max}")]
    Oversized {
        /// Which field.
        field: &'static str,
        /// Its value.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field's value is outside its allowed range (or not valid UTF-8, for text).
    #[error("{field} out of range")]
    FieldOutOfRange {
        /// Which field.
        field: &'static str,
    },
}

/// Why a frame could not be encoded. Only a caller's mistake causes one.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is smaller than the encoding.
    #[error("buffer too small: need {needed} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// A value does not fit its field (a varint above 2^62 - 1, too many ranges, a long reason).
    #[error("{field} does not fit its wire field")]
    FieldTooLarge {
        /// Which field.
        field: &'static str,
    },
}
