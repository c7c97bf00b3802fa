//! Encoding and decoding of group frames.
//!
//! Encoding appends to a `Vec` and checks each list against its `MAX_*` bound before writing it;
//! on an error the `Vec` is truncated back to its length on entry. Decoding reads through a
//! bounds-checked [`Reader`], checks every list count against its bound and against the bytes
//! left before allocating, and returns a typed [`GroupDecodeError`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use substrate::id::{Locator, NodeId};

use super::error::{GroupDecodeError, GroupEncodeError};
use super::{
    Announcement, DATA_HEAD_LEN, DataFlags, GROUP_HEADER_LEN, GROUP_MAGIC, GROUP_VERSION_1,
    GroupFrame, GroupFrameKind, MAX_ANNOUNCEMENTS, MAX_NODE_REFS, MAX_WATERMARKS, MESSAGE_ID_LEN,
    MessageId, NeighborPriority, NodeRef, Watermark,
};
use crate::GroupId;

/// Appends `frame`, header first, to `out`. A `Data` frame's payload is appended too.
///
/// An IPv6 locator is written without its flow info and scope id (both decode as 0).
///
/// # Errors
/// [`GroupEncodeError`] if a list exceeds its `MAX_*` bound or a repair range is inverted; `out`
/// is then left as it was.
pub fn encode(
    group: GroupId,
    frame: &GroupFrame<'_>,
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    let start = out.len();
    let result = encode_frame(group, frame, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends only the head of a `Data` frame (header, id, hop, flags): the payload follows as a
/// separate buffer, so that the same payload bytes go to every receiver.
///
/// Writes exactly [`DATA_HEAD_LEN`] bytes; it cannot fail.
pub fn encode_data_head(
    group: GroupId,
    id: &MessageId,
    hop: u16,
    flags: DataFlags,
    out: &mut Vec<u8>,
) {
    out.reserve(DATA_HEAD_LEN);
    put_header(group, GroupFrameKind::Data, out);
    put_message_id(id, out);
    out.extend_from_slice(&hop.to_be_bytes());
    out.push(flags.0);
}

/// Reads the header's group id and kind byte without decoding the body.
///
/// The kind byte is returned as is, known or not, so that a receiver can route or count a frame
/// before (or instead of) decoding it.
///
/// # Errors
/// `Truncated`, `BadMagic` or `UnsupportedVersion`.
pub fn decode_header(frame: &[u8]) -> Result<(GroupId, u8), GroupDecodeError> {
    let Some(header) = frame.first_chunk::<GROUP_HEADER_LEN>() else {
        return Err(GroupDecodeError::Truncated {
            needed: GROUP_HEADER_LEN,
            have: frame.len(),
        });
    };
    let magic = [header[0], header[1]];
    if magic != GROUP_MAGIC {
        return Err(GroupDecodeError::BadMagic(magic));
    }
    if header[2] != GROUP_VERSION_1 {
        return Err(GroupDecodeError::UnsupportedVersion(header[2]));
    }
    let mut group = [0u8; 8];
    group.copy_from_slice(&header[4..]);
    Ok((GroupId(u64::from_be_bytes(group)), header[3]))
}

/// Decodes one whole frame. For `Data`, the payload is the rest of `frame` after the head.
///
/// Bytes after the last field of any other body are ignored: a later version may append fields.
///
/// # Errors
/// A [`GroupDecodeError`] naming what is wrong and where. `Truncated` sizes are relative to the
/// bytes left when the field was read.
pub fn decode(frame: &[u8]) -> Result<(GroupId, GroupFrame<'_>), GroupDecodeError> {
    let (group, kind) = decode_header(frame)?;
    let mut r = Reader {
        input: frame.get(GROUP_HEADER_LEN..).unwrap_or_default(),
    };
    let kind = kind_from_u8(kind).ok_or(GroupDecodeError::UnknownKind(kind))?;
    let frame = match kind {
        GroupFrameKind::Join => GroupFrame::Join,
        GroupFrameKind::ForwardJoin => GroupFrame::ForwardJoin {
            joiner: r.node_ref()?,
            ttl: r.u8()?,
        },
        GroupFrameKind::Neighbor => GroupFrame::Neighbor {
            priority: priority_from_u8(r.u8()?)?,
            rtt_us: r.u32()?,
        },
        GroupFrameKind::Accept => GroupFrame::Accept {
            watermarks: read_watermarks(&mut r)?,
        },
        GroupFrameKind::Watermarks => GroupFrame::Watermarks {
            watermarks: read_watermarks(&mut r)?,
        },
        GroupFrameKind::SubtreeAck => GroupFrame::SubtreeAck {
            positions: read_watermarks(&mut r)?,
        },
        GroupFrameKind::Reject => GroupFrame::Reject,
        GroupFrameKind::Disconnect => GroupFrame::Disconnect {
            leaving: r.bool("disconnect.leaving")?,
        },
        GroupFrameKind::Shuffle => GroupFrame::Shuffle {
            origin: r.node_ref()?,
            ttl: r.u8()?,
            nodes: r.node_refs(FIELD_SHUFFLE_NODES)?,
        },
        GroupFrameKind::ShuffleReply => GroupFrame::ShuffleReply {
            nodes: r.node_refs(FIELD_SHUFFLE_REPLY_NODES)?,
        },
        GroupFrameKind::Heartbeat => GroupFrame::Heartbeat { seq: r.u32()? },
        GroupFrameKind::Ping => GroupFrame::Ping {
            nonce: r.u64()?,
            on_behalf_of: r.optional_node_id("ping.on_behalf_of")?,
        },
        GroupFrameKind::Pong => GroupFrame::Pong {
            nonce: r.u64()?,
            on_behalf_of: r.optional_node_id("pong.on_behalf_of")?,
        },
        GroupFrameKind::ProbeRequest => GroupFrame::ProbeRequest {
            target: r.node_ref()?,
            nonce: r.u64()?,
        },
        GroupFrameKind::ProbeAck => GroupFrame::ProbeAck {
            target: r.node_id()?,
            nonce: r.u64()?,
        },
        GroupFrameKind::Data => GroupFrame::Data {
            id: r.message_id()?,
            hop: r.u16()?,
            flags: DataFlags(r.u8()?),
            payload: r.input,
        },
        GroupFrameKind::IHave => {
            let count = r.count(FIELD_ANNOUNCEMENTS, MAX_ANNOUNCEMENTS, ANNOUNCEMENT_LEN)?;
            let mut announcements = Vec::with_capacity(count);
            for _ in 0..count {
                announcements.push(Announcement {
                    id: r.message_id()?,
                    hop: r.u16()?,
                });
            }
            GroupFrame::IHave { announcements }
        }
        GroupFrameKind::Graft => GroupFrame::Graft {
            id: r.message_id()?,
            want: r.bool("graft.want")?,
        },
        GroupFrameKind::Prune => GroupFrame::Prune {
            source: r.node_id()?,
        },
        GroupFrameKind::RepairRequest => {
            let (source, epoch, first, last) = r.repair_range(FIELD_REPAIR_REQUEST_RANGE)?;
            GroupFrame::RepairRequest {
                source,
                epoch,
                first,
                last,
            }
        }
        GroupFrameKind::RepairMissing => {
            let (source, epoch, first, last) = r.repair_range(FIELD_REPAIR_MISSING_RANGE)?;
            GroupFrame::RepairMissing {
                source,
                epoch,
                first,
                last,
            }
        }
    };
    Ok((group, frame))
}

/// The whole of [`encode`], which truncates `out` back if this fails part way.
fn encode_frame(
    group: GroupId,
    frame: &GroupFrame<'_>,
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    if let GroupFrame::Data {
        id,
        hop,
        flags,
        payload,
    } = frame
    {
        out.reserve(DATA_HEAD_LEN + payload.len());
        encode_data_head(group, id, *hop, *flags, out);
        out.extend_from_slice(payload);
        return Ok(());
    }
    put_header(group, frame.kind(), out);
    match frame {
        GroupFrame::Join | GroupFrame::Reject => {}
        GroupFrame::ForwardJoin { joiner, ttl } => {
            put_node_ref(joiner, out);
            out.push(*ttl);
        }
        GroupFrame::Neighbor { priority, rtt_us } => {
            out.push(*priority as u8);
            out.extend_from_slice(&rtt_us.to_be_bytes());
        }
        GroupFrame::Accept { watermarks }
        | GroupFrame::Watermarks { watermarks }
        | GroupFrame::SubtreeAck {
            positions: watermarks,
        } => {
            put_count(FIELD_WATERMARKS, watermarks.len(), MAX_WATERMARKS, out)?;
            for w in watermarks {
                out.extend_from_slice(&w.source.0);
                out.extend_from_slice(&w.epoch.to_be_bytes());
                out.extend_from_slice(&w.next_seq.to_be_bytes());
            }
        }
        GroupFrame::Disconnect { leaving } => out.push(u8::from(*leaving)),
        GroupFrame::Shuffle { origin, ttl, nodes } => {
            put_node_ref(origin, out);
            out.push(*ttl);
            put_node_refs(FIELD_SHUFFLE_NODES, nodes, out)?;
        }
        GroupFrame::ShuffleReply { nodes } => put_node_refs(FIELD_SHUFFLE_REPLY_NODES, nodes, out)?,
        GroupFrame::Heartbeat { seq } => out.extend_from_slice(&seq.to_be_bytes()),
        GroupFrame::Ping {
            nonce,
            on_behalf_of,
        }
        | GroupFrame::Pong {
            nonce,
            on_behalf_of,
        } => {
            out.extend_from_slice(&nonce.to_be_bytes());
            match on_behalf_of {
                None => out.push(0),
                Some(id) => {
                    out.push(1);
                    out.extend_from_slice(&id.0);
                }
            }
        }
        GroupFrame::ProbeRequest { target, nonce } => {
            put_node_ref(target, out);
            out.extend_from_slice(&nonce.to_be_bytes());
        }
        GroupFrame::ProbeAck { target, nonce } => {
            out.extend_from_slice(&target.0);
            out.extend_from_slice(&nonce.to_be_bytes());
        }
        GroupFrame::IHave { announcements } => {
            put_count(
                FIELD_ANNOUNCEMENTS,
                announcements.len(),
                MAX_ANNOUNCEMENTS,
                out,
            )?;
            for a in announcements {
                put_message_id(&a.id, out);
                out.extend_from_slice(&a.hop.to_be_bytes());
            }
        }
        GroupFrame::Graft { id, want } => {
            put_message_id(id, out);
            out.push(u8::from(*want));
        }
        GroupFrame::Prune { source } => out.extend_from_slice(&source.0),
        GroupFrame::RepairRequest {
            source,
            epoch,
            first,
            last,
        } => put_repair_range(
            FIELD_REPAIR_REQUEST_RANGE,
            source,
            *epoch,
            *first,
            *last,
            out,
        )?,
        GroupFrame::RepairMissing {
            source,
            epoch,
            first,
            last,
        } => put_repair_range(
            FIELD_REPAIR_MISSING_RANGE,
            source,
            *epoch,
            *first,
            *last,
            out,
        )?,
        // Written above, before the header.
        GroupFrame::Data { .. } => {}
    }
    Ok(())
}

fn put_header(group: GroupId, kind: GroupFrameKind, out: &mut Vec<u8>) {
    out.extend_from_slice(&GROUP_MAGIC);
    out.push(GROUP_VERSION_1);
    out.push(kind as u8);
    out.extend_from_slice(&group.0.to_be_bytes());
}

fn put_message_id(id: &MessageId, out: &mut Vec<u8>) {
    out.extend_from_slice(&id.source.0);
    out.extend_from_slice(&id.epoch.to_be_bytes());
    out.extend_from_slice(&id.seq.to_be_bytes());
}

fn put_node_ref(node: &NodeRef, out: &mut Vec<u8>) {
    out.extend_from_slice(&node.id.0);
    match node.locator {
        None => out.push(LOCATOR_NONE),
        Some(Locator::Udp(SocketAddr::V4(addr))) => {
            out.push(LOCATOR_UDP_V4);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        Some(Locator::Udp(SocketAddr::V6(addr))) => {
            // Flow info and scope id are local to the sender's host: not sent.
            out.push(LOCATOR_UDP_V6);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
    }
}

fn put_node_refs(
    field: &'static str,
    nodes: &[NodeRef],
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    put_count(field, nodes.len(), MAX_NODE_REFS, out)?;
    for node in nodes {
        put_node_ref(node, out);
    }
    Ok(())
}

/// Writes a list's `u16` count, or refuses a list above its bound (every bound fits a `u16`).
fn put_count(
    field: &'static str,
    len: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    match u16::try_from(len) {
        Ok(count) if len <= max => {
            out.extend_from_slice(&count.to_be_bytes());
            Ok(())
        }
        _ => Err(GroupEncodeError::TooMany { field, len, max }),
    }
}

fn put_repair_range(
    field: &'static str,
    source: &NodeId,
    epoch: u32,
    first: u64,
    last: u64,
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    if first > last {
        return Err(GroupEncodeError::InvertedRange { field, first, last });
    }
    out.extend_from_slice(&source.0);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&last.to_be_bytes());
    Ok(())
}

fn kind_from_u8(kind: u8) -> Option<GroupFrameKind> {
    use GroupFrameKind as K;
    Some(match kind {
        1 => K::Join,
        2 => K::ForwardJoin,
        3 => K::Neighbor,
        4 => K::Accept,
        5 => K::Reject,
        6 => K::Disconnect,
        7 => K::Shuffle,
        8 => K::ShuffleReply,
        9 => K::Heartbeat,
        10 => K::Ping,
        11 => K::Pong,
        12 => K::ProbeRequest,
        13 => K::ProbeAck,
        16 => K::Data,
        17 => K::IHave,
        18 => K::Graft,
        19 => K::Prune,
        20 => K::RepairRequest,
        21 => K::RepairMissing,
        22 => K::Watermarks,
        23 => K::SubtreeAck,
        _ => return None,
    })
}

fn priority_from_u8(priority: u8) -> Result<NeighborPriority, GroupDecodeError> {
    match priority {
        0 => Ok(NeighborPriority::Low),
        1 => Ok(NeighborPriority::High),
        2 => Ok(NeighborPriority::Reconnect),
        3 => Ok(NeighborPriority::Optimize),
        _ => Err(GroupDecodeError::FieldOutOfRange {
            field: "neighbor.priority",
        }),
    }
}

/// A cursor over a frame body being decoded. Every read checks its bounds and never panics.
struct Reader<'a> {
    input: &'a [u8],
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GroupDecodeError> {
        let Some((head, rest)) = self.input.split_first_chunk::<N>() else {
            return Err(GroupDecodeError::Truncated {
                needed: N,
                have: self.input.len(),
            });
        };
        self.input = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, GroupDecodeError> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u16, GroupDecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, GroupDecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, GroupDecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A flag byte that must be 0 or 1.
    fn bool(&mut self, field: &'static str) -> Result<bool, GroupDecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(GroupDecodeError::FieldOutOfRange { field }),
        }
    }

    fn node_id(&mut self) -> Result<NodeId, GroupDecodeError> {
        self.array().map(NodeId)
    }

    fn optional_node_id(
        &mut self,
        field: &'static str,
    ) -> Result<Option<NodeId>, GroupDecodeError> {
        if self.bool(field)? {
            self.node_id().map(Some)
        } else {
            Ok(None)
        }
    }

    fn message_id(&mut self) -> Result<MessageId, GroupDecodeError> {
        Ok(MessageId {
            source: self.node_id()?,
            epoch: self.u32()?,
            seq: self.u64()?,
        })
    }

    fn node_ref(&mut self) -> Result<NodeRef, GroupDecodeError> {
        let id = self.node_id()?;
        let locator = match self.u8()? {
            LOCATOR_NONE => None,
            LOCATOR_UDP_V4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                let port = self.u16()?;
                Some(Locator::Udp(SocketAddr::V4(SocketAddrV4::new(ip, port))))
            }
            LOCATOR_UDP_V6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                Some(Locator::Udp(SocketAddr::V6(SocketAddrV6::new(
                    ip, port, 0, 0,
                ))))
            }
            _ => {
                return Err(GroupDecodeError::FieldOutOfRange {
                    field: "node_ref.locator",
                });
            }
        };
        Ok(NodeRef { id, locator })
    }

    fn node_refs(&mut self, field: &'static str) -> Result<Vec<NodeRef>, GroupDecodeError> {
        let count = self.count(field, MAX_NODE_REFS, NODE_REF_MIN_LEN)?;
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(self.node_ref()?);
        }
        Ok(nodes)
    }

    /// Reads a list's `u16` count and checks it, before anything is allocated, against the
    /// list's bound and against the bytes left (each entry takes at least `min_entry_len`).
    fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_entry_len: usize,
    ) -> Result<usize, GroupDecodeError> {
        let count = usize::from(self.u16()?);
        if count > max {
            return Err(GroupDecodeError::Oversized {
                field,
                len: count as u64,
                max: max as u64,
            });
        }
        let needed = count * min_entry_len;
        if needed > self.input.len() {
            return Err(GroupDecodeError::Truncated {
                needed,
                have: self.input.len(),
            });
        }
        Ok(count)
    }

    /// `source | epoch | first | last`, with `first <= last`.
    fn repair_range(
        &mut self,
        field: &'static str,
    ) -> Result<(NodeId, u32, u64, u64), GroupDecodeError> {
        let source = self.node_id()?;
        let epoch = self.u32()?;
        let first = self.u64()?;
        let last = self.u64()?;
        if first > last {
            return Err(GroupDecodeError::FieldOutOfRange { field });
        }
        Ok((source, epoch, first, last))
    }
}

/// Locator tag: no locator follows.
const LOCATOR_NONE: u8 = 0;
/// Locator tag: a UDP/IPv4 address (4 bytes) and port follow.
const LOCATOR_UDP_V4: u8 = 4;
/// Locator tag: a UDP/IPv6 address (16 bytes) and port follow.
const LOCATOR_UDP_V6: u8 = 6;
/// Bytes of the shortest [`NodeRef`]: an id and the no-locator tag.
const NODE_REF_MIN_LEN: usize = NodeId::LEN + 1;
/// Bytes of one [`Watermark`].
const WATERMARK_LEN: usize = NodeId::LEN + 4 + 8;
/// Bytes of one [`Announcement`].
const ANNOUNCEMENT_LEN: usize = MESSAGE_ID_LEN + 2;

const FIELD_WATERMARKS: &str = "watermarks";
const FIELD_SHUFFLE_NODES: &str = "shuffle.nodes";
const FIELD_SHUFFLE_REPLY_NODES: &str = "shuffle_reply.nodes";
const FIELD_ANNOUNCEMENTS: &str = "ihave.announcements";
const FIELD_REPAIR_REQUEST_RANGE: &str = "repair_request.range";
const FIELD_REPAIR_MISSING_RANGE: &str = "repair_missing.range";

// The head layout above must add up to the published constant.
const _: () = assert!(DATA_HEAD_LEN == GROUP_HEADER_LEN + MESSAGE_ID_LEN + 2 + 1);
const _: () = assert!(MESSAGE_ID_LEN == NodeId::LEN + 4 + 8);
// Every list bound fits the u16 count.
const _: () = assert!(MAX_NODE_REFS <= u16::MAX as usize);
const _: () = assert!(MAX_ANNOUNCEMENTS <= u16::MAX as usize);
const _: () = assert!(MAX_WATERMARKS <= u16::MAX as usize);

/// A `u16`-counted list of watermarks (`Accept` and `Watermarks` bodies).
fn read_watermarks(r: &mut Reader<'_>) -> Result<Vec<Watermark>, GroupDecodeError> {
    let count = r.count(FIELD_WATERMARKS, MAX_WATERMARKS, WATERMARK_LEN)?;
    let mut watermarks = Vec::with_capacity(count);
    for _ in 0..count {
        watermarks.push(Watermark {
            source: r.node_id()?,
            epoch: r.u32()?,
            next_seq: r.u64()?,
        });
    }
    Ok(watermarks)
}
