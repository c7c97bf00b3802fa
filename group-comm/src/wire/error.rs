//! Group wire errors: cheap, `Copy`, allocation-free.

use thiserror::Error;

/// What is wrong with a received group frame. Receivers count these and drop the frame.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum GroupDecodeError {
    /// The input ends before a field.
    #[error("truncated: needed {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        have: usize,
    },
    /// Not a group frame.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A group wire version this build cannot decode.
    #[error("unsupported group wire version {0}")]
    UnsupportedVersion(u8),
    /// A frame kind this build does not know.
    #[error("unknown group frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A list count above its bound.
    #[error("{field} too large: {len} > {max}")]
    Oversized {
        /// Which list.
        field: &'static str,
        /// Its count.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// A field's value is outside its allowed range.
    #[error("{field} out of range")]
    FieldOutOfRange {
        /// Which field.
        field: &'static str,
    },
}

/// Why a frame could not be encoded: only a caller's mistake causes one.
#[derive(Clone, Copy, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum GroupEncodeError {
    /// A list exceeds its `MAX_*` bound.
    #[error("{field} has {len} entries, more than {max}")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A repair range whose `first` is above its `last`: it would not decode
    /// (`FieldOutOfRange` on the receiver), so it is refused here.
    #[error("{field} is inverted: first {first} > last {last}")]
    InvertedRange {
        /// Which range.
        field: &'static str,
        /// Its first sequence number.
        first: u64,
        /// Its last sequence number.
        last: u64,
    },
}
