//! Encoding and decoding of group frames.

use super::error::{GroupDecodeError, GroupEncodeError};
use super::{GroupFrame, MessageId};
use crate::GroupId;

/// Appends `frame`, header first, to `out`. A `Data` frame's payload is appended too.
///
/// # Errors
/// [`GroupEncodeError`] if a list exceeds its `MAX_*` bound; `out` is then left as it was.
pub fn encode(
    group: GroupId,
    frame: &GroupFrame<'_>,
    out: &mut Vec<u8>,
) -> Result<(), GroupEncodeError> {
    let _ = (group, frame, out);
    todo!("helper: wire codec")
}

/// Appends only the head of a `Data` frame (header, id, hop, flags): the payload follows as a
/// separate buffer, so that the same payload bytes go to every receiver.
pub fn encode_data_head(
    group: GroupId,
    id: &MessageId,
    hop: u16,
    flags: super::DataFlags,
    out: &mut Vec<u8>,
) {
    let _ = (group, id, hop, flags, out);
    todo!("helper: wire codec")
}

/// Reads the header's group id and kind byte without decoding the body.
///
/// # Errors
/// `Truncated`, `BadMagic` or `UnsupportedVersion`.
pub fn decode_header(frame: &[u8]) -> Result<(GroupId, u8), GroupDecodeError> {
    let _ = frame;
    todo!("helper: wire codec")
}

/// Decodes one whole frame. For `Data`, the payload is the rest of `frame` after the head.
///
/// # Errors
/// A [`GroupDecodeError`] naming what is wrong and where.
pub fn decode(frame: &[u8]) -> Result<(GroupId, GroupFrame<'_>), GroupDecodeError> {
    let _ = frame;
    todo!("helper: wire codec")
}
