//! Frames: the typed units inside a datagram. Layouts are drawn in `docs/protocol.md`.

use core::iter::FusedIterator;
use core::ops::Range;

use super::error::{DecodeError, EncodeError};
use super::varint::{self, varint_len};
use super::{
    MAX_DATAGRAM_BYTES, MAX_NAK_RANGES, MAX_REASON_BYTES, MAX_VERSIONS, SUPPORTED_VERSIONS,
};
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

/// Data body: `stream varint | sequence varint | flags u8 | message varint | payload (rest of
/// body)`. The message number lets a receiver that must give up on a gap lose exactly the
/// messages it lacks, and deliver the ones it holds whole.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Data<'a> {
    /// The stream.
    pub stream: StreamId,
    /// Fragment sequence number, per stream, from 0.
    pub sequence: u64,
    /// First and last fragment of a message (both for an unfragmented message).
    pub flags: DataFlags,
    /// Number of the message this fragment belongs to, per stream, from 0.
    pub message: u64,
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

/// Nak body: `stream varint | received_end varint | count varint | (start varint, len varint) *
/// count`, count in `1..=MAX_NAK_RANGES`, every len non-zero.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Nak<'a> {
    /// The stream.
    pub stream: StreamId,
    /// When non-zero, the receiver holds every fragment from the end of the last range up to
    /// (not including) this one: with the spans between ranges, a full selective acknowledgement.
    /// Zero says nothing beyond the ranges.
    pub received_end: u64,
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

/// Stable close codes, documented in `docs/protocol.md`. Never renumbered. Codes compare by
/// their wire value, so `Other(1)` equals `ProtocolViolation`, as it would after a round trip.
#[derive(Clone, Copy, Debug)]
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

impl PartialEq for CloseCode {
    fn eq(&self, other: &Self) -> bool {
        self.to_u16() == other.to_u16()
    }
}
impl Eq for CloseCode {}

impl core::hash::Hash for CloseCode {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.to_u16().hash(state);
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
        match self {
            Self::Wire { count, .. } => *count,
            Self::Slice(ranges) => ranges.len(),
        }
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The ranges in order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        match *self {
            Self::Wire { bytes, count } => RangeIter::Wire {
                bytes,
                remaining: count,
            },
            Self::Slice(ranges) => RangeIter::Slice(ranges.iter()),
        }
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
    ///
    /// For [`Frame::Unknown`] (which cannot be encoded) this is the minimal size of a frame with
    /// its body length: what it took on the wire, unless its length prefix was not minimal.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        1 + varint_len(body as u64) + body
    }

    /// Writes the frame at the start of `out`; returns the bytes written (= `encoded_len`).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] if `out` is short; [`EncodeError::FieldTooLarge`] if a
    /// value does not fit (a varint ≥ 2^62, too many NAK ranges, a long reason, `Unknown`).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let kind = self.check()?;
        let body = self.body_len();
        if body > MAX_DATAGRAM_BYTES {
            return Err(EncodeError::FieldTooLarge {
                field: "frame.body_len",
            });
        }
        let needed = 1 + varint_len(body as u64) + body;
        let Some(out) = out.get_mut(..needed) else {
            return Err(EncodeError::BufferTooSmall {
                needed,
                have: out.len(),
            });
        };
        let mut w = Writer { out, pos: 0 };
        w.u8(kind as u8);
        w.varint(body as u64);
        let body_start = w.pos;
        self.write_body(&mut w);
        debug_assert_eq!(
            w.pos - body_start,
            body,
            "body_len disagrees with write_body"
        );
        debug_assert_eq!(w.pos, needed);
        Ok(needed)
    }

    /// Decodes one frame from the start of `input` in wire `version`; returns it and the bytes it
    /// took (never more than `input.len()`).
    ///
    /// # Errors
    /// Any [`DecodeError`]; unknown *optional* kinds are not an error but [`Frame::Unknown`].
    pub fn decode(version: u8, input: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mut r = Reader { input };
        let kind_byte = r.u8()?;
        let kind = FrameKind::from_wire(kind_byte);
        if kind.is_none() && kind_byte & OPTIONAL_KIND_BIT == 0 {
            return Err(DecodeError::UnknownFrameKind(kind_byte));
        }
        let body_len = r.varint()?;
        if body_len > MAX_DATAGRAM_BYTES as u64 {
            return Err(DecodeError::Oversized {
                field: "frame.body_len",
                len: body_len,
                max: MAX_DATAGRAM_BYTES as u64,
            });
        }
        let body = r.sized(body_len, "frame.body_len")?;
        let consumed = input.len() - r.input.len();
        let body = Reader { input: body };
        let frame = match kind {
            None => Self::Unknown {
                kind: kind_byte,
                len: body.input.len(),
            },
            Some(FrameKind::Handshake) => Self::Handshake(Handshake::decode(body)?),
            Some(FrameKind::Data) => Self::Data(Data::decode(body)?),
            Some(FrameKind::Ack) => Self::Ack(Ack::decode(body)?),
            Some(FrameKind::Nak) => Self::Nak(Nak::decode(body)?),
            Some(FrameKind::Gap) => Self::Gap(Gap::decode(body)?),
            Some(FrameKind::Heartbeat) => Self::Heartbeat(Heartbeat::decode(body)?),
            Some(FrameKind::PathChallenge) => Self::PathChallenge(decode_token(body)?),
            Some(FrameKind::PathResponse) => Self::PathResponse(decode_token(body)?),
            Some(FrameKind::Close) => Self::Close(Close::decode(body)?),
        };
        Ok((frame, consumed))
    }

    /// Bytes of the body alone.
    fn body_len(&self) -> usize {
        match self {
            Self::Handshake(h) => h.body_len(),
            Self::Data(d) => d.body_len(),
            Self::Ack(a) => a.body_len(),
            Self::Nak(n) => n.body_len(),
            Self::Gap(g) => g.body_len(),
            Self::Heartbeat(h) => h.body_len(),
            Self::PathChallenge(_) | Self::PathResponse(_) => TOKEN_LEN,
            Self::Close(c) => c.body_len(),
            Self::Unknown { len, .. } => *len,
        }
    }

    /// Checks every field fits its wire form; returns the kind to write.
    fn check(&self) -> Result<FrameKind, EncodeError> {
        match self {
            Self::Handshake(h) => h.check().map(|()| FrameKind::Handshake),
            Self::Data(d) => d.check().map(|()| FrameKind::Data),
            Self::Ack(a) => a.check().map(|()| FrameKind::Ack),
            Self::Nak(n) => n.check().map(|()| FrameKind::Nak),
            Self::Gap(g) => g.check().map(|()| FrameKind::Gap),
            Self::Heartbeat(h) => h.check().map(|()| FrameKind::Heartbeat),
            Self::PathChallenge(_) => Ok(FrameKind::PathChallenge),
            Self::PathResponse(_) => Ok(FrameKind::PathResponse),
            Self::Close(c) => c.check().map(|()| FrameKind::Close),
            Self::Unknown { .. } => Err(EncodeError::FieldTooLarge {
                field: "frame.kind",
            }),
        }
    }

    /// Writes the body; [`Frame::check`] passed and the buffer holds [`Frame::body_len`] bytes.
    fn write_body(&self, w: &mut Writer<'_>) {
        match self {
            Self::Handshake(h) => h.write_body(w),
            Self::Data(d) => d.write_body(w),
            Self::Ack(a) => a.write_body(w),
            Self::Nak(n) => n.write_body(w),
            Self::Gap(g) => g.write_body(w),
            Self::Heartbeat(h) => h.write_body(w),
            Self::PathChallenge(token) | Self::PathResponse(token) => {
                w.bytes(&token.to_be_bytes());
            }
            Self::Close(c) => c.write_body(w),
            Self::Unknown { .. } => debug_assert!(false, "Frame::Unknown is never encoded"),
        }
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
        Self {
            version,
            rest,
            failed: false,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match Frame::decode(self.version, self.rest) {
            Ok((frame, consumed)) => {
                self.rest = self.rest.get(consumed..).unwrap_or_default();
                Some(Ok(frame))
            }
            Err(error) => {
                self.failed = true;
                self.rest = &[];
                Some(Err(error))
            }
        }
    }
}

impl FusedIterator for Frames<'_> {}

impl FrameKind {
    /// The kind for a wire byte, if this build knows it.
    fn from_wire(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::Handshake,
            0x02 => Self::Data,
            0x03 => Self::Ack,
            0x04 => Self::Nak,
            0x05 => Self::Gap,
            0x06 => Self::Heartbeat,
            0x07 => Self::PathChallenge,
            0x08 => Self::PathResponse,
            0x09 => Self::Close,
            _ => return None,
        })
    }
}

impl<'a> Handshake<'a> {
    fn body_len(&self) -> usize {
        let params: usize = self.params().map(|(_, value)| 2 + varint_len(value)).sum();
        1 + NodeId::LEN + 8 + 1 + self.versions.len() + varint_len(self.features) + params
    }

    fn check(&self) -> Result<(), EncodeError> {
        if self.versions.is_empty() || self.versions.len() > MAX_VERSIONS {
            return Err(EncodeError::FieldTooLarge {
                field: "handshake.versions",
            });
        }
        varint::check(self.features, "handshake.features")?;
        for (id, value) in self.params() {
            varint::check(value, param_name(id))?;
        }
        Ok(())
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.u8(self.stage as u8);
        w.bytes(&self.node_id.0);
        w.bytes(&self.source_cid.0.to_be_bytes());
        w.u8(self.versions.len() as u8);
        w.bytes(self.versions);
        w.varint(self.features);
        for (id, value) in self.params() {
            w.u8(id);
            w.varint(varint_len(value) as u64);
            w.varint(value);
        }
    }

    fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let stage = match r.u8()? {
            1 => HandshakeStage::Hello,
            2 => HandshakeStage::Accept,
            _ => {
                return Err(DecodeError::FieldOutOfRange {
                    field: "handshake.stage",
                });
            }
        };
        let node_id = NodeId(r.array()?);
        let source_cid = ConnectionId(u64::from_be_bytes(r.array()?));
        let count = r.u8()?;
        if count == 0 {
            return Err(DecodeError::FieldOutOfRange {
                field: "handshake.versions",
            });
        }
        if usize::from(count) > MAX_VERSIONS {
            return Err(DecodeError::Oversized {
                field: "handshake.versions",
                len: count.into(),
                max: MAX_VERSIONS as u64,
            });
        }
        let versions = r.bytes(count.into())?;
        let features = r.varint()?;
        let mut handshake = Self {
            stage,
            node_id,
            source_cid,
            versions,
            features,
            window_bytes: None,
            max_datagram_bytes: None,
            idle_timeout_ms: None,
        };
        while !r.input.is_empty() {
            let id = r.u8()?;
            let len = r.varint()?;
            let value = r.sized(len, "handshake.param_len")?;
            let slot = match id {
                PARAM_WINDOW_BYTES => &mut handshake.window_bytes,
                PARAM_MAX_DATAGRAM_BYTES => &mut handshake.max_datagram_bytes,
                PARAM_IDLE_TIMEOUT_MS => &mut handshake.idle_timeout_ms,
                _ if id & OPTIONAL_PARAM_BIT != 0 => continue,
                _ => return Err(DecodeError::UnknownParameter(id)),
            };
            let field = param_name(id);
            if slot.is_some() {
                return Err(DecodeError::FieldOutOfRange { field });
            }
            // The value must be exactly one varint filling the parameter.
            match varint::decode(value) {
                Ok((v, used)) if used == value.len() => *slot = Some(v),
                _ => return Err(DecodeError::FieldOutOfRange { field }),
            }
        }
        Ok(handshake)
    }

    /// The parameters present, in id order.
    fn params(&self) -> impl Iterator<Item = (u8, u64)> {
        [
            (PARAM_WINDOW_BYTES, self.window_bytes),
            (PARAM_MAX_DATAGRAM_BYTES, self.max_datagram_bytes),
            (PARAM_IDLE_TIMEOUT_MS, self.idle_timeout_ms),
        ]
        .into_iter()
        .filter_map(|(id, value)| Some((id, value?)))
    }
}

impl<'a> Data<'a> {
    fn body_len(&self) -> usize {
        varint_len(self.stream.0.into())
            + varint_len(self.sequence)
            + 1
            + varint_len(self.message)
            + self.payload.len()
    }

    fn check(&self) -> Result<(), EncodeError> {
        varint::check(self.sequence, "data.sequence")?;
        varint::check(self.message, "data.message")
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.varint(self.stream.0.into());
        w.varint(self.sequence);
        w.u8(self.flags.0);
        w.varint(self.message);
        w.bytes(self.payload);
    }

    fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let stream = r.stream()?;
        let sequence = r.varint()?;
        let flags = DataFlags(r.u8()?);
        let message = r.varint()?;
        Ok(Self {
            stream,
            sequence,
            flags,
            message,
            payload: r.input,
        })
    }
}

impl Ack {
    fn body_len(&self) -> usize {
        varint_len(self.stream.0.into())
            + varint_len(self.next_sequence)
            + varint_len(self.limit_bytes)
    }

    fn check(&self) -> Result<(), EncodeError> {
        varint::check(self.next_sequence, "ack.next_sequence")?;
        varint::check(self.limit_bytes, "ack.limit_bytes")
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.varint(self.stream.0.into());
        w.varint(self.next_sequence);
        w.varint(self.limit_bytes);
    }

    fn decode(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            stream: r.stream()?,
            next_sequence: r.varint()?,
            limit_bytes: r.varint()?,
        })
    }
}

impl<'a> Nak<'a> {
    fn body_len(&self) -> usize {
        let ranges = match self.ranges {
            RangeList::Wire { bytes, .. } => bytes.len(),
            RangeList::Slice(ranges) => ranges
                .iter()
                .map(|r| varint_len(r.start) + varint_len(r.end.wrapping_sub(r.start)))
                .sum(),
        };
        varint_len(self.stream.0.into())
            + varint_len(self.received_end)
            + varint_len(self.ranges.len() as u64)
            + ranges
    }

    fn check(&self) -> Result<(), EncodeError> {
        varint::check(self.received_end, "nak.received_end")?;
        let count = self.ranges.len();
        if count == 0 || count > MAX_NAK_RANGES {
            return Err(EncodeError::FieldTooLarge { field: "nak.count" });
        }
        match self.ranges {
            RangeList::Wire { bytes, count } => match validate_ranges(bytes, count) {
                Ok(used) if used == bytes.len() => Ok(()),
                _ => Err(EncodeError::FieldTooLarge {
                    field: "nak.ranges",
                }),
            },
            RangeList::Slice(ranges) => {
                for range in ranges {
                    if range.end <= range.start {
                        return Err(EncodeError::FieldTooLarge { field: "nak.range" });
                    }
                    varint::check(range.start, "nak.start")?;
                    varint::check(range.end - range.start, "nak.len")?;
                }
                Ok(())
            }
        }
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.varint(self.stream.0.into());
        w.varint(self.received_end);
        w.varint(self.ranges.len() as u64);
        match self.ranges {
            // Already validated wire form: copy it as is.
            RangeList::Wire { bytes, .. } => w.bytes(bytes),
            RangeList::Slice(ranges) => {
                for range in ranges {
                    w.varint(range.start);
                    w.varint(range.end - range.start);
                }
            }
        }
    }

    fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let stream = r.stream()?;
        let received_end = r.varint()?;
        let count = r.varint()?;
        if count == 0 {
            return Err(DecodeError::FieldOutOfRange { field: "nak.count" });
        }
        if count > MAX_NAK_RANGES as u64 {
            return Err(DecodeError::Oversized {
                field: "nak.count",
                len: count,
                max: MAX_NAK_RANGES as u64,
            });
        }
        // Bounded by MAX_NAK_RANGES just above.
        let count = count as usize;
        let used = validate_ranges(r.input, count)?;
        let bytes = r.bytes(used)?;
        Ok(Self {
            stream,
            received_end,
            ranges: RangeList::Wire { bytes, count },
        })
    }
}

impl Gap {
    fn body_len(&self) -> usize {
        varint_len(self.stream.0.into())
            + varint_len(self.sequence_start)
            + varint_len(self.sequence_end)
            + varint_len(self.message_end)
            + varint_len(self.bytes_end)
    }

    fn check(&self) -> Result<(), EncodeError> {
        varint::check(self.sequence_start, "gap.sequence_start")?;
        varint::check(self.sequence_end, "gap.sequence_end")?;
        varint::check(self.message_end, "gap.message_end")?;
        varint::check(self.bytes_end, "gap.bytes_end")?;
        // An empty gap would be refused by every receiver.
        if self.sequence_end <= self.sequence_start {
            return Err(EncodeError::FieldTooLarge {
                field: "gap.sequence_end",
            });
        }
        Ok(())
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.varint(self.stream.0.into());
        w.varint(self.sequence_start);
        w.varint(self.sequence_end);
        w.varint(self.message_end);
        w.varint(self.bytes_end);
    }

    fn decode(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let gap = Self {
            stream: r.stream()?,
            sequence_start: r.varint()?,
            sequence_end: r.varint()?,
            message_end: r.varint()?,
            bytes_end: r.varint()?,
        };
        if gap.sequence_end <= gap.sequence_start {
            return Err(DecodeError::FieldOutOfRange {
                field: "gap.sequence_end",
            });
        }
        Ok(gap)
    }
}

impl Heartbeat {
    fn body_len(&self) -> usize {
        varint_len(self.id) + 1
    }

    fn check(&self) -> Result<(), EncodeError> {
        varint::check(self.id, "heartbeat.id")
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.varint(self.id);
        w.u8(if self.reply { HEARTBEAT_REPLY } else { 0 });
    }

    fn decode(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.varint()?;
        let flags = r.u8()?;
        Ok(Self {
            id,
            reply: flags & HEARTBEAT_REPLY != 0,
        })
    }
}

impl<'a> Close<'a> {
    fn body_len(&self) -> usize {
        2 + varint_len(self.reason.len() as u64) + self.reason.len()
    }

    fn check(&self) -> Result<(), EncodeError> {
        if self.reason.len() > MAX_REASON_BYTES {
            return Err(EncodeError::FieldTooLarge {
                field: "close.reason",
            });
        }
        Ok(())
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.bytes(&self.code.to_u16().to_be_bytes());
        w.varint(self.reason.len() as u64);
        w.bytes(self.reason.as_bytes());
    }

    fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let code = CloseCode::from_u16(u16::from_be_bytes(r.array()?));
        let len = r.varint()?;
        if len > MAX_REASON_BYTES as u64 {
            return Err(DecodeError::Oversized {
                field: "close.reason",
                len,
                max: MAX_REASON_BYTES as u64,
            });
        }
        let reason = r.sized(len, "close.reason_len")?;
        let reason = core::str::from_utf8(reason).map_err(|_| DecodeError::FieldOutOfRange {
            field: "close.reason",
        })?;
        Ok(Self { code, reason })
    }
}

/// Iterator behind [`RangeList::iter`].
enum RangeIter<'a> {
    Wire { bytes: &'a [u8], remaining: usize },
    Slice(core::slice::Iter<'a, Range<u64>>),
}

impl Iterator for RangeIter<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        match self {
            Self::Wire { bytes, remaining } => {
                if *remaining == 0 {
                    return None;
                }
                let mut r = Reader { input: bytes };
                // A `Wire` list built by the decoder always parses; a malformed hand-built one
                // ends the iteration instead of panicking.
                let (Ok(start), Ok(len)) = (r.varint(), r.varint()) else {
                    *remaining = 0;
                    return None;
                };
                *bytes = r.input;
                *remaining -= 1;
                Some(start..start.checked_add(len)?)
            }
            Self::Slice(ranges) => ranges.next().cloned(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Wire { remaining, .. } => (0, Some(*remaining)),
            Self::Slice(ranges) => ranges.size_hint(),
        }
    }
}

/// Checks that `input` starts with `count` valid (start, len) pairs; returns the bytes they take.
fn validate_ranges(input: &[u8], count: usize) -> Result<usize, DecodeError> {
    let mut r = Reader { input };
    for _ in 0..count {
        let start = r.varint()?;
        let len = r.varint()?;
        if len == 0 {
            return Err(DecodeError::FieldOutOfRange { field: "nak.len" });
        }
        if start.checked_add(len).is_none() {
            return Err(DecodeError::FieldOutOfRange { field: "nak.range" });
        }
    }
    Ok(input.len() - r.input.len())
}

/// Decodes a `PathChallenge` or `PathResponse` body: `token u64 (BE)`.
fn decode_token(mut r: Reader<'_>) -> Result<u64, DecodeError> {
    Ok(u64::from_be_bytes(r.array()?))
}

/// The field name of a known handshake parameter, for errors.
fn param_name(id: u8) -> &'static str {
    match id {
        PARAM_WINDOW_BYTES => "handshake.window_bytes",
        PARAM_MAX_DATAGRAM_BYTES => "handshake.max_datagram_bytes",
        PARAM_IDLE_TIMEOUT_MS => "handshake.idle_timeout_ms",
        _ => "handshake.param",
    }
}

/// A cursor over input being decoded. Every read checks its bounds and never panics.
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let Some((&byte, rest)) = self.input.split_first() else {
            return Err(DecodeError::Truncated { needed: 1, have: 0 });
        };
        self.input = rest;
        Ok(byte)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((head, rest)) = self.input.split_first_chunk::<N>() else {
            return Err(DecodeError::Truncated {
                needed: N,
                have: self.input.len(),
            });
        };
        self.input = rest;
        Ok(*head)
    }

    #[inline]
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let Some((head, rest)) = self.input.split_at_checked(len) else {
            return Err(DecodeError::Truncated {
                needed: len,
                have: self.input.len(),
            });
        };
        self.input = rest;
        Ok(head)
    }

    /// Takes `len` bytes announced by the length field `field`.
    #[inline]
    fn sized(&mut self, len: u64, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let have = self.input.len();
        match usize::try_from(len) {
            Ok(len) if len <= have => self.bytes(len),
            _ => Err(DecodeError::BadLength { field, len, have }),
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let (value, used) = varint::decode(self.input)?;
        self.input = self.input.get(used..).unwrap_or_default();
        Ok(value)
    }

    #[inline]
    fn stream(&mut self) -> Result<StreamId, DecodeError> {
        let value = self.varint()?;
        u32::try_from(value)
            .map(StreamId)
            .map_err(|_| DecodeError::FieldOutOfRange { field: "stream" })
    }
}

/// A cursor over an output buffer that [`Frame::encode`] has already sized: writes do not fail.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline]
    fn u8(&mut self, byte: u8) {
        self.out[self.pos] = byte;
        self.pos += 1;
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    #[inline]
    fn varint(&mut self, value: u64) {
        self.pos += varint::encode(value, &mut self.out[self.pos..]);
    }
}

/// Handshake parameter 0x01: [`Handshake::window_bytes`].
const PARAM_WINDOW_BYTES: u8 = 0x01;
/// Handshake parameter 0x02: [`Handshake::max_datagram_bytes`].
const PARAM_MAX_DATAGRAM_BYTES: u8 = 0x02;
/// Handshake parameter 0x03: [`Handshake::idle_timeout_ms`].
const PARAM_IDLE_TIMEOUT_MS: u8 = 0x03;
/// Bit of a handshake parameter id that marks it optional (skipped when unknown).
const OPTIONAL_PARAM_BIT: u8 = 0x80;
/// Heartbeat flag bit 0: this heartbeat is the reply.
const HEARTBEAT_REPLY: u8 = 0x01;
/// Bytes of a `PathChallenge` / `PathResponse` token.
const TOKEN_LEN: usize = 8;
