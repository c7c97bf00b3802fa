//! The `user_data` of every submission: `OpKind:8 | slot:32 | generation:24`.
//!
//! A completion names its operation only through this word, so it carries enough to find the
//! state the operation used and to tell a stale completion (for a slot that has since been
//! reused) from a live one: the generation must match the slot's current one.

/// What a submission does: the top 8 bits of its `user_data`. Zero is never used, so that a
/// zeroed word is not mistaken for an operation.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u8)]
pub(super) enum OpKind {
    /// The multishot receive of a socket; `slot` is the `SocketId`, `generation` is unused.
    Recv = 1,
    /// A plain `SendMsg`; `slot` is the transmit slot.
    Send = 2,
    /// A zero-copy send (two completions: the result, then the notification).
    SendZc = 3,
    /// The multishot poll of a watched waker; `slot` indexes the watched wakers.
    Wake = 4,
    /// An `AsyncCancel`; its own completion carries nothing we need.
    Cancel = 5,
    /// A one-shot poll for readability of a socket starved of receive slots; `slot` is the
    /// `SocketId`.
    Readable = 6,
}

impl OpKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Recv,
            2 => Self::Send,
            3 => Self::SendZc,
            4 => Self::Wake,
            5 => Self::Cancel,
            6 => Self::Readable,
            _ => return None,
        })
    }
}

/// The decoded `user_data` of a submission or completion.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) struct UserData {
    pub(super) kind: OpKind,
    pub(super) slot: u32,
    pub(super) generation: u32,
}

impl UserData {
    /// Generations wrap at 24 bits.
    pub(super) const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

    pub(super) fn new(kind: OpKind, slot: u32, generation: u32) -> Self {
        Self {
            kind,
            slot,
            generation: generation & Self::GENERATION_MASK,
        }
    }

    pub(super) fn pack(self) -> u64 {
        (u64::from(self.kind as u8) << (SLOT_BITS + GENERATION_BITS))
            | (u64::from(self.slot) << GENERATION_BITS)
            | u64::from(self.generation & Self::GENERATION_MASK)
    }

    /// `None` for a word no submission of ours carries.
    pub(super) fn unpack(v: u64) -> Option<Self> {
        let kind = OpKind::from_u8((v >> (SLOT_BITS + GENERATION_BITS)) as u8)?;
        Some(Self {
            kind,
            slot: (v >> GENERATION_BITS) as u32,
            generation: v as u32 & Self::GENERATION_MASK,
        })
    }
}

const SLOT_BITS: u32 = 32;
const GENERATION_BITS: u32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_rejects_unknown_kinds() {
        for kind in [
            OpKind::Recv,
            OpKind::Send,
            OpKind::SendZc,
            OpKind::Wake,
            OpKind::Cancel,
            OpKind::Readable,
        ] {
            for (slot, generation) in [(0, 0), (u32::MAX, UserData::GENERATION_MASK), (7, 1)] {
                let u = UserData::new(kind, slot, generation);
                assert_eq!(UserData::unpack(u.pack()), Some(u));
            }
        }
        assert_eq!(UserData::new(OpKind::Send, 1, 1 << 24).generation, 0);
        assert_eq!(UserData::unpack(0), None);
        assert_eq!(UserData::unpack(u64::MAX), None);
    }
}
