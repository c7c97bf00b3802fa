//! Group codec tests: exact layouts for a few frames, round trips for every kind with arbitrary
//! fields, one test per decode and encode error, truncation at every length, and the fuzz
//! harnesses on arbitrary and mutated bytes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::collection::vec;
use proptest::prelude::*;
use substrate::id::{Locator, NodeId};

use super::*;
use crate::GroupId;

// ---------------------------------------------------------------------------------------------
// Owned frames for strategies (a `Data` frame borrows its payload; strategies must own).

#[derive(Clone, Debug)]
enum Owned {
    Frame(GroupFrame<'static>),
    Data {
        id: MessageId,
        hop: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

impl Owned {
    fn frame(&self) -> GroupFrame<'_> {
        match self {
            Self::Frame(frame) => frame.clone(),
            Self::Data {
                id,
                hop,
                flags,
                payload,
            } => GroupFrame::Data {
                id: *id,
                hop: *hop,
                flags: DataFlags(*flags),
                payload,
            },
        }
    }
}

fn group() -> impl Strategy<Value = GroupId> {
    prop_oneof![
        Just(GroupId::NODE),
        Just(GroupId(u64::MAX)),
        any::<u64>().prop_map(GroupId)
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(NodeId)
}

/// Any locator, IPv6 ones with arbitrary flow info and scope id (which are not sent).
fn locator() -> impl Strategy<Value = Option<Locator>> {
    let v4 = (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)));
    let v6 = (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
        |(ip, port, flow, scope)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
        },
    );
    prop::option::of(prop_oneof![v4, v6].prop_map(Locator::Udp))
}

fn node_ref() -> impl Strategy<Value = NodeRef> {
    (node_id(), locator()).prop_map(|(id, locator)| NodeRef { id, locator })
}

fn message_id() -> impl Strategy<Value = MessageId> {
    (node_id(), any::<u32>(), any::<u64>()).prop_map(|(source, epoch, seq)| MessageId {
        source,
        epoch,
        seq,
    })
}

fn priority() -> impl Strategy<Value = NeighborPriority> {
    prop::sample::select(vec![
        NeighborPriority::Low,
        NeighborPriority::High,
        NeighborPriority::Reconnect,
        NeighborPriority::Optimize,
    ])
}

fn node_refs() -> impl Strategy<Value = Vec<NodeRef>> {
    vec(node_ref(), 0..=MAX_NODE_REFS)
}

/// `(first, last)` with `first <= last`, often equal or at the extremes.
fn range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        any::<u64>().prop_map(|a| (a, a)),
        Just((0, u64::MAX)),
    ]
}

fn join() -> impl Strategy<Value = Owned> {
    Just(Owned::Frame(GroupFrame::Join))
}

fn forward_join() -> impl Strategy<Value = Owned> {
    (node_ref(), any::<u8>())
        .prop_map(|(joiner, ttl)| Owned::Frame(GroupFrame::ForwardJoin { joiner, ttl }))
}

fn neighbor() -> impl Strategy<Value = Owned> {
    (priority(), any::<u32>())
        .prop_map(|(priority, rtt_us)| Owned::Frame(GroupFrame::Neighbor { priority, rtt_us }))
}

fn accept() -> impl Strategy<Value = Owned> {
    watermark_list().prop_map(|watermarks| Owned::Frame(GroupFrame::Accept { watermarks }))
}

/// Up to `MAX_WATERMARKS` arbitrary positions: Accept, Watermarks and SubtreeAck carry them.
fn watermark_list() -> impl Strategy<Value = Vec<Watermark>> {
    let watermark =
        (node_id(), any::<u32>(), any::<u64>()).prop_map(|(source, epoch, next_seq)| Watermark {
            source,
            epoch,
            next_seq,
        });
    vec(watermark, 0..=MAX_WATERMARKS)
}

fn reject() -> impl Strategy<Value = Owned> {
    Just(Owned::Frame(GroupFrame::Reject))
}

fn disconnect() -> impl Strategy<Value = Owned> {
    any::<bool>().prop_map(|leaving| Owned::Frame(GroupFrame::Disconnect { leaving }))
}

fn shuffle() -> impl Strategy<Value = Owned> {
    (node_ref(), any::<u8>(), node_refs())
        .prop_map(|(origin, ttl, nodes)| Owned::Frame(GroupFrame::Shuffle { origin, ttl, nodes }))
}

fn shuffle_reply() -> impl Strategy<Value = Owned> {
    node_refs().prop_map(|nodes| Owned::Frame(GroupFrame::ShuffleReply { nodes }))
}

fn heartbeat() -> impl Strategy<Value = Owned> {
    any::<u32>().prop_map(|seq| Owned::Frame(GroupFrame::Heartbeat { seq }))
}

fn ping() -> impl Strategy<Value = Owned> {
    (any::<u64>(), prop::option::of(node_id())).prop_map(|(nonce, on_behalf_of)| {
        Owned::Frame(GroupFrame::Ping {
            nonce,
            on_behalf_of,
        })
    })
}

fn pong() -> impl Strategy<Value = Owned> {
    (any::<u64>(), prop::option::of(node_id())).prop_map(|(nonce, on_behalf_of)| {
        Owned::Frame(GroupFrame::Pong {
            nonce,
            on_behalf_of,
        })
    })
}

fn probe_request() -> impl Strategy<Value = Owned> {
    (node_ref(), any::<u64>())
        .prop_map(|(target, nonce)| Owned::Frame(GroupFrame::ProbeRequest { target, nonce }))
}

fn probe_ack() -> impl Strategy<Value = Owned> {
    (node_id(), any::<u64>())
        .prop_map(|(target, nonce)| Owned::Frame(GroupFrame::ProbeAck { target, nonce }))
}

fn data() -> impl Strategy<Value = Owned> {
    (
        message_id(),
        any::<u16>(),
        any::<u8>(),
        vec(any::<u8>(), 0..600),
    )
        .prop_map(|(id, hop, flags, payload)| Owned::Data {
            id,
            hop,
            flags,
            payload,
        })
}

fn ihave() -> impl Strategy<Value = Owned> {
    let announcement = (message_id(), any::<u16>()).prop_map(|(id, hop)| Announcement { id, hop });
    vec(announcement, 0..=MAX_ANNOUNCEMENTS)
        .prop_map(|announcements| Owned::Frame(GroupFrame::IHave { announcements }))
}

fn graft() -> impl Strategy<Value = Owned> {
    (message_id(), any::<bool>())
        .prop_map(|(id, want)| Owned::Frame(GroupFrame::Graft { id, want }))
}

fn prune() -> impl Strategy<Value = Owned> {
    node_id().prop_map(|source| Owned::Frame(GroupFrame::Prune { source }))
}

fn repair_request() -> impl Strategy<Value = Owned> {
    (node_id(), any::<u32>(), range()).prop_map(|(source, epoch, (first, last))| {
        Owned::Frame(GroupFrame::RepairRequest {
            source,
            epoch,
            first,
            last,
        })
    })
}

fn repair_missing() -> impl Strategy<Value = Owned> {
    (node_id(), any::<u32>(), range()).prop_map(|(source, epoch, (first, last))| {
        Owned::Frame(GroupFrame::RepairMissing {
            source,
            epoch,
            first,
            last,
        })
    })
}

fn any_frame() -> impl Strategy<Value = Owned> {
    prop_oneof![
        join(),
        forward_join(),
        neighbor(),
        accept(),
        reject(),
        disconnect(),
        shuffle(),
        shuffle_reply(),
        heartbeat(),
        ping(),
        pong(),
        probe_request(),
        probe_ack(),
        data(),
        ihave(),
        graft(),
        prune(),
        repair_request(),
        repair_missing(),
        watermarks(),
        subtree_ack(),
    ]
}

fn subtree_ack() -> impl Strategy<Value = Owned> {
    watermark_list().prop_map(|positions| Owned::Frame(GroupFrame::SubtreeAck { positions }))
}

fn watermarks() -> impl Strategy<Value = Owned> {
    watermark_list().prop_map(|watermarks| Owned::Frame(GroupFrame::Watermarks { watermarks }))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

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

fn v4(a: [u8; 4], port: u16) -> Option<Locator> {
    Some(Locator::Udp(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(a),
        port,
    ))))
}

fn v6(a: [u8; 16], port: u16) -> Option<Locator> {
    Some(Locator::Udp(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(a),
        port,
        0,
        0,
    ))))
}

fn enc(group: GroupId, frame: &GroupFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(group, frame, &mut out).expect("frame encodes");
    out
}

/// A header for `kind` and group 0x0102030405060708, then `body`.
fn raw(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![b'P', b'G', GROUP_VERSION_1, kind];
    out.extend(0x0102_0304_0506_0708u64.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn decode_err(bytes: &[u8]) -> GroupDecodeError {
    match decode(bytes) {
        Ok(decoded) => panic!("{bytes:02x?} decoded to {decoded:?}"),
        Err(error) => error,
    }
}

const G: GroupId = GroupId(0x0102_0304_0506_0708);

/// One frame of every kind, with lists of several entries and every locator form.
fn sample_frames() -> Vec<Owned> {
    let refs = vec![
        NodeRef {
            id: id(1),
            locator: None,
        },
        NodeRef {
            id: id(2),
            locator: v4([10, 0, 0, 2], 7000),
        },
        NodeRef {
            id: id(3),
            locator: v6([0xfe; 16], 9),
        },
    ];
    let frames = vec![
        GroupFrame::Join,
        GroupFrame::ForwardJoin {
            joiner: refs[1],
            ttl: 6,
        },
        GroupFrame::Neighbor {
            priority: NeighborPriority::Reconnect,
            rtt_us: 1_500,
        },
        GroupFrame::Accept {
            watermarks: vec![
                Watermark {
                    source: id(4),
                    epoch: 2,
                    next_seq: 100,
                },
                Watermark {
                    source: id(5),
                    epoch: 0,
                    next_seq: 0,
                },
            ],
        },
        GroupFrame::Reject,
        GroupFrame::Disconnect { leaving: true },
        GroupFrame::Shuffle {
            origin: refs[2],
            ttl: 3,
            nodes: refs.clone(),
        },
        GroupFrame::ShuffleReply { nodes: refs },
        GroupFrame::Heartbeat { seq: 77 },
        GroupFrame::Ping {
            nonce: 9,
            on_behalf_of: Some(id(6)),
        },
        GroupFrame::Pong {
            nonce: 9,
            on_behalf_of: None,
        },
        GroupFrame::ProbeRequest {
            target: NodeRef {
                id: id(7),
                locator: v4([127, 0, 0, 1], 1),
            },
            nonce: u64::MAX,
        },
        GroupFrame::ProbeAck {
            target: id(7),
            nonce: u64::MAX,
        },
        GroupFrame::IHave {
            announcements: vec![
                Announcement {
                    id: mid(8, 1, 5),
                    hop: 2,
                },
                Announcement {
                    id: mid(8, 1, 6),
                    hop: 3,
                },
            ],
        },
        GroupFrame::Graft {
            id: mid(8, 1, 5),
            want: true,
        },
        GroupFrame::Prune { source: id(8) },
        GroupFrame::RepairRequest {
            source: id(8),
            epoch: 1,
            first: 3,
            last: 9,
        },
        GroupFrame::RepairMissing {
            source: id(8),
            epoch: 1,
            first: 4,
            last: 4,
        },
        GroupFrame::Watermarks {
            watermarks: vec![Watermark {
                source: id(8),
                epoch: 1,
                next_seq: 5,
            }],
        },
        GroupFrame::SubtreeAck {
            positions: vec![Watermark {
                source: id(8),
                epoch: 1,
                next_seq: 6,
            }],
        },
    ];
    let mut owned: Vec<Owned> = frames.into_iter().map(Owned::Frame).collect();
    owned.push(Owned::Data {
        id: mid(9, 3, 1 << 40),
        hop: 4,
        flags: DataFlags::REPAIR,
        payload: b"hello, group".to_vec(),
    });
    owned
}

// ---------------------------------------------------------------------------------------------
// Exact layouts.

#[test]
fn header_layout_is_magic_version_kind_group() {
    let bytes = enc(GroupId(0x1122_3344_5566_7788), &GroupFrame::Join);
    assert_eq!(
        bytes,
        [
            b'P', b'G', 1, 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
        ]
    );
    assert_eq!(
        decode_header(&bytes),
        Ok((GroupId(0x1122_3344_5566_7788), 1))
    );
}

#[test]
fn heartbeat_layout() {
    let bytes = enc(GroupId::NODE, &GroupFrame::Heartbeat { seq: 0x0a0b_0c0d });
    assert_eq!(
        bytes,
        [
            b'P', b'G', 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d
        ]
    );
}

#[test]
fn forward_join_layout_with_ipv4_locator() {
    let frame = GroupFrame::ForwardJoin {
        joiner: NodeRef {
            id: id(0xab),
            locator: v4([192, 168, 1, 2], 0x1f90),
        },
        ttl: 5,
    };
    let bytes = enc(G, &frame);
    let mut expected = raw(2, &[0xab; 32]);
    expected.extend([4, 192, 168, 1, 2, 0x1f, 0x90, 5]);
    assert_eq!(bytes, expected);
    assert_eq!(bytes.len(), GROUP_HEADER_LEN + 32 + 1 + 4 + 2 + 1);
}

#[test]
fn shuffle_reply_layout_with_ipv6_and_no_locator() {
    let mut ip = [0u8; 16];
    ip[0] = 0x20;
    ip[1] = 0x01;
    ip[15] = 0x01;
    let frame = GroupFrame::ShuffleReply {
        nodes: vec![
            NodeRef {
                id: id(1),
                locator: v6(ip, 443),
            },
            NodeRef {
                id: id(2),
                locator: None,
            },
        ],
    };
    let mut body = vec![0, 2];
    body.extend([1; 32]);
    body.push(6);
    body.extend(ip);
    body.extend(443u16.to_be_bytes());
    body.extend([2; 32]);
    body.push(0);
    assert_eq!(enc(G, &frame), raw(8, &body));
}

#[test]
fn ping_layout_with_and_without_on_behalf_of() {
    let with = GroupFrame::Ping {
        nonce: 0x0102_0304_0506_0708,
        on_behalf_of: Some(id(0xcc)),
    };
    let mut body = vec![1, 2, 3, 4, 5, 6, 7, 8, 1];
    body.extend([0xcc; 32]);
    assert_eq!(enc(G, &with), raw(10, &body));
    let without = GroupFrame::Pong {
        nonce: 1,
        on_behalf_of: None,
    };
    assert_eq!(enc(G, &without), raw(11, &[0, 0, 0, 0, 0, 0, 0, 1, 0]));
}

#[test]
fn data_layout_and_head() {
    let id = mid(0x5a, 0x0000_0102, 0x0304);
    let frame = GroupFrame::Data {
        id,
        hop: 0x0203,
        flags: DataFlags(DataFlags::REPAIR | DataFlags::GRAFT | 0x80),
        payload: b"xyz",
    };
    let bytes = enc(G, &frame);
    let mut expected = raw(16, &[0x5a; 32]);
    expected.extend([0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 3, 4, 2, 3, 0x83]);
    assert_eq!(expected.len(), DATA_HEAD_LEN);
    expected.extend(b"xyz");
    assert_eq!(bytes, expected);

    let mut head = vec![0xee];
    encode_data_head(G, &id, 0x0203, DataFlags(0x83), &mut head);
    assert_eq!(head.len(), 1 + DATA_HEAD_LEN);
    assert_eq!(head[1..], bytes[..DATA_HEAD_LEN]);
}

#[test]
fn repair_and_message_id_layouts() {
    let frame = GroupFrame::RepairRequest {
        source: id(3),
        epoch: 7,
        first: 1,
        last: 2,
    };
    let mut body = vec![3; 32];
    body.extend([0, 0, 0, 7]);
    body.extend(1u64.to_be_bytes());
    body.extend(2u64.to_be_bytes());
    assert_eq!(enc(G, &frame), raw(20, &body));

    let graft = GroupFrame::Graft {
        id: mid(3, 7, 1),
        want: false,
    };
    let mut body = vec![3; 32];
    body.extend([0, 0, 0, 7]);
    body.extend(1u64.to_be_bytes());
    body.push(0);
    assert_eq!(body.len(), MESSAGE_ID_LEN + 1);
    assert_eq!(enc(G, &graft), raw(18, &body));
}

#[test]
fn every_kind_encodes_its_kind_byte() {
    let expected = [
        1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 19, 20, 21, 22, 23, 16,
    ];
    for (frame, kind) in sample_frames().iter().zip(expected) {
        let frame = frame.frame();
        assert_eq!(frame.kind() as u8, kind);
        assert_eq!(enc(G, &frame)[3], kind, "{frame:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips.

#[test]
fn sample_frames_round_trip() {
    for frame in sample_frames() {
        fuzzing::round_trip(G, &frame.frame());
        fuzzing::round_trip(GroupId::NODE, &frame.frame());
    }
}

#[test]
fn lists_at_their_bounds_round_trip() {
    let node = NodeRef {
        id: id(1),
        locator: v6([1; 16], 1),
    };
    let frames = [
        GroupFrame::Shuffle {
            origin: node,
            ttl: 0,
            nodes: vec![node; MAX_NODE_REFS],
        },
        GroupFrame::ShuffleReply {
            nodes: vec![node; MAX_NODE_REFS],
        },
        GroupFrame::Accept {
            watermarks: vec![
                Watermark {
                    source: id(2),
                    epoch: 1,
                    next_seq: 2,
                };
                MAX_WATERMARKS
            ],
        },
        GroupFrame::IHave {
            announcements: vec![
                Announcement {
                    id: mid(3, 1, 2),
                    hop: 9,
                };
                MAX_ANNOUNCEMENTS
            ],
        },
        GroupFrame::Accept { watermarks: vec![] },
        GroupFrame::IHave {
            announcements: vec![],
        },
        GroupFrame::ShuffleReply { nodes: vec![] },
    ];
    for frame in &frames {
        fuzzing::round_trip(G, frame);
        let bytes = enc(G, frame);
        assert_eq!(decode(&bytes), Ok((G, frame.clone())));
    }
}

#[test]
fn ipv6_flow_info_and_scope_are_not_sent() {
    let addr = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 80, 0x1234, 7);
    let frame = GroupFrame::ProbeRequest {
        target: NodeRef {
            id: id(1),
            locator: Some(Locator::Udp(SocketAddr::V6(addr))),
        },
        nonce: 0,
    };
    let bytes = enc(G, &frame);
    let (_, decoded) = decode(&bytes).expect("decodes");
    assert_eq!(
        decoded,
        GroupFrame::ProbeRequest {
            target: NodeRef {
                id: id(1),
                locator: v6(Ipv6Addr::LOCALHOST.octets(), 80),
            },
            nonce: 0,
        }
    );
    fuzzing::round_trip(G, &frame);
}

#[test]
fn encode_appends_to_what_is_in_the_buffer() {
    let mut out = b"prefix".to_vec();
    encode(G, &GroupFrame::Reject, &mut out).expect("encodes");
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(decode(&out[6..]), Ok((G, GroupFrame::Reject)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn join_round_trips(g in group(), f in join()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn forward_join_round_trips(g in group(), f in forward_join()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn neighbor_round_trips(g in group(), f in neighbor()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn accept_round_trips(g in group(), f in accept()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn reject_round_trips(g in group(), f in reject()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn disconnect_round_trips(g in group(), f in disconnect()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn shuffle_round_trips(g in group(), f in shuffle()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn shuffle_reply_round_trips(g in group(), f in shuffle_reply()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn heartbeat_round_trips(g in group(), f in heartbeat()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn ping_round_trips(g in group(), f in ping()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn pong_round_trips(g in group(), f in pong()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn probe_request_round_trips(g in group(), f in probe_request()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn probe_ack_round_trips(g in group(), f in probe_ack()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn data_round_trips(g in group(), f in data()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn ihave_round_trips(g in group(), f in ihave()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn graft_round_trips(g in group(), f in graft()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn prune_round_trips(g in group(), f in prune()) { fuzzing::round_trip(g, &f.frame()); }

    #[test]
    fn repair_request_round_trips(g in group(), f in repair_request()) {
        fuzzing::round_trip(g, &f.frame());
    }

    #[test]
    fn repair_missing_round_trips(g in group(), f in repair_missing()) {
        fuzzing::round_trip(g, &f.frame());
    }

    /// Every proper prefix of a non-`Data` frame lacks a field; a `Data` prefix past the head is
    /// a shorter payload.
    #[test]
    fn truncation_at_a_random_length_is_an_error(
        f in any_frame(),
        cut in any::<prop::sample::Index>(),
    ) {
        let frame = f.frame();
        let bytes = enc(G, &frame);
        let cut = cut.index(bytes.len());
        check_prefix(&frame, &bytes, cut);
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation and trailing bytes.

/// Checks `decode(&bytes[..cut])` for a `cut` shorter than the encoding of `frame`.
fn check_prefix(frame: &GroupFrame<'_>, bytes: &[u8], cut: usize) {
    let prefix = &bytes[..cut];
    match (frame, decode(prefix)) {
        (GroupFrame::Data { payload, .. }, Ok((g, GroupFrame::Data { payload: p, .. })))
            if cut >= DATA_HEAD_LEN =>
        {
            assert_eq!(g, G);
            assert_eq!(p, &payload[..cut - DATA_HEAD_LEN]);
        }
        (_, Err(GroupDecodeError::Truncated { needed, have })) => {
            assert!(
                needed > have,
                "Truncated {{ needed: {needed}, have: {have} }}"
            );
            assert!(have <= cut);
        }
        (_, other) => panic!("{cut}-byte prefix of {frame:?} gave {other:?}"),
    }
}

#[test]
fn truncation_at_every_length_is_an_error() {
    for owned in sample_frames() {
        let frame = owned.frame();
        let bytes = enc(G, &frame);
        for cut in 0..bytes.len() {
            check_prefix(&frame, &bytes, cut);
            fuzzing::decode_never_panics(&bytes[..cut]);
        }
    }
}

#[test]
fn truncated_header_reports_sizes() {
    for len in 0..GROUP_HEADER_LEN {
        let bytes = &raw(1, &[])[..len];
        let expected = GroupDecodeError::Truncated {
            needed: GROUP_HEADER_LEN,
            have: len,
        };
        assert_eq!(decode_header(bytes), Err(expected));
        assert_eq!(decode(bytes), Err(expected));
    }
}

#[test]
fn truncated_body_field_reports_sizes_relative_to_what_is_left() {
    // Heartbeat seq needs 4 bytes; 3 are left.
    assert_eq!(
        decode(&raw(9, &[1, 2, 3])),
        Err(GroupDecodeError::Truncated { needed: 4, have: 3 })
    );
    // Neighbor: the priority byte is missing.
    assert_eq!(
        decode(&raw(3, &[])),
        Err(GroupDecodeError::Truncated { needed: 1, have: 0 })
    );
    // IPv4 locator: 2 of 4 address bytes.
    let mut body = vec![0; 32];
    body.extend([4, 1, 2]);
    assert_eq!(
        decode(&raw(2, &body)),
        Err(GroupDecodeError::Truncated { needed: 4, have: 2 })
    );
}

#[test]
fn list_count_above_the_bytes_left_is_truncated_before_allocating() {
    // 64 node refs need at least 64 * 33 bytes; only 10 follow.
    let mut body = vec![0, 64];
    body.extend([0; 10]);
    assert_eq!(
        decode(&raw(8, &body)),
        Err(GroupDecodeError::Truncated {
            needed: 64 * 33,
            have: 10
        })
    );
    // 256 announcements need 256 * 46 bytes.
    assert_eq!(
        decode(&raw(17, &[1, 0])),
        Err(GroupDecodeError::Truncated {
            needed: 256 * 46,
            have: 0
        })
    );
    // 2 watermarks need 88 bytes; 87 follow.
    let mut body = vec![0, 2];
    body.extend([0; 87]);
    assert_eq!(
        decode(&raw(4, &body)),
        Err(GroupDecodeError::Truncated {
            needed: 88,
            have: 87
        })
    );
}

#[test]
fn trailing_bytes_are_ignored_except_in_data() {
    for owned in sample_frames() {
        let frame = owned.frame();
        let mut bytes = enc(G, &frame);
        bytes.extend(b"appended by a later version");
        let (g, decoded) = decode(&bytes).expect("decodes with trailing bytes");
        assert_eq!(g, G);
        match (&frame, &decoded) {
            (GroupFrame::Data { payload, .. }, GroupFrame::Data { payload: p, .. }) => {
                assert_eq!(&p[..payload.len()], *payload);
                assert_eq!(&p[payload.len()..], b"appended by a later version");
            }
            _ => assert_eq!(decoded, frame),
        }
        fuzzing::decode_never_panics(&bytes);
    }
}

#[test]
fn data_with_an_empty_payload_is_just_the_head() {
    let frame = GroupFrame::Data {
        id: mid(1, 0, 0),
        hop: 0,
        flags: DataFlags::default(),
        payload: &[],
    };
    let bytes = enc(G, &frame);
    assert_eq!(bytes.len(), DATA_HEAD_LEN);
    assert_eq!(decode(&bytes), Ok((G, frame)));
}

// ---------------------------------------------------------------------------------------------
// Decode errors, one test each.

#[test]
fn decode_rejects_bad_magic() {
    let mut bytes = raw(1, &[]);
    bytes[..2].copy_from_slice(b"PH");
    assert_eq!(
        decode_header(&bytes),
        Err(GroupDecodeError::BadMagic(*b"PH"))
    );
    assert_eq!(decode_err(&bytes), GroupDecodeError::BadMagic(*b"PH"));
}

#[test]
fn decode_rejects_unsupported_version() {
    for version in [0u8, 2, 255] {
        let mut bytes = raw(1, &[]);
        bytes[2] = version;
        assert_eq!(
            decode_header(&bytes),
            Err(GroupDecodeError::UnsupportedVersion(version))
        );
        assert_eq!(
            decode_err(&bytes),
            GroupDecodeError::UnsupportedVersion(version)
        );
    }
}

#[test]
fn decode_rejects_unknown_kind_but_decode_header_reports_it() {
    for kind in [0u8, 14, 15, 24, 0x80, 255] {
        let bytes = raw(kind, &[0; 64]);
        assert_eq!(decode_header(&bytes), Ok((G, kind)));
        assert_eq!(decode_err(&bytes), GroupDecodeError::UnknownKind(kind));
    }
}

#[test]
fn decode_rejects_oversized_lists() {
    let cases = [
        (4u8, "watermarks", MAX_WATERMARKS),
        (22, "watermarks", MAX_WATERMARKS),
        (23, "watermarks", MAX_WATERMARKS),
        (8, "shuffle_reply.nodes", MAX_NODE_REFS),
        (17, "ihave.announcements", MAX_ANNOUNCEMENTS),
    ];
    for (kind, field, max) in cases {
        for count in [max + 1, usize::from(u16::MAX)] {
            let count16 = u16::try_from(count).expect("fits");
            // Plenty of bytes follow, so only the bound can refuse it.
            let mut body = count16.to_be_bytes().to_vec();
            body.extend(vec![0; count * 50]);
            assert_eq!(
                decode_err(&raw(kind, &body)),
                GroupDecodeError::Oversized {
                    field,
                    len: count as u64,
                    max: max as u64
                }
            );
        }
    }
    // Shuffle: after the origin and the ttl.
    let mut body = vec![0; 32];
    body.extend([0, 1]);
    body.extend(
        u16::try_from(MAX_NODE_REFS + 1)
            .expect("fits")
            .to_be_bytes(),
    );
    assert_eq!(
        decode_err(&raw(7, &body)),
        GroupDecodeError::Oversized {
            field: "shuffle.nodes",
            len: MAX_NODE_REFS as u64 + 1,
            max: MAX_NODE_REFS as u64
        }
    );
}

#[test]
fn decode_rejects_unknown_neighbor_priority() {
    let optimize = GroupFrame::Neighbor {
        priority: NeighborPriority::Optimize,
        rtt_us: 0x0102_0304,
    };
    assert_eq!(enc(G, &optimize), raw(3, &[3, 1, 2, 3, 4]));
    assert_eq!(decode(&raw(3, &[3, 1, 2, 3, 4])), Ok((G, optimize)));
    for priority in [4u8, 0xff] {
        assert_eq!(
            decode_err(&raw(3, &[priority, 0, 0, 0, 0])),
            GroupDecodeError::FieldOutOfRange {
                field: "neighbor.priority"
            }
        );
    }
}

#[test]
fn decode_rejects_non_boolean_flags() {
    assert_eq!(
        decode_err(&raw(6, &[2])),
        GroupDecodeError::FieldOutOfRange {
            field: "disconnect.leaving"
        }
    );
    let mut graft = vec![0; MESSAGE_ID_LEN];
    graft.push(0xff);
    assert_eq!(
        decode_err(&raw(18, &graft)),
        GroupDecodeError::FieldOutOfRange {
            field: "graft.want"
        }
    );
    let mut ping = vec![0; 8];
    ping.push(2);
    ping.extend([0; 32]);
    assert_eq!(
        decode_err(&raw(10, &ping)),
        GroupDecodeError::FieldOutOfRange {
            field: "ping.on_behalf_of"
        }
    );
    assert_eq!(
        decode_err(&raw(11, &ping)),
        GroupDecodeError::FieldOutOfRange {
            field: "pong.on_behalf_of"
        }
    );
}

#[test]
fn decode_rejects_unknown_locator_tag() {
    for tag in [1u8, 5, 7, 0xff] {
        let mut body = vec![0; 32];
        body.push(tag);
        body.extend([0; 32]);
        assert_eq!(
            decode_err(&raw(12, &body)),
            GroupDecodeError::FieldOutOfRange {
                field: "node_ref.locator"
            }
        );
    }
}

#[test]
fn decode_rejects_inverted_repair_ranges() {
    for (kind, field) in [(20u8, "repair_request.range"), (21, "repair_missing.range")] {
        let mut body = vec![0; 36];
        body.extend(5u64.to_be_bytes());
        body.extend(4u64.to_be_bytes());
        assert_eq!(
            decode_err(&raw(kind, &body)),
            GroupDecodeError::FieldOutOfRange { field }
        );
        // first == last is a one-message range.
        let mut body = vec![0; 36];
        body.extend(u64::MAX.to_be_bytes());
        body.extend(u64::MAX.to_be_bytes());
        assert!(decode(&raw(kind, &body)).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Encode errors.

#[test]
fn encode_refuses_lists_above_their_bounds_and_leaves_out_unchanged() {
    let node = NodeRef {
        id: id(1),
        locator: None,
    };
    let watermark = Watermark {
        source: id(1),
        epoch: 0,
        next_seq: 0,
    };
    let announcement = Announcement {
        id: mid(1, 0, 0),
        hop: 0,
    };
    let cases = [
        (
            GroupFrame::Shuffle {
                origin: node,
                ttl: 1,
                nodes: vec![node; MAX_NODE_REFS + 1],
            },
            "shuffle.nodes",
            MAX_NODE_REFS,
        ),
        (
            GroupFrame::ShuffleReply {
                nodes: vec![node; MAX_NODE_REFS + 1],
            },
            "shuffle_reply.nodes",
            MAX_NODE_REFS,
        ),
        (
            GroupFrame::Accept {
                watermarks: vec![watermark; MAX_WATERMARKS + 1],
            },
            "watermarks",
            MAX_WATERMARKS,
        ),
        (
            GroupFrame::IHave {
                announcements: vec![announcement; MAX_ANNOUNCEMENTS + 1],
            },
            "ihave.announcements",
            MAX_ANNOUNCEMENTS,
        ),
        (
            // Above u16::MAX too: refused, not wrapped.
            GroupFrame::IHave {
                announcements: vec![announcement; 70_000],
            },
            "ihave.announcements",
            MAX_ANNOUNCEMENTS,
        ),
    ];
    for (frame, field, max) in cases {
        let len = match &frame {
            GroupFrame::Shuffle { nodes, .. } | GroupFrame::ShuffleReply { nodes } => nodes.len(),
            GroupFrame::Accept { watermarks } => watermarks.len(),
            GroupFrame::IHave { announcements } => announcements.len(),
            _ => unreachable!(),
        };
        let mut out = b"keep".to_vec();
        assert_eq!(
            encode(G, &frame, &mut out),
            Err(GroupEncodeError::TooMany { field, len, max })
        );
        assert_eq!(out, b"keep");
        fuzzing::round_trip(G, &frame);
    }
}

#[test]
fn encode_refuses_inverted_repair_ranges() {
    let frames = [
        (
            GroupFrame::RepairRequest {
                source: id(1),
                epoch: 0,
                first: 2,
                last: 1,
            },
            "repair_request.range",
        ),
        (
            GroupFrame::RepairMissing {
                source: id(1),
                epoch: 0,
                first: u64::MAX,
                last: 0,
            },
            "repair_missing.range",
        ),
    ];
    for (frame, field) in frames {
        let (GroupFrame::RepairRequest { first, last, .. }
        | GroupFrame::RepairMissing { first, last, .. }) = frame
        else {
            unreachable!("only repair frames above")
        };
        let mut out = vec![1, 2, 3];
        assert_eq!(
            encode(G, &frame, &mut out),
            Err(GroupEncodeError::InvertedRange { field, first, last })
        );
        assert_eq!(out, [1, 2, 3]);
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz harnesses on arbitrary and mutated input.

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..400)) {
        fuzzing::decode_never_panics(&bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bodies_after_a_valid_header(
        kind in prop_oneof![1..=23u8, any::<u8>()],
        body in vec(any::<u8>(), 0..400),
    ) {
        // A valid header reaches the body decoders far more often than random bytes do.
        fuzzing::decode_never_panics(&raw(kind, &body));
    }

    #[test]
    fn decode_never_panics_on_mutated_frames(
        f in any_frame(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = enc(G, &f.frame());
        for (at, byte) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        fuzzing::decode_never_panics(&bytes);
        let cut = cut.index(bytes.len() + 1);
        fuzzing::decode_never_panics(&bytes[..cut]);
    }
}
