//! Wire codec tests: round trips for every frame kind, one test per class of malformed input, and
//! the fuzz harnesses run on arbitrary and mutated bytes.

use core::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;

use super::varint;
use super::*;
use crate::id::{ConnectionId, NodeId, StreamId};

// ---------------------------------------------------------------------------------------------
// Owned frames for strategies (frames borrow, strategies must own).

#[derive(Clone, Debug)]
enum OwnedFrame {
    Handshake {
        stage: HandshakeStage,
        node_id: [u8; 32],
        source_cid: u64,
        versions: Vec<u8>,
        features: u64,
        params: [Option<u64>; 3],
    },
    Data {
        stream: u32,
        sequence: u64,
        flags: u8,
        message: u64,
        payload: Vec<u8>,
    },
    Ack(Ack),
    Nak {
        stream: u32,
        received_end: u64,
        ranges: Vec<Range<u64>>,
    },
    Gap(Gap),
    Heartbeat(Heartbeat),
    PathChallenge(u64),
    PathResponse(u64),
    Close {
        code: u16,
        reason: String,
    },
}

impl OwnedFrame {
    fn frame(&self) -> Frame<'_> {
        match self {
            Self::Handshake {
                stage,
                node_id,
                source_cid,
                versions,
                features,
                params,
            } => Frame::Handshake(Handshake {
                stage: *stage,
                node_id: NodeId(*node_id),
                source_cid: ConnectionId(*source_cid),
                versions,
                features: *features,
                window_bytes: params[0],
                max_datagram_bytes: params[1],
                idle_timeout_ms: params[2],
            }),
            Self::Data {
                stream,
                sequence,
                flags,
                message,
                payload,
            } => Frame::Data(Data {
                stream: StreamId(*stream),
                sequence: *sequence,
                flags: DataFlags(*flags),
                message: *message,
                payload,
            }),
            Self::Ack(ack) => Frame::Ack(*ack),
            Self::Nak {
                stream,
                received_end,
                ranges,
            } => Frame::Nak(Nak {
                stream: StreamId(*stream),
                received_end: *received_end,
                ranges: RangeList::Slice(ranges),
            }),
            Self::Gap(gap) => Frame::Gap(*gap),
            Self::Heartbeat(heartbeat) => Frame::Heartbeat(*heartbeat),
            Self::PathChallenge(token) => Frame::PathChallenge(*token),
            Self::PathResponse(token) => Frame::PathResponse(*token),
            Self::Close { code, reason } => Frame::Close(Close {
                code: CloseCode::from_u16(*code),
                reason,
            }),
        }
    }
}

/// Varint values weighted towards each encoding length and its boundaries.
fn varint_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64u64,
        64..1u64 << 14,
        1u64 << 14..1 << 30,
        1u64 << 30..=MAX_VARINT,
        prop::sample::select(vec![
            0,
            63,
            64,
            16_383,
            16_384,
            (1 << 30) - 1,
            1 << 30,
            MAX_VARINT
        ]),
    ]
}

fn stream() -> impl Strategy<Value = u32> {
    prop_oneof![0..64u32, any::<u32>(), Just(u32::MAX)]
}

fn handshake() -> impl Strategy<Value = OwnedFrame> {
    (
        prop_oneof![Just(HandshakeStage::Hello), Just(HandshakeStage::Accept)],
        any::<[u8; 32]>(),
        any::<u64>(),
        vec(any::<u8>(), 1..=MAX_VERSIONS),
        varint_value(),
        [
            prop::option::of(varint_value()),
            prop::option::of(varint_value()),
            prop::option::of(varint_value()),
        ],
    )
        .prop_map(|(stage, node_id, source_cid, versions, features, params)| {
            OwnedFrame::Handshake {
                stage,
                node_id,
                source_cid,
                versions,
                features,
                params,
            }
        })
}

fn data() -> impl Strategy<Value = OwnedFrame> {
    (
        stream(),
        varint_value(),
        any::<u8>(),
        varint_value(),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(stream, sequence, flags, message, payload)| OwnedFrame::Data {
                stream,
                sequence,
                flags,
                message,
                payload,
            },
        )
}

fn ack() -> impl Strategy<Value = OwnedFrame> {
    (stream(), varint_value(), varint_value()).prop_map(|(stream, next_sequence, limit_bytes)| {
        OwnedFrame::Ack(Ack {
            stream: StreamId(stream),
            next_sequence,
            limit_bytes,
        })
    })
}

fn nak() -> impl Strategy<Value = OwnedFrame> {
    let range = (varint_value(), varint_value()).prop_map(|(start, len)| start..start + len.max(1));
    (stream(), varint_value(), vec(range, 1..=MAX_NAK_RANGES)).prop_map(
        |(stream, received_end, ranges)| OwnedFrame::Nak {
            stream,
            received_end,
            ranges,
        },
    )
}

fn gap() -> impl Strategy<Value = OwnedFrame> {
    (
        stream(),
        0..MAX_VARINT,
        varint_value(),
        varint_value(),
        varint_value(),
    )
        .prop_map(|(stream, sequence_start, end, message_end, bytes_end)| {
            OwnedFrame::Gap(Gap {
                stream: StreamId(stream),
                sequence_start,
                sequence_end: end.max(sequence_start + 1),
                message_end,
                bytes_end,
            })
        })
}

fn heartbeat() -> impl Strategy<Value = OwnedFrame> {
    (varint_value(), any::<bool>())
        .prop_map(|(id, reply)| OwnedFrame::Heartbeat(Heartbeat { id, reply }))
}

fn close() -> impl Strategy<Value = OwnedFrame> {
    // At most 128 chars of at most 4 bytes: within MAX_REASON_BYTES.
    (any::<u16>(), "\\PC{0,128}").prop_map(|(code, reason)| OwnedFrame::Close { code, reason })
}

fn any_frame() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        handshake(),
        data(),
        ack(),
        nak(),
        gap(),
        heartbeat(),
        any::<u64>().prop_map(OwnedFrame::PathChallenge),
        any::<u64>().prop_map(OwnedFrame::PathResponse),
        close(),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        prop::sample::select(SUPPORTED_VERSIONS),
        any::<u8>(),
        any::<u64>(),
    )
        .prop_map(|(version, flags, destination)| Header {
            version,
            flags,
            destination: ConnectionId(destination),
        })
}

/// Encodes `frame`, checks `encoded_len == written`, decodes it back and checks equality and
/// `consumed == written`. Bytes after the frame must not be read.
fn assert_round_trip(frame: &Frame<'_>) {
    let len = frame.encoded_len();
    let mut out = vec![0xAA; len + 5];
    assert_eq!(
        frame.encode(&mut out),
        Ok(len),
        "written != encoded_len for {frame:?}"
    );
    let (decoded, consumed) = Frame::decode(VERSION_1, &out).expect("round trip decodes");
    assert_eq!(consumed, len);
    assert_eq!(&decoded, frame);
    assert_eq!(Frame::decode(VERSION_1, &out[..len]), Ok((decoded, len)));
}

/// Header followed by every frame in `frames`.
fn encode_datagram(header: &Header, frames: &[OwnedFrame]) -> Vec<u8> {
    let len = HEADER_LEN
        + frames
            .iter()
            .map(|f| f.frame().encoded_len())
            .sum::<usize>();
    let mut out = vec![0; len];
    let mut at = header.encode(&mut out).expect("header fits");
    for frame in frames {
        at += frame.frame().encode(&mut out[at..]).expect("frame fits");
    }
    assert_eq!(at, len);
    out
}

// ---------------------------------------------------------------------------------------------
// Raw builders for malformed input.

fn vi(value: u64) -> Vec<u8> {
    let mut out = vec![0; varint_len(value)];
    varint::encode(value, &mut out);
    out
}

fn raw_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend(vi(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn raw_datagram(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    Header {
        version: VERSION_1,
        flags: 0,
        destination: ConnectionId(7),
    }
    .encode(&mut out)
    .expect("header fits");
    for frame in frames {
        out.extend_from_slice(frame);
    }
    out
}

fn decode_one(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    Frame::decode(VERSION_1, bytes).map(|(frame, _)| frame)
}

/// Handshake body up to and including `features`, with one version.
fn handshake_prefix() -> Vec<u8> {
    let mut body = vec![HandshakeStage::Hello as u8];
    body.extend([9u8; 32]);
    body.extend(42u64.to_be_bytes());
    body.extend([1, VERSION_1]);
    body.extend(vi(0b101));
    body
}

fn sample_frames() -> Vec<OwnedFrame> {
    vec![
        OwnedFrame::Handshake {
            stage: HandshakeStage::Hello,
            node_id: [3; 32],
            source_cid: 0x0102_0304_0506_0708,
            versions: vec![1, 2],
            features: 300,
            params: [Some(65_536), None, Some(30_000)],
        },
        OwnedFrame::Data {
            stream: 5,
            sequence: 1_000,
            flags: DataFlags::WHOLE.0,
            message: 17,
            payload: b"hello".to_vec(),
        },
        OwnedFrame::Ack(Ack {
            stream: StreamId(5),
            next_sequence: 1_001,
            limit_bytes: 1 << 20,
        }),
        OwnedFrame::Nak {
            stream: 5,
            received_end: 70_200,
            ranges: vec![3..5, 9..10, 70_000..70_100],
        },
        OwnedFrame::Gap(Gap {
            stream: StreamId(5),
            sequence_start: 3,
            sequence_end: 5,
            message_end: 2,
            bytes_end: 4_096,
        }),
        OwnedFrame::Heartbeat(Heartbeat {
            id: 77,
            reply: true,
        }),
        OwnedFrame::PathChallenge(0xDEAD_BEEF_0BAD_F00D),
        OwnedFrame::PathResponse(u64::MAX),
        OwnedFrame::Close {
            code: 1,
            reason: "bad frame ✗".to_owned(),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Varints.

#[test]
fn varint_decodes_rfc9000_examples() {
    let cases: [(&[u8], u64); 5] = [
        (
            &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            151_288_809_941_952_652,
        ),
        (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
        (&[0x7b, 0xbd], 15_293),
        (&[0x25], 37),
        (&[0x40, 0x25], 37),
    ];
    for (bytes, value) in cases {
        assert_eq!(
            varint::decode(bytes),
            Ok((value, bytes.len())),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn varint_encodes_minimal_length_at_boundaries() {
    for (value, len) in [
        (0, 1),
        (63, 1),
        (64, 2),
        (16_383, 2),
        (16_384, 4),
        ((1 << 30) - 1, 4),
        (1 << 30, 8),
        (MAX_VARINT, 8),
    ] {
        assert_eq!(vi(value).len(), len, "{value}");
        assert_eq!(varint::decode(&vi(value)), Ok((value, len)));
    }
}

#[test]
fn varint_decode_accepts_non_minimal_encodings() {
    assert_eq!(varint::decode(&[0x80, 0, 0, 5]), Ok((5, 4)));
    assert_eq!(varint::decode(&[0xc0, 0, 0, 0, 0, 0, 0, 0]), Ok((0, 8)));
    let mut ack = vec![0x40, 0x05]; // stream 5, two bytes
    ack.extend([0x80, 0, 0, 9]); // next_sequence 9, four bytes
    ack.push(1);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Ack as u8, &ack)),
        Ok(Frame::Ack(Ack {
            stream: StreamId(5),
            next_sequence: 9,
            limit_bytes: 1
        }))
    );
}

#[test]
fn varint_decode_rejects_truncated_encodings() {
    assert_eq!(
        varint::decode(&[]),
        Err(DecodeError::Truncated { needed: 1, have: 0 })
    );
    assert_eq!(
        varint::decode(&[0x40]),
        Err(DecodeError::Truncated { needed: 2, have: 1 })
    );
    assert_eq!(
        varint::decode(&[0xc0, 1, 2]),
        Err(DecodeError::Truncated { needed: 8, have: 3 })
    );
}

proptest! {
    #[test]
    fn varint_round_trips(value in varint_value()) {
        let bytes = vi(value);
        prop_assert_eq!(bytes.len(), varint_len(value));
        prop_assert_eq!(varint::decode(&bytes), Ok((value, bytes.len())));
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips.

proptest! {
    #[test]
    fn handshake_round_trips(frame in handshake()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn data_round_trips(frame in data()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn ack_round_trips(frame in ack()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn nak_round_trips(frame in nak()) {
        assert_round_trip(&frame.frame());
        // A decoded (wire-backed) NAK re-encodes to the same bytes.
        let original = frame.frame();
        let mut out = vec![0; original.encoded_len()];
        original.encode(&mut out).expect("fits");
        let (decoded, _) = Frame::decode(VERSION_1, &out).expect("decodes");
        let is_wire = matches!(decoded, Frame::Nak(Nak { ranges: RangeList::Wire { .. }, .. }));
        prop_assert!(is_wire, "decoded NAK is not wire-backed");
        let mut again = vec![0; decoded.encoded_len()];
        decoded.encode(&mut again).expect("fits");
        prop_assert_eq!(again, out);
    }

    #[test]
    fn gap_round_trips(frame in gap()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn heartbeat_round_trips(frame in heartbeat()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn path_challenge_round_trips(token in any::<u64>()) {
        assert_round_trip(&Frame::PathChallenge(token));
    }

    #[test]
    fn path_response_round_trips(token in any::<u64>()) {
        assert_round_trip(&Frame::PathResponse(token));
    }

    #[test]
    fn close_round_trips(frame in close()) { assert_round_trip(&frame.frame()); }

    #[test]
    fn header_round_trips(header in header()) {
        let mut out = [0u8; HEADER_LEN];
        prop_assert_eq!(header.encode(&mut out), Ok(HEADER_LEN));
        prop_assert_eq!(Header::decode(&out), Ok(header));
    }

    #[test]
    fn datagram_round_trips_coalesced_frames(
        header in header(),
        frames in vec(any_frame(), 1..12),
    ) {
        let bytes = encode_datagram(&header, &frames);
        let (decoded_header, decoded) = decode_datagram(&bytes).expect("datagram decodes");
        prop_assert_eq!(decoded_header, header);
        let decoded: Vec<_> = decoded.collect();
        prop_assert_eq!(decoded.len(), frames.len());
        for (decoded, owned) in decoded.iter().zip(&frames) {
            prop_assert_eq!(decoded, &Ok(owned.frame()));
        }
    }
}

#[test]
fn frame_encoded_len_counts_long_body_length_prefix() {
    let payload = vec![7u8; 20_000];
    let frame = Frame::Data(Data {
        stream: StreamId(1),
        sequence: 2,
        flags: DataFlags::FIRST,
        message: 3,
        payload: &payload,
    });
    assert_eq!(frame.encoded_len(), 1 + 4 + 1 + 1 + 1 + 1 + payload.len());
    assert_round_trip(&frame);
}

// ---------------------------------------------------------------------------------------------
// Truncation.

#[test]
fn decode_rejects_truncated_header() {
    let bytes = raw_datagram(&[]);
    for cut in 0..HEADER_LEN {
        assert_eq!(
            Header::decode(&bytes[..cut]),
            Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                have: cut
            })
        );
        assert_eq!(
            decode_datagram(&bytes[..cut]).map(|(header, _)| header),
            Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                have: cut
            })
        );
    }
}

#[test]
fn decode_rejects_truncated_datagram_at_every_prefix() {
    let header = Header {
        version: VERSION_1,
        flags: 0,
        destination: ConnectionId(99),
    };
    let frames = sample_frames();
    let bytes = encode_datagram(&header, &frames);
    let mut ends = vec![HEADER_LEN];
    for frame in &frames {
        ends.push(ends[ends.len() - 1] + frame.frame().encoded_len());
    }
    for cut in HEADER_LEN..bytes.len() {
        let (_, decoded) = decode_datagram(&bytes[..cut]).expect("header intact");
        let decoded: Vec<_> = decoded.collect();
        let complete = ends.iter().filter(|&&end| end <= cut).count() - 1;
        let at_boundary = ends.contains(&cut);
        assert_eq!(
            decoded.len(),
            complete + usize::from(!at_boundary),
            "cut {cut}"
        );
        for (decoded, owned) in decoded.iter().zip(&frames[..complete]) {
            assert_eq!(decoded, &Ok(owned.frame()), "cut {cut}");
        }
        if !at_boundary {
            let error = decoded[complete]
                .as_ref()
                .expect_err("partial frame is an error");
            assert!(
                matches!(
                    error,
                    DecodeError::Truncated { .. }
                        | DecodeError::BadLength {
                            field: "frame.body_len",
                            ..
                        }
                ),
                "cut {cut}: {error:?}"
            );
        }
    }
}

#[test]
fn decode_rejects_truncated_frame_at_every_prefix() {
    for owned in sample_frames() {
        let frame = owned.frame();
        let mut bytes = vec![0; frame.encoded_len()];
        frame.encode(&mut bytes).expect("fits");
        let envelope = 1 + varint_len((bytes.len() - 2) as u64);
        for cut in 0..bytes.len() {
            let expected = if cut < envelope {
                DecodeError::Truncated {
                    needed: if cut == 0 { 1 } else { envelope - 1 },
                    have: 0,
                }
            } else {
                DecodeError::BadLength {
                    field: "frame.body_len",
                    len: (bytes.len() - envelope) as u64,
                    have: cut - envelope,
                }
            };
            match Frame::decode(VERSION_1, &bytes[..cut]) {
                Err(DecodeError::Truncated { .. }) if cut < envelope => {}
                result => assert_eq!(result, Err(expected), "{frame:?} cut at {cut}"),
            }
        }
    }
}

#[test]
fn decode_rejects_truncated_body_fields() {
    // Frames without an optional tail: every strict prefix of the body lacks a required field.
    let frames = [
        OwnedFrame::Handshake {
            stage: HandshakeStage::Accept,
            node_id: [1; 32],
            source_cid: 5,
            versions: vec![1],
            features: 1 << 20,
            params: [None; 3],
        },
        OwnedFrame::Data {
            stream: 300,
            sequence: 1 << 40,
            flags: 3,
            message: 1 << 35,
            payload: vec![],
        },
        OwnedFrame::Ack(Ack {
            stream: StreamId(1),
            next_sequence: 2,
            limit_bytes: 1 << 31,
        }),
        OwnedFrame::Nak {
            stream: 1,
            received_end: 0,
            ranges: vec![1..2, 100..200, 1 << 35..1 << 36],
        },
        OwnedFrame::Gap(Gap {
            stream: StreamId(1),
            sequence_start: 10,
            sequence_end: 20,
            message_end: 3,
            bytes_end: 1 << 16,
        }),
        OwnedFrame::Heartbeat(Heartbeat {
            id: 1 << 20,
            reply: false,
        }),
        OwnedFrame::PathChallenge(1),
        OwnedFrame::PathResponse(2),
        OwnedFrame::Close {
            code: 0,
            reason: String::new(),
        },
    ];
    for owned in &frames {
        let frame = owned.frame();
        let mut bytes = vec![0; frame.encoded_len()];
        frame.encode(&mut bytes).expect("fits");
        let body = &bytes[2..];
        assert_eq!(
            bytes[1] as usize,
            body.len(),
            "test bodies use a one-byte length"
        );
        for cut in 0..body.len() {
            let cut_frame = raw_frame(bytes[0], &body[..cut]);
            let result = decode_one(&cut_frame);
            assert!(
                matches!(result, Err(DecodeError::Truncated { .. })),
                "{frame:?} body cut at {cut}: {result:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header.

#[test]
fn decode_rejects_wrong_magic() {
    let mut bytes = raw_datagram(&[]);
    bytes[0] = b'Q';
    assert_eq!(
        Header::decode(&bytes),
        Err(DecodeError::BadMagic([b'Q', b'H']))
    );
    assert_eq!(
        decode_datagram(&bytes).err(),
        Some(DecodeError::BadMagic([b'Q', b'H']))
    );
}

#[test]
fn decode_rejects_unsupported_version() {
    for version in [0, 2, 0x7f, 0xff] {
        let mut bytes = raw_datagram(&[]);
        bytes[2] = version;
        assert_eq!(
            Header::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(version))
        );
        assert_eq!(
            Frame::decode(version, &raw_frame(FrameKind::PathChallenge as u8, &[0; 8])),
            Err(DecodeError::UnsupportedVersion(version))
        );
    }
}

#[test]
fn header_carries_unknown_flags() {
    let header = Header {
        version: VERSION_1,
        flags: 0xff,
        destination: ConnectionId(u64::MAX),
    };
    let mut bytes = [0; HEADER_LEN];
    header.encode(&mut bytes).expect("fits");
    assert_eq!(&bytes, b"PH\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff");
    assert_eq!(Header::decode(&bytes), Ok(header));
}

// ---------------------------------------------------------------------------------------------
// Lengths and sizes.

#[test]
fn decode_rejects_bad_length() {
    let mut bytes = raw_frame(FrameKind::Heartbeat as u8, &[1, 0]);
    bytes[1] = 3;
    assert_eq!(
        decode_one(&bytes),
        Err(DecodeError::BadLength {
            field: "frame.body_len",
            len: 3,
            have: 2
        })
    );
    // Close reason length beyond the body.
    let mut close = vec![0, 1];
    close.extend(vi(10));
    close.extend(b"abc");
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Close as u8, &close)),
        Err(DecodeError::BadLength {
            field: "close.reason_len",
            len: 10,
            have: 3
        })
    );
    // Handshake parameter length beyond the body.
    let mut handshake = handshake_prefix();
    handshake.extend([0x01, 5, 0x01]);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Handshake as u8, &handshake)),
        Err(DecodeError::BadLength {
            field: "handshake.param_len",
            len: 5,
            have: 1
        })
    );
}

#[test]
fn decode_rejects_oversized_datagram() {
    let mut bytes = raw_datagram(&[]);
    bytes.resize(MAX_DATAGRAM_BYTES + 1, 0);
    assert_eq!(
        decode_datagram(&bytes).err(),
        Some(DecodeError::Oversized {
            field: "datagram",
            len: MAX_DATAGRAM_BYTES as u64 + 1,
            max: MAX_DATAGRAM_BYTES as u64,
        })
    );
    bytes.truncate(MAX_DATAGRAM_BYTES);
    assert!(decode_datagram(&bytes).is_ok());
}

#[test]
fn decode_rejects_oversized_frame_body_len() {
    let big = MAX_DATAGRAM_BYTES as u64 + 1;
    let mut bytes = vec![FrameKind::Data as u8];
    bytes.extend(vi(big));
    bytes.resize(bytes.len() + big as usize, 0);
    let expected = DecodeError::Oversized {
        field: "frame.body_len",
        len: big,
        max: MAX_DATAGRAM_BYTES as u64,
    };
    assert_eq!(decode_one(&bytes), Err(expected));
    // A huge claim on a short input is oversized too, not merely a bad length.
    let mut short = vec![FrameKind::Data as u8];
    short.extend(vi(MAX_VARINT));
    assert!(matches!(
        decode_one(&short),
        Err(DecodeError::Oversized {
            len: MAX_VARINT,
            ..
        })
    ));
}

#[test]
fn decode_rejects_oversized_nak_count() {
    let mut body = vi(1);
    body.extend(vi(0));
    body.extend(vi(MAX_NAK_RANGES as u64 + 1));
    for i in 0..=MAX_NAK_RANGES as u64 {
        body.extend(vi(i * 10));
        body.extend(vi(1));
    }
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Nak as u8, &body)),
        Err(DecodeError::Oversized {
            field: "nak.count",
            len: MAX_NAK_RANGES as u64 + 1,
            max: MAX_NAK_RANGES as u64,
        })
    );
}

#[test]
fn decode_rejects_oversized_close_reason() {
    let mut body = vec![0, 0];
    body.extend(vi(MAX_REASON_BYTES as u64 + 1));
    body.resize(body.len() + MAX_REASON_BYTES + 1, b'x');
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Close as u8, &body)),
        Err(DecodeError::Oversized {
            field: "close.reason",
            len: MAX_REASON_BYTES as u64 + 1,
            max: MAX_REASON_BYTES as u64,
        })
    );
}

#[test]
fn decode_rejects_oversized_version_count() {
    let mut body = handshake_prefix();
    let count_at = 1 + 32 + 8;
    body.truncate(count_at);
    body.push(MAX_VERSIONS as u8 + 1);
    body.extend([1; MAX_VERSIONS + 1]);
    body.push(0);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
        Err(DecodeError::Oversized {
            field: "handshake.versions",
            len: MAX_VERSIONS as u64 + 1,
            max: MAX_VERSIONS as u64,
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Unknown kinds and parameters.

#[test]
fn decode_rejects_unknown_mandatory_frame_kind() {
    for kind in [0x00, 0x0a, 0x42, 0x7f] {
        let bytes = raw_datagram(&[&raw_frame(kind, &[1, 2, 3])]);
        let (_, mut frames) = decode_datagram(&bytes).expect("header");
        assert_eq!(
            frames.next(),
            Some(Err(DecodeError::UnknownFrameKind(kind)))
        );
        assert_eq!(frames.next(), None);
    }
}

#[test]
fn decode_skips_unknown_optional_frame_kind() {
    let ack = raw_frame(FrameKind::Ack as u8, &[1, 2, 3]);
    let unknown = raw_frame(0x85, &[0xff; 70]);
    let heartbeat = raw_frame(FrameKind::Heartbeat as u8, &[4, 1]);
    let bytes = raw_datagram(&[&ack, &unknown, &heartbeat]);
    let (_, frames) = decode_datagram(&bytes).expect("header");
    let frames: Vec<_> = frames.collect();
    assert_eq!(
        frames,
        vec![
            Ok(Frame::Ack(Ack {
                stream: StreamId(1),
                next_sequence: 2,
                limit_bytes: 3
            })),
            Ok(Frame::Unknown {
                kind: 0x85,
                len: 70
            }),
            Ok(Frame::Heartbeat(Heartbeat { id: 4, reply: true })),
        ]
    );
    assert_eq!(
        frames[1].as_ref().map(Frame::encoded_len),
        Ok(unknown.len())
    );
}

#[test]
fn decode_skips_unknown_optional_frame_with_non_minimal_length() {
    let bytes = [0x85, 0x40, 0x01, 0xaa, FrameKind::Heartbeat as u8, 2, 1, 0];
    assert_eq!(
        Frame::decode(VERSION_1, &bytes),
        Ok((Frame::Unknown { kind: 0x85, len: 1 }, 4))
    );
    fuzzing::decode_frame(&bytes);
    let datagram = raw_datagram(&[&bytes]);
    fuzzing::decode_datagram(&datagram);
}

#[test]
fn encode_rejects_unknown_frame() {
    let frame = Frame::Unknown { kind: 0x85, len: 0 };
    assert_eq!(
        frame.encode(&mut [0; 8]),
        Err(EncodeError::FieldTooLarge {
            field: "frame.kind"
        })
    );
}

#[test]
fn decode_skips_unknown_optional_handshake_param() {
    let mut body = handshake_prefix();
    body.extend([0x81, 3, 0xaa, 0xbb, 0xcc]); // optional, unknown
    body.extend([0x01, 4, 0x80, 0x01, 0x00, 0x00]); // window_bytes = 65536
    body.extend([0xff, 0]); // optional, unknown, empty
    let bytes = raw_frame(FrameKind::Handshake as u8, &body);
    let frame = decode_one(&bytes).expect("decodes");
    let Frame::Handshake(handshake) = frame else {
        panic!("not a handshake: {frame:?}")
    };
    assert_eq!(handshake.window_bytes, Some(65_536));
    assert_eq!(handshake.max_datagram_bytes, None);
    assert_eq!(handshake.idle_timeout_ms, None);
    assert_eq!(handshake.versions, &[VERSION_1]);
    assert_eq!(handshake.features, 0b101);
}

#[test]
fn decode_rejects_unknown_mandatory_handshake_param() {
    for id in [0x00, 0x04, 0x7f] {
        let mut body = handshake_prefix();
        body.extend([id, 1, 0]);
        assert_eq!(
            decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
            Err(DecodeError::UnknownParameter(id))
        );
    }
}

#[test]
fn decode_rejects_duplicate_handshake_param() {
    let mut body = handshake_prefix();
    body.extend([0x03, 1, 10, 0x03, 1, 11]);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
        Err(DecodeError::FieldOutOfRange {
            field: "handshake.idle_timeout_ms"
        })
    );
}

#[test]
fn decode_rejects_param_value_not_filling_len() {
    for value in [&[][..], &[5, 0], &[0x40], &[0x40, 1, 2]] {
        let mut body = handshake_prefix();
        body.push(0x02);
        body.extend(vi(value.len() as u64));
        body.extend_from_slice(value);
        assert_eq!(
            decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
            Err(DecodeError::FieldOutOfRange {
                field: "handshake.max_datagram_bytes"
            }),
            "{value:02x?}"
        );
    }
}

#[test]
fn decode_skips_trailing_body_bytes() {
    let mut body = vec![9, 1, 2]; // ack: stream 9, next 1, limit 2
    body.extend([0xee; 5]);
    let frame = raw_frame(FrameKind::Ack as u8, &body);
    let heartbeat = raw_frame(FrameKind::Heartbeat as u8, &[3, 0xfe]);
    let bytes = raw_datagram(&[&frame, &heartbeat]);
    let (_, frames) = decode_datagram(&bytes).expect("header");
    assert_eq!(
        frames.collect::<Vec<_>>(),
        vec![
            Ok(Frame::Ack(Ack {
                stream: StreamId(9),
                next_sequence: 1,
                limit_bytes: 2
            })),
            // Heartbeat flag bits other than bit 0 are ignored.
            Ok(Frame::Heartbeat(Heartbeat {
                id: 3,
                reply: false
            })),
        ]
    );
}

#[test]
fn decode_takes_rest_of_body_as_data_payload() {
    let body = [1, 2, DataFlags::LAST.0, 9, b'a', b'b', b'c'];
    let bytes = raw_frame(FrameKind::Data as u8, &body);
    let frame = decode_one(&bytes).expect("decodes");
    let Frame::Data(data) = frame else {
        panic!("not data: {frame:?}")
    };
    assert_eq!(data.payload, b"abc");
    assert_eq!(data.message, 9);
    assert!(data.flags.is_last() && !data.flags.is_first());
}

// ---------------------------------------------------------------------------------------------
// Field ranges.

#[test]
fn decode_rejects_stream_above_u32() {
    let mut body = vi(u64::from(u32::MAX) + 1);
    body.extend([0, 0]);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Ack as u8, &body)),
        Err(DecodeError::FieldOutOfRange { field: "stream" })
    );
    let mut body = vi(u64::from(u32::MAX));
    body.extend([0, 0]);
    assert!(decode_one(&raw_frame(FrameKind::Ack as u8, &body)).is_ok());
}

#[test]
fn decode_rejects_bad_handshake_stage() {
    for stage in [0, 3, 0xff] {
        let mut body = handshake_prefix();
        body[0] = stage;
        assert_eq!(
            decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
            Err(DecodeError::FieldOutOfRange {
                field: "handshake.stage"
            })
        );
    }
}

#[test]
fn decode_rejects_zero_versions() {
    let mut body = handshake_prefix();
    body.truncate(1 + 32 + 8);
    body.extend([0, 0]);
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Handshake as u8, &body)),
        Err(DecodeError::FieldOutOfRange {
            field: "handshake.versions"
        })
    );
}

#[test]
fn decode_rejects_zero_nak_count() {
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Nak as u8, &[1, 0, 0])),
        Err(DecodeError::FieldOutOfRange { field: "nak.count" })
    );
}

#[test]
fn decode_rejects_empty_nak_range() {
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Nak as u8, &[1, 0, 2, 5, 1, 9, 0])),
        Err(DecodeError::FieldOutOfRange { field: "nak.len" })
    );
}

#[test]
fn decode_rejects_empty_gap() {
    for (start, end) in [(5, 5), (6, 5)] {
        assert_eq!(
            decode_one(&raw_frame(FrameKind::Gap as u8, &[1, start, end, 0, 0])),
            Err(DecodeError::FieldOutOfRange {
                field: "gap.sequence_end"
            })
        );
    }
}

#[test]
fn decode_rejects_invalid_utf8_reason() {
    let body = [0, 2, 2, 0xc3, 0x28];
    assert_eq!(
        decode_one(&raw_frame(FrameKind::Close as u8, &body)),
        Err(DecodeError::FieldOutOfRange {
            field: "close.reason"
        })
    );
}

#[test]
fn close_code_round_trips_stable_values() {
    for (code, value) in [
        (CloseCode::Normal, 0),
        (CloseCode::ProtocolViolation, 1),
        (CloseCode::VersionMismatch, 2),
        (CloseCode::StreamLimit, 3),
        (CloseCode::Refused, 4),
        (CloseCode::Other(0xbeef), 0xbeef),
    ] {
        assert_eq!(code.to_u16(), value);
        assert_eq!(CloseCode::from_u16(value), code);
    }
}

// ---------------------------------------------------------------------------------------------
// Iterator.

#[test]
fn frames_stop_after_first_error() {
    let good = raw_frame(FrameKind::Heartbeat as u8, &[1, 0]);
    let bad = raw_frame(FrameKind::Nak as u8, &[1, 0, 0]);
    let bytes = raw_datagram(&[&good, &bad, &good]);
    let (_, mut frames) = decode_datagram(&bytes).expect("header");
    assert_eq!(
        frames.next(),
        Some(Ok(Frame::Heartbeat(Heartbeat {
            id: 1,
            reply: false
        })))
    );
    assert_eq!(
        frames.next(),
        Some(Err(DecodeError::FieldOutOfRange { field: "nak.count" }))
    );
    assert_eq!(frames.next(), None);
    assert_eq!(frames.next(), None);
}

#[test]
fn frames_yield_nothing_for_empty_body() {
    let bytes = raw_datagram(&[]);
    let (_, mut frames) = decode_datagram(&bytes).expect("header");
    assert_eq!(frames.next(), None);
}

// ---------------------------------------------------------------------------------------------
// Encoding errors.

#[test]
fn encode_rejects_short_buffer() {
    for owned in sample_frames() {
        let frame = owned.frame();
        let len = frame.encoded_len();
        let mut out = vec![0; len];
        for short in 0..len {
            assert_eq!(
                frame.encode(&mut out[..short]),
                Err(EncodeError::BufferTooSmall {
                    needed: len,
                    have: short
                })
            );
        }
    }
    let header = Header {
        version: VERSION_1,
        flags: 0,
        destination: ConnectionId(1),
    };
    assert_eq!(
        header.encode(&mut [0; HEADER_LEN - 1]),
        Err(EncodeError::BufferTooSmall {
            needed: HEADER_LEN,
            have: HEADER_LEN - 1
        })
    );
}

#[test]
fn encode_rejects_varint_above_max() {
    let too_big = MAX_VARINT + 1;
    let frames = [
        (
            Frame::Ack(Ack {
                stream: StreamId(0),
                next_sequence: too_big,
                limit_bytes: 0,
            }),
            "ack.next_sequence",
        ),
        (
            Frame::Heartbeat(Heartbeat {
                id: u64::MAX,
                reply: false,
            }),
            "heartbeat.id",
        ),
        (
            Frame::Data(Data {
                stream: StreamId(0),
                sequence: too_big,
                flags: DataFlags::WHOLE,
                message: 0,
                payload: &[],
            }),
            "data.sequence",
        ),
        (
            Frame::Gap(Gap {
                stream: StreamId(0),
                sequence_start: 0,
                sequence_end: 1,
                message_end: 0,
                bytes_end: too_big,
            }),
            "gap.bytes_end",
        ),
        (
            Frame::Nak(Nak {
                stream: StreamId(0),
                received_end: 0,
                ranges: RangeList::Slice(&[Range {
                    start: too_big,
                    end: too_big + 1,
                }]),
            }),
            "nak.start",
        ),
        (
            Frame::Handshake(Handshake {
                stage: HandshakeStage::Hello,
                node_id: NodeId([0; 32]),
                source_cid: ConnectionId(0),
                versions: &[1],
                features: 0,
                window_bytes: None,
                max_datagram_bytes: None,
                idle_timeout_ms: Some(too_big),
            }),
            "handshake.idle_timeout_ms",
        ),
    ];
    for (frame, field) in frames {
        assert_eq!(
            frame.encode(&mut [0; 128]),
            Err(EncodeError::FieldTooLarge { field })
        );
    }
}

#[test]
fn encode_rejects_nak_count_outside_limits() {
    let ranges: Vec<Range<u64>> = (0..=MAX_NAK_RANGES as u64)
        .map(|i| i * 2..i * 2 + 1)
        .collect();
    for count in [0, MAX_NAK_RANGES + 1] {
        let frame = Frame::Nak(Nak {
            stream: StreamId(0),
            received_end: 0,
            ranges: RangeList::Slice(&ranges[..count]),
        });
        assert_eq!(
            frame.encode(&mut [0; 1024]),
            Err(EncodeError::FieldTooLarge { field: "nak.count" })
        );
    }
    assert_round_trip(&Frame::Nak(Nak {
        stream: StreamId(0),
        received_end: 1 << 40,
        ranges: RangeList::Slice(&ranges[..MAX_NAK_RANGES]),
    }));
    let empty = Frame::Nak(Nak {
        stream: StreamId(0),
        received_end: 0,
        ranges: RangeList::Slice(&[Range { start: 4, end: 4 }]),
    });
    assert_eq!(
        empty.encode(&mut [0; 64]),
        Err(EncodeError::FieldTooLarge { field: "nak.range" })
    );
}

#[test]
fn encode_rejects_long_reason() {
    let reason = "x".repeat(MAX_REASON_BYTES + 1);
    let frame = Frame::Close(Close {
        code: CloseCode::Normal,
        reason: &reason,
    });
    assert_eq!(
        frame.encode(&mut [0; 1024]),
        Err(EncodeError::FieldTooLarge {
            field: "close.reason"
        })
    );
    assert_round_trip(&Frame::Close(Close {
        code: CloseCode::Normal,
        reason: &reason[..MAX_REASON_BYTES],
    }));
}

#[test]
fn encode_rejects_version_count_outside_limits() {
    let versions = [1u8; MAX_VERSIONS + 1];
    for count in [0, MAX_VERSIONS + 1] {
        let frame = Frame::Handshake(Handshake {
            stage: HandshakeStage::Hello,
            node_id: NodeId([0; 32]),
            source_cid: ConnectionId(0),
            versions: &versions[..count],
            features: 0,
            window_bytes: None,
            max_datagram_bytes: None,
            idle_timeout_ms: None,
        });
        assert_eq!(
            frame.encode(&mut [0; 128]),
            Err(EncodeError::FieldTooLarge {
                field: "handshake.versions"
            })
        );
    }
}

#[test]
fn encode_rejects_empty_gap() {
    let frame = Frame::Gap(Gap {
        stream: StreamId(0),
        sequence_start: 5,
        sequence_end: 5,
        message_end: 0,
        bytes_end: 0,
    });
    assert_eq!(
        frame.encode(&mut [0; 64]),
        Err(EncodeError::FieldTooLarge {
            field: "gap.sequence_end"
        })
    );
}

#[test]
fn encode_rejects_body_above_max_datagram() {
    let payload = vec![0; MAX_DATAGRAM_BYTES];
    let frame = Frame::Data(Data {
        stream: StreamId(0),
        sequence: 0,
        flags: DataFlags::WHOLE,
        message: 0,
        payload: &payload,
    });
    assert_eq!(
        frame.encode(&mut vec![0; 2 * MAX_DATAGRAM_BYTES]),
        Err(EncodeError::FieldTooLarge {
            field: "frame.body_len"
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzz harnesses on arbitrary input.

proptest! {
    #[test]
    fn fuzzing_harnesses_survive_arbitrary_bytes(bytes in vec(any::<u8>(), 0..600)) {
        fuzzing::decode_header(&bytes);
        fuzzing::decode_frame(&bytes);
        fuzzing::decode_datagram(&bytes);
    }

    #[test]
    fn fuzzing_harnesses_survive_arbitrary_frames_after_a_header(
        kinds in vec(prop_oneof![1..=9u8, any::<u8>()], 1..6),
        bodies in vec(vec(any::<u8>(), 0..80), 6),
    ) {
        // Valid envelopes around random bodies reach the body decoders far more often.
        let frames: Vec<Vec<u8>> =
            kinds.iter().zip(&bodies).map(|(&kind, body)| raw_frame(kind, body)).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let bytes = raw_datagram(&refs);
        fuzzing::decode_datagram(&bytes);
        for frame in &frames {
            fuzzing::decode_frame(frame);
        }
    }

    #[test]
    fn fuzzing_harnesses_survive_mutated_datagrams(
        header in header(),
        frames in vec(any_frame(), 1..6),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_datagram(&header, &frames);
        for (at, byte) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        fuzzing::decode_datagram(&bytes);
        fuzzing::decode_frame(&bytes[HEADER_LEN..]);
        let cut = cut.index(bytes.len() + 1);
        fuzzing::decode_datagram(&bytes[..cut]);
    }

    #[test]
    fn decode_never_consumes_more_than_given(bytes in vec(any::<u8>(), 0..600)) {
        if let Ok((_, consumed)) = Frame::decode(VERSION_1, &bytes) {
            prop_assert!(consumed <= bytes.len());
        }
        if let Ok((_, frames)) = decode_datagram(&bytes) {
            prop_assert!(frames.filter_map(Result::err).count() <= 1);
        }
    }
}
