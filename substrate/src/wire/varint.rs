//! QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, top two bits give the length.

use super::error::{DecodeError, EncodeError};

/// Largest value a varint can hold: 2^62 - 1.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Bytes the varint encoding of `v` takes (8 for values above [`MAX_VARINT`], which fail to encode).
pub const fn varint_len(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Reads one varint from the start of `input`; returns its value and the bytes it took.
///
/// Non-minimal encodings (a small value in a longer form) are accepted, as RFC 9000 allows.
///
/// # Errors
/// [`DecodeError::Truncated`] if `input` ends inside the varint.
#[inline]
pub(crate) fn decode(input: &[u8]) -> Result<(u64, usize), DecodeError> {
    let Some(&first) = input.first() else {
        return Err(DecodeError::Truncated { needed: 1, have: 0 });
    };
    let len = 1usize << (first >> 6);
    let Some(bytes) = input.get(..len) else {
        return Err(DecodeError::Truncated {
            needed: len,
            have: input.len(),
        });
    };
    let mut word = [0u8; 8];
    word[8 - len..].copy_from_slice(bytes);
    // Clear the two length bits, which sit at the top of the first byte of the encoding.
    let value = u64::from_be_bytes(word) & (u64::MAX >> (64 - (8 * len - 2)));
    Ok((value, len))
}

/// Writes `v` as a minimal varint at the start of `out`; returns the bytes written.
///
/// The caller has checked `v <= MAX_VARINT` and that `out` holds [`varint_len`]`(v)` bytes.
#[inline]
pub(crate) fn encode(v: u64, out: &mut [u8]) -> usize {
    debug_assert!(v <= MAX_VARINT, "varint {v} above MAX_VARINT");
    let len = varint_len(v);
    // The length code (0..=3) is log2 of the byte count, stored in the top two bits.
    let tagged = v | (u64::from(len.trailing_zeros()) << (8 * len - 2));
    out[..len].copy_from_slice(&tagged.to_be_bytes()[8 - len..]);
    len
}

/// Checks that `v` fits a varint, naming `field` if it does not.
#[inline]
pub(crate) fn check(v: u64, field: &'static str) -> Result<(), EncodeError> {
    if v <= MAX_VARINT {
        Ok(())
    } else {
        Err(EncodeError::FieldTooLarge { field })
    }
}
