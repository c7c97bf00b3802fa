//! Frames: the typed units inside a datagram. Layouts are drawn in `docs/protocol.md`.

use core::ops::Range;

use super::error::{DecodeError, EncodeError};
use crate::id::{ConnectionId, NodeId, StreamId};

/// Frame kinds on the wire. Bit 0x80 marks a kind as optional (skipped when unknown).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum FrameKind {
    /// [`Handshake`].
    Handshake = 0x01,
    /// [`Data`].
    Data = 0x02,
    /// [`Ack`].
    Ack = 0x03,
    /// [`Nak`].
    Nak = 0x04,
    /// [`Gap`].
    Gap = 0x05,
    /// [`Heartbeat`].
    Heartbeat = 0x06,
    /// `PathChallenge`.
    PathChallenge = 0x07,
    /// `PathResponse`.
    PathResponse = 0x08,
    /// [`Close`].
    Close = 0x09,
}

/// Bit of a frame kind that marks it optional: receivers that do not know it skip it.
pub const OPTIONAL_KIND_BIT: u8 = 0x80;

/// One decoded (or to-be-encoded) frame. Borrowed variants point into the datagram.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Frame<'a> {
    /// Opens a session: identities, connection ids, versions, features, parameters.
    Handshake(Handshake<'a>),
    /// One fragment of one message on a stream.
    Data(Data<'a>),
    /// Cumulative acknowledgement and the receiver's flow-control limit for a stream.
    Ack(Ack),
    /// The receiver's request to retransmit ranges of fragment sequence numbers.
    Nak(Nak<'a>),
    /// The sender's answer to a NAK for fragments it no longer holds: those messages are lost.
    Gap(Gap),
    /// Liveness and round-trip probe; a heartbeat with `reply` unset asks for one with it set.
    Heartbeat(Heartbeat),
    /// Asks the peer to echo `token` from the address the challenge was sent to (RFC 9000 §8.2).
    PathChallenge(u64),
    /// Echoes a challenge's token, proving the sender receives at that address.
    PathResponse(u64),
    /// Ends the session with a code and a short reason.
    Close(Close<'a>),
    /// An optional frame kind this build does not know; it was skipped. Never encoded.
    Unknown {
        /// The kind byte (has [`OPTIONAL_KIND_BIT`] set).
        kind: u8,
        /// Body length that was skipped.
        len: usize,
    },
}

/// Which handshake message this is.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum HandshakeStage {
    /// Initiator → responder, sent with destination connection id 0.
    Hello = 1,
    /// Responder → initiator, sent to the initiator's connection id; names the chosen version.
    Accept = 2,
}

/// Handshake body:
/// `stage u8 | node_id [32] | source_cid u64 | n_versions u8 | versions [n] | features varint |
/// params (TLV: id u8, len varint, value)*`. Parameter ids with bit 0x80 are optional.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Handshake<'a> {
    /// Hello or Accept.
    pub stage: HandshakeStage,
    /// The sender's node id.
    pub node_id: NodeId,
    /// The connection id the sender wants to receive on.
    pub source_cid: ConnectionId,
    /// Hello: every version the initiator supports. Accept: exactly the chosen version.
    pub versions: &'a [u8],
    /// Feature bits the sender supports (Hello) or that are agreed (Accept).
    pub features: u64,
    /// Parameter 0x01: the sender's receive window per stream, bytes.
    pub window_bytes: Option<u64>,
    /// Parameter 0x02: the largest datagram the sender accepts, bytes.
    pub max_datagram_bytes: Option<u64>,
    /// Parameter 0x03: the sender's idle timeout, milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// Data body: `stream varint | sequence varint | flags u8 | payload (rest of body)`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Data<'a> {
    /// The stream.
    pub stream: StreamId,
    /// Fragment sequence number, per stream, from 0.
    pub sequence: u64,
    /// First and last fragment of a message (both for an unfragmented message).
    pub flags: DataFlags,
    /// The fragment's bytes.
    pub payload: &'a [u8],
}

/// Flags of a [`Data`] frame. Unknown bits are ignored on receipt.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub struct DataFlags(pub u8);

impl DataFlags {
    /// This fragment begins a message.
    pub const FIRST: Self = Self(0x01);
    /// This fragment ends a message.
    pub const LAST: Self = Self(0x02);
    /// A whole message in one fragment.
    pub const WHOLE: Self = Self(0x03);

    /// Whether `FIRST` is set.
    pub fn is_first(self) -> bool {
        self.0 & Self::FIRST.0 != 0
    }
    /// Whether `LAST` is set.
    pub fn is_last(self) -> bool {
        self.0 & Self::LAST.0 != 0
    }
}

/// Ack body: `stream varint | next_sequence varint | limit_bytes varint`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Ack {
    /// The stream.
    pub stream: StreamId,
    /// Every fragment below this sequence number has been received (or declared lost).
    pub next_sequence: u64,
    /// Flow control: the sender may send stream bytes up to this absolute offset.
    pub limit_bytes: u64,
}

/// Nak body: `stream varint | count varint | (start varint, len varint) * count`, count in
/// `1..=MAX_NAK_RANGES`, every len non-zero.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Nak<'a> {
    /// The stream.
    pub stream: StreamId,
    /// Missing fragment sequence numbers, as half-open ranges.
    pub ranges: RangeList<'a>,
}

/// Gap body: `stream varint | sequence_start varint | sequence_end varint | message_end varint |
/// bytes_end varint`. The fragments `sequence_start..sequence_end` are gone for good; they held
/// whole messages ending before `message_end`, and stream bytes up to `bytes_end`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Gap {
    /// The stream.
    pub stream: StreamId,
    /// First fragment no longer available (inclusive).
    pub sequence_start: u64,
    /// First fragment still (or again) available; `> sequence_start`.
    pub sequence_end: u64,
    /// Number of the first message after the gap.
    pub message_end: u64,
    /// Stream byte offset just after the gap.
    pub bytes_end: u64,
}

/// Heartbeat body: `id varint | flags u8` (bit 0: reply).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Heartbeat {
    /// Chosen by the requester; echoed by the reply.
    pub id: u64,
    /// Whether this is the reply.
    pub reply: bool,
}

/// Close body: `code u16 (BE) | reason_len varint | reason (UTF-8)`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Close<'a> {
    /// Why.
    pub code: CloseCode,
    /// Human-readable detail, at most [`MAX_REASON_BYTES`](super::MAX_REASON_BYTES).
    pub reason: &'a str,
}

/// Stable close codes, documented in `docs/protocol.md`. Never renumbered.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum CloseCode {
    /// The application closed the session.
    Normal,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// No common wire version.
    VersionMismatch,
    /// The peer opened more streams than allowed.
    StreamLimit,
    /// The endpoint refuses new sessions (at its session limit, or shutting down).
    Refused,
    /// A code this build does not know.
    Other(u16),
}

impl CloseCode {
    /// The code's wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 0,
            Self::ProtocolViolation => 1,
            Self::VersionMismatch => 2,
            Self::StreamLimit => 3,
            Self::Refused => 4,
            Self::Other(c) => c,
        }
    }

    /// The code for a wire value; unknown values are kept as [`CloseCode::Other`].
    pub fn from_u16(c: u16) -> Self {
        match c {
            0 => Self::Normal,
            1 => Self::ProtocolViolation,
            2 => Self::VersionMismatch,
            3 => Self::StreamLimit,
            4 => Self::Refused,
            c => Self::Other(c),
        }
    }
}

/// A list of half-open `u64` ranges: borrowed from a datagram when decoded, from a slice when
/// built for encoding. Equality compares the ranges, not the representation.
#[derive(Clone, Copy, Debug)]
pub enum RangeList<'a> {
    /// Validated wire bytes holding `count` (start, len) varint pairs.
    Wire {
        /// The encoded pairs.
        bytes: &'a [u8],
        /// How many pairs.
        count: usize,
    },
    /// Ranges to encode.
    Slice(&'a [Range<u64>]),
}

impl RangeList<'_> {
    /// Number of ranges.
    pub fn len(&self) -> usize {
        todo!()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The ranges in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        todo!();
        #[allow(unreachable_code)]
        core::iter::empty()
    }
}

impl PartialEq for RangeList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for RangeList<'_> {}

impl<'a> Frame<'a> {
    /// Bytes this frame takes on the wire, kind and length prefix included.
    pub fn encoded_len(&self) -> usize {
        todo!()
    }

    /// Writes the frame at the start of `out`; returns the bytes written (= `encoded_len`).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] if `out` is short; [`EncodeError::FieldTooLarge`] if a
    /// value does not fit (a varint ≥ 2^62, too many NAK ranges, a long reason, `Unknown`).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let _ = out;
        todo!()
    }

    /// Decodes one frame from the start of `input` in wire `version`; returns it and the bytes it
    /// took (never more than `input.len()`).
    ///
    /// # Errors
    /// Any [`DecodeError`]; unknown *optional* kinds are not an error but [`Frame::Unknown`].
    pub fn decode(version: u8, input: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        let _ = (version, input);
        todo!()
    }
}

/// Iterator over the frames of a datagram body. After an error it yields nothing more.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    version: u8,
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Frames<'a> {
    pub(crate) fn new(version: u8, rest: &'a [u8]) -> Self {
        Self { version, rest, failed: false }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}
