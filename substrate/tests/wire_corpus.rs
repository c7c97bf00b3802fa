//! Replays the committed fuzz corpora (`substrate/fuzz/corpus/<target>/`) through the matching
//! `substrate::wire::fuzzing` harness, so CI checks them without cargo-fuzz or nightly.
//!
//! The seed files are written by the ignored test `corpus_seeds_regenerate`:
//! `cargo test -p phyla-substrate --test wire_corpus -- --ignored corpus_seeds_regenerate`.

use std::fs;
use std::path::{Path, PathBuf};

use substrate::id::{ConnectionId, NodeId, StreamId};
use substrate::wire::{
    Ack, Close, CloseCode, Data, DataFlags, Frame, FrameKind, Gap, HEADER_LEN, Handshake,
    HandshakeStage, Header, Heartbeat, MAX_NAK_RANGES, MAX_REASON_BYTES, MAX_VERSIONS, Nak,
    RangeList, VERSION_1, fuzzing,
};

/// A `substrate::wire::fuzzing` harness.
type Harness = fn(&[u8]);

/// Each fuzz target and the harness it calls.
const TARGETS: [(&str, Harness); 3] = [
    ("datagram", fuzzing::decode_datagram),
    ("frame", fuzzing::decode_frame),
    ("header", fuzzing::decode_header),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn corpus_replays_through_harnesses() {
    for (target, harness) in TARGETS {
        let dir = corpus_dir(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("readable corpus entry").path();
            let input = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A panic here names the file through the default hook's message and this print.
            println!("{target}: {}", path.display());
            harness(&input);
            replayed += 1;
        }
        assert!(replayed >= 10, "corpus {target} has only {replayed} inputs");
    }
}

/// Regenerates the seed files (named `seed-*`); inputs found by fuzzing keep their hash names.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn corpus_seeds_regenerate() {
    let frames = seed_frames();
    let header = header_bytes(VERSION_1, 0, 0x1122_3344_5566_7788);

    let mut datagrams: Vec<(String, Vec<u8>)> = frames
        .iter()
        .map(|(name, frame)| (name.clone(), [&header[..], frame].concat()))
        .collect();
    let valid: Vec<u8> = frames
        .iter()
        .filter(|(name, _)| name.starts_with("valid-"))
        .flat_map(|(_, frame)| frame.clone())
        .collect();
    datagrams.push(("valid-coalesced-all".into(), [&header[..], &valid].concat()));
    datagrams.push(("valid-empty-body".into(), header.to_vec()));
    datagrams.push(("bad-magic".into(), [b"XH\x01\x00", &[0u8; 8][..]].concat()));
    datagrams.push(("bad-version".into(), header_bytes(2, 0, 1).to_vec()));
    datagrams.push(("truncated-header".into(), header[..7].to_vec()));
    datagrams.push((
        "truncated-coalesced".into(),
        [&header[..], &valid[..valid.len() / 2]].concat(),
    ));

    let headers: Vec<(String, Vec<u8>)> = vec![
        ("valid".into(), header.to_vec()),
        (
            "valid-flags".into(),
            header_bytes(VERSION_1, 0xff, u64::MAX).to_vec(),
        ),
        ("valid-none".into(), header_bytes(VERSION_1, 0, 0).to_vec()),
        ("valid-with-frames".into(), [&header[..], &valid].concat()),
        ("bad-magic".into(), [b"PX\x01\x00", &[0u8; 8][..]].concat()),
        ("bad-version-0".into(), header_bytes(0, 0, 1).to_vec()),
        ("bad-version-2".into(), header_bytes(2, 0, 1).to_vec()),
        ("bad-version-255".into(), header_bytes(255, 0, 1).to_vec()),
        ("truncated-0".into(), vec![]),
        ("truncated-2".into(), b"PH".to_vec()),
        ("truncated-11".into(), header[..11].to_vec()),
    ];

    for (target, seeds) in [
        ("frame", &frames),
        ("datagram", &datagrams),
        ("header", &headers),
    ] {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        for entry in fs::read_dir(&dir).expect("read corpus dir") {
            let path = entry.expect("entry").path();
            let is_seed = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
            if is_seed {
                fs::remove_file(&path).expect("remove old seed");
            }
        }
        for (name, bytes) in seeds.iter() {
            fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        }
    }
}

/// Valid frames of every kind and one or more malformed frames per decode-error class.
fn seed_frames() -> Vec<(String, Vec<u8>)> {
    let versions = [1u8, 2, 3];
    let reason = "peer sent garbage";
    let ranges = [3..5, 9..10, 70_000..70_100];
    let valid = [
        (
            "handshake-hello",
            Frame::Handshake(Handshake {
                stage: HandshakeStage::Hello,
                node_id: NodeId::from_u64(7),
                source_cid: ConnectionId(0xabcd),
                versions: &versions,
                features: 0b1011,
                window_bytes: Some(1 << 20),
                max_datagram_bytes: Some(1_472),
                idle_timeout_ms: Some(30_000),
            }),
        ),
        (
            "handshake-accept",
            Frame::Handshake(Handshake {
                stage: HandshakeStage::Accept,
                node_id: NodeId::from_u64(8),
                source_cid: ConnectionId(1),
                versions: &versions[..1],
                features: 0,
                window_bytes: None,
                max_datagram_bytes: None,
                idle_timeout_ms: None,
            }),
        ),
        (
            "data",
            Frame::Data(Data {
                stream: StreamId(3),
                sequence: 1 << 33,
                flags: DataFlags::WHOLE,
                message: 1 << 20,
                payload: b"hello, phyla",
            }),
        ),
        (
            "data-empty",
            Frame::Data(Data {
                stream: StreamId(u32::MAX),
                sequence: 0,
                flags: DataFlags::FIRST,
                message: 0,
                payload: b"",
            }),
        ),
        (
            "ack",
            Frame::Ack(Ack {
                stream: StreamId(3),
                next_sequence: 100,
                limit_bytes: 1 << 40,
            }),
        ),
        (
            "nak",
            Frame::Nak(Nak {
                stream: StreamId(3),
                received_end: 1 << 21,
                ranges: RangeList::Slice(&ranges),
            }),
        ),
        (
            "gap",
            Frame::Gap(Gap {
                stream: StreamId(3),
                sequence_start: 5,
                sequence_end: 9,
                message_end: 2,
                bytes_end: 16_384,
            }),
        ),
        (
            "heartbeat",
            Frame::Heartbeat(Heartbeat {
                id: 12_345,
                reply: false,
            }),
        ),
        (
            "heartbeat-reply",
            Frame::Heartbeat(Heartbeat {
                id: 12_345,
                reply: true,
            }),
        ),
        (
            "path-challenge",
            Frame::PathChallenge(0x0123_4567_89ab_cdef),
        ),
        ("path-response", Frame::PathResponse(0x0123_4567_89ab_cdef)),
        (
            "close",
            Frame::Close(Close {
                code: CloseCode::ProtocolViolation,
                reason,
            }),
        ),
        (
            "close-other-code",
            Frame::Close(Close {
                code: CloseCode::Other(999),
                reason: "",
            }),
        ),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = valid
        .iter()
        .map(|(name, frame)| {
            let mut out = vec![0; frame.encoded_len()];
            frame.encode(&mut out).expect("seed frame encodes");
            (format!("valid-{name}"), out)
        })
        .collect();

    let handshake = handshake_prefix(1);
    let raw = |kind: FrameKind, body: &[u8]| raw_frame(kind as u8, body);
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "valid-unknown-optional-kind",
            raw_frame(0x9f, b"from the future"),
        ),
        // Found by fuzzing: a skipped frame whose length prefix is not minimal.
        (
            "valid-unknown-kind-non-minimal-len",
            vec![0x85, 0x40, 0x01, 0x00],
        ),
        (
            "valid-trailing-body-bytes",
            raw(FrameKind::Ack, &[1, 2, 3, 0xee, 0xee]),
        ),
        (
            "valid-non-minimal-varints",
            raw(FrameKind::Ack, &[0x40, 1, 0x80, 0, 0, 2, 3]),
        ),
        (
            "valid-unknown-optional-param",
            raw(
                FrameKind::Handshake,
                &[&handshake[..], &[0x85, 2, 0xaa, 0xbb, 0x01, 1, 9]].concat(),
            ),
        ),
        ("truncated-envelope", vec![FrameKind::Data as u8, 0x40]),
        ("truncated-body", raw(FrameKind::Gap, &[1, 2])),
        ("bad-length", vec![FrameKind::Heartbeat as u8, 9, 1, 0]),
        (
            "bad-reason-length",
            raw(FrameKind::Close, &[0, 0, 10, b'a']),
        ),
        (
            "oversized-body-len",
            vec![FrameKind::Data as u8, 0x80, 0x01, 0x00, 0x00],
        ),
        ("unknown-mandatory-kind", raw_frame(0x3c, &[1, 2, 3])),
        (
            "unknown-mandatory-param",
            raw(
                FrameKind::Handshake,
                &[&handshake[..], &[0x05, 1, 0]].concat(),
            ),
        ),
        (
            "duplicate-param",
            raw(
                FrameKind::Handshake,
                &[&handshake[..], &[0x02, 1, 9, 0x02, 1, 9]].concat(),
            ),
        ),
        (
            "param-not-filling-len",
            raw(
                FrameKind::Handshake,
                &[&handshake[..], &[0x03, 2, 1, 0]].concat(),
            ),
        ),
        (
            "bad-stage",
            raw(FrameKind::Handshake, &[&[3], &handshake[1..]].concat()),
        ),
        (
            "zero-versions",
            raw(FrameKind::Handshake, &handshake_prefix(0)),
        ),
        (
            "too-many-versions",
            raw(
                FrameKind::Handshake,
                &handshake_prefix(MAX_VERSIONS as u8 + 1),
            ),
        ),
        (
            "stream-above-u32",
            raw(FrameKind::Ack, &[0xc0, 0, 0, 1, 0, 0, 0, 0, 1, 1]),
        ),
        ("nak-zero-count", raw(FrameKind::Nak, &[1, 0])),
        ("nak-empty-range", raw(FrameKind::Nak, &[1, 1, 5, 0])),
        (
            "nak-too-many",
            raw(FrameKind::Nak, &nak_body(MAX_NAK_RANGES + 1)),
        ),
        ("nak-max", raw(FrameKind::Nak, &nak_body(MAX_NAK_RANGES))),
        ("gap-empty", raw(FrameKind::Gap, &[1, 5, 5, 0, 0])),
        (
            "reason-too-long",
            raw(FrameKind::Close, &long_reason_body(MAX_REASON_BYTES + 1)),
        ),
        (
            "reason-max",
            raw(FrameKind::Close, &long_reason_body(MAX_REASON_BYTES)),
        ),
        (
            "reason-invalid-utf8",
            raw(FrameKind::Close, &[0, 1, 2, 0xc3, 0x28]),
        ),
        ("empty", vec![]),
    ];
    seeds.extend(
        malformed
            .into_iter()
            .map(|(name, bytes)| (name.to_owned(), bytes)),
    );
    seeds
}

fn header_bytes(version: u8, flags: u8, destination: u64) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    Header {
        version: VERSION_1,
        flags,
        destination: ConnectionId(destination),
    }
    .encode(&mut out)
    .expect("header fits");
    out[2] = version;
    out
}

/// A varint in its minimal form (test-side copy of RFC 9000 §16).
fn varint(value: u64) -> Vec<u8> {
    match value {
        0..64 => vec![value as u8],
        64..16_384 => (value as u16 | 0x4000).to_be_bytes().to_vec(),
        16_384..1_073_741_824 => (value as u32 | 0x8000_0000).to_be_bytes().to_vec(),
        _ => (value | 0xc000_0000_0000_0000).to_be_bytes().to_vec(),
    }
}

fn raw_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    [&[kind][..], &varint(body.len() as u64), body].concat()
}

/// Handshake body through `features`, listing `count` versions, no parameters.
fn handshake_prefix(count: u8) -> Vec<u8> {
    let mut body = vec![HandshakeStage::Hello as u8];
    body.extend([0x5a; 32]);
    body.extend(99u64.to_be_bytes());
    body.push(count);
    body.extend(vec![VERSION_1; usize::from(count)]);
    body.push(0);
    body
}

fn nak_body(count: usize) -> Vec<u8> {
    let mut body = vec![1, 0];
    body.extend(varint(count as u64));
    for i in 0..count as u64 {
        body.extend(varint(i * 3));
        body.push(1);
    }
    body
}

fn long_reason_body(len: usize) -> Vec<u8> {
    [&[0, 0][..], &varint(len as u64), &vec![b'r'; len]].concat()
}
