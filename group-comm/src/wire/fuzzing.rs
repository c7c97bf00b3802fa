//! Harnesses shared by the property tests, the cargo-fuzz target (`group-comm/fuzz`) and the
//! corpus-replay test (`group-comm/tests/wire_corpus.rs`).
//!
//! A harness returns quietly when the input is merely malformed (a typed [`GroupDecodeError`] is
//! the correct answer to garbage) and panics only when it catches the codec breaking its
//! contract: `decode` and `decode_header` disagreeing, a decoded frame that does not re-encode to
//! the bytes it came from, or an encoded frame that does not decode back to itself. Any such
//! panic is a fuzz finding.
//!
//! [`GroupDecodeError`]: super::GroupDecodeError

use std::net::SocketAddr;

use substrate::id::Locator;

use super::{DATA_HEAD_LEN, GroupFrame, NodeRef, decode, decode_header, encode, encode_data_head};
use crate::GroupId;

/// Decodes `data` as a group frame and checks the result.
///
/// `decode` must fail exactly as `decode_header` does on a bad header and agree with it on the
/// group and kind of a good one. A frame that decodes must re-encode to a prefix of `data` (every
/// field has one encoding, and only bytes after a body's last field are ignored), so the
/// re-encoding is never longer than the input; for `Data`, whose payload is the rest of the
/// frame, it must be all of `data`. The re-encoding must decode to an equal frame.
///
/// # Panics
/// Only on a contract violation by the codec.
pub fn decode_never_panics(data: &[u8]) {
    let header = decode_header(data);
    let (group, frame) = match decode(data) {
        Ok(decoded) => decoded,
        Err(error) => {
            if let Err(header_error) = header {
                assert_eq!(error, header_error, "decode and decode_header disagree");
            }
            return;
        }
    };
    assert_eq!(
        header,
        Ok((group, frame.kind() as u8)),
        "decode_header disagrees with decode"
    );
    let mut out = Vec::new();
    if let Err(error) = encode(group, &frame, &mut out) {
        panic!("decoded {frame:?} does not re-encode: {error:?}");
    }
    if let GroupFrame::Data { .. } = frame {
        assert_eq!(out, data, "Data frame does not re-encode to its bytes");
    } else {
        assert!(
            out.len() <= data.len(),
            "re-encoding takes {} bytes, input had {}",
            out.len(),
            data.len()
        );
        assert_eq!(
            data.get(..out.len()),
            Some(&out[..]),
            "frame does not re-encode to a prefix of its input"
        );
    }
    check_decodes_to(&out, group, &frame);
}

/// Encodes `frame` for `group` after some bytes already in the buffer, and checks the result.
///
/// A refused frame must leave the buffer as it was. An accepted one must append bytes that decode
/// to `frame` (with IPv6 flow info and scope id cleared, since they are not sent), that
/// [`decode_never_panics`] accepts, and, for `Data`, that equal [`encode_data_head`] followed by
/// the payload.
///
/// # Panics
/// Only on a contract violation by the codec.
pub fn round_trip(group: GroupId, frame: &GroupFrame<'_>) {
    const PREFIX: &[u8] = b"already here";
    let mut out = PREFIX.to_vec();
    if encode(group, frame, &mut out).is_err() {
        assert_eq!(out, PREFIX, "a refused frame changed the buffer");
        return;
    }
    assert_eq!(out.get(..PREFIX.len()), Some(PREFIX), "encode overwrote");
    let encoded = &out[PREFIX.len()..];
    check_decodes_to(encoded, group, &normalized(frame));
    decode_never_panics(encoded);
    if let GroupFrame::Data {
        id,
        hop,
        flags,
        payload,
    } = frame
    {
        let mut head = Vec::new();
        encode_data_head(group, id, *hop, *flags, &mut head);
        assert_eq!(head.len(), DATA_HEAD_LEN, "Data head length");
        assert_eq!(
            [&head[..], payload].concat(),
            encoded,
            "encode_data_head + payload differs from encode"
        );
    }
}

/// Asserts that `bytes` decode to exactly `(group, frame)`.
fn check_decodes_to(bytes: &[u8], group: GroupId, frame: &GroupFrame<'_>) {
    match decode(bytes) {
        Ok((g, f)) => {
            assert_eq!(g, group, "group id does not survive a round trip");
            assert_eq!(&f, frame, "frame does not survive a round trip");
        }
        Err(error) => panic!("encoded {frame:?} does not decode: {error:?}"),
    }
}

/// `frame` as the receiver sees it: IPv6 locators lose their flow info and scope id.
fn normalized<'a>(frame: &GroupFrame<'a>) -> GroupFrame<'a> {
    let node = |n: &NodeRef| NodeRef {
        id: n.id,
        locator: n.locator.map(|Locator::Udp(addr)| {
            Locator::Udp(match addr {
                SocketAddr::V6(mut v6) => {
                    v6.set_flowinfo(0);
                    v6.set_scope_id(0);
                    SocketAddr::V6(v6)
                }
                v4 @ SocketAddr::V4(_) => v4,
            })
        }),
    };
    match frame {
        GroupFrame::ForwardJoin { joiner, ttl } => GroupFrame::ForwardJoin {
            joiner: node(joiner),
            ttl: *ttl,
        },
        GroupFrame::Shuffle { origin, ttl, nodes } => GroupFrame::Shuffle {
            origin: node(origin),
            ttl: *ttl,
            nodes: nodes.iter().map(node).collect(),
        },
        GroupFrame::ShuffleReply { nodes } => GroupFrame::ShuffleReply {
            nodes: nodes.iter().map(node).collect(),
        },
        GroupFrame::ProbeRequest { target, nonce } => GroupFrame::ProbeRequest {
            target: node(target),
            nonce: *nonce,
        },
        other => other.clone(),
    }
}
