//! Arbitrary bytes, split into reads of sizes the first byte chooses,
//! through ingest's frame decoder (see `ingest::protocol::fuzz_check::frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingest::protocol::fuzz_check::frames(data));
