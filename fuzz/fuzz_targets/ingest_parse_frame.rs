//! Arbitrary bytes as one complete frame through `ingest::protocol::parse_frame`
//! (see `ingest::protocol::fuzz_check::parse_one`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingest::protocol::fuzz_check::parse_one(data));
