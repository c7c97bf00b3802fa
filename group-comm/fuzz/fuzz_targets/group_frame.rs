//! Fuzzes `group_comm::wire::fuzzing::decode_never_panics`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| group_comm::wire::fuzzing::decode_never_panics(data));
