//! Layer 1: the wire format. Pure functions over byte slices; imports nothing but `id`.
//!
//! Every datagram starts with the version-invariant [`Header`], followed by one or more frames
//! (coalescing: many small messages, an ack and a heartbeat may share one datagram):
//!
//! ```text
//!  0        2        3        4                                12
//! +--------+--------+--------+--------------------------------+----------------------+
//! | magic  |version | flags  | destination connection id (BE) | frame | frame | ...  |
//! | "PH"   |   u8   |   u8   |              u64               |                      |
//! +--------+--------+--------+--------------------------------+----------------------+
//!
//! frame:  kind u8 | body_len varint | body (body_len bytes)
//! ```
//!
//! A frame kind with bit 0x80 set is *optional*: a receiver that does not know it skips it. An
//! unknown kind without that bit is an error. Decoders read the fields they know and skip
//! trailing bytes in a body (fields a later version appended), except in `Data`, whose payload is
//! the rest of the body. The layout of each frame is drawn in `docs/protocol.md`.
//!
//! Encoding writes into a caller's buffer; decoding borrows from the input and returns a typed
//! [`DecodeError`] that names what is wrong and where. Decoders never panic and never report
//! consuming more bytes than they were given.

mod error;
mod frame;
pub mod fuzzing;
mod header;
mod varint;

pub use error::{DecodeError, EncodeError};
pub use frame::{
    Ack, Close, CloseCode, Data, DataFlags, Frame, FrameKind, Frames, Gap, Handshake,
    HandshakeStage, Heartbeat, Nak, OPTIONAL_KIND_BIT, RangeList,
};
pub use header::Header;
pub use varint::{MAX_VARINT, varint_len};

/// The first two bytes of every Phyla datagram.
pub const MAGIC: [u8; 2] = *b"PH";
/// The wire version this build speaks natively.
pub const VERSION_1: u8 = 1;
/// Every wire version this build can decode, lowest first. Peers agree on the highest common one.
pub const SUPPORTED_VERSIONS: &[u8] = &[VERSION_1];
/// Bytes in the invariant header.
pub const HEADER_LEN: usize = 12;
/// The largest UDP payload (IPv4): no datagram, and no frame length, may exceed it.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// Most NAK ranges in one frame; a receiver with more gaps sends several frames.
pub const MAX_NAK_RANGES: usize = 64;
/// Longest close reason, in bytes of UTF-8.
pub const MAX_REASON_BYTES: usize = 512;
/// Most versions a handshake may list.
pub const MAX_VERSIONS: usize = 16;

/// Decodes a whole datagram: its header, then an iterator over its frames.
///
/// # Errors
/// Header errors are returned here; frame errors are returned by the iterator, which stops after
/// the first one (a datagram with a malformed frame is dropped whole by the session).
pub fn decode_datagram(datagram: &[u8]) -> Result<(Header, Frames<'_>), DecodeError> {
    if datagram.len() > MAX_DATAGRAM_BYTES {
        return Err(DecodeError::Oversized {
            field: "datagram",
            len: datagram.len() as u64,
            max: MAX_DATAGRAM_BYTES as u64,
        });
    }
    let header = Header::decode(datagram)?;
    Ok((header, Frames::new(header.version, &datagram[HEADER_LEN..])))
}

#[cfg(test)]
mod tests;
