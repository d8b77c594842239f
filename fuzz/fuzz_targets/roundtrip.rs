//! `shmstore::fuzzing::roundtrip` for a few derived types, used exactly as a user would.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../roundtrip_types.rs");

fuzz_target!(|data: &[u8]| roundtrip_all(data));
