//! Harnesses shared by the cargo-fuzz targets (`substrate/fuzz`), the property tests and the
//! corpus-replay test: each takes arbitrary bytes and checks the decoder's contract.
//!
//! A harness returns quietly when the input is merely malformed (a typed [`DecodeError`] is the
//! correct answer to garbage) and panics only when it catches the codec breaking its contract:
//! a decoder claiming more bytes than it was given, a decoded frame that does not re-encode to
//! something that decodes back to itself, or `encoded_len` disagreeing with what `encode` wrote.
//! Any such panic is a fuzz finding.
//!
//! [`DecodeError`]: super::DecodeError

use super::{
    EncodeError, Frame, HEADER_LEN, Header, MAX_DATAGRAM_BYTES, SUPPORTED_VERSIONS, VERSION_1,
};

/// Decodes `data` as a whole datagram and checks every frame in it.
///
/// The header and each frame that decodes must re-encode and decode back to an equal value; the
/// [`Frames`](super::Frames) iterator must agree with decoding frame by frame, stop after its first error, and
/// never account for more bytes than `data` holds.
///
/// # Panics
/// Only on a contract violation by the codec.
pub fn decode_datagram(data: &[u8]) {
    let Ok((header, mut frames)) = super::decode_datagram(data) else {
        return;
    };
    assert!(
        data.len() <= MAX_DATAGRAM_BYTES,
        "accepted an oversized datagram"
    );
    check_header(data, &header);
    let mut rest = &data[HEADER_LEN..];
    let mut consumed = HEADER_LEN;
    loop {
        if rest.is_empty() {
            assert!(
                frames.next().is_none(),
                "iterator yields past the end of the datagram"
            );
            break;
        }
        let expected = Frame::decode(header.version, rest);
        let Some(yielded) = frames.next() else {
            panic!("iterator ended before the datagram did");
        };
        assert_eq!(
            yielded,
            expected.clone().map(|(frame, _)| frame),
            "iterator disagrees"
        );
        match expected {
            Ok((frame, used)) => {
                check_frame(header.version, rest, &frame, used);
                consumed += used;
                rest = &rest[used..];
            }
            Err(_) => {
                assert!(frames.next().is_none(), "iterator continues after an error");
                break;
            }
        }
    }
    assert!(
        consumed <= data.len(),
        "frames consumed {consumed} of {} bytes",
        data.len()
    );
}

/// Decodes `data` as a single frame in [`VERSION_1`] and checks the result as
/// [`decode_datagram`] checks each frame.
///
/// # Panics
/// Only on a contract violation by the codec.
pub fn decode_frame(data: &[u8]) {
    if let Ok((frame, used)) = Frame::decode(VERSION_1, data) {
        check_frame(VERSION_1, data, &frame, used);
    }
}

/// Decodes `data` as a datagram header; one that decodes must name a supported version and
/// re-encode to exactly the first [`HEADER_LEN`] bytes of `data`.
///
/// # Panics
/// Only on a contract violation by the codec.
pub fn decode_header(data: &[u8]) {
    if let Ok(header) = Header::decode(data) {
        check_header(data, &header);
    }
}

/// Checks a decoded header against the bytes it came from.
fn check_header(data: &[u8], header: &Header) {
    assert!(
        SUPPORTED_VERSIONS.contains(&header.version),
        "accepted version {}",
        header.version
    );
    let mut out = [0u8; HEADER_LEN];
    assert_eq!(header.encode(&mut out), Ok(HEADER_LEN));
    assert_eq!(
        data.get(..HEADER_LEN),
        Some(&out[..]),
        "header does not re-encode to its bytes"
    );
    assert_eq!(Header::decode(&out).as_ref(), Ok(header));
}

/// Checks a frame decoded from the start of `input`, taking `used` bytes, by re-encoding it.
fn check_frame(version: u8, input: &[u8], frame: &Frame<'_>, used: usize) {
    assert!(
        used >= 2 && used <= input.len(),
        "frame took {used} of {} bytes",
        input.len()
    );
    if let Frame::Unknown { .. } = frame {
        // A non-minimal body_len varint makes the skipped frame longer than its minimal form.
        assert!(
            frame.encoded_len() <= used,
            "skipped frame longer than the input"
        );
        let mut out = vec![0u8; used];
        assert_eq!(
            frame.encode(&mut out),
            Err(EncodeError::FieldTooLarge {
                field: "frame.kind"
            })
        );
        return;
    }
    let len = frame.encoded_len();
    // Re-encoding drops skipped fields and uses minimal varints: never longer than the input.
    assert!(
        len <= used,
        "re-encoding takes {len} bytes, input took {used}"
    );
    let mut out = vec![0u8; len];
    match frame.encode(&mut out[..len - 1]) {
        Err(EncodeError::BufferTooSmall { needed, have }) => {
            assert_eq!(
                (needed, have),
                (len, len - 1),
                "BufferTooSmall reports wrong sizes"
            );
        }
        other => panic!("encode into a short buffer gave {other:?}"),
    }
    assert_eq!(
        frame.encode(&mut out),
        Ok(len),
        "encode disagrees with encoded_len"
    );
    let (again, used_again) = match Frame::decode(version, &out) {
        Ok(decoded) => decoded,
        Err(error) => panic!("re-encoded {frame:?} does not decode: {error:?}"),
    };
    assert_eq!(used_again, len, "re-decoded frame took a different length");
    assert_eq!(&again, frame, "frame does not survive a round trip");
}
