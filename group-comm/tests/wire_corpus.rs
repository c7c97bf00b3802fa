//! Replays the committed fuzz corpus (`group-comm/fuzz/corpus/group_frame/`) through
//! `group_comm::wire::fuzzing::decode_never_panics`, so CI checks it without cargo-fuzz or
//! nightly.
//!
//! The seed files are written by the ignored test `corpus_seeds_regenerate`:
//! `cargo test -p phyla-group-comm --test wire_corpus -- --ignored corpus_seeds_regenerate`.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use group_comm::GroupId;
use group_comm::substrate::id::{Locator, NodeId};
use group_comm::wire::{
    Announcement, DataFlags, GROUP_VERSION_1, GroupFrame, MAX_ANNOUNCEMENTS, MAX_NODE_REFS,
    MAX_WATERMARKS, MessageId, NeighborPriority, NodeRef, Watermark, encode, fuzzing,
};

/// The fuzz target whose corpus this replays.
const TARGET: &str = "group_frame";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(TARGET)
}

#[test]
fn corpus_replays_through_harness() {
    let dir = corpus_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("readable corpus entry").path();
        let input = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A panic here names the file through the default hook's message and this print.
        println!("{TARGET}: {}", path.display());
        fuzzing::decode_never_panics(&input);
        replayed += 1;
    }
    assert!(replayed >= 30, "corpus {TARGET} has only {replayed} inputs");
}

/// The seeds as generated now must all be in the committed corpus, so that a codec change that
/// alters an encoding also updates the corpus.
#[test]
fn committed_seeds_are_current() {
    for (name, bytes) in seeds() {
        let path = corpus_dir().join(format!("seed-{name}"));
        let committed = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(committed, bytes, "{name} is stale: regenerate the seeds");
    }
}

/// Regenerates the seed files (named `seed-*`); inputs found by fuzzing keep their hash names.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn corpus_seeds_regenerate() {
    let dir = corpus_dir();
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
    for (name, bytes) in seeds() {
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }
}

/// Valid frames of every kind (`valid-*`) and malformed ones for each decode error.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let group = GroupId::from_name("phyla/seed");
    let mut seeds: Vec<(String, Vec<u8>)> = valid_frames()
        .iter()
        .map(|(name, frame)| {
            let mut out = Vec::new();
            encode(group, frame, &mut out).expect("seed frame encodes");
            (format!("valid-{name}"), out)
        })
        .collect();
    let mut node_scoped = Vec::new();
    encode(
        GroupId::NODE,
        &GroupFrame::Heartbeat { seq: 1 },
        &mut node_scoped,
    )
    .expect("encodes");
    seeds.push(("valid-heartbeat-node-scoped".into(), node_scoped));

    let raw = |kind: u8, body: &[u8]| {
        let mut out = vec![b'P', b'G', GROUP_VERSION_1, kind];
        out.extend(group.0.to_be_bytes());
        out.extend_from_slice(body);
        out
    };
    let with_trailing = {
        let (_, frame) = &valid_frames()[0];
        let mut out = Vec::new();
        encode(group, frame, &mut out).expect("encodes");
        out.extend(b"appended by a later version");
        out
    };
    let count = |n: usize| u16::try_from(n).expect("fits").to_be_bytes();
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("valid-trailing-bytes", with_trailing),
        ("empty", vec![]),
        ("truncated-header", raw(1, &[])[..7].to_vec()),
        ("bad-magic", [b"PH", &raw(1, &[])[2..]].concat()),
        ("bad-version", {
            let mut out = raw(1, &[]);
            out[2] = 2;
            out
        }),
        ("unknown-kind-14", raw(14, &[0; 40])),
        ("unknown-kind-255", raw(255, &[])),
        ("truncated-heartbeat", raw(9, &[1, 2])),
        ("truncated-data-head", raw(16, &[7; 40])),
        ("neighbor-bad-priority", raw(3, &[9, 0, 0, 0, 0])),
        ("disconnect-bad-leaving", raw(6, &[2])),
        ("graft-bad-want", [&raw(18, &[1; 44])[..], &[7]].concat()),
        (
            "locator-bad-tag",
            [&raw(2, &[1; 32])[..], &[5, 0, 0]].concat(),
        ),
        ("ping-bad-tag", raw(10, &[0, 0, 0, 0, 0, 0, 0, 1, 3])),
        ("repair-inverted", {
            let mut body = vec![1; 36];
            body.extend(9u64.to_be_bytes());
            body.extend(8u64.to_be_bytes());
            raw(20, &body)
        }),
        ("accept-oversized", raw(4, &count(MAX_WATERMARKS + 1))),
        ("subtree-ack-oversized", raw(23, &count(MAX_WATERMARKS + 1))),
        ("shuffle-reply-oversized", raw(8, &count(MAX_NODE_REFS + 1))),
        ("ihave-oversized", raw(17, &count(MAX_ANNOUNCEMENTS + 1))),
        ("ihave-count-beyond-input", raw(17, &count(200))),
        (
            "garbage",
            b"\x00\xffPG\x01\x10garbage garbage garbage".to_vec(),
        ),
    ];
    seeds.extend(
        malformed
            .into_iter()
            .map(|(name, bytes)| (name.to_owned(), bytes)),
    );
    seeds
}

fn id(n: u8) -> NodeId {
    NodeId([n; 32])
}

fn mid(n: u8, epoch: u32, seq: u64) -> MessageId {
    MessageId {
        source: id(n),
        epoch,
        seq,
    }
}

fn node(n: u8, locator: Option<SocketAddr>) -> NodeRef {
    NodeRef {
        id: id(n),
        locator: locator.map(Locator::Udp),
    }
}

fn valid_frames() -> Vec<(&'static str, GroupFrame<'static>)> {
    let v4 = Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(198, 18, 0, 7),
        7000,
    )));
    let v6 = Some(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        7001,
        0,
        0,
    )));
    let refs = vec![node(1, None), node(2, v4), node(3, v6)];
    let watermark = |n: u8| Watermark {
        source: id(n),
        epoch: u32::from(n),
        next_seq: u64::from(n) * 1000,
    };
    let announcement = |seq: u64| Announcement {
        id: mid(4, 1, seq),
        hop: 3,
    };
    vec![
        ("join", GroupFrame::Join),
        (
            "forward-join",
            GroupFrame::ForwardJoin {
                joiner: node(5, v4),
                ttl: 6,
            },
        ),
        (
            "forward-join-no-locator",
            GroupFrame::ForwardJoin {
                joiner: node(5, None),
                ttl: 0,
            },
        ),
        (
            "neighbor-high",
            GroupFrame::Neighbor {
                priority: NeighborPriority::High,
                rtt_us: 0,
            },
        ),
        (
            "neighbor-optimize",
            GroupFrame::Neighbor {
                priority: NeighborPriority::Optimize,
                rtt_us: 2_500,
            },
        ),
        (
            "accept",
            GroupFrame::Accept {
                watermarks: vec![watermark(1), watermark(2), watermark(3)],
            },
        ),
        ("accept-empty", GroupFrame::Accept { watermarks: vec![] }),
        ("reject", GroupFrame::Reject),
        ("disconnect", GroupFrame::Disconnect { leaving: false }),
        (
            "disconnect-leaving",
            GroupFrame::Disconnect { leaving: true },
        ),
        (
            "shuffle",
            GroupFrame::Shuffle {
                origin: node(6, v6),
                ttl: 4,
                nodes: refs.clone(),
            },
        ),
        (
            "shuffle-reply",
            GroupFrame::ShuffleReply {
                nodes: refs.clone(),
            },
        ),
        (
            "shuffle-reply-max",
            GroupFrame::ShuffleReply {
                nodes: vec![node(7, v4); MAX_NODE_REFS],
            },
        ),
        ("heartbeat", GroupFrame::Heartbeat { seq: 42 }),
        (
            "ping",
            GroupFrame::Ping {
                nonce: 0xfeed,
                on_behalf_of: None,
            },
        ),
        (
            "ping-indirect",
            GroupFrame::Ping {
                nonce: 0xfeed,
                on_behalf_of: Some(id(8)),
            },
        ),
        (
            "pong",
            GroupFrame::Pong {
                nonce: 0xfeed,
                on_behalf_of: Some(id(8)),
            },
        ),
        (
            "probe-request",
            GroupFrame::ProbeRequest {
                target: node(9, v4),
                nonce: 77,
            },
        ),
        (
            "probe-ack",
            GroupFrame::ProbeAck {
                target: id(9),
                nonce: 77,
            },
        ),
        (
            "data",
            GroupFrame::Data {
                id: mid(4, 1, 17),
                hop: 2,
                flags: DataFlags::default(),
                payload: b"a group message",
            },
        ),
        (
            "data-repair-empty",
            GroupFrame::Data {
                id: mid(4, 1, 18),
                hop: 0,
                flags: DataFlags(DataFlags::REPAIR),
                payload: b"",
            },
        ),
        (
            "ihave",
            GroupFrame::IHave {
                announcements: vec![announcement(17), announcement(18)],
            },
        ),
        (
            "ihave-max",
            GroupFrame::IHave {
                announcements: (0..MAX_ANNOUNCEMENTS as u64).map(announcement).collect(),
            },
        ),
        (
            "graft",
            GroupFrame::Graft {
                id: mid(4, 1, 17),
                want: true,
            },
        ),
        ("prune", GroupFrame::Prune { source: id(4) }),
        (
            "repair-request",
            GroupFrame::RepairRequest {
                source: id(4),
                epoch: 1,
                first: 10,
                last: 20,
            },
        ),
        (
            "repair-missing",
            GroupFrame::RepairMissing {
                source: id(4),
                epoch: 1,
                first: 10,
                last: 10,
            },
        ),
        (
            "watermarks",
            GroupFrame::Watermarks {
                watermarks: vec![watermark(4)],
            },
        ),
        (
            "subtree-ack",
            GroupFrame::SubtreeAck {
                positions: vec![watermark(5), watermark(6)],
            },
        ),
    ]
}
