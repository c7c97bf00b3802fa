//! Fuzzes `substrate::wire::fuzzing::decode_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| substrate::wire::fuzzing::decode_datagram(data));
