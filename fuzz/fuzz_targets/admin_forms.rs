//! The admin panel's request bodies, cookies and query strings, the first
//! byte choosing which (see `admin::pages::fuzz_check::forms`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| admin::pages::fuzz_check::forms(data));
