//! QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, top two bits give the length.

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
